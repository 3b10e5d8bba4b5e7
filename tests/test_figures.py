"""Tests of instrclf.figures: the threshold, model and comparison images draw and save as PNG."""

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from test_clean import make_raw, small_rows
from test_plots import LABELS, predictions

from instrclf import clean_figure, drawing, figures
from instrclf.errors import ParameterError
from instrclf.settings import CleanSettings

PNG = b"\x89PNG\r\n\x1a\n"
CONFIG = CleanSettings(sample_rate=16000, delta_time=1.0, threshold_db=-64.3, envelope_ms=50)


def test_threshold_figure_on_a_tiny_raw_set(tmp_path):
    raw = make_raw(tmp_path / "raw", small_rows())
    fig = clean_figure.threshold_figure(raw, clean=CONFIG, target="instrument", per_class=2)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 3 * 2  # three instruments, two notes each
    assert all(ax.get_title().split(":")[0] in {"Fl", "Ob", "Vn"} for ax in shown)
    for ax in shown:
        assert any(line.get_ydata()[0] == CONFIG.threshold_db for line in ax.get_lines())  # the threshold line
        assert any(isinstance(c, PolyCollection) for c in ax.collections)  # kept samples shaded
    drawing.save_figure(fig, tmp_path / "plots" / "threshold.png", dpi=40)
    data = (tmp_path / "plots" / "threshold.png").read_bytes()
    assert data[:8] == PNG and len(data) > 5_000
    again = clean_figure.threshold_figure(raw, clean=CONFIG, target="instrument", per_class=2)
    drawing.save_figure(again, tmp_path / "again.png", dpi=40)
    assert (tmp_path / "again.png").read_bytes() == data  # deterministic


def test_model_figure_draws_roc_and_both_confusions(tmp_path):
    preds = predictions(n_files=80)
    fig = figures.model_figure(preds, labels=LABELS, model="conv2d")
    roc, log_roc, counts, shares = fig.axes[:4]
    for ax in (roc, log_roc):
        assert len(ax.get_lines()) >= len(LABELS) + 1  # one curve per class and the micro average
        assert ax.get_title().startswith("conv2d: ")
    assert log_roc.get_xscale() == "log" and roc.get_xscale() == "linear"
    assert counts.images[0].get_array().sum() == pytest.approx(80)  # counts: every note once
    np.testing.assert_allclose(shares.images[0].get_array().sum(axis=1), 1.0)  # shares: rows sum to 1
    assert all(ax.get_title().startswith("conv2d: ") for ax in (counts, shares))
    drawing.save_figure(fig, tmp_path / "conv2d.png")
    data = (tmp_path / "conv2d.png").read_bytes()
    assert data[:8] == PNG
    width = int.from_bytes(data[16:20], "big")  # the PNG header's width, at the stage's 100 dpi
    assert 1000 <= width <= 1300  # fits a 1400-px page with DVC's margins


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
    drawing.save_figure(fig, tmp_path / "comparison.png", dpi=30)
    data = (tmp_path / "comparison.png").read_bytes()
    assert data[:8] == PNG and len(data) > 5_000


@pytest.mark.parametrize("low", [False, True])
def test_comparison_figure_labels_stay_clear_of_the_fold_dots(low):
    models = {name: (predictions(skill=s, seed=k), LABELS) for k, (name, s) in enumerate([("a", 3.0), ("b", 1.0), ("c", 0.2)])}
    folds = {"a": [0.97, 0.98, 0.975], "b": [0.6, 0.62, 0.58], "c": [0.05, 0.1, 0.3] if low else [0.3, 0.31, 0.29]}
    unseen = {"a": [0.5, 0.52], "b": [0.4, 0.45], "c": [0.2, 0.1]}
    fig = figures.comparison_figure(models, fold_accuracy=folds, unseen_accuracy=unseen)
    roc_ax, bar_ax = fig.axes
    assert roc_ax.get_xscale() == "log"  # good models differ in the corner
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t for t in bar_ax.texts if t.get_text()]
    assert sorted(t.get_text() for t in labels) == sorted(f"{np.mean(v):.3f}" for d in (folds, unseen) for v in d.values())
    boxes = [t.get_window_extent(renderer).expanded(1.05, 1.05) for t in labels]
    dots = [bar_ax.transData.transform(xy) for line in bar_ax.get_lines() for xy in line.get_xydata()]
    assert len(dots) == 3 * 3 + 3 * 2
    hits = [(t.get_text(), d) for t, box in zip(labels, boxes, strict=True) for d in dots if box.contains(*d)]
    assert not hits  # no mean label drawn over a fold's dot
    legend = bar_ax.get_legend().get_window_extent(renderer)
    assert not any(legend.contains(*d) for d in dots)


