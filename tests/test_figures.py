"""Tests of instrclf.figures: the threshold, model and comparison images draw and save as PNG."""

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from test_clean import make_raw, small_rows
from test_plots import LABELS, predictions

from instrclf import figures
from instrclf.errors import ParameterError
from instrclf.settings import CleanSettings

PNG = b"\x89PNG\r\n\x1a\n"
CONFIG = CleanSettings(sample_rate=16000, delta_time=1.0, threshold_db=-64.3, envelope_ms=50)


def test_threshold_figure_on_a_tiny_raw_set(tmp_path):
    raw = make_raw(tmp_path / "raw", small_rows())
    fig = figures.threshold_figure(raw, clean=CONFIG, target="instrument", per_class=2)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 3 * 2  # three instruments, two notes each
    assert all(ax.get_title().split(":")[0] in {"Fl", "Ob", "Vn"} for ax in shown)
    for ax in shown:
        assert any(line.get_ydata()[0] == CONFIG.threshold_db for line in ax.get_lines())  # the threshold line
        assert any(isinstance(c, PolyCollection) for c in ax.collections)  # kept samples shaded
    figures.save_figure(fig, tmp_path / "plots" / "threshold.png", dpi=40)
    data = (tmp_path / "plots" / "threshold.png").read_bytes()
    assert data[:8] == PNG and len(data) > 5_000
    again = figures.threshold_figure(raw, clean=CONFIG, target="instrument", per_class=2)
    figures.save_figure(again, tmp_path / "again.png", dpi=40)
    assert (tmp_path / "again.png").read_bytes() == data  # deterministic


def test_model_figure_draws_roc_and_both_confusions(tmp_path):
    preds = predictions(n_files=80)
    fig = figures.model_figure(preds, labels=LABELS, model="conv2d")
    roc, counts, shares = fig.axes[:3]
    assert len(roc.get_lines()) >= len(LABELS) + 2  # one curve per class, micro average, chance line
    assert counts.images[0].get_array().sum() == pytest.approx(80)  # counts: every note once
    np.testing.assert_allclose(shares.images[0].get_array().sum(axis=1), 1.0)  # shares: rows sum to 1
    figures.save_figure(fig, tmp_path / "conv2d.png", dpi=30)
    assert (tmp_path / "conv2d.png").read_bytes()[:8] == PNG


def test_comparison_figure_shows_every_fold_and_the_mean(tmp_path):
    models = {"good": (predictions(skill=3.0, seed=1), LABELS), "poor": (predictions(skill=0.5, seed=2), LABELS)}
    folds = {"good": [0.9, 0.95, 0.8], "poor": [0.4, 0.6, 0.5]}
    unseen = {"good": [0.7, 0.75], "poor": []}
    fig = figures.comparison_figure(models, fold_accuracy=folds, unseen_accuracy=unseen)
    roc_ax, bar_ax = fig.axes
    assert [t.get_text().split(" ")[0] for t in roc_ax.get_legend().get_texts()] == ["good", "poor"]
    points = sorted(float(y) for line in bar_ax.get_lines() for y in line.get_ydata())
    assert points == sorted([*folds["good"], *folds["poor"], *unseen["good"]])  # the spread: one dot per fold
    heights = [round(p.get_height(), 6) for p in bar_ax.patches]
    assert round(np.mean(folds["good"]), 6) in heights and round(np.mean(unseen["good"]), 6) in heights
    figures.save_figure(fig, tmp_path / "comparison.png", dpi=30)
    data = (tmp_path / "comparison.png").read_bytes()
    assert data[:8] == PNG and len(data) > 5_000


def test_comparison_figure_needs_a_model():
    with pytest.raises(ParameterError, match="at least one model"):
        figures.comparison_figure({}, fold_accuracy={}, unseen_accuracy={})


def test_save_figure_leaves_nothing_on_failure(tmp_path):
    fig = figures.comparison_figure({"m": (predictions(), LABELS)}, fold_accuracy={"m": [0.5]}, unseen_accuracy={})
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        figures.save_figure(fig, tmp_path / "file" / "x.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
