"""Every file that passes between stages: one reader and one writer each.

- **Raw layout** (``download`` -> ``clean``): ``TinySOL_metadata.csv`` plus ``audio/<Path>``
  for every row, Zenodo's layout. :func:`read_metadata` is the one validation used by
  download's final check and by clean.
- **Clean windows** (``clean`` -> ``features``, ``export``, ``report``): ``shards/NNNNN.npy``,
  int16 arrays of shape ``(windows, samples)`` (:data:`SHARD_BYTES` each at most, a note's
  windows together), and ``index.csv``, one row per window with its ``shard`` and ``row``.
  :class:`ShardWriter` writes them note by note; :class:`Windows` reads any rows back.
- **Features** (``features`` -> ``train``/``predict``): ``spectrograms.npy``, the front end's
  output for every window, row ``i`` for row ``i`` of the ``index.csv`` beside it, and
  ``features.json``, the settings that made them.
- **Predictions** (``predict`` -> ``summary``/``plot``): one row per note and model.

Every reader fails with one :class:`DataError` that names the file and lists every
problem found, never with a pandas traceback.
"""

import contextlib
import csv
import json
import os
import re
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from .errors import DataError
from .io import atomic_file, read_text, write_json  # write_json: every JSON passed between stages goes through here
from .instruments import BY_ABBR, FAMILIES, N_FOLDS

#: Columns of TinySOL_metadata.csv, in Zenodo's order (older copies lack "Instance ID";
#: code reads columns by name).
METADATA_COLUMNS = (
    "Path",
    "Fold",
    "Family",
    "Instrument (abbr.)",
    "Instrument (in full)",
    "Technique (abbr.)",
    "Technique (in full)",
    "Pitch",
    "Pitch ID",
    "Dynamics",
    "Dynamics ID",
    "Instance ID",
    "String ID",
    "Resampled",
)

METADATA_FILE = "TinySOL_metadata.csv"
AUDIO_DIR = "audio"
INDEX_FILE = "index.csv"

#: Columns every later stage needs; a metadata CSV without them is refused.
REQUIRED_COLUMNS = ("Path", "Fold", "Family", "Instrument (abbr.)")

#: Optional metadata column naming the sampled library a note was rendered from.
LIBRARY_COLUMN = "Library"

#: Library of every note when the metadata has no ``Library`` column (TinySOL, your own set).
DEFAULT_LIBRARY = "default"

#: ``data.target`` -> the metadata column that gives the label.
TARGETS = {"instrument": "Instrument (abbr.)", "family": "Family"}

#: The features folder: the spectrogram array and the card of the settings that made it.
FEATURES_ARRAY = "spectrograms.npy"
FEATURES_CARD = "features.json"

#: Columns of index.csv, in order; one row per window. ``window`` names it (``<label>/<stem>_<i>.wav``,
#: the file :func:`instrclf.data.write_window` writes); ``shard`` and ``row`` say where its samples are.
INDEX_COLUMNS = ("window", "Path", "instrument", "family", "library", "label", "fold", "window_index", "shard", "row")

#: The clean folder's shard arrays: ``<clean>/shards/00000.npy``, ...
SHARDS_DIR = "shards"

#: Largest shard, in bytes, unless one note alone is longer: 64 MiB (2,048 one-second windows at 16 kHz).
SHARD_BYTES = 64 * 2**20

#: Leading columns of a predictions CSV, followed by one ``p_<label>`` column per label.
PREDICTION_COLUMNS = ("Path", "library", "fold", "set", "label", "predicted", "n_windows")

#: Prefix of the per-label probability columns of a predictions table.
PROB_PREFIX = "p_"

#: How many problems an error message lists before giving a count.
_SHOW = 10

# Labels become folder names: plain names only, nothing that could leave the clean folder.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _+.-]*")


def _fail(path, problems, *, what) -> None:
    """Raise one DataError naming ``path`` and listing (at most ``_SHOW`` of) ``problems``."""
    if problems:
        more = f"; and {len(problems) - _SHOW} more" if len(problems) > _SHOW else ""
        raise DataError(f"{path}: {what}: " + "; ".join(problems[:_SHOW]) + more)


