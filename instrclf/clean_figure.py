"""The clean stage's threshold image: signal level, envelope and threshold for a few notes per class.

Beside :mod:`instrclf.clean` (and apart from the plot stage's figures), so that a change to
the model plots reruns nothing of clean.
"""

from pathlib import Path, PurePosixPath

import numpy as np

from . import audio, layout
from .clean import pick_notes, read_notes
from .settings import CleanSettings


def threshold_figure(raw_dir, *, clean: CleanSettings, target, per_class=2):
    """Draw the "test threshold" image: signal level, envelope and threshold for a few notes per class.

    Parameters
    ----------
    raw_dir : str or Path
        The raw layout (metadata CSV + audio).
    clean : CleanSettings
        The values clean uses; each note is shown as clean sees it (mono, resampled).
    target : str
        ``"instrument"`` or ``"family"``: one row of panels per label.
    per_class : int
        Notes (columns) per label, chosen by :func:`pick_notes`.
    """
    from matplotlib.figure import Figure  # a bare Figure renders with Agg and leaves pyplot's state alone

    notes = pick_notes(read_notes(raw_dir, target=target), per_class=per_class)
    labels = sorted({n.label for n in notes})
    cols = max(sum(n.label == lab for n in notes) for lab in labels)
    height = 1.7 * len(labels) + 0.7
    fig = Figure(figsize=(5.5 * cols, height))
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.5 / height, top=1 - 0.8 / height, hspace=0.55, wspace=0.06)
    axes = fig.subplots(len(labels), cols, squeeze=False, sharey=True)
    for ax in axes.flat:
        ax.set_visible(False)
    for row, label in enumerate(labels):
        for col, note in enumerate(n for n in notes if n.label == label):
            y, sr = audio.load(Path(raw_dir) / layout.AUDIO_DIR / note.path)
            mono = audio.resample(audio.to_mono(y), orig_sr=sr, target_sr=clean.sample_rate)
            _threshold_panel(axes[row, col], mono, clean=clean, title=f"{label}: {PurePosixPath(note.path).name}")
        axes[row, 0].set_ylabel("dBFS", fontsize=7)
    axes[0, 0].legend(fontsize=6, loc="upper right")
    title = f"clean: envelope threshold at {clean.sample_rate} Hz (time in seconds)"
    fig.suptitle(title, fontsize=10, y=1 - 0.1 / height, va="top")
    return fig


def _threshold_panel(ax, mono, *, clean, title):
    """One note: 5-ms RMS level, envelope, threshold line and the kept samples shaded, in dBFS."""
    sr = clean.sample_rate
    floor = min(-100.0, clean.threshold_db - 20.0)
    env = audio.envelope(mono, sample_rate=sr, envelope_ms=clean.envelope_ms)
    keep = env > audio.db_to_amplitude(clean.threshold_db)
    block = max(1, sr // 200)  # short-term RMS in 5 ms blocks shows the signal's own level
    blocks = len(mono) // block
    rms = np.sqrt(np.mean(np.square(mono[: blocks * block], dtype=np.float64).reshape(blocks, block), axis=1))
    step = max(1, sr // 1000)  # draw the envelope every millisecond: it is piecewise constant
    t = np.arange(0, len(mono), step) / sr
    ax.set_visible(True)
    ax.plot((np.arange(blocks) + 0.5) * block / sr, _db(rms, floor), color="0.6", lw=0.8, label="signal (5 ms RMS)")
    ax.plot(t, _db(env[::step], floor), color="tab:blue", lw=1.0, label=f"envelope ({clean.envelope_ms} ms max)")
    ax.axhline(clean.threshold_db, color="tab:red", ls="--", lw=1.0, label=f"threshold {clean.threshold_db} dBFS")
    ax.fill_between(t, floor, 0, where=keep[::step], color="tab:green", alpha=0.15, lw=0, label="kept")
    ax.set_ylim(floor, 0)
    ax.set_xlim(0, max(len(mono) / sr, 1e-3))
    ax.set_title(f"{title} ({keep.mean():.0%} kept)", fontsize=8)
    ax.tick_params(labelsize=7)


def _db(y, floor):
    """``20 log10 |y|`` clipped below at ``floor`` dBFS."""
    return np.maximum(20.0 * np.log10(np.maximum(np.abs(y), 1e-12)), floor)
