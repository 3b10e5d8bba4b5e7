"""File-level evaluation: window probabilities -> one prediction per note, and its metrics.

A note (one source ``Path``) is cut into several 1-second windows; the model scores each
window and the note's probabilities are the mean of its windows'. Metrics are reported
at both levels, flat and numbers only, so ``dvc metrics show`` is one readable table.
"""

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, roc_auc_score

from . import layout
from .errors import DataError, ParameterError

NOTE_COLUMNS = ("Path", "library", "fold", "label")
"""Columns of the window index that evaluation reads."""


def _check_labels(labels) -> list:
    """Return ``labels`` as a list of unique strings, else raise."""
    labels = list(labels)
    if not labels:
        raise ParameterError("labels must name at least one class, got []")
    if not all(isinstance(x, str) and x for x in labels):
        raise ParameterError(f"labels must be non-empty strings, got {labels!r}")
    if len(set(labels)) != len(labels):
        raise ParameterError(f"labels must be unique, got {labels!r}")
    return labels


def _check_windows(index, probs, *, labels) -> np.ndarray:
    """Check that the window index and the probability array agree; return probs as float."""
    missing = [c for c in NOTE_COLUMNS if c not in index.columns]
    if missing:
        raise DataError(f"window index lacks column(s) {missing}; has {list(index.columns)}")
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or probs.shape != (len(index), len(labels)):
        raise DataError(
            f"probs must have shape (n_windows, n_labels) = ({len(index)}, {len(labels)}), "
            f"got {probs.shape}"
        )
    if len(index) == 0:
        raise DataError("window index is empty: nothing to evaluate")
    if not np.all(np.isfinite(probs)):
        raise DataError("probs holds NaN or infinite values")
    unknown = sorted(set(index["label"].astype(str)) - set(labels))
    if unknown:
        raise DataError(f"window index has label(s) {unknown} that are not among labels {labels}")
    return probs


def aggregate(index, probs, *, labels, subset="test") -> pd.DataFrame:
    """Average window probabilities into one prediction per source note.

    Parameters
    ----------
    index : pandas.DataFrame
        One row per window, with at least the columns of :data:`NOTE_COLUMNS`: ``Path``
        (the source note), ``library``, ``fold`` and ``label`` (the class name); row ``i``
        belongs to ``probs[i]``.
    probs : array-like, shape (n_windows, n_labels)
        Softmax outputs of the model, columns in the order of ``labels``.
    labels : list of str
        Class names, the model's output order.
    subset : str
        What these notes are to the model (``test``: its held-out fold; ``unseen``: the
        library it never trained on), written in the ``set`` column.

    Returns
    -------
    pandas.DataFrame
        One row per ``Path``, sorted by ``Path``, with the columns of
        :data:`instrclf.layout.PREDICTION_COLUMNS` and then ``p_<label>`` (the mean of the
        note's window probabilities) for each label. ``predicted`` is the label of the largest mean
        probability (the first such label on a tie).

    Raises
    ------
    DataError
        If the shapes disagree, a label is unknown, or a note's windows disagree on
        its fold or label.
    """
    labels = _check_labels(labels)
    probs = _check_windows(index, probs, labels=labels)
    columns = layout.probability_columns(labels)
    frame = pd.DataFrame(probs, columns=columns)
    frame.insert(0, "Path", index["Path"].astype(str).to_numpy())
    frame.insert(1, "library", index["library"].astype(str).to_numpy())
    frame.insert(2, "fold", index["fold"].to_numpy())
    frame.insert(3, "label", index["label"].astype(str).to_numpy())
    groups = frame.groupby("Path", sort=True)
    for column in ("library", "fold", "label"):
        mixed = groups[column].nunique()
        mixed = mixed[mixed > 1]
        if len(mixed):
            raise DataError(f"window index: note(s) {list(mixed.index[:5])} have windows with different {column}")
    first = groups[["library", "fold", "label"]].first()
    mean = groups[columns].mean()
    out = pd.DataFrame({
        "Path": first.index.to_numpy(),
        "library": first["library"].to_numpy(),
        "fold": first["fold"].to_numpy(),
        "set": subset,
        "label": first["label"].to_numpy(),
        "predicted": np.asarray(labels, dtype=object)[mean.to_numpy().argmax(axis=1)],
        "n_windows": groups.size().to_numpy(),
    })
    return pd.concat([out, mean.reset_index(drop=True)], axis=1)


