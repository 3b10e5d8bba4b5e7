"""Matplotlib images of the plot stage: each model's ROC and confusion, and the comparison.

Figures are drawn on the Agg backend and saved atomically as PNG (:mod:`instrclf.drawing`).
"""


import numpy as np
from sklearn.metrics import confusion_matrix

from .drawing import pyplot as _pyplot
from .errors import ParameterError
from .evaluate import roc_auc
from .plots import LOG_FPR_FLOOR, class_rocs, micro_roc


def _draw_confusion(ax, matrix, *, labels, normalise, title):
    """Draw a confusion matrix with a value in each cell."""
    shown = matrix.astype(float)
    if normalise:
        totals = shown.sum(axis=1, keepdims=True)
        shown = np.divide(shown, totals, out=np.zeros_like(shown), where=totals > 0)
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalise else max(1, shown.max()))
    ticks = np.arange(len(labels))
    ax.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="actual", title=title)
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_yticklabels(labels, fontsize=7)
    small = 7 if len(labels) <= 8 else 5
    for i, j in zip(*np.nonzero(matrix), strict=True):
        text = f"{shown[i, j]:.2f}" if normalise else str(matrix[i, j])
        dark = shown[i, j] > 0.6 * (1 if normalise else max(1, shown.max()))
        ax.text(j, i, text, ha="center", va="center", fontsize=small, color="white" if dark else "black")
    return image


def model_figure(predictions, *, labels, model):
    """One model's figure: per-class ROC (linear and log false-positive axis), confusion counts and row shares.

    Four panels in a 2 x 2 grid, 1280 px wide at 100 dpi: it fits a 1400-px page.

    Parameters
    ----------
    predictions : pandas.DataFrame
        File-level predictions (``label``, ``predicted``, ``p_<label>``).
    labels : list of str
        Class names.
    model : str
        Name used in the titles.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(12.8, 11.5), layout="constrained")
    (roc_ax, log_ax), (count_ax, share_ax) = axes
    auc = roc_auc(predictions, labels=labels)
    colours = plt.get_cmap("tab20")
    fpr, tpr = micro_roc(predictions, labels=labels)
    micro, macro = auc.get("roc_auc_micro"), auc.get("roc_auc_macro")
    macro_text = "n/a" if macro is None else f"{macro:.3f}"
    for ax in (roc_ax, log_ax):
        for k, (label, (f, t)) in enumerate(class_rocs(predictions, labels=labels).items()):
            ax.plot(f, t, lw=1, color=colours(k % 20), label=label)
        ax.plot(fpr, tpr, "k-", lw=2.5, label=f"micro-average (AUC {micro:.3f})")
        ax.set(ylim=(0, 1.01), ylabel="true positive rate")
    roc_ax.plot([], [], " ", label=f"macro AUC (mean of classes) {macro_text}")
    roc_ax.plot([0, 1], [0, 1], ":", color="grey", lw=1)
    roc_ax.set(xlim=(0, 1), xlabel="false positive rate", title=f"{model}: one-vs-rest ROC per class")
    roc_ax.legend(fontsize=7, loc="lower right", ncols=2)
    log_ax.set_xscale("log", nonpositive="clip")
    log_ax.set(xlim=(LOG_FPR_FLOOR, 1), xlabel="false positive rate (log)",
               title=f"{model}: the same, log false-positive axis")
    matrix = confusion_matrix(predictions["label"], predictions["predicted"], labels=labels)
    _draw_confusion(count_ax, matrix, labels=labels, normalise=False, title=f"{model}: notes (n={len(predictions)})")
    image = _draw_confusion(share_ax, matrix, labels=labels, normalise=True, title=f"{model}: share of each actual")
    fig.colorbar(image, ax=share_ax, shrink=0.8)
    fig.suptitle(f"{model}: every fold's test notes", fontsize=13)
    return fig


def comparison_figure(models: dict, *, fold_accuracy: dict, unseen_accuracy: dict):
    """All models side by side: ROC over every fold's test notes, and accuracy with its spread.

    Parameters
    ----------
    models : dict
        ``model name -> (test predictions of every fold, labels)``, in display order.
    fold_accuracy : dict
        ``model name -> list`` of per-fold file accuracies (drawn as points over the mean).
    unseen_accuracy : dict
        ``model name -> list`` of per-fold file accuracies on the unseen library (may be empty).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not models:
        raise ParameterError("comparison_figure needs at least one model, got none")
    plt = _pyplot()
    fig, (roc_ax, bar_ax) = plt.subplots(1, 2, figsize=(13, 5.5), layout="constrained")
    for name, (predictions, labels) in models.items():
        fpr, tpr = micro_roc(predictions, labels=labels)
        micro = roc_auc(predictions, labels=labels)["roc_auc_micro"]
        roc_ax.plot(fpr, tpr, lw=1.8, label=f"{name} (micro AUC {micro:.4f})")
    roc_ax.set_xscale("log", nonpositive="clip")  # the corner where good models differ
    roc_ax.set(xlim=(LOG_FPR_FLOOR, 1), ylim=(0, 1.01), xlabel="false positive rate (log)", ylabel="true positive rate",
               title="micro-averaged one-vs-rest ROC (every fold's test notes)")
    roc_ax.legend(loc="lower right")
    names = list(models)
    x = np.arange(len(names))
    sets = [("test folds", fold_accuracy, -0.2, "C0"), ("unseen library", unseen_accuracy, 0.2, "C1")]
    for title, values, shift, colour in sets:
        if not any(values.get(n) for n in names):
            continue
        means = [float(np.mean(values[n])) if values.get(n) else np.nan for n in names]
        bar_ax.bar(x + shift, means, width=0.38, color=colour, alpha=0.55, label=f"{title}: mean")
        for xi, m, n in zip(x + shift, means, names, strict=True):
            points = values.get(n) or []
            if np.isfinite(m):  # the mean at the foot of its bar, or above the dots where they reach down there
                y = 0.02 if min(points) > 0.15 else max(points) + 0.02
                bar_ax.text(xi, y, f"{m:.3f}", ha="center", va="bottom", rotation=90, fontsize=8)
        for i, n in enumerate(names):
            points = values.get(n) or []
            bar_ax.plot(np.full(len(points), x[i] + shift), points, "k.", ms=5)
    bar_ax.plot([], [], "k.", label="one fold")
    bar_ax.set_xticks(x, names)
    bar_ax.set(ylim=(0, 1.05), ylabel="file accuracy", title="file-level accuracy per fold and mean")
    bar_ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return fig
