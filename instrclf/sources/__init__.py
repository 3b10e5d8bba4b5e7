"""Data sources of the ``download`` stage; each fills the same raw layout (Zenodo's).

Raw layout: ``TinySOL_metadata.csv`` plus ``audio/<Path>`` for every row of it, owned and
checked by :mod:`instrclf.layout`. :func:`fetch` checks everything it can before any work
(library files, URLs, a local folder), builds the raw folder beside its final place, and
swaps it in only once :func:`instrclf.layout.read_metadata` accepts it.
"""

from pathlib import Path

from .. import layout
from ..errors import ParameterError
from ..io import atomic_dir

#: Values of ``data.source``.
SOURCES = ("soundfont", "tinysol", "local")


def fetch(data, *, seed: int, out_dir) -> dict:
    """Build the raw folder from the source named by ``data.source``, replacing it only on success.

    Parameters
    ----------
    data : DataSettings
        The ``data`` section: ``source`` and that source's settings.
    seed : int
        The global seed (the soundfont source's folds and variation).
    out_dir : str or Path
        The raw folder (``data/raw``). It is built beside itself and swapped in once the
        source finished and the layout checked out; on any error it is left untouched.

    Returns
    -------
    dict
        Flat figures: the source's own, then ``rows``, ``instruments``, ``families``,
        ``folds`` and ``libraries`` of the checked metadata.
    """
    work = prepare(data, seed=seed, out_dir=out_dir)
    with atomic_dir(out_dir) as raw:
        figures = dict(work(raw))
        table = layout.read_metadata(raw, check_audio=True)
    figures.update(
        rows=len(table),
        instruments=int(table["instrument"].nunique()),
        families=int(table["family"].nunique()),
        folds=int(table["fold"].nunique()),
        libraries=int(table["library"].nunique()),
    )
    return figures


def prepare(data, *, seed: int, out_dir=None):
    """Check ``data``'s chosen source before any work; return a function that fills a raw folder.

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
        ``work(raw_dir) -> dict`` of the source's figures.
    """
    if data.source == "tinysol":
        from . import tinysol

        tinysol.check(data.tinysol)
        return lambda raw: tinysol.download(raw, settings=data.tinysol)
    if data.source == "local":
        from . import local

        folder = local.check(data.local.path)
        if out_dir is not None and _inside(folder, Path(out_dir)):
            raise ParameterError(f"data.local.path {str(folder)!r} is the download output {str(out_dir)!r} (or inside it); point it at your own folder")
        return lambda raw: local.copy(folder, raw)
    from .soundfont import libraries, render  # imported only when used: it pulls in the synthesiser

    libraries.resolve(data.soundfont.libraries, check=True)  # render checks again; this fails before out_dir is touched
    return lambda raw: render.render(raw, seed=seed, settings=data.soundfont)


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (both resolved)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents
