"""Cross-validation summary: per model, mean and standard deviation across folds.

One flat metrics file per model (``metrics/<model>.json``), so ``dvc metrics show`` is one
row per model. Standard deviations are sample standard deviations (``ddof=1``) across the
folds; with a single fold they are null (undefined), not 0.
"""

import json
import math
from pathlib import Path

from .errors import DataError

#: Per-fold figures summarised as ``<key>_mean`` and ``<key>_std``, in table order.
FOLD_KEYS = (
    "file_accuracy",
    "window_accuracy",
    "macro_f1",
    "roc_auc_macro",
    "unseen_file_accuracy",
    "unseen_macro_f1",
)

#: Figures of the averaging ensemble (the model users get), copied as ``ensemble_<key>``.
ENSEMBLE_KEYS = ("unseen_file_accuracy", "unseen_macro_f1")


def mean_std(values) -> tuple:
    """Mean and sample standard deviation (``ddof=1``; ``nan`` for fewer than two values).

    Parameters
    ----------
    values : sequence of float
        At least one value.
    """
    values = [float(v) for v in values]
    if not values:
        raise DataError("mean_std needs at least one value")
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def read_json(path) -> dict:
    """Read a JSON object, naming the file on any problem."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            value = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run dvc repro)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def summarise(results: dict, training: dict, *, folds) -> dict:
    """One model's summary from its predict results and its per-fold training figures.

    Parameters
    ----------
    results : dict
        ``results/predict/<model>.json``: ``folds`` (fold -> figures) and, when there is
        an unseen library, ``ensemble``.
    training : dict
        Fold -> ``results/train/<model>/<fold>.json``.
    folds : list of int
        ``split.test_folds``: exactly these folds must be present.

    Returns
    -------
    dict
        Flat numbers: ``<key>_mean``/``<key>_std`` for :data:`FOLD_KEYS` present in every
        fold, ``ensemble_<key>`` for :data:`ENSEMBLE_KEYS`, ``folds``, ``epochs_mean`` and
        ``train_seconds`` (the sum over folds).
    """
    per_fold = results.get("folds", {})
    wanted = [str(f) for f in folds]
    missing = [f for f in wanted if f not in per_fold or int(f) not in training]
    if missing:
        raise DataError(f"no results for fold(s) {missing}: run dvc repro")
    out = {}
    for key in FOLD_KEYS:
        values = [per_fold[f].get(key) for f in wanted]
        if all(v is not None for v in values):
            out[f"{key}_mean"], out[f"{key}_std"] = mean_std(values)
    for key in ENSEMBLE_KEYS:
        if key in results.get("ensemble", {}):
            out[f"ensemble_{key}"] = results["ensemble"][key]
    out["folds"] = len(wanted)
    out["epochs_mean"] = mean_std([training[int(f)]["epochs_run"] for f in wanted])[0]
    out["train_seconds"] = round(math.fsum(training[int(f)]["train_seconds"] for f in wanted), 1)
    return {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in out.items()}
