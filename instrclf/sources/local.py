"""The ``local`` source: your own recordings, already in TinySOL's layout, copied into the raw folder.

``data.local.path`` is a folder holding ``TinySOL_metadata.csv`` and ``audio/<Path>`` for
every row (Zenodo's layout). It is validated with :func:`instrclf.layout.read_metadata`
before anything is copied; the files are hard-linked where the filesystem allows it (same
device, no copy of the audio), else copied.
"""

import errno
import os
import shutil
from pathlib import Path

from .. import layout
from ..errors import DataError

_KEY = "data.local.path"


def check(folder) -> Path:
    """Check that ``folder`` is in TinySOL's layout with every listed file present.

    Parameters
    ----------
    folder : str or Path
        ``data.local.path``.

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    DataError
        One line naming the folder: missing, not a folder, or not in the layout (the
        metadata's problems follow).
    """
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise DataError(f"{_KEY}: {folder} does not exist; it must be a folder with {layout.METADATA_FILE} and {layout.AUDIO_DIR}/<Path>")
    if not folder.is_dir():
        raise DataError(f"{_KEY}: {folder} is not a folder; it must hold {layout.METADATA_FILE} and {layout.AUDIO_DIR}/<Path>")
    try:
        layout.read_metadata(folder, check_audio=True)
    except DataError as exc:
        raise DataError(f"{_KEY}: {folder} is not in TinySOL's layout: {exc}") from None
    return folder


def copy(folder, out_dir) -> dict:
    """Copy a checked folder's metadata CSV and listed audio into ``out_dir``, hard-linking where possible.

    Parameters
    ----------
    folder : str or Path
        A folder that passed :func:`check`.
    out_dir : str or Path
        The raw folder being built.

    Returns
    -------
    dict
        ``files_linked`` and ``files_copied``.
    """
    folder, out_dir = Path(folder).expanduser(), Path(out_dir)
    table = layout.read_metadata(folder, check_audio=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / layout.METADATA_FILE, out_dir / layout.METADATA_FILE)
    linked = copied = 0
    for path in table["Path"]:
        source, target = folder / layout.AUDIO_DIR / path, out_dir / layout.AUDIO_DIR / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if link_or_copy(source, target):
            linked += 1
        else:
            copied += 1
    return {"files_linked": linked, "files_copied": copied}


#: errno values of os.link that mean "this filesystem or device pair cannot hard-link": copy instead.
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES}


def link_or_copy(source, target) -> bool:
    """Hard-link ``source`` at ``target``, or copy it where linking is refused; True if linked.

    A ``source`` that is a symbolic link is followed: Linux's ``link`` would link the symbolic
    link itself, whose relative target means nothing inside ``data/raw``.
    """
    try:
        os.link(os.path.realpath(source), target)
        return True
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise DataError(f"cannot link {source} to {target}: {exc.strerror or exc}") from None
    try:
        shutil.copy2(source, target)
    except OSError as exc:
        raise DataError(f"cannot copy {source} to {target}: {exc.strerror or exc}") from None
    return False
