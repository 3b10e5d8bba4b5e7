"""Writing outputs so that a crash never leaves a half-written file or folder behind."""

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _normal_mode(path, *, directory: bool) -> None:
    """Give a ``mkstemp``/``mkdtemp`` result (0600/0700) the permissions ``open``/``mkdir`` would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_dir(path):
    """Build a folder in a sibling temporary folder and move it into place only on success.

    Parameters
    ----------
    path : str or Path
        The final folder. An existing folder there is replaced once the block succeeds;
        if the block raises, the temporary folder is removed and ``path`` is untouched.

    Yields
    ------
    Path
        The temporary folder to write into.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    _normal_mode(tmp, directory=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old.{os.getpid()}")
        path.rename(old)
    tmp.rename(path)
    if old is not None:
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
