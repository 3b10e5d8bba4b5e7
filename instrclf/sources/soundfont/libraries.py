"""The sampled libraries (SoundFonts) a render plays, by name or by path.

``data.soundfont.libraries`` lists names from :data:`KNOWN` (each a file installed by a
Debian package) or paths to ``.sf2``/``.sf3`` files, or to a TiMidity++ config of Gravis
patches (``.cfg``, played by ``timidity``: :mod:`.timidity`). A path is its own library,
named by its file stem. Every file is checked before anything is rendered: one error names each
missing or unreadable file and, for a known library, the package that provides it.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import DataError, ParameterError
from . import timidity

#: Known library name -> (its file, the Debian package that installs it).
KNOWN = {
    "TimGM6mb": (Path("/usr/share/sounds/sf2/TimGM6mb.sf2"), "timgm6mb-soundfont"),
    "FluidR3_GM": (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), "fluid-soundfont-gm"),
    "sf_GMbank": (Path("/usr/share/sounds/sf2/sf_GMbank.sf2"), "csound-soundfont"),
    "MuseScore_General_Lite": (Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"), "musescore-general-soundfont-small"),
    "OPL3_FM": (Path("/usr/share/sounds/sf2/OPL-3_FM_128M.sf2"), "opl3-soundfont"),
    # Gravis patches with samples of their own; no viola, no double bass (played by timidity)
    "freepats": (Path("/etc/timidity/freepats.cfg"), "freepats timidity"),
}

#: File endings of a library given as a path: SoundFonts, and a TiMidity++ patch config.
SUFFIXES = (".sf2", ".sf3", timidity.SUFFIX)

#: A library name becomes the metadata's ``Library`` column: a plain name (as layout requires).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _+.-]*")

_KEY = "data.soundfont.libraries"


@dataclass(frozen=True)
class Library:
    """One sampled library.

    Attributes
    ----------
    name : str            Its name, written to the metadata's ``Library`` column.
    path : Path           The ``.sf2``/``.sf3`` file.
    package : str or None The Debian package that installs it (None for a path of yours).
    """

    name: str
    path: Path
    package: str | None = None

    @property
    def hint(self) -> str:
        """How to get the file: the package to install, or what the entry was."""
        if self.package:
            return f"library {self.name}; install it with `apt-get install {self.package}`"
        return f"library {self.name}, a path in {_KEY}"


def library(entry: str, *, index: int = 0) -> Library:
    """The library of one entry of ``data.soundfont.libraries``: a known name or a path.

    Parameters
    ----------
    entry : str
        A name from :data:`KNOWN`, or a path to a ``.sf2``/``.sf3`` file (``~`` expanded).
    index : int
        The entry's position, named in errors.

    Returns
    -------
    Library
        Its name, file and package; the file is not checked here (see :func:`resolve`).
    """
    if entry in KNOWN:
        path, package = KNOWN[entry]
        return Library(entry, path, package)
    path = Path(entry).expanduser()
    if path.suffix.lower() not in SUFFIXES:
        raise ParameterError(
            f"{_KEY}[{index}] = {entry!r}: not a known library ({', '.join(KNOWN)}) "
            f"nor a path to a {'/'.join(SUFFIXES)} file"
        )
    if not _NAME.fullmatch(path.stem):
        raise ParameterError(f"{_KEY}[{index}] = {entry!r}: the file stem {path.stem!r} names the library and must be a plain name")
    return Library(path.stem, path)


def resolve(entries, *, check: bool = True) -> list:
    """The libraries of ``data.soundfont.libraries``, in order (a library's position is its Instance ID).

    Parameters
    ----------
    entries : list of str
        Names or paths (``SoundfontSettings.libraries``).
    check : bool
        Also require every file to exist and be a SoundFont (:func:`problem`).

    Returns
    -------
    list of Library

    Raises
    ------
    ParameterError
        An entry that is neither a known name nor a SoundFont path, or two entries with
        the same library name.
    DataError
        With ``check``: one message naming every missing or unreadable file.
    """
    found = [library(entry, index=i) for i, entry in enumerate(entries)]
    seen = {}
    for i, lib in enumerate(found):
        if lib.name in seen:
            raise ParameterError(
                f"{_KEY}[{i}] = {entries[i]!r}: library name {lib.name!r} is already used by "
                f"{_KEY}[{seen[lib.name]}] = {entries[seen[lib.name]]!r}"
            )
        seen[lib.name] = i
    if check:
        _check(found)
    return found


def _check(found: list) -> None:
    """Raise one DataError naming every library file that is missing or not a SoundFont."""
    problems = []
    for lib in found:
        why = problem(lib.path)
        if why:
            problems.append(f"{lib.path} {why} ({lib.hint})")
    if problems:
        raise DataError(f"{len(problems)} SoundFont file(s) of {_KEY} unusable, nothing rendered: " + "; ".join(problems))


def problem(path) -> str | None:
    """What is wrong with a SoundFont file (``"is missing"``, ...), or None if it looks fine.

    Only the RIFF header is read (``RIFF....sfbk``): cheap enough to check every library
    before a render starts.
    """
    path = Path(path)
    if path.suffix.lower() == timidity.SUFFIX:
        return timidity.problem(path)
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except FileNotFoundError:
        return "is missing"
    except IsADirectoryError:
        return "is a folder, not a file"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        return "is not a SoundFont (no RIFF sfbk header)"
    return None