def _read_csv(path, *, columns, what, **kwargs) -> pd.DataFrame:
    """Read a CSV as strings, checking that it exists, parses, has ``columns`` and rows."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, **kwargs)
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable CSV ({' '.join(str(exc).split())})") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        found = table.columns if "usecols" not in kwargs else pd.read_csv(path, nrows=0, dtype=str).columns  # the whole header
        raise DataError(f"{path}: missing column(s) {missing}; found {list(found)}")
    if table.empty:
        raise DataError(f"{path}: no rows")
    return table


def _integers(values: pd.Series, *, low: int, high: int) -> pd.Series:
    """Parse strings as integers in ``[low, high]``; NaN where that fails."""
    numbers = pd.to_numeric(values, errors="coerce")
    ok = numbers.notna() & (numbers == numbers.round()) & (numbers >= low) & (numbers <= high)
    return numbers.where(ok)


def safe_path(path: str) -> bool:
    """Whether a metadata ``Path`` is a plain relative path inside ``audio/``."""
    parts = PurePosixPath(path).parts
    return bool(path) and not path.startswith("/") and "\\" not in path and ".." not in parts


# --------------------------------------------------------------------------- raw layout


def read_metadata(raw_dir, *, check_audio=True) -> pd.DataFrame:
    """Read and check the raw layout's metadata CSV.

    Parameters
    ----------
    raw_dir : str or Path
        Folder with ``TinySOL_metadata.csv`` and ``audio/``.
    check_audio : bool
        Also require ``audio/<Path>`` to exist for every row.

    Returns
    -------
    pandas.DataFrame
        Sorted by Path, columns ``Path``, ``fold`` (int 0-4), ``family``, ``instrument``
        (TinySOL abbreviation) and ``library``.

    Raises
    ------
    DataError
        One message naming the CSV and listing every problem: unreadable, missing columns,
        empty fields, unsafe or duplicate paths, folds outside 0-4, instruments not among
        TinySOL's 14 or families not among its 4, a family that does not match the
        instrument, or missing audio.
    """
    raw_dir = Path(raw_dir)
    metadata_csv = raw_dir / METADATA_FILE
    # only the columns this returns: TinySOL's other ten are two thirds of the table's memory
    table = _read_csv(metadata_csv, columns=REQUIRED_COLUMNS, what="metadata file",
                      usecols=lambda column: column in REQUIRED_COLUMNS or column == LIBRARY_COLUMN)
    problems = []
    paths = table["Path"].str.strip()
    for path in table.loc[~paths.map(safe_path), "Path"]:
        problems.append(f"Path {path!r} must be a relative path inside {AUDIO_DIR}/ without '..'")
    for path in sorted(set(table.loc[table["Path"].duplicated(), "Path"])):
        problems.append(f"{path} is listed more than once")
    folds = _integers(table["Fold"], low=0, high=N_FOLDS - 1)
    for path, fold in zip(table.loc[folds.isna(), "Path"], table.loc[folds.isna(), "Fold"]):
        problems.append(f"{path}: Fold must be an integer in 0..{N_FOLDS - 1}, got {fold!r}")
    for path, inst, family in zip(table["Path"], table["Instrument (abbr.)"], table["Family"]):
        if inst not in BY_ABBR:
            problems.append(f"{path}: instrument {inst!r} is not one of TinySOL's {sorted(BY_ABBR)}")
        elif family not in FAMILIES:
            problems.append(f"{path}: family {family!r} is not one of TinySOL's {list(FAMILIES)}")
        elif BY_ABBR[inst].family != family:
            problems.append(f"{path}: instrument {inst} belongs to family {BY_ABBR[inst].family}, not {family!r}")
    libraries = table[LIBRARY_COLUMN] if LIBRARY_COLUMN in table.columns else pd.Series(DEFAULT_LIBRARY, index=table.index)
    for path, library in zip(table["Path"], libraries):
        if not _SAFE_NAME.fullmatch(library):
            problems.append(f"{path}: {LIBRARY_COLUMN} {library!r} must be a plain name")
    if check_audio and not problems:
        audio = raw_dir / AUDIO_DIR
        problems += [f"{path} is missing under {audio}" for path in table["Path"] if not (audio / path).is_file()]
    _fail(metadata_csv, problems, what="bad metadata")
    out = pd.DataFrame({
        "Path": table["Path"],
        "fold": folds.astype(int),
        "family": table["Family"],
        "instrument": table["Instrument (abbr.)"],
        "library": libraries,
    })
    return out.sort_values("Path", kind="stable").reset_index(drop=True)


def write_metadata(raw_dir, rows, *, other_columns=False) -> Path:
    """Write the raw layout's metadata CSV, atomically: TinySOL's columns first (its order), ``Library``, then the rest.

    Parameters
    ----------
    raw_dir : str or Path
        The raw folder.
    rows : iterable of dict, or pandas.DataFrame
        Column -> value; TinySOL's :data:`METADATA_COLUMNS` (at least :data:`REQUIRED_COLUMNS`)
        and optionally ``Library``.
    other_columns : bool
        Keep columns TinySOL does not have, after its own (the sources' combiner keeps a local
        set's extra columns); refused otherwise, so a renderer cannot write a misspelt one.

    Returns
    -------
    Path
        The CSV written (``\n`` line ends).
    """
    table = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    known = [c for c in (*METADATA_COLUMNS, LIBRARY_COLUMN) if c in table.columns]
    extra = [c for c in table.columns if c not in known]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"metadata lacks column(s) {missing}")
    if extra and not other_columns:
        raise DataError(f"metadata rows must have columns among {[*METADATA_COLUMNS, LIBRARY_COLUMN]}; got extra {sorted(extra)}")
    path = Path(raw_dir) / METADATA_FILE
    with atomic_file(path, newline="") as f:
        table[known + extra].to_csv(f, index=False, lineterminator="\n")
    return path


def read_metadata_table(raw_dir) -> pd.DataFrame:
    """Every column of a raw folder's metadata CSV as strings, rows in file order (no checks beyond
    :func:`_read_csv`'s: run :func:`read_metadata` first).

    The sources' combiner (:mod:`instrclf.sources`) uses it to keep columns that no stage reads.
    """
    return _read_csv(Path(raw_dir) / METADATA_FILE, columns=REQUIRED_COLUMNS, what="metadata file")


def label_column(metadata: pd.DataFrame, *, target: str) -> pd.Series:
    """Each note's label: its instrument abbreviation or its family (``data.target``)."""
    return metadata["instrument" if target == "instrument" else "family"]


# --------------------------------------------------------------------------- index.csv


def write_index(clean_dir, index: pd.DataFrame) -> Path:
    """Write ``<clean_dir>/index.csv`` (columns :data:`INDEX_COLUMNS`, in that order)."""
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise DataError(f"index rows lack column(s) {missing}")
    with index_writer(clean_dir) as write_row:
        for row in index[list(INDEX_COLUMNS)].itertuples(index=False, name=None):
            write_row(row)
    return Path(clean_dir) / INDEX_FILE


@contextlib.contextmanager
def index_writer(clean_dir):
    """Write ``<clean_dir>/index.csv`` row by row, as a stage makes them: nothing grows with the data.

    Yields a function that writes one row (values in :data:`INDEX_COLUMNS` order); the file
    appears, complete, only when the block ends without an error.
    """
    with atomic_file(Path(clean_dir) / INDEX_FILE, newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(INDEX_COLUMNS)
        yield writer.writerow


def read_index(clean_dir) -> pd.DataFrame:
    """Read and check ``<clean_dir>/index.csv``.

    Returns
    -------
    pandas.DataFrame
        One row per window, columns :data:`INDEX_COLUMNS`; ``fold`` and ``window_index``
        as integers, the rest as strings.

    Raises
    ------
    DataError
        Naming the file: missing (run the clean stage), unreadable, missing columns, no
        rows, empty fields, folds outside 0-4, unsafe window paths or duplicate windows.
    """
    path = Path(clean_dir) / INDEX_FILE
    index = _read_csv(path, columns=INDEX_COLUMNS, what="index (run the clean stage first: dvc repro clean)")
    problems = []
    for column in ("window", "Path", "label", "library"):
        if (index[column] == "").any():
            problems.append(f"empty {column!r} in {int((index[column] == '').sum())} row(s)")
    folds = _integers(index["fold"], low=0, high=N_FOLDS - 1)
    if folds.isna().any():
        problems.append(f"fold must be an integer in 0..{N_FOLDS - 1}, got e.g. {index.loc[folds.isna(), 'fold'].iloc[0]!r}")
    positions = _integers(index["window_index"], low=0, high=10**9)
    if positions.isna().any():
        problems.append(f"window_index must be an integer >= 0, got e.g. {index.loc[positions.isna(), 'window_index'].iloc[0]!r}")
    places = {column: _integers(index[column], low=0, high=10**9) for column in ("shard", "row")}
    for column, values in places.items():
        if values.isna().any():
            problems.append(f"{column} must be an integer >= 0, got e.g. {index.loc[values.isna(), column].iloc[0]!r}")
    twice = pd.DataFrame(places).duplicated() & places["shard"].notna() & places["row"].notna()
    if twice.any():
        problems.append(f"window {index.loc[twice, 'window'].iloc[0]!r} has the shard and row of another window")
    unsafe = index.loc[~index["window"].map(safe_path), "window"]
    if len(unsafe):
        problems.append(f"window {unsafe.iloc[0]!r} is not a relative path inside the folder")
    if index["window"].duplicated().any():
        problems.append(f"window {index.loc[index['window'].duplicated(), 'window'].iloc[0]!r} is listed twice")
    _fail(path, problems, what="bad index")
    out = index[list(INDEX_COLUMNS)].copy()
    out["fold"] = folds.astype(int)
    out["window_index"] = positions.astype(int)
    for column, values in places.items():
        out[column] = values.astype(int)
    return out


def shard_path(clean_dir, shard: int) -> Path:
    """The file of shard number ``shard``: ``<clean_dir>/shards/<shard:05d>.npy``."""
    return Path(clean_dir) / SHARDS_DIR / f"{int(shard):05d}.npy"


def _write_header(f, shape, dtype) -> None:
    """A .npy header (format 1.0, C order) for an array of ``shape`` and ``dtype`` whose rows follow."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(f, header)


class ShardWriter:
    """Writes a clean folder's windows into shard arrays, note by note, holding one shard at most in memory.

    Parameters
    ----------
    clean_dir : str or Path
        The (temporary) clean folder; ``shards/`` is made in it.
    n_samples : int
        Samples per window.
    shard_bytes : int
        A shard is closed before a note would make it larger (a longer note gets a shard of its own).
    """

    def __init__(self, clean_dir, *, n_samples: int, shard_bytes: int = SHARD_BYTES):
        self.clean_dir, self.n_samples = Path(clean_dir), int(n_samples)
        self.capacity = max(1, shard_bytes // (2 * self.n_samples))
        self.shard, self._parts, self._rows = 0, [], 0
        (self.clean_dir / SHARDS_DIR).mkdir(parents=True, exist_ok=True)

    def add(self, pcm: np.ndarray) -> tuple:
        """Append one note's windows (int16 ``(k, n_samples)``); returns ``(shard, first row)``."""
        pcm = np.ascontiguousarray(pcm, dtype="<i2")
        if pcm.ndim != 2 or pcm.shape[1] != self.n_samples:
            raise DataError(f"windows must have shape (k, {self.n_samples}), got {pcm.shape}")
        if self._rows and self._rows + len(pcm) > self.capacity:
            self.flush()
        place = (self.shard, self._rows)
        if len(pcm):
            self._parts.append(pcm)
            self._rows += len(pcm)
        return place

    def flush(self) -> None:
        """Write the open shard (if it has rows) and start the next one."""
        if not self._rows:
            return
        with open(shard_path(self.clean_dir, self.shard), "wb") as f:
            _write_header(f, (self._rows, self.n_samples), "<i2")
            for part in self._parts:
                f.write(part.tobytes())
        self.shard, self._parts, self._rows = self.shard + 1, [], 0


class NpyRows:
    """Rows of a .npy array read by position (``os.preadv``), never memory-mapped.

    Reading a row costs one positioned read; nothing of the file stays in this process's
    memory (a memory map's touched pages would count as resident, growing with the data).
    Thread-safe; open in each process (not across ``fork``).
    """

    def __init__(self, path):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                shape, fortran, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                                         np.lib.format.read_array_header_2_0)(f)
            except ValueError as exc:
                raise DataError(f"{self.path}: not a .npy array ({exc})") from None
            self.offset = f.tell()
        if fortran or dtype.hasobject or not shape:
            raise DataError(f"{self.path}: not a C-order numeric array with rows")
        self.shape, self.dtype = tuple(shape), dtype
        self.row_shape = self.shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * dtype.itemsize
        size = self.path.stat().st_size
        if size < self.offset + self.row_bytes * self.shape[0]:
            raise DataError(f"{self.path}: truncated ({size} bytes for shape {self.shape})")
        self._fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)

    def read(self, rows, out=None) -> np.ndarray:
        """Rows ``rows`` (integers, any order, repeats allowed) as a new array; runs of consecutive rows in one read each."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise DataError(f"{self.path}: row {int(rows.max() if rows.max() >= len(self) else rows.min())} is outside its {len(self)} rows")
        if out is None:
            out = np.empty((len(rows), *self.row_shape), dtype=self.dtype)
        if not len(rows):
            return out
        flat = out.reshape(len(rows), -1).view(np.uint8)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            want = (stop - start) * self.row_bytes
            got = os.preadv(self._fd, [flat[start:stop].reshape(-1)], self.offset + int(rows[start]) * self.row_bytes)
            if got != want:
                raise DataError(f"{self.path}: short read ({got} of {want} bytes)")
        return out


class Windows:
    """The clean folder's windows, by index row: float32 ``(n, samples, 1)``, exactly as a 16-bit WAV reads.

    Parameters
    ----------
    clean_dir : str or Path
        The clean stage's output.
    index : pandas.DataFrame
        Rows of :func:`read_index` (any subset, any order); their shards are opened and every
        row is checked against its shard's length here.
    n_samples : int
        Samples per window; a shard of another width is an error naming it.
    """

    def __init__(self, clean_dir, index: pd.DataFrame, *, n_samples: int):
        self.clean_dir, self.n_samples = Path(clean_dir), int(n_samples)
        self.shards = {}
        for shard, rows in index.groupby("shard", sort=True)["row"]:
            path = shard_path(clean_dir, shard)
            if not path.is_file():
                raise DataError(f"{path}: missing (listed in {Path(clean_dir) / INDEX_FILE}): re-run the clean stage")
            array = NpyRows(path)
            if array.dtype != np.dtype("<i2") or array.row_shape != (self.n_samples,):
                raise DataError(f"{path}: {array.dtype} windows of shape {array.row_shape}, expected int16 ({self.n_samples},): re-run the clean stage")
            if rows.max() >= len(array):
                bad = index.loc[rows.idxmax(), "window"]
                raise DataError(f"{path}: window {bad!r} is row {rows.max()} of a shard of {len(array)} rows: re-run the clean stage")
            self.shards[int(shard)] = array

    def read(self, rows: pd.DataFrame) -> np.ndarray:
        """The windows of index rows ``rows`` (from this object's index), in their order: float32 ``(n, samples, 1)``."""
        # soundfile reads 16-bit PCM as int / 32768: the same float32 values, bit for bit.
        return (self.read_pcm(rows).astype(np.float32) / np.float32(32768))[..., None]

    def read_pcm(self, rows: pd.DataFrame) -> np.ndarray:
        """The 16-bit samples of index rows ``rows``, in their order: int16 ``(n, samples)``."""
        out = np.empty((len(rows), self.n_samples), dtype=np.int16)
        shards, places = rows["shard"].to_numpy(), rows["row"].to_numpy()
        for shard in np.unique(shards):
            mine = np.flatnonzero(shards == shard)
            out[mine] = self.shards[int(shard)].read(places[mine])
        return out


# --------------------------------------------------------------------------- features


def write_features(features_dir, index: pd.DataFrame, spectrograms, settings: dict, *, row_shape=None) -> Path:
    """Write a features folder: ``index.csv``, ``spectrograms.npy`` (row ``i`` is window ``i``) and ``features.json``.

    ``features_dir`` is written in place: wrap the call in :func:`instrclf.io.atomic_dir`.
    ``settings`` (JSON-able) records what made the spectrograms; readers compare it with theirs.

    Parameters
    ----------
    spectrograms : numpy.ndarray or iterable of numpy.ndarray
        The whole array, or its rows batch by batch (``row_shape`` then gives one row's
        shape): each batch is written as it comes, so memory holds one batch at most.
    """
    if isinstance(spectrograms, np.ndarray):
        spectrograms, row_shape = [spectrograms], spectrograms.shape[1:]
    if row_shape is None:
        raise DataError(f"{features_dir}: batches of spectrograms need row_shape")
    features_dir = Path(features_dir)
    shape = (len(index), *row_shape)
    written = 0
    with atomic_file(features_dir / FEATURES_ARRAY, "wb") as f:
        _write_header(f, shape, "<f4")
        for batch in spectrograms:
            batch = np.ascontiguousarray(batch, dtype="<f4")
            if batch.shape[1:] != tuple(row_shape) or written + len(batch) > len(index):
                raise DataError(f"{features_dir}: spectrograms of shape {batch.shape[1:]} after {written} rows, "
                                f"expected {len(index)} of shape {tuple(row_shape)}")
            f.write(batch.tobytes())
            written += len(batch)
        if written != len(index):
            raise DataError(f"{features_dir}: {written} spectrograms for {len(index)} index rows")
    write_index(features_dir, index)
    card = {"settings": settings, "shape": list(shape)}  # the .npy header carries the dtype
    write_json(features_dir / FEATURES_CARD, card)
    return features_dir


def read_features(features_dir, *, settings) -> tuple:
    """Read a features folder made with ``settings`` (a dict; ``None``: whatever made them, for a reader that only shows them).

    Returns
    -------
    index : pandas.DataFrame
        As :func:`read_index`.
    spectrograms : numpy.ndarray
        float32 ``(windows, frames, n_mels, 1)``, memory-mapped read-only (to read many rows,
        :class:`NpyRows` of :func:`features_array` keeps them out of resident memory).

    Raises
    ------
    DataError
        Naming the file: missing or unreadable parts, other settings than ``settings``
        (re-run the features stage), or an array that does not match the index.
    """
    features_dir = Path(features_dir)
    card_path, array_path = features_dir / FEATURES_CARD, features_dir / FEATURES_ARRAY
    hint = "run the features stage first: dvc repro features"
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{card_path}: not found ({hint})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{card_path}: unreadable ({exc}): {hint}") from None
    if not isinstance(card, dict) or (settings is not None and card.get("settings") != settings):
        made = card.get("settings") if isinstance(card, dict) else None
        raise DataError(f"{card_path}: the spectrograms were made with {made}, not {settings}: {hint}")
    index = read_index(features_dir)
    try:
        spectrograms = np.load(array_path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{array_path}: not found ({hint})") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{array_path}: not a spectrogram array ({exc}): {hint}") from None
    if spectrograms.dtype != np.float32 or spectrograms.ndim != 4 or len(spectrograms) != len(index):
        raise DataError(
            f"{array_path}: {spectrograms.dtype} array of shape {spectrograms.shape}, expected float32 "
            f"(windows, frames, n_mels, 1) with {len(index)} windows (the index beside it): {hint}"
        )
    if list(spectrograms.shape) != card.get("shape"):
        raise DataError(f"{array_path}: shape {list(spectrograms.shape)}, its card says {card.get('shape')}: {hint}")
    return index, spectrograms


def features_array(features_dir) -> Path:
    """The spectrogram file of a features folder (check it first with :func:`read_features`)."""
    return Path(features_dir) / FEATURES_ARRAY


# --------------------------------------------------------------------------- predictions


def probability_columns(labels) -> list:
    """Column names of the per-label probabilities: ``p_<label>``."""
    return [f"{PROB_PREFIX}{label}" for label in labels]


def write_predictions(path, predictions: pd.DataFrame) -> Path:
    """Write a predictions table (:data:`PREDICTION_COLUMNS` then ``p_<label>``) as CSV, atomically."""
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise DataError(f"predictions lack column(s) {missing}")
    labels = [str(c)[len(PROB_PREFIX):] for c in predictions.columns if str(c).startswith(PROB_PREFIX)]
    _fail(path, _prediction_problems(predictions, labels), what="refusing to write predictions")
    with atomic_file(path, newline="") as f:
        predictions.to_csv(f, index=False, lineterminator="\n")
    return Path(path)


def read_predictions(path) -> tuple:
    """Read a predictions CSV written by :func:`write_predictions`.

    Returns
    -------
    predictions : pandas.DataFrame
        Strings, except ``fold`` and ``n_windows`` (int) and the probabilities (float).
    labels : list of str
        Class names, from the ``p_<label>`` columns in file order.

    Raises
    ------
    DataError
        Naming the file: missing, unreadable, a missing column, no probability columns,
        non-numeric or non-finite probabilities, or a label without its column.
    """
    path = Path(path)
    table = _read_csv(path, columns=PREDICTION_COLUMNS, what="predictions file")
    labels = [c[len(PROB_PREFIX):] for c in table.columns if c.startswith(PROB_PREFIX)]
    _fail(path, _prediction_problems(table, labels), what="bad predictions")
    columns = probability_columns(labels)
    table[columns] = table[columns].apply(pd.to_numeric).to_numpy(dtype=float)
    table["fold"] = _integers(table["fold"], low=0, high=N_FOLDS - 1).astype(int)
    table["n_windows"] = _integers(table["n_windows"], low=1, high=10**9).astype(int)
    return table, labels


def _prediction_problems(table: pd.DataFrame, labels: list) -> list:
    """What is wrong with a predictions table (written or read) whose probability columns give ``labels``."""
    if not labels:
        return [f"no probability columns ({PROB_PREFIX}<label>)"]
    problems = []
    scores = table[probability_columns(labels)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(scores).all():
        problems.append("probability columns must hold finite numbers")
    unknown = sorted(set(table["label"].astype(str)).union(table["predicted"].astype(str)) - set(labels))
    if unknown:
        problems.append(f"label(s) {unknown} have no {PROB_PREFIX}<label> column")
    folds = _integers(table["fold"], low=0, high=N_FOLDS - 1)
    counts = _integers(table["n_windows"], low=1, high=10**9)
    if folds.isna().any() or counts.isna().any():
        problems.append(f"fold must be 0-{N_FOLDS - 1} and n_windows an integer >= 1")
    return problems


# --------------------------------------------------------------------------- note details, training curves (-> plot)

#: What the plots break accuracy down by, from the metadata: column -> name in the table.
DETAIL_COLUMNS = {"Instrument (abbr.)": "instrument", "Pitch": "pitch", "Dynamics": "dynamics"}


def read_note_details(metadata_csv) -> pd.DataFrame:
    """Each note's instrument, pitch and dynamics from a metadata CSV (the plot stage's breakdowns).

    Returns
    -------
    pandas.DataFrame
        Columns ``Path``, ``instrument``, ``pitch``, ``dynamics`` (strings; ``""`` where the
        metadata has no ``Pitch`` or ``Dynamics`` column, as your own set may not).
    """
    table = _read_csv(metadata_csv, columns=("Path", "Instrument (abbr.)"), what="metadata file")
    if table["Path"].duplicated().any():
        _fail(metadata_csv, [f"{p} is listed more than once" for p in sorted(set(table.loc[table["Path"].duplicated(), "Path"]))],
              what="bad metadata")
    out = pd.DataFrame({"Path": table["Path"]})
    for column, name in DETAIL_COLUMNS.items():
        out[name] = table[column].str.strip() if column in table.columns else ""
    return out


def read_live_curves(live_dir) -> pd.DataFrame:
    """Per-epoch curves that dvclive wrote for one training (``<live_dir>/plots/metrics/<split>/<name>.tsv``).

    Returns
    -------
    pandas.DataFrame
        Columns ``split`` (``train`` or ``eval``), ``metric``, ``step`` (int) and ``value`` (float).
    """
    root = Path(live_dir) / "plots" / "metrics"
    files = sorted(root.glob("*/*.tsv"))
    if not files:
        raise DataError(f"{live_dir}: no dvclive curves (plots/metrics/<split>/<name>.tsv)")
    frames = []
    for path in files:
        table = _read_csv(path, columns=("step", path.stem), what="dvclive curve", sep="\t")
        step, value = pd.to_numeric(table["step"], errors="coerce"), pd.to_numeric(table[path.stem], errors="coerce")
        if step.isna().any() or value.isna().any():
            raise DataError(f"{path}: step and {path.stem} must be numbers")
        frames.append(pd.DataFrame({"split": path.parent.name, "metric": path.stem, "step": step.astype(int), "value": value}))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- JSON between stages


def parse_json(text: str, *, name, expect=dict):
    """A JSON object (``expect=list``: an array) from ``text`` (a file's, git's, DVC's), naming ``name`` on any problem."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{name}: not valid JSON ({exc})") from None
    if not isinstance(value, expect):
        wanted = "a JSON object" if expect is dict else "a JSON array"
        raise DataError(f"{name}: expected {wanted}, got {type(value).__name__}")
    return value


def read_json(path, *, expect=dict):
    """Read a JSON object (or array) that a stage or tool wrote, naming the file on any problem."""
    return parse_json(read_text(path), name=Path(path), expect=expect)