def probabilities(predictions, *, labels) -> np.ndarray:
    """The ``p_<label>`` columns of a predictions table as an (n_files, n_labels) array.

    Parameters
    ----------
    predictions : pandas.DataFrame
        A table as returned by :func:`aggregate` or :func:`read_predictions`.
    labels : list of str
        Class names; one column ``p_<label>`` must exist for each.
    """
    columns = layout.probability_columns(labels)
    missing = [c for c in columns if c not in predictions.columns]
    if missing:
        raise DataError(f"predictions lack probability column(s) {missing}")
    return predictions[columns].to_numpy(dtype=float)


def one_hot(actual, *, labels) -> np.ndarray:
    """Binary indicator matrix (n, n_labels) of the class names in ``actual``."""
    actual = np.asarray(actual, dtype=str)
    return (actual[:, None] == np.asarray(labels, dtype=str)[None, :]).astype(int)


def roc_auc(predictions, *, labels) -> dict:
    """File-level one-vs-rest ROC AUC, macro- and micro-averaged.

    Parameters
    ----------
    predictions : pandas.DataFrame
        One row per file with ``label`` and ``p_<label>`` columns.
    labels : list of str
        Class names.

    Returns
    -------
    dict
        ``roc_auc_micro``: AUC of all (file, class) pairs pooled, every class included;
        ``roc_auc_macro``: unweighted mean of the per-class AUCs over the classes that
        have both positive and negative files in ``predictions`` (a class absent from the
        test set has no defined AUC, so it is left out rather than counted as 0 or 0.5).
        A key is omitted when its AUC is undefined: micro needs at least two labels,
        macro at least one class with both positives and negatives. Values are finite.
    """
    truth = one_hot(predictions["label"], labels=labels)
    scores = probabilities(predictions, labels=labels)
    out = {}
    per_class = [
        roc_auc_score(truth[:, k], scores[:, k])
        for k in range(len(labels))
        if 0 < truth[:, k].sum() < len(truth)
    ]
    if per_class:
        out["roc_auc_macro"] = float(np.mean(per_class))
    flat = truth.ravel()
    if 0 < flat.sum() < len(flat):
        out["roc_auc_micro"] = float(roc_auc_score(flat, scores.ravel()))
    return out


def metrics(index, probs, predictions, *, labels) -> dict:
    """Window- and file-level figures of one model on the test fold.

    Parameters
    ----------
    index : pandas.DataFrame
        The window index (``Path``, ``fold``, ``label`` ...), one row per window.
    probs : array-like, shape (n_windows, n_labels)
        Window probabilities, columns in the order of ``labels``.
    predictions : pandas.DataFrame
        The file-level table from :func:`aggregate` for the same windows.
    labels : list of str
        Class names.

    Returns
    -------
    dict
        Flat, finite numbers: ``file_accuracy``, ``window_accuracy``, ``macro_f1``
        (file level, over the classes that occur as truth or prediction: classes absent
        from both carry no information and are not averaged in), ``roc_auc_macro`` and
        ``roc_auc_micro`` (see :func:`roc_auc`; omitted only when undefined),
        ``n_files`` and ``n_windows``.
    """
    labels = _check_labels(labels)
    probs = _check_windows(index, probs, labels=labels)
    if len(predictions) == 0:
        raise DataError("predictions table is empty: nothing to evaluate")
    window_predicted = np.asarray(labels, dtype=object)[probs.argmax(axis=1)]
    window_actual = index["label"].astype(str).to_numpy()
    actual = predictions["label"].astype(str).to_numpy()
    predicted = predictions["predicted"].astype(str).to_numpy()
    out = {
        "file_accuracy": float(np.mean(actual == predicted)),
        "window_accuracy": float(np.mean(window_actual == window_predicted)),
        "macro_f1": float(f1_score(actual, predicted, average="macro", zero_division=0.0)),
    }
    out.update(roc_auc(predictions, labels=labels))
    out["n_files"] = int(len(predictions))
    out["n_windows"] = int(len(index))
    return out
