"""Data sources of the ``download`` stage; each fills the same raw layout (Zenodo's).

Raw layout: ``TinySOL_metadata.csv`` plus ``audio/<Path>`` for every row of it, owned and
checked by :mod:`instrclf.layout`. :func:`fetch` checks everything it can before any work
(library files, URLs, a local folder), builds the raw folder beside its final place, and
swaps it in only once :func:`instrclf.layout.read_metadata` accepts it.

**Combined sources.** ``data.source`` may list several sources (``[soundfont, local]``):
each builds its own part, then :func:`combine` makes one raw set of them. Every note keeps
its fold (from its source's metadata) and its library: the SoundFont's name, the local
set's ``Library`` column (``own`` where it has none), ``TinySOL`` for the Zenodo set
(:data:`DEFAULT_LIBRARY`). Sources are not namespaced: a note's ``Path`` stays what its
source says, so a note has the same path (and the same fold and library) alone or combined.
Two sources that give the same ``Path``, or the same library name, are refused with one
line naming both sources and the first such path or library; nothing is written then.

**What DVC tracks** (dvc.yaml, stage ``download``): every ``data`` parameter (the
``tinysol`` source's md5 checksums pin Zenodo's two files), the local folder
``${data.local.path}`` (every file in it: adding or removing a recording, or editing its
metadata, marks ``download`` changed), and the three default SoundFont files. Not tracked:
the files of the other known libraries and of SoundFonts given by path; replacing one of
those in place (same name) needs ``dvc repro --force download``. Put a SoundFont of your
own inside the local folder (for example ``data/own/soundfonts/mine.sf2``; the local source
reads only the audio its metadata lists) and it is tracked too.
"""

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from .. import layout
from ..errors import DataError, ParameterError
from ..io import atomic_dir, atomic_file, sha256_of

#: Library of a source's notes whose metadata has no ``Library`` column.
DEFAULT_LIBRARY = {"tinysol": "TinySOL", "local": "own"}


def fetch(data, *, seed: int, out_dir, checksums=None) -> dict:
    """Build the raw folder from the source(s) named by ``data.source``, replacing it only on success.

    Parameters
    ----------
    data : DataSettings
        The ``data`` section: ``source`` and the sources' settings.
    seed : int
        The global seed (the soundfont source's folds and variation).
    out_dir : str or Path
        The raw folder (``data/raw``). It is built beside itself and swapped in once the
        source finished and the layout checked out; on any error it is left untouched.
    checksums : str or Path, optional
        Where to write the raw folder's checksum list (:func:`write_checksums`), once the
        folder is in place.

    Returns
    -------
    dict
        Flat figures: the sources' own (:func:`combine`), then ``rows``, ``instruments``, ``families``,
        ``folds`` and ``libraries`` of the checked metadata.
    """
    work = prepare(data, seed=seed, out_dir=out_dir)
    with atomic_dir(out_dir) as raw:
        figures = dict(work(raw))
        table = layout.read_metadata(raw, check_audio=True)
    if checksums is not None:
        write_checksums(out_dir, checksums)
    figures.update(
        rows=len(table),
        instruments=int(table["instrument"].nunique()),
        families=int(table["family"].nunique()),
        folds=int(table["fold"].nunique()),
        libraries=int(table["library"].nunique()),
    )
    return figures


def write_checksums(raw, path, *, jobs=2) -> int:
    """Write ``path``: one ``sha256sum`` line per file under ``raw`` (``<hex>  <relative path>``), sorted.

    ``clean`` depends on this one file rather than on the raw folder (dvc.yaml): the same
    content, but DVC walks the raw set's files once per ``dvc status`` (as ``download``'s
    output) instead of twice. ``cd data/raw && sha256sum -c ../raw.sha256`` checks a copy.
    Files are hashed in ``jobs`` threads (hashlib works outside the GIL); returns the count.
    """
    raw = Path(raw)
    files = sorted(Path(root, name).relative_to(raw).as_posix() for root, _, names in os.walk(raw) for name in names)

    with ThreadPoolExecutor(max_workers=jobs) as pool, atomic_file(path, encoding="utf-8", newline="\n") as out:
        for relative, hexdigest in zip(files, pool.map(lambda f: sha256_of(raw / f), files), strict=True):
            out.write(f"{hexdigest}  {relative}\n")
    return len(files)


