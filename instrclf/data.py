"""The clean windows as training data: index.csv, fold splits, labels and arrays."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from . import params as P
from .clean import INDEX_COLUMNS
from .errors import DataError, ParameterError
from .tinysol import N_FOLDS



@dataclass(frozen=True)
class Split:
    """Which TinySOL folds test, validate and train (params ``split.*``)."""

    test_fold: int
    val_fold: int

    @classmethod
    def from_params(cls, params: dict) -> "Split":
        """Read and check ``split.test_fold`` and ``split.val_fold``."""
        folds = list(range(N_FOLDS))
        test = P.choice("split.test_fold", P.get(params, "split.test_fold"), folds)
        val = P.choice("split.val_fold", P.get(params, "split.val_fold"), folds)
        if test == val:
            raise ParameterError(f"split.val_fold must differ from split.test_fold, both are {test}")
        return cls(test_fold=test, val_fold=val)

    @property
    def train_folds(self) -> tuple:
        return tuple(f for f in range(N_FOLDS) if f not in (self.test_fold, self.val_fold))


def read_index(clean_dir) -> pd.DataFrame:
    """Read ``<clean_dir>/index.csv``, checking its columns.

    Parameters
    ----------
    clean_dir : str or Path
        The clean stage's output folder.

    Returns
    -------
    pandas.DataFrame
        One row per window, columns :data:`INDEX_COLUMNS`.
    """
    path = Path(clean_dir) / "index.csv"
    try:
        index = pd.read_csv(path, dtype={"label": str, "instrument": str, "family": str})
    except FileNotFoundError:
        raise DataError(f"{path} not found: run the clean stage first (dvc repro clean)") from None
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise DataError(f"{path} lacks columns {missing}")
    if index.empty:
        raise DataError(f"{path} lists no windows")
    return index


def labels_of(index: pd.DataFrame) -> list:
    """The class names, sorted, from the index (never from folder listings)."""
    return sorted(index["label"].unique())


def select_folds(index: pd.DataFrame, folds) -> pd.DataFrame:
    """Rows of the given folds, in index order; an empty selection is an error naming the folds."""
    part = index[index["fold"].isin(list(folds))].reset_index(drop=True)
    if part.empty:
        raise DataError(f"no windows in fold(s) {sorted(folds)}; folds present: {sorted(index['fold'].unique())}")
    return part


def encode(labels_column, labels) -> np.ndarray:
    """Integer class ids of a label column, given the sorted label list."""
    lookup = {name: i for i, name in enumerate(labels)}
    unknown = sorted(set(labels_column) - set(lookup))
    if unknown:
        raise DataError(f"labels {unknown} are not among the model's labels {list(labels)}")
    return np.array([lookup[name] for name in labels_column], dtype=np.int32)


def load_windows(clean_dir, index: pd.DataFrame, *, n_samples: int) -> np.ndarray:
    """Read every window of ``index`` into one float32 array of shape ``(n, n_samples, 1)``.

    Parameters
    ----------
    clean_dir : str or Path
        The clean stage's output folder; ``index["window"]`` is relative to it.
    index : pandas.DataFrame
        Rows to read.
    n_samples : int
        Expected samples per window; a window of another length is an error naming it.
    """
    clean_dir = Path(clean_dir)
    out = np.empty((len(index), n_samples, 1), dtype=np.float32)
    for i, rel in enumerate(index["window"]):
        path = clean_dir / rel
        try:
            y, _ = sf.read(path, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise DataError(f"cannot read window {path}: {exc}") from None
        if y.shape != (n_samples, 1):
            raise DataError(f"window {path} has shape {y.shape}, expected ({n_samples}, 1): re-run the clean stage")
        out[i] = y
    return out
