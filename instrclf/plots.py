"""Plot data for DVC's templates, matplotlib figures, and an offline page for ``dvc plots show``.

- ROC data: rows of ``{fpr, tpr}``, micro-averaged one-vs-rest over the file-level mean
  probabilities, thinned to a few hundred points (DVC template ``simple``).
- Confusion data: one ``{actual, predicted}`` row per file (DVC template ``confusion``).
- Images: per model, the per-class ROC curves beside the confusion matrix (counts and
  row-normalised); one comparison of all models.
- :func:`write_html_template`: DVC's default page pulls Vega from a CDN and is blank
  offline; this writes a page with vl-convert-python's bundle inlined instead. Run
  ``python -m instrclf.plots template .dvc/plots_template.html`` at set-up.
"""

import argparse
import sys

import numpy as np
from sklearn.metrics import confusion_matrix, roc_curve

from .errors import DataError, InstrclfError, ParameterError
from .evaluate import one_hot, probability_columns, roc_auc
from .io import atomic_file, write_json

MAX_ROC_POINTS = 300
"""Points kept per ROC curve in the plot data: smooth on screen, small in git."""


def thin(fpr, tpr, *, max_points=MAX_ROC_POINTS):
    """Keep at most ``max_points`` points of a curve, evenly spaced along its length.

    Parameters
    ----------
    fpr, tpr : array-like
        The curve, in order (``fpr`` non-decreasing for a ROC curve).
    max_points : int
        At least 2; the first and the last point are always kept.

    Returns
    -------
    fpr, tpr : numpy.ndarray
        A subsequence of the input, so its order (and monotonicity) is preserved.
    """
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2:
        raise ParameterError(f"max_points must be an integer >= 2, got {max_points!r}")
    fpr = np.asarray(fpr, dtype=float)
    tpr = np.asarray(tpr, dtype=float)
    if fpr.shape != tpr.shape or fpr.ndim != 1:
        raise ParameterError(f"fpr and tpr must be 1-D of equal length, got {fpr.shape} and {tpr.shape}")
    if len(fpr) <= max_points:
        return fpr, tpr
    length = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(fpr), np.diff(tpr)))])
    targets = np.linspace(0.0, length[-1], max_points)
    keep = np.unique(np.concatenate([[0, len(fpr) - 1], np.searchsorted(length, targets)]))
    keep = keep[keep < len(fpr)]
    return fpr[keep], tpr[keep]


def micro_roc(predictions, *, labels):
    """Micro-averaged one-vs-rest ROC curve of a file-level predictions table.

    Parameters
    ----------
    predictions : pandas.DataFrame
        One row per file with ``label`` and ``p_<label>`` columns.
    labels : list of str
        Class names.

    Returns
    -------
    fpr, tpr : numpy.ndarray
        From (0, 0) to (1, 1).
    """
    truth = one_hot(predictions["label"], labels=labels).ravel()
    if not 0 < truth.sum() < len(truth):
        raise DataError(f"a ROC curve needs positives and negatives: {len(predictions)} file(s), labels {labels}")
    fpr, tpr, _ = roc_curve(truth, probability_columns(predictions, labels=labels).ravel())
    return fpr, tpr


def class_rocs(predictions, *, labels) -> dict:
    """One-vs-rest ROC curve per class that has both positive and negative files.

    Returns
    -------
    dict
        ``label -> (fpr, tpr)``, in the order of ``labels``.
    """
    truth = one_hot(predictions["label"], labels=labels)
    scores = probability_columns(predictions, labels=labels)
    return {
        label: roc_curve(truth[:, k], scores[:, k])[:2]
        for k, label in enumerate(labels)
        if 0 < truth[:, k].sum() < len(truth)
    }


def roc_rows(predictions, *, labels, max_points=MAX_ROC_POINTS) -> list:
    """Rows ``{"fpr": ..., "tpr": ...}`` of the thinned micro-averaged ROC curve (finite floats)."""
    fpr, tpr = thin(*micro_roc(predictions, labels=labels), max_points=max_points)
    return [{"fpr": round(float(f), 6), "tpr": round(float(t), 6)} for f, t in zip(fpr, tpr, strict=True)]


def confusion_rows(predictions) -> list:
    """Rows ``{"actual": ..., "predicted": ...}``, one per file, for DVC's ``confusion`` template."""
    return [
        {"actual": str(a), "predicted": str(p)}
        for a, p in zip(predictions["label"], predictions["predicted"], strict=True)
    ]


def write_plot_data(predictions, *, labels, roc_path, confusion_path) -> None:
    """Write one model's ROC and confusion plot data as strict JSON, atomically."""
    write_json(roc_path, roc_rows(predictions, labels=labels), indent=None)
    write_json(confusion_path, confusion_rows(predictions), indent=None)