def prepare(data, *, seed: int, out_dir=None):
    """Check every source of ``data.source`` before any work; return a function that fills a raw folder.

    Parameters
    ----------
    data : DataSettings
        The ``data`` section.
    seed : int
        The global seed.
    out_dir : str, Path or None
        The raw folder to be built; a local source may not be it (or lie inside it).

    Returns
    -------
    callable
        ``work(raw_dir) -> dict`` of the sources' figures (see :func:`combine`).
    """
    parts = [(name, _prepare_one(name, data, seed=seed, out_dir=out_dir)) for name in data.source]
    return lambda raw: combine(parts, raw)


def _prepare_one(name: str, data, *, seed: int, out_dir):
    """Check one source; return its ``work(raw_dir) -> dict``."""
    if name == "tinysol":
        from . import tinysol

        tinysol.check(data.tinysol)
        return lambda raw: tinysol.download(raw, settings=data.tinysol)
    if name == "local":
        from . import local

        folder = local.check(data.local.path)
        if out_dir is not None and _inside(folder, Path(out_dir)):
            raise ParameterError(f"data.local.path {str(folder)!r} is the download output {str(out_dir)!r} (or inside it); point it at your own folder")
        return lambda raw: local.copy(folder, raw)
    from .soundfont import libraries, render  # imported only when used: it pulls in the synthesiser

    libraries.resolve(data.soundfont.libraries, check=True)  # render checks again; this fails before out_dir is touched
    return lambda raw: render.render(raw, seed=seed, settings=data.soundfont)


def combine(parts, raw) -> dict:
    """Build every source's part and make one raw set of them in ``raw``.

    Parameters
    ----------
    parts : list of (str, callable)
        ``(source name, work)`` in ``data.source`` order; ``work(folder) -> dict`` fills a
        folder in the raw layout.
    raw : Path
        The (empty) folder being built.

    Returns
    -------
    dict
        Every source's figures (their keys differ by source), plus ``sources`` when there
        are several.

    Raises
    ------
    DataError
        Two sources giving the same ``Path`` or the same library name: one line naming
        both sources and the first path or library.
    """
    raw = Path(raw)
    if len(parts) == 1:
        (name, work), = parts
        figures = dict(work(raw))
        _name_library(raw, name)
        return figures
    figures, tables, owner, library_owner = {"sources": len(parts)}, [], {}, {}
    for name, work in parts:
        part = raw / f".part-{name}"
        figures.update(work(part))
        _name_library(part, name)
        table = layout.read_metadata_table(part)
        for path in table["Path"]:
            if path in owner:
                raise DataError(
                    f"data.source: {owner[path]} and {name} both give {layout.AUDIO_DIR}/{path}; "
                    f"rename it in one of them (sources are not namespaced)"
                )
            owner[path] = name
        for library in sorted(set(table[layout.LIBRARY_COLUMN])):
            if library_owner.setdefault(library, name) != name:
                raise DataError(
                    f"data.source: {library_owner[library]} and {name} both give notes of library {library!r}; "
                    f"a library must come from one source"
                )
        tables.append((part, table))
    audio = raw / layout.AUDIO_DIR
    for part, table in tables:
        for path in table["Path"]:
            target = audio / path
            target.parent.mkdir(parents=True, exist_ok=True)
            (part / layout.AUDIO_DIR / path).rename(target)
    merged = pd.concat([table for _, table in tables], ignore_index=True).fillna("")
    layout.write_metadata(raw, merged.sort_values("Path", kind="stable"), other_columns=True)
    for part, _ in tables:
        shutil.rmtree(part)  # its metadata and the emptied folders: the audio moved out
    return figures


def _name_library(folder: Path, source: str) -> None:
    """Give a part's notes their source's default library where its metadata names none."""
    if source not in DEFAULT_LIBRARY:
        return
    table = layout.read_metadata_table(folder)
    if layout.LIBRARY_COLUMN not in table.columns:
        table[layout.LIBRARY_COLUMN] = DEFAULT_LIBRARY[source]
        layout.write_metadata(folder, table, other_columns=True)


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (both resolved)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents
