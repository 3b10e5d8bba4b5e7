"""Data sources of the ``download`` stage; each ends in the same raw layout (Zenodo's).

Raw layout: ``TinySOL_metadata.csv`` plus ``audio/<Path>`` for every row of it.
"""

from pathlib import Path, PurePosixPath

import pandas as pd

from ..errors import DataError
from ..io import atomic_dir
from ..params import choice, get, number
from ..tinysol import N_FOLDS
from ..tinysol import read_metadata as read_metadata_csv
from . import tinysol

SOURCES = ("soundfont", "tinysol")
METADATA = "TinySOL_metadata.csv"

#: How many missing files a DataError lists before giving a count.
_SHOW = 10


def fetch(params: dict, out_dir) -> dict:
    """Build the raw folder from the source named by ``data.source``, replacing it only on success.

    Parameters
    ----------
    params : dict
        The whole params.yaml.
    out_dir : str or Path
        The raw folder (``data/raw``). It is built beside itself and swapped in once the
        source finished and the layout checked out; on any error it is left untouched.

    Returns
    -------
    dict
        Flat numbers: the source's own figures plus those of :func:`verify_layout`.
    """
    source = choice("data.source", get(params, "data.source"), SOURCES)
    run = _prepare(source, params)
    with atomic_dir(out_dir) as raw:
        stats = dict(run(raw))
        stats.update(verify_layout(raw))
    return stats


def _prepare(source: str, params: dict):
    """Validate ``source``'s params and return a function that fills a raw folder."""
    if source == "tinysol":
        settings = tinysol.check_params(params)
        return lambda raw: tinysol.download(raw, **settings)
    from . import soundfont  # imported only when used: it pulls in the synthesiser

    seed = number("seed", get(params, "seed"), integer=True, low=0)
    settings = get(params, "data.soundfont")
    soundfont.check_settings(settings)  # render checks again; this fails before out_dir is touched
    return lambda raw: soundfont.render(raw, seed=seed, settings=settings)


def verify_layout(raw_dir) -> dict:
    """Check that a raw folder holds the metadata CSV and the audio of every row.

    Parameters
    ----------
    raw_dir : str or Path
        Folder with ``TinySOL_metadata.csv`` and ``audio/``.

    Returns
    -------
    dict
        ``rows``, ``instruments``, ``families`` and ``folds`` counts.
    """
    raw_dir = Path(raw_dir)
    table = read_metadata(raw_dir / METADATA)
    folds = pd.to_numeric(table["Fold"], errors="coerce")
    bad = table.loc[~folds.isin(range(N_FOLDS)), "Fold"]
    if len(bad):
        raise DataError(
            f"{raw_dir / METADATA}: Fold must be an integer in 0..{N_FOLDS - 1}; "
            f"{len(bad)} row(s) have e.g. {sorted(set(map(str, bad)))[:5]}"
        )
    audio = raw_dir / "audio"
    missing = [path for path in table["Path"] if not (audio / path).is_file()]
    if missing:
        more = f" and {len(missing) - _SHOW} more" if len(missing) > _SHOW else ""
        raise DataError(
            f"{len(missing)} of {len(table)} files listed in {raw_dir / METADATA} are missing "
            f"under {audio}: {', '.join(missing[:_SHOW])}{more}"
        )
    return {
        "rows": len(table),
        "instruments": int(table["Instrument (abbr.)"].nunique()),
        "families": int(table["Family"].nunique()),
        "folds": int(folds.nunique()),
    }


def read_metadata(path) -> pd.DataFrame:
    """Read a TinySOL metadata CSV, checking its required columns and its ``Path`` values.

    Parameters
    ----------
    path : str or Path
        The CSV file.

    Returns
    -------
    pandas.DataFrame
        The table, columns by name (older copies lack ``Instance ID``).
    """
    table = read_metadata_csv(path)
    for value in table["Path"]:
        parts = PurePosixPath(str(value)).parts
        if not isinstance(value, str) or not value or value.startswith("/") or ".." in parts:
            raise DataError(f"{path}: Path must be a relative path inside audio/, got {value!r}")
    return table
