"""Plot data for ``dvc plots show``, and an offline page to show it in.

- ROC data: rows of ``{series, fpr, tpr}``, micro-averaged one-vs-rest over the file-level
  mean probabilities (series = the model), or one curve per class (series = the class),
  thinned to a few hundred points that keep both a linear and a log false-positive axis
  smooth (the templates ``.dvc/plots/roc_log.json`` and ``roc_model.json`` draw the log
  axis, where good models differ, and colour by ``series``).
- Confusion data: one ``{actual, predicted}`` row per file (template ``.dvc/plots/confusion_model.json``).
- Breakdowns: file accuracy per model, group (octave, dynamics, instrument, library) and
  fold, ``{series, group, order, fold, accuracy, notes}``; the most confused pairs per model;
  each training's per-epoch curves. Every per-model plot is one file named ``<model>.json``,
  and its template builds the title from that name (DVC titles a plot by its path).
- :func:`write_html_template`: DVC's default page pulls Vega from a CDN and is blank
  offline; this writes a page with vl-convert-python's bundle inlined instead, charts drawn
  as SVG, and images scaled to the window. The ``plot`` stage writes it to
  ``plots/page.html``, which ``.dvc/config`` names.
"""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from .errors import DataError, InstrclfError, ParameterError
from .evaluate import one_hot, probabilities
from .io import atomic_file

MAX_ROC_POINTS = 300
"""Points kept per ROC curve in the plot data: smooth on screen, small in git."""

LOG_FPR_FLOOR = 1e-5
"""Left end of the log false-positive axis: a false-positive rate of 0 is drawn here.
Micro-averaged curves reach about 1 / (notes x 13) ~ 1.5e-5 on the default run."""

DYNAMICS = ("ppp", "pp", "p", "mp", "mf", "f", "ff", "fff")
"""Dynamics from soft to loud: the order of the dynamics breakdown."""


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


