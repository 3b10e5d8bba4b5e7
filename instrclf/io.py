"""Writing outputs so that a crash never leaves a half-written file or folder behind; reading a text file with one-line errors."""

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

from .errors import DataError

#: Temporary siblings are named ``.<name>.tmp-<pid>-<random>``: the PID tells a live writer from a dead one.
_TEMP = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[^/]*")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _normal_mode(path, *, directory: bool) -> None:
    """Give a ``mkstemp``/``mkdtemp`` result (0600/0700) the permissions ``open``/``mkdir`` would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _alive(pid: int) -> bool:
    """Whether a process with this PID exists (it may belong to another user) and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` is a zombie (Linux ``/proc``; ``False`` elsewhere).

    A writer killed but not yet reaped by its parent (an init that reaps late, or a
    container's PID 1 that never does) is dead all the same: its temporaries are stale.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[:1] == [b"Z"]
    except OSError:
        return False


def remove_stale(path) -> list:
    """Remove temporary siblings of ``path`` left by writers that were killed.

    A writer killed with SIGKILL cannot clean up; the next writer of the same output
    removes every ``.<name>.tmp-<pid>-*`` sibling whose process no longer exists.

    Returns
    -------
    list of Path
        What was removed.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for entry in path.parent.iterdir():
        match = _TEMP.fullmatch(entry.name)
        if match and match["name"] == path.name and not _alive(int(match["pid"])):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _prefix(path: Path) -> str:
    return f".{path.name}.tmp-{os.getpid()}-"


@contextlib.contextmanager
def atomic_dir(path):
    """Build a folder in a sibling temporary folder and move it into place only on success.

    Parameters
    ----------
    path : str or Path
        The final folder. An existing folder there (or a link to one) is replaced once the
        block succeeds; if the block or the final rename fails, the temporary folder is
        removed and ``path`` is as it was.

    Yields
    ------
    Path
        The temporary folder to write into.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), dir=path.parent))
    _normal_mode(tmp, directory=True)
    old = None
    try:
        yield tmp
        if path.exists() or path.is_symlink():
            aside = Path(tempfile.mkdtemp(prefix=_prefix(path), dir=path.parent))
            os.rmdir(aside)
            path.rename(aside)
            old = aside  # set only once the old output is aside: a failed rename leaves it where it was
        tmp.rename(path)
    except BaseException:
        if old is not None:
            old.rename(path)  # the old output back in place: never no output at all
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is None:
        return
    if old.is_symlink():
        old.unlink()  # a link to a folder elsewhere: the link goes, what it pointed to is not ours
    else:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path, mode="w", **kwargs):
    """Open a sibling temporary file for writing and rename it to ``path`` only on success.

    Parameters
    ----------
    path : str or Path
        The final file; its parent folders are created.
    mode : str
        ``"w"`` (text) or ``"wb"`` (binary).
    **kwargs
        Passed to :func:`open` (e.g. ``encoding``, ``newline``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), dir=path.parent)
    os.close(fd)
    _normal_mode(tmp, directory=False)
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def sha256_of(path) -> str:
    """The hex SHA-256 of a file's bytes, read in blocks (``sha256sum``'s digest)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _finite(obj):
    """Replace non-finite floats with None so the JSON stays valid (no bare NaN/Infinity)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path, obj, *, indent=2):
    """Write ``obj`` as strict JSON (non-finite floats become null), atomically."""
    with atomic_file(path) as f:
        json.dump(_finite(obj), f, indent=indent, allow_nan=False)
        f.write("\n")


def read_text(path, *, missing="not found (run dvc repro)", what="JSON") -> str:
    """A UTF-8 file's text; a DataError naming the file: ``missing`` when absent, else why it cannot be read as ``what``."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: {missing}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not readable {what} ({exc})") from None