def test_comparison_figure_needs_a_model():
    with pytest.raises(ParameterError, match="at least one model"):
        figures.comparison_figure({}, fold_accuracy={}, unseen_accuracy={})


def test_save_figure_leaves_nothing_on_failure(tmp_path):
    fig = figures.comparison_figure({"m": (predictions(), LABELS)}, fold_accuracy={"m": [0.5]}, unseen_accuracy={})
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        drawing.save_figure(fig, tmp_path / "file" / "x.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_confusion_rows_are_the_actual_class_and_columns_the_predicted_one():
    """The axes say actual (rows) and predicted (columns): a class always mistaken for another shows so."""
    preds = predictions(n_files=60, skill=3.0)
    first, second = LABELS[0], LABELS[1]
    preds.loc[preds["label"] == first, "predicted"] = second  # every note of the first class called the second
    fig = figures.model_figure(preds, labels=LABELS, model="conv1d")
    counts, shares = fig.axes[2].images[0].get_array(), fig.axes[3].images[0].get_array()  # below the two ROC panels
    n_first = int((preds["label"] == first).sum())
    assert counts[0, 1] == n_first and counts[0].sum() == n_first and counts[0, 0] == 0
    assert shares[0, 1] == 1.0
    assert (fig.axes[2].get_ylabel(), fig.axes[2].get_xlabel()) == ("actual", "predicted")
    import matplotlib.pyplot as plt

    plt.close(fig)


# --------------------------------------------------------------------------- drawing.save_figure


def test_save_figure_writes_a_png_of_the_figures_size_at_the_dpi(tmp_path):
    from PIL import Image

    plt = drawing.pyplot()
    drawing.save_figure(plt.figure(figsize=(2.0, 1.0)), tmp_path / "default.png")  # 100 dpi unless told
    drawing.save_figure(plt.figure(figsize=(2.0, 1.0)), tmp_path / "small.png", dpi=40)
    assert (tmp_path / "default.png").read_bytes()[:8] == PNG
    assert Image.open(tmp_path / "default.png").size == (200, 100) and Image.open(tmp_path / "small.png").size == (80, 40)


def test_save_figure_closes_the_figure_it_saved_and_no_other(tmp_path):
    plt = drawing.pyplot()
    saved, other = plt.figure(), plt.figure()  # the other one is pyplot's current figure
    drawing.save_figure(saved, tmp_path / "x.png")
    assert not plt.fignum_exists(saved.number) and plt.fignum_exists(other.number)
    plt.close(other)


def test_a_threshold_panel_draws_the_notes_own_level_envelope_threshold_and_kept_share():
    """What one panel shows, against the definitions: 5-ms RMS in dB, the envelope every ms, the line, the kept share."""
    from matplotlib.figure import Figure

    from instrclf import audio

    sr = CONFIG.sample_rate
    rng = np.random.default_rng(0)
    note = np.concatenate([np.zeros(sr // 4), 0.3 * np.sin(2 * np.pi * 440 * np.arange(sr // 2) / sr), 1e-6 * rng.standard_normal(sr // 4)])
    ax = Figure().subplots()
    ax.set_visible(False)
    clean_figure._threshold_panel(ax, note.astype("float32"), clean=CONFIG, title="Fl: x.wav")
    assert ax.get_visible()
    floor = CONFIG.threshold_db - 20.0  # below -100 dB: 20 dB under the threshold
    signal, envelope, threshold = ax.get_lines()
    block = sr // 200
    rms = np.sqrt(np.mean(note[: len(note) // block * block].astype("float32").astype(np.float64).reshape(-1, block) ** 2, axis=1))
    np.testing.assert_allclose(signal.get_xdata(), (np.arange(len(rms)) + 0.5) * block / sr)
    np.testing.assert_allclose(signal.get_ydata(), np.maximum(20 * np.log10(np.maximum(rms, 1e-12)), min(-100.0, floor)), atol=1e-4)
    env = audio.envelope(note.astype("float32"), sample_rate=sr, envelope_ms=CONFIG.envelope_ms)
    step = sr // 1000
    np.testing.assert_allclose(envelope.get_xdata(), np.arange(0, len(note), step) / sr)
    np.testing.assert_allclose(envelope.get_ydata(), np.maximum(20 * np.log10(np.maximum(env[::step], 1e-12)), min(-100.0, floor)), atol=1e-4)
    assert list(threshold.get_ydata()) == [CONFIG.threshold_db] * 2
    kept = np.mean(env > audio.db_to_amplitude(CONFIG.threshold_db))
    assert 0.45 < kept < 0.65 and ax.get_title() == f"Fl: x.wav ({kept:.0%} kept)"
    assert ax.get_ylim() == (min(-100.0, floor), 0.0) and ax.get_xlim() == (0.0, len(note) / sr)
    assert ax.get_legend_handles_labels()[1] == [
        "signal (5 ms RMS)", f"envelope ({CONFIG.envelope_ms} ms max)", f"threshold {CONFIG.threshold_db} dBFS", "kept"]
    (shade,) = ax.collections  # the kept samples: shaded from the floor to 0 dBFS where the envelope is above the line
    path = shade.get_paths()[0].vertices
    assert path[:, 1].min() == pytest.approx(min(-100.0, floor)) and path[:, 1].max() == pytest.approx(0.0)


def test_the_threshold_figure_lays_out_one_row_per_class_and_hides_the_empty_cells(tmp_path):
    rows = small_rows()[:4]  # Fl x 3 notes, then one Ob note: two rows, three columns, two cells empty
    raw = make_raw(tmp_path / "raw", rows)
    fig = clean_figure.threshold_figure(raw, clean=CONFIG, target="instrument", per_class=3)
    grid = np.array(fig.axes).reshape(2, 3)
    assert [[ax.get_visible() for ax in row] for row in grid] == [[True, True, True], [True, False, False]]
    assert [ax.get_ylabel() for ax in grid[:, 0]] == ["dBFS", "dBFS"] and grid[0, 1].get_ylabel() == ""
    assert grid[0, 0].get_legend() is not None and grid[1, 0].get_legend() is None
    assert tuple(fig.get_size_inches()) == pytest.approx((5.5 * 3, 1.7 * 2 + 0.7))
    assert fig._suptitle.get_text() == "clean: envelope threshold at 16000 Hz (time in seconds)"
    assert grid[0, 0].get_shared_y_axes().joined(grid[0, 0], grid[1, 0])  # one dB scale for every panel
    fewer = clean_figure.threshold_figure(raw, clean=CONFIG, target="instrument", per_class=1)
    assert sum(ax.get_visible() for ax in fewer.axes) == 2  # per_class is honoured


# Hostile mutants, round 7 (benchmarks/hostile_mutants/round7): cases beside the tested ones.


@pytest.mark.parametrize("rate", [8000, 44100])
def test_the_threshold_figure_shows_each_note_in_seconds_whatever_its_rate(tmp_path, rate):
    """Notes recorded at 8 or 44.1 kHz are drawn as clean sees them, at clean's rate: each panel spans
    the note's own duration (0.05 s), not its sample count read at another rate."""
    from synthetic import make_raw_dir

    raw = make_raw_dir(tmp_path / "raw", sample_rate=rate)
    fig = clean_figure.threshold_figure(raw, clean=CONFIG, target="instrument", per_class=1)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert shown and all(ax.get_xlim()[1] == pytest.approx(0.05, abs=1e-3) for ax in shown)
    for ax in shown:
        assert max(line.get_xdata()[-1] for line in ax.get_lines() if len(line.get_xdata()) > 2) <= 0.05 + 1e-3
