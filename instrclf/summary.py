"""Cross-validation summary: per model, mean and standard deviation across folds.

One flat metrics file per model (``metrics/<model>.json``), so ``dvc metrics show`` is one
row per model. Standard deviations are sample standard deviations (``ddof=1``) across the
folds; with a single fold they are null (undefined), not 0.
"""

import math

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

#: Figures of the averaging ensemble (the model users get), copied as ``ensemble_<key>``
#: (``unseen_alone_*``: each note classified on its own, with ``train.library_colour`` on).
ENSEMBLE_KEYS = ("unseen_file_accuracy", "unseen_macro_f1", "unseen_alone_file_accuracy")


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


def _number(value, key, fold) -> float:
    """``value`` as a float, or a DataError naming the figure and its fold."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{key} of fold {fold} is {value!r}, not a number: run dvc repro")
    return float(value)


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
        fold, ``ensemble_<key>`` for :data:`ENSEMBLE_KEYS`, ``folds`` and ``epochs_mean``
        (no timings: a rerun reproduces this file byte for byte).
    """
    per_fold = results.get("folds", {})
    wanted = [str(f) for f in folds]
    missing = [f for f in wanted if f not in per_fold or int(f) not in training]
    if missing:
        raise DataError(f"no results for fold(s) {missing}: run dvc repro")
    out = {}
    for key in FOLD_KEYS:
        have = [f for f in wanted if per_fold[f].get(key) is not None]
        if not have:
            continue
        if len(have) < len(wanted):  # a mean over some folds would pass for a mean over all
            lacking = [int(f) for f in wanted if f not in have]
            raise DataError(f"{key} is missing for fold(s) {lacking} but present for {[int(f) for f in have]}: run dvc repro")
        out[f"{key}_mean"], out[f"{key}_std"] = mean_std([_number(per_fold[f][key], key, f) for f in wanted])
    for key in ENSEMBLE_KEYS:
        if key in results.get("ensemble", {}):
            out[f"ensemble_{key}"] = _number(results["ensemble"][key], key, "ensemble")
    out["folds"] = len(wanted)
    lacking = [int(f) for f in wanted if "epochs_run" not in training[int(f)]]
    if lacking:
        raise DataError(f"training figures of fold(s) {lacking} lack epochs_run: run dvc repro")
    out["epochs_mean"] = mean_std([_number(training[int(f)]["epochs_run"], "epochs_run", f) for f in wanted])[0]
    return {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in out.items()}
