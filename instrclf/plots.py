"""Plot data for ``dvc plots show``, and an offline page to show it in.

- ROC data: rows of ``{series, fpr, tpr}``, micro-averaged one-vs-rest over the file-level
  mean probabilities (series = the model), or one curve per class (series = the class),
  thinned to a few hundred points (the project's template ``.dvc/plots/series.json``
  colours by ``series``).
- Confusion data: one ``{actual, predicted}`` row per file (DVC template ``confusion``).
- :func:`write_html_template`: DVC's default page pulls Vega from a CDN and is blank
  offline; this writes a page with vl-convert-python's bundle inlined instead. The
  ``plot`` stage writes it to ``plots/page.html``, which ``.dvc/config`` names.
"""

import numpy as np
from sklearn.metrics import roc_curve

from .errors import DataError, InstrclfError, ParameterError
from .evaluate import one_hot, probability_columns
from .io import atomic_file

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


def roc_rows(predictions, *, labels, series: str, max_points=MAX_ROC_POINTS) -> list:
    """Rows ``{"series", "fpr", "tpr"}`` of the thinned micro-averaged ROC curve (finite floats).

    ``series`` names the curve (the model): the project's ``series`` template gives
    each its own colour in ``dvc plots show``.
    """
    fpr, tpr = thin(*micro_roc(predictions, labels=labels), max_points=max_points)
    return _rows(series, fpr, tpr)


def class_roc_rows(predictions, *, labels, max_points=MAX_ROC_POINTS) -> list:
    """Rows ``{"series": <class>, "fpr", "tpr"}``: every class's one-vs-rest ROC curve, thinned."""
    rows = []
    for label, (fpr, tpr) in class_rocs(predictions, labels=labels).items():
        rows += _rows(label, *thin(fpr, tpr, max_points=max_points))
    return rows


def _rows(series, fpr, tpr) -> list:
    return [{"series": series, "fpr": round(float(f), 6), "tpr": round(float(t), 6)} for f, t in zip(fpr, tpr, strict=True)]


def confusion_rows(predictions) -> list:
    """Rows ``{"actual": ..., "predicted": ...}``, one per file, for DVC's ``confusion`` template."""
    return [
        {"actual": str(a), "predicted": str(p)}
        for a, p in zip(predictions["label"], predictions["predicted"], strict=True)
    ]


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
    """Write :func:`html_template` to ``path`` (the plot stage: ``plots/page.html``), atomically."""
    with atomic_file(path) as f:
        f.write(html_template())