def thin_roc(fpr, tpr, *, max_points=MAX_ROC_POINTS, floor=LOG_FPR_FLOOR):
    """Thin a ROC curve so that it stays smooth on a linear and on a log false-positive axis.

    Half the budget is spent along the curve with a linear x, half with ``log10(max(fpr, floor))``
    rescaled to [0, 1], where a good model's curve does all its climbing.

    Returns
    -------
    fpr, tpr : numpy.ndarray
        At most ``max_points`` points of the input, in order.
    """
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2:
        raise ParameterError(f"max_points must be an integer >= 2, got {max_points!r}")
    fpr = np.asarray(fpr, dtype=float)
    tpr = np.asarray(tpr, dtype=float)
    if len(fpr) <= max_points or max_points < 4:  # too few to share: along the linear curve
        return thin(fpr, tpr, max_points=max_points)
    keep_linear = _kept(fpr, tpr, max_points // 2)
    logx = (np.log10(np.maximum(fpr, floor)) - np.log10(floor)) / -np.log10(floor)
    keep = np.union1d(keep_linear, _kept(logx, tpr, max_points - max_points // 2))
    return fpr[keep], tpr[keep]


def _kept(x, y, max_points):
    """Indices of at most ``max_points`` points evenly spaced along a curve's length (ends kept)."""
    length = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    targets = np.linspace(0.0, length[-1], max_points - 1)  # with the last point: at most max_points
    keep = np.unique(np.concatenate([[0, len(x) - 1], np.searchsorted(length, targets)]))
    return keep[keep < len(x)]


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
    fpr, tpr, _ = roc_curve(truth, probabilities(predictions, labels=labels).ravel())
    return fpr, tpr


def class_rocs(predictions, *, labels) -> dict:
    """One-vs-rest ROC curve per class that has both positive and negative files.

    Returns
    -------
    dict
        ``label -> (fpr, tpr)``, in the order of ``labels``.
    """
    truth = one_hot(predictions["label"], labels=labels)
    scores = probabilities(predictions, labels=labels)
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
    fpr, tpr = thin_roc(*micro_roc(predictions, labels=labels), max_points=max_points)
    return _rows(series, fpr, tpr)


def class_roc_rows(predictions, *, labels, max_points=MAX_ROC_POINTS) -> list:
    """Rows ``{"series": <class>, "fpr", "tpr"}``: every class's one-vs-rest ROC curve, thinned."""
    rows = []
    for label, (fpr, tpr) in class_rocs(predictions, labels=labels).items():
        rows += _rows(label, *thin_roc(fpr, tpr, max_points=max_points))
    return rows


def _rows(series, fpr, tpr) -> list:
    return [{"series": series, "fpr": round(float(f), 6), "tpr": round(float(t), 6)} for f, t in zip(fpr, tpr, strict=True)]


def confusion_rows(predictions) -> list:
    """Rows ``{"actual": ..., "predicted": ...}``, one per file, for DVC's ``confusion`` template."""
    return [
        {"actual": str(a), "predicted": str(p)}
        for a, p in zip(predictions["label"], predictions["predicted"], strict=True)
    ]


# --------------------------------------------------------------------------- breakdowns

_PITCH = re.compile(r"[A-Ga-g][#b]?(-?[0-9]+)")

BREAKDOWNS = ("octave", "dynamics", "instrument", "library")
"""What file accuracy is broken down by: each one plot per note set (test folds, held-out library)."""


def octave(pitch) -> str:
    """The octave of a scientific pitch name (``"A#5"`` -> ``"5"``, ``"C-1"`` -> ``"-1"``); ``""`` if it is none."""
    match = _PITCH.fullmatch(str(pitch).strip())
    return match.group(1) if match else ""


def with_details(predictions, details) -> pd.DataFrame:
    """Predictions joined to each note's ``instrument``, ``pitch``, ``octave`` and ``dynamics``.

    Parameters
    ----------
    predictions : pandas.DataFrame
        A predictions table (:func:`instrclf.layout.read_predictions`).
    details : pandas.DataFrame
        :func:`instrclf.layout.read_note_details` of the metadata the predictions came from.

    Raises
    ------
    DataError
        If a predicted note is not in the metadata (the two come from different runs).
    """
    missing = sorted(set(predictions["Path"]) - set(details["Path"]))
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise DataError(f"{len(missing)} predicted note(s) are not in the metadata: {shown}")
    table = predictions.merge(details, on="Path", how="left", validate="many_to_one")
    table["octave"] = table["pitch"].map(octave)
    return table


def _order(by, group) -> float:
    """Where a group goes on the x axis: octaves by number, dynamics soft to loud, names A-Z (ties)."""
    if by == "octave":
        return float(group)
    if by == "dynamics" and group in DYNAMICS:
        return float(DYNAMICS.index(group))
    return 0.0


def breakdown_rows(table, *, by, series) -> list:
    """File accuracy per value of ``by`` and fold: rows ``{series, group, order, fold, accuracy, notes}``.

    Parameters
    ----------
    table : pandas.DataFrame
        Predictions of one model and one note set with the ``by`` column (:func:`with_details`).
        Notes whose ``by`` is empty (no ``Pitch`` in the metadata, say) are left out.
    by : str
        One of :data:`BREAKDOWNS`.
    series : str
        The model: the template colours and offsets bars by it.

    Returns
    -------
    list of dict
        One row per group and fold that has notes, groups in display order.
    """
    if by not in BREAKDOWNS:
        raise ParameterError(f"by must be one of {list(BREAKDOWNS)}, got {by!r}")
    known = table[table[by].astype(str) != ""]
    correct = (known["label"] == known["predicted"]).astype(float)
    stats = correct.groupby([known[by].astype(str), known["fold"]]).agg(["mean", "size"])
    rows = [
        {"series": series, "group": group, "order": _order(by, group), "fold": int(fold),
         "accuracy": round(float(mean), 6), "notes": int(size)}
        for (group, fold), (mean, size) in stats.iterrows()
    ]
    return sorted(rows, key=lambda r: (r["order"], r["group"], r["fold"]))


def breakdown_table(tables: dict, *, by) -> list:
    """:func:`breakdown_rows` of every model in one list, ``order`` renumbered 0, 1, ... over all groups.

    Parameters
    ----------
    tables : dict
        ``model -> predictions`` of one note set, with details (:func:`with_details`).
    """
    rows = [row for name, table in tables.items() for row in breakdown_rows(table, by=by, series=name)]
    rank = {key: k for k, key in enumerate(sorted({(r["order"], r["group"]) for r in rows}))}
    return [row | {"order": rank[(row["order"], row["group"])]} for row in rows]


def confused_pairs(table, *, series, top=10) -> list:
    """The ``top`` most frequent (actual, predicted) mistakes: rows ``{series, rank, pair, actual, predicted, count, of}``.

    ``of`` is how many notes of the actual class there are, so ``count / of`` is the share
    of that class taken for the other. Ties are broken by the pair's names.
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ParameterError(f"top must be an integer >= 1, got {top!r}")
    wrong = table[table["label"] != table["predicted"]]
    counts = wrong.groupby(["label", "predicted"]).size().reset_index(name="count")
    counts = counts.sort_values(["count", "label", "predicted"], ascending=[False, True, True]).head(top)
    totals = table["label"].value_counts()
    return [
        {"series": series, "rank": rank, "pair": f"{a} \u2192 {p}", "actual": str(a), "predicted": str(p),
         "count": int(n), "of": int(totals[a])}
        for rank, (a, p, n) in enumerate(counts.itertuples(index=False), start=1)
    ]


#: dvclive's split folders -> the names on the plot.
_SPLITS = {"train": "train", "eval": "validation"}


def training_rows(curves: dict) -> list:
    """Per-epoch loss and accuracy of each fold's training: rows ``{fold, split, metric, epoch, value}``.

    Parameters
    ----------
    curves : dict
        ``fold -> table`` of :func:`instrclf.layout.read_live_curves`. Metrics other than
        loss and accuracy (the learning rate) are left out.
    """
    rows = []
    for fold, table in sorted(curves.items()):
        shown = table[table["metric"].isin(["loss", "accuracy"]) & table["split"].isin(list(_SPLITS))]
        for split, metric, step, value in shown[["split", "metric", "step", "value"]].itertuples(index=False):
            rows.append({"fold": f"fold {fold}", "split": _SPLITS[split], "metric": metric,
                         "epoch": int(step) + 1, "value": round(float(value), 6)})
    if not rows:
        raise DataError(f"no loss or accuracy curves among folds {sorted(curves)}")
    return rows



def failure_summary(breakdown_dir, *, lowest=2, min_notes=20) -> str:
    """Where each model fails, in plain text, from the plot stage's ``breakdown/`` folder (for the README).

    For each note set (test folds, held-out library), model and breakdown: the ``lowest``
    groups by mean-of-folds accuracy among groups with at least ``min_notes`` notes, each
    with its folds' range and its notes, against the model's accuracy over all its notes;
    then the model's three most confused pairs.

    Parameters
    ----------
    breakdown_dir : str or Path
        ``plots/data/breakdown`` of a run: ``<set>_<by>.json`` and ``<set>_pairs.json``.

    Returns
    -------
    str
        One paragraph per note set and model.
    """
    root = Path(breakdown_dir)
    if not root.is_dir():
        raise DataError(f"{root}: no breakdown folder (the plot stage writes plots/data/breakdown)")
    lines = []
    for subset in ("test", "unseen"):
        tables = {}
        for by in BREAKDOWNS:
            path = root / f"{subset}_{by}.json"
            if path.is_file():
                tables[by] = pd.DataFrame(json.loads(path.read_text(encoding="utf-8")))
        if not tables:
            continue
        pairs_path = root / f"{subset}_pairs.json"
        pairs = pd.DataFrame(json.loads(pairs_path.read_text(encoding="utf-8"))) if pairs_path.is_file() else pd.DataFrame()
        models = list(dict.fromkeys(s for table in tables.values() for s in table["series"]))
        for model in models:
            # every note has an instrument and a library, not always a pitch: the widest breakdown counts all
            mine = max((t[t["series"] == model] for t in tables.values()), key=lambda t: t["notes"].sum())
            overall = float((mine["accuracy"] * mine["notes"]).sum() / mine["notes"].sum())
            parts = [f"{model}, {'test folds' if subset == 'test' else 'held-out library'}: "
                     f"{overall:.3f} of {int(mine['notes'].sum())} notes."]
            for by, table in tables.items():
                rows = table[table["series"] == model]
                groups = rows.groupby("group").agg(mean=("accuracy", "mean"), low=("accuracy", "min"),
                                                   high=("accuracy", "max"), notes=("notes", "sum"))
                groups = groups[groups["notes"] >= min_notes].sort_values(["mean", "notes"])
                if len(groups) < 2:
                    continue
                shown = [f"{g} {r['mean']:.3f} (folds {r['low']:.2f}-{r['high']:.2f}, {int(r['notes'])} notes)"
                         for g, r in groups.head(lowest).iterrows()]
                best = f"; best {groups.index[-1]} {groups['mean'].iloc[-1]:.3f}" if len(groups) > lowest else ""
                parts.append(f"Lowest {by}: " + "; ".join(shown) + best + ".")
            if len(pairs):
                top = pairs[pairs["series"] == model].sort_values("rank").head(3)
                if len(top):
                    parts.append("Most confused: " + ", ".join(f"{r.pair} {r.count} of {r.of}" for r in top.itertuples()) + ".")
            lines.append(" ".join(parts))
    if not lines:
        raise DataError(f"{root}: no <set>_<by>.json breakdowns")
    return "\n\n".join(lines)

_TEMPLATE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>instrclf: dvc plots show</title>
    <!-- Vega, Vega-Lite and vega-embed inlined by instrclf.plots.write_html_template
         from vl-convert-python's bundle, so the page needs no network. Generated at
         set-up; not committed. DVC's scripts placeholder is left out on purpose: it
         would add DVC's CDN script tags. -->
    <script type="text/javascript">
(function () {
__BUNDLE__
})();
// SVG, not canvas: titles and labels are text a reader can select and a test can read.
(function (embed) {
    window.vegaEmbed = function (el, spec, opt) {
        return embed(el, spec, Object.assign({renderer: "svg"}, opt || {}));
    };
})(window.vegaEmbed);
    </script>
    <style>
        body { font-family: sans-serif; margin: 8px; }
        table { border-spacing: 15px; }
        /* DVC wraps each image in nowrap boxes at its natural size: let the page scale it instead,
           and put a diff's revisions under each other rather than past the window's edge. */
        body > div { max-width: 100%; box-sizing: border-box; overflow-x: auto; white-space: normal !important; }
        body > div > div { max-width: calc(100% - 16px); box-sizing: border-box; white-space: normal; }
        img { max-width: 100%; height: auto; }
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
