"""The clean windows as model data: which windows train, validate and test a fold, and their weights.

Works on the window index (:func:`instrclf.layout.read_index`); :func:`load_windows` reads the
windows it lists from the clean shards (features, export, report), :func:`write_window` one of
them as a WAV file to listen to.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from . import layout
from .errors import DataError, ParameterError
from .settings import SplitSettings


@dataclass(frozen=True)
class FoldSets:
    """The windows of one cross-validation fold.

    Attributes
    ----------
    train, val, test : pandas.DataFrame
        Windows of the training folds, the validation fold and the test fold, from every
        library except the unseen one.
    unseen : pandas.DataFrame
        Every window of the unseen library (all folds); empty when there is none.
    unseen_note : str
        Why ``unseen`` is empty, or ``""``.
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    unseen: pd.DataFrame
    unseen_note: str = ""


def class_names(index: pd.DataFrame) -> list:
    """The class names, sorted, from the index (never from folder listings)."""
    return sorted(index["label"].unique())


def held_out(unseen_library) -> tuple:
    """The library names of ``split.unseen_library`` (one name or a list of them; None: none)."""
    if unseen_library is None:
        return ()
    return (unseen_library,) if isinstance(unseen_library, str) else tuple(unseen_library)


def fold_sets(index: pd.DataFrame, *, test_fold: int, unseen_library) -> FoldSets:
    """Split the index for one test fold: ``(t + 1) % 5`` validates, the other three train.

    Parameters
    ----------
    index : pandas.DataFrame
        From :func:`instrclf.layout.read_index`.
    test_fold : int
        The held-out fold, 0-4.
    unseen_library : str, list of str or None
        ``split.unseen_library``: the library (or libraries, held out together) excluded
        from every fold's training and validation. With one library in the index (TinySOL,
        your own set) there is none to hold out and ``unseen`` is empty, with a note; with
        several, each name must be one of them and at least one library must stay to train on.

    Returns
    -------
    FoldSets
    """
    val_fold, train_folds = SplitSettings.folds_of(test_fold)
    libraries = sorted(index["library"].unique())
    names = held_out(unseen_library)
    note = ""
    if not names:
        note = "split.unseen_library is null: no library is held out"
    elif len(libraries) == 1:
        note = f"the data has one library ({libraries[0]}): no unseen-library evaluation"
    else:
        unknown = [name for name in names if name not in libraries]
        if unknown:
            got = unknown[0] if isinstance(unseen_library, str) else unknown
            raise ParameterError(f"split.unseen_library must be one of the data's libraries {libraries}, got {got!r}")
        if set(names) == set(libraries):
            raise ParameterError(f"split.unseen_library holds out every library of the data {libraries}: none is left to train on")
    unseen = index["library"].isin(names) if not note else pd.Series(False, index=index.index)
    seen = index[~unseen]
    sets = FoldSets(
        train=_rows(seen, train_folds),
        val=_rows(seen, [val_fold]),
        test=_rows(seen, [test_fold]),
        unseen=index[unseen].reset_index(drop=True),
        unseen_note=note,
    )
    for name in ("train", "val", "test"):
        if getattr(sets, name).empty:
            raise DataError(f"no {name} windows for test fold {test_fold}: the index has folds {sorted(seen['fold'].unique().tolist())}")
    return sets


def draws_of(train: pd.DataFrame, weights: dict, *, libraries, unseen_library=None):
    """How many times each training window is drawn per epoch, from ``train.library_weights``.

    Parameters
    ----------
    train : pandas.DataFrame
        The training windows (:attr:`FoldSets.train`), with their ``library``.
    weights : dict
        ``train.library_weights``: library -> weight > 0; a library not listed weighs 1.
    libraries : iterable of str
        Every library of the data (the index's), so a name can be checked against it.
    unseen_library : str, list of str or None
        ``split.unseen_library``: never trained on, so it may not be weighted.

    Returns
    -------
    numpy.ndarray or None
        float64 per window, or None when every training window weighs 1: then training
        draws exactly the unweighted batches.

    Raises
    ------
    ParameterError
        A name that is not a library of the data, or a held-out library, naming the key.
    """
    libraries = sorted(set(libraries))
    names = held_out(unseen_library)
    for name in weights:
        if name not in libraries:
            raise ParameterError(f"train.library_weights.{name}: not a library of the data; its libraries are {libraries}")
        if name in names:
            raise ParameterError(f"train.library_weights.{name}: the held-out library (split.unseen_library) is never trained on")
    draws = train["library"].map(lambda name: float(weights.get(name, 1.0))).to_numpy(dtype=np.float64)
    return None if np.all(draws == 1.0) else draws


def _rows(index: pd.DataFrame, folds) -> pd.DataFrame:
    return index[index["fold"].isin(list(folds))].reset_index(drop=True)


def encode(labels_column, labels) -> np.ndarray:
    """Integer class ids of a label column, given the sorted label list."""
    lookup = {name: i for i, name in enumerate(labels)}
    unknown = sorted(set(labels_column) - set(lookup))
    if unknown:
        raise DataError(f"labels {unknown} are not among the model's labels {list(labels)}")
    return np.array([lookup[name] for name in labels_column], dtype=np.int32)


def load_windows(clean_dir, index: pd.DataFrame, *, n_samples: int) -> np.ndarray:
    """Read the windows of ``index`` from the clean shards into one float32 array ``(n, n_samples, 1)``.

    The values are those of the 16-bit samples divided by 32768, bit for bit what reading
    each window as a 16-bit WAV file gives. Only the shards the rows name are opened, and
    only their rows are read.

    Parameters
    ----------
    clean_dir : str or Path
        The clean stage's output folder (``index.csv`` and ``shards/``).
    index : pandas.DataFrame
        Rows of :func:`instrclf.layout.read_index` to read, in any order.
    n_samples : int
        Expected samples per window; a shard of another width is an error naming it.

    Raises
    ------
    DataError
        A missing or unreadable shard, one of another width, or a row outside its shard, naming the file.
    """
    return layout.Windows(clean_dir, index, n_samples=n_samples).read(index)


def write_window(clean_dir, window: str, path, *, sample_rate: int) -> Path:
    """Write one clean window, by its ``window`` name in index.csv, as a 16-bit WAV file to listen to.

    Parameters
    ----------
    clean_dir : str or Path
        The clean stage's output folder.
    window : str
        The window's name, e.g. ``Fl/Fl-ord-C4-mf-N-T14d_0.wav``.
    path : str or Path
        The WAV file written.
    sample_rate : int
        ``clean.sample_rate``, recorded in the file's header.

    Returns
    -------
    Path
        ``path``; its samples are the window's, unchanged.
    """
    index = layout.read_index(clean_dir)
    rows = index[index["window"] == window]
    if rows.empty:
        raise DataError(f"{Path(clean_dir) / layout.INDEX_FILE}: no window named {window!r}")
    pcm = layout.Windows(clean_dir, rows, n_samples=_width(clean_dir, rows)).read_pcm(rows)[0]
    sf.write(path, pcm, sample_rate, subtype="PCM_16", format="WAV")  # integers in: written unscaled
    return Path(path)


def _width(clean_dir, rows) -> int:
    """Samples per window of the shard of ``rows``' first row."""
    return layout.NpyRows(layout.shard_path(clean_dir, rows["shard"].iloc[0])).row_shape[0]