def _pyplot():
    """Matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    """One model's figure: per-class ROC with micro and macro AUC, confusion counts and row shares.

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
    fig, axes = plt.subplots(1, 3, figsize=(19, 6), layout="constrained")
    auc = roc_auc(predictions, labels=labels)
    colours = plt.get_cmap("tab20")
    for k, (label, (fpr, tpr)) in enumerate(class_rocs(predictions, labels=labels).items()):
        axes[0].plot(fpr, tpr, lw=1, color=colours(k % 20), label=label)
    fpr, tpr = micro_roc(predictions, labels=labels)
    micro, macro = auc.get("roc_auc_micro"), auc.get("roc_auc_macro")
    axes[0].plot(fpr, tpr, "k-", lw=2.5, label=f"micro-average (AUC {micro:.3f})")
    macro_text = "n/a" if macro is None else f"{macro:.3f}"
    axes[0].plot([], [], " ", label=f"macro AUC (mean of classes) {macro_text}")
    axes[0].plot([0, 1], [0, 1], ":", color="grey", lw=1)
    axes[0].set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate",
                title=f"{model}: one-vs-rest ROC per class")
    axes[0].legend(fontsize=7, loc="lower right")
    matrix = confusion_matrix(predictions["label"], predictions["predicted"], labels=labels)
    _draw_confusion(axes[1], matrix, labels=labels, normalise=False, title=f"{model}: notes (n={len(predictions)})")
    image = _draw_confusion(axes[2], matrix, labels=labels, normalise=True, title=f"{model}: share of each actual")
    fig.colorbar(image, ax=axes[2], shrink=0.8)
    return fig


def comparison_figure(models):
    """All models side by side: micro-averaged ROC curves and file-level accuracy.

    Parameters
    ----------
    models : dict
        ``model name -> (predictions, labels)``, in display order.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not models:
        raise ParameterError("comparison_figure needs at least one model, got none")
    plt = _pyplot()
    fig, (roc_ax, bar_ax) = plt.subplots(1, 2, figsize=(13, 5.5), layout="constrained")
    accuracies = []
    for name, (predictions, labels) in models.items():
        fpr, tpr = micro_roc(predictions, labels=labels)
        micro = roc_auc(predictions, labels=labels)["roc_auc_micro"]
        roc_ax.plot(fpr, tpr, lw=1.8, label=f"{name} (micro AUC {micro:.3f})")
        accuracies.append(float(np.mean(predictions["label"].astype(str) == predictions["predicted"].astype(str))))
    roc_ax.plot([0, 1], [0, 1], ":", color="grey", lw=1)
    roc_ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate",
               title="micro-averaged one-vs-rest ROC (file level)")
    roc_ax.legend(loc="lower right")
    bars = bar_ax.bar(list(models), accuracies, color=[f"C{i}" for i in range(len(models))])
    bar_ax.bar_label(bars, labels=[f"{a:.3f}" for a in accuracies])
    bar_ax.set(ylim=(0, 1.05), ylabel="accuracy", title="file-level accuracy on the test fold")
    return fig


def save_figure(fig, path, *, dpi=100) -> None:
    """Save a figure as PNG atomically and close it."""
    plt = _pyplot()
    try:
        with atomic_file(path, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi)
    finally:
        plt.close(fig)


_TEMPLATE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot</title>
    <!-- Vega, Vega-Lite and vega-embed inlined by instrclf.plots.write_html_template
         from vl-convert-python's bundle, so the page needs no network. Generated at
         set-up; not committed. DVC's scripts placeholder is left out on purpose: it
         would add DVC's CDN script tags. -->
    <script type="text/javascript">
(function () {
__BUNDLE__
})();
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def html_template(bundle=None) -> str:
    """A self-contained page for ``dvc plots show`` with Vega inlined.

    Parameters
    ----------
    bundle : str or None
        JavaScript that defines ``window.vegaEmbed`` (a classic script); ``None`` takes
        ``vl_convert.javascript_bundle()``, whose default snippet assigns ``vegaEmbed``,
        ``vega`` and ``vegaLite`` to ``window``. It runs inside a function so its
        top-level names cannot clash with the ``var spec`` of DVC's plot divs.

    Returns
    -------
    str
        The page, with DVC's ``{plot_divs}`` and ``{refresh_tag}`` placeholders.
    """
    if bundle is None:
        import vl_convert

        bundle = vl_convert.javascript_bundle()
    for bad in ("</script", "{plot_divs}", "{scripts}", "{refresh_tag}"):
        if bad in bundle.lower():
            raise InstrclfError(f"the Vega bundle contains {bad!r}, which would break the page")
    return _TEMPLATE.replace("__BUNDLE__", bundle)


def write_html_template(path) -> None:
    """Write :func:`html_template` to ``path`` (e.g. ``.dvc/plots_template.html``), atomically."""
    with atomic_file(path) as f:
        f.write(html_template())


def main(argv=None) -> None:
    """``python -m instrclf.plots template PATH``: write the offline page for ``dvc plots show``."""
    parser = argparse.ArgumentParser(prog="python -m instrclf.plots", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    template = commands.add_parser("template", help="write the offline HTML template")
    template.add_argument("path", help="where to write it, e.g. .dvc/plots_template.html")
    args = parser.parse_args(argv)
    try:
        write_html_template(args.path)
    except (InstrclfError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
