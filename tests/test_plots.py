"""Tests of instrclf.plots: ROC and confusion plot data for ``dvc plots show``, and the offline page."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from instrclf import evaluate, plots
from instrclf.errors import DataError, InstrclfError, ParameterError

LABELS = ["Fl", "Ob", "Tbn", "Vn"]


def predictions(*, n_files=40, skill=1.5, seed=0, labels=LABELS):
    """File-level predictions of a synthetic model: the true class gets ``skill`` extra logit."""
    rng = np.random.default_rng(seed)
    actual = [labels[i % len(labels)] for i in range(n_files)]
    logits = rng.normal(size=(n_files, len(labels)))
    logits[np.arange(n_files), [labels.index(a) for a in actual]] += skill
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    index = pd.DataFrame({"Path": [f"n{i:03d}.wav" for i in range(n_files)], "library": "A", "fold": 0, "label": actual})
    return evaluate.aggregate(index, probs, labels=labels)


def curve(rows, series=None):
    rows = [r for r in rows if series is None or r["series"] == series]
    return np.array([r["fpr"] for r in rows]), np.array([r["tpr"] for r in rows])


# --- thinning -------------------------------------------------------------------------------


@pytest.mark.parametrize("max_points", [2, 3, 50, 299])
def test_thin_keeps_endpoints_order_and_budget(max_points):
    fpr = np.sort(np.random.default_rng(1).uniform(size=1000))
    fpr = np.concatenate([[0.0], fpr, [1.0]])
    tpr = np.sqrt(fpr)
    f, t = plots.thin(fpr, tpr, max_points=max_points)
    assert len(f) <= max_points
    assert (f[0], t[0], f[-1], t[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(f) >= 0) and np.all(np.diff(t) >= 0)
    assert set(zip(f, t, strict=True)) <= set(zip(fpr, tpr, strict=True))  # a subsequence, nothing invented


def test_thin_leaves_short_curves_alone():
    f, t = plots.thin([0, 0.5, 1], [0, 0.8, 1], max_points=3)
    assert list(f) == [0, 0.5, 1] and list(t) == [0, 0.8, 1]


@pytest.mark.parametrize("max_points", [1, 0, 2.5, True])
def test_thin_rejects_bad_budget(max_points):
    with pytest.raises(ParameterError, match="max_points"):
        plots.thin([0, 1], [0, 1], max_points=max_points)


# --- ROC rows ------------------------------------------------------------------------------


@pytest.mark.parametrize("skill, seed", [(0.5, 0), (1.0, 1), (2.0, 2)])
def test_roc_rows_are_thinned_but_keep_the_area(skill, seed):
    preds = predictions(n_files=2000, skill=skill, seed=seed)
    full_fpr, _ = plots.micro_roc(preds, labels=LABELS)
    assert len(full_fpr) > plots.MAX_ROC_POINTS  # thinning has work to do
    rows = plots.roc_rows(preds, labels=LABELS, series="m")
    assert 10 < len(rows) <= plots.MAX_ROC_POINTS
    assert all(set(r) == {"series", "fpr", "tpr"} and r["series"] == "m" for r in rows)
    fpr, tpr = curve(rows)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoids under the plotted points
    truth = evaluate.one_hot(preds["label"], labels=LABELS).ravel()
    expected = roc_auc_score(truth, evaluate.probability_columns(preds, labels=LABELS).ravel())
    assert expected == pytest.approx(evaluate.roc_auc(preds, labels=LABELS)["roc_auc_micro"])
    assert area == pytest.approx(expected, abs=0.005)


def test_roc_rows_put_false_positive_rate_on_x():
    """A perfect model's curve goes up first: (fpr 0, tpr 1) is on it, (1, 0) is not."""
    preds = predictions(n_files=40, skill=50.0)
    assert (preds["label"] == preds["predicted"]).all()
    points = {(r["fpr"], r["tpr"]) for r in plots.roc_rows(preds, labels=LABELS, series="perfect")}
    assert (0.0, 1.0) in points and (1.0, 0.0) not in points
    # A model that ranks every true class last: the curve runs along the x axis first.
    worst = preds.copy()
    columns = [f"p_{label}" for label in LABELS]
    worst[columns] = 1.0 - worst[columns]
    points = {(r["fpr"], r["tpr"]) for r in plots.roc_rows(worst, labels=LABELS, series="worst")}
    assert (1.0, 0.0) in points and (0.0, 1.0) not in points


def test_roc_rows_are_finite_rounded_floats():
    rows = plots.roc_rows(predictions(), labels=LABELS, series="m")
    assert all(isinstance(r["fpr"], float) and isinstance(r["tpr"], float) for r in rows)
    assert all(np.isfinite([r["fpr"], r["tpr"]]).all() and r["fpr"] == round(r["fpr"], 6) for r in rows)


def test_micro_roc_needs_two_labels():
    with pytest.raises(DataError, match="positives and negatives"):
        plots.micro_roc(predictions(labels=["Fl"]), labels=["Fl"])


@pytest.mark.parametrize("absent", [[], ["Vn"], ["Ob", "Vn"]])
def test_class_roc_rows_one_series_per_class_present(absent):
    preds = predictions(n_files=200)
    preds = preds[~preds["label"].isin(absent)].reset_index(drop=True)
    present = [label for label in LABELS if label not in absent]
    assert list(plots.class_rocs(preds, labels=LABELS)) == present
    rows = plots.class_roc_rows(preds, labels=LABELS)
    assert list(dict.fromkeys(r["series"] for r in rows)) == present
    for label in present:
        fpr, tpr = curve(rows, label)
        assert len(fpr) <= plots.MAX_ROC_POINTS and np.all(np.diff(fpr) >= 0)
        assert (fpr[0], tpr[-1]) == (0.0, 1.0)
        truth = (preds["label"] == label).to_numpy()
        area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
        assert area == pytest.approx(roc_auc_score(truth, preds[f"p_{label}"]), abs=0.01)


def test_confusion_rows_one_per_note_actual_then_predicted():
    preds = predictions(n_files=60, skill=0.3)
    assert (preds["label"] != preds["predicted"]).any()  # mistakes, so a swap would show
    rows = plots.confusion_rows(preds)
    assert rows == [{"actual": a, "predicted": p} for a, p in zip(preds["label"], preds["predicted"], strict=True)]
    assert all(list(r) == ["actual", "predicted"] for r in rows)


# --- the offline page ------------------------------------------------------------------------


CDNS = ("cdn.jsdelivr", "unpkg.com", "cdnjs", "<script src")


def test_html_template_inlines_the_bundle_and_skips_dvcs_cdn_scripts():
    page = plots.html_template("window.vegaEmbed = function () {};")
    assert page.count("{plot_divs}") == 1 and "{refresh_tag}" in page and "{scripts}" not in page
    assert "window.vegaEmbed = function () {};" in page
    assert not [cdn for cdn in CDNS if cdn in page]


def test_html_template_with_the_real_bundle_needs_no_network(tmp_path):
    pytest.importorskip("vl_convert")
    path = tmp_path / ".dvc" / "plots_template.html"
    plots.write_html_template(path)
    page = path.read_text(encoding="utf-8")
    assert page.count("{plot_divs}") == 1 and "vegaEmbed" in page and len(page) > 100_000
    assert not [cdn for cdn in CDNS if cdn in page]


@pytest.mark.parametrize("bad", ["x = '</script>';", "/* {plot_divs} */", "/* {SCRIPTS} */"])
def test_html_template_refuses_a_bundle_that_would_break_the_page(bad):
    with pytest.raises(InstrclfError, match="bundle contains"):
        plots.html_template(bad)


