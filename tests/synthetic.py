"""Tiny synthetic data in the project's own formats, shared by the tests."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import yaml

#: Small but valid settings: 0.5-s windows at 8 kHz, a 32-band mel front end, one epoch.
TINY_PARAMS = {
    "seed": 7,
    "data": {"target": "instrument"},  # the one data key a training reads
    "clean": {"sample_rate": 8000, "delta_time": 0.5, "threshold_db": -64.3, "envelope_ms": 50},
    "split": {"test_folds": [0, 1], "unseen_library": "B"},
    "features": {"n_mels": 32, "n_fft": 256, "win_length": 200, "hop_length": 80},
    "train": {
        "models": ["conv1d", "conv2d", "lstm", "baseline"],
        "warmup_epochs": 0.0,
        "patience": 2,
        "distribute": "default",
        "threads": None,
        "augment": {"eq_db": 0, "mel_shift": 0, "freq_mask": 0, "time_mask": 0, "noise_snr_db": None},
        "library_weights": {},
        "library_colour": 3,  # on, as by default: every training and prediction test goes through it
    },
    "predict": {"shift_average": 1},  # on, as by default: every prediction test goes through it
    "export": {"formats": ["tflite"]},  # the quickest format: the others are exported in tests/test_export.py
    "models": {
        "conv1d": {"epochs": 2, "batch_size": 16, "learning_rate": 0.003, "precision": "float32", "filters": [4, 8, 16], "kernel_size": 3, "dense": 16, "dropout": 0.1, "l2": 0.001},
        "conv2d": {"epochs": 2, "batch_size": 16, "learning_rate": 0.003, "precision": "mixed_bfloat16", "time_pool": 2, "filters": [4, 8, 8, 8, 8], "kernel_sizes": [5, 3, 3, 3, 3], "dense": 16, "dropout": 0.2, "l2": 0.001},
        "lstm": {"epochs": 2, "batch_size": 16, "learning_rate": 0.003, "precision": "float32", "time_pool": 2, "frame_dense": 16, "units": 8, "dense": [16, 8], "head": 8, "dropout": 0.2, "l2": 0.001},
        "baseline": {"epochs": 2, "batch_size": 16, "learning_rate": 0.003, "precision": "float32", "l2": 0.0001},
    },
}

#: Fundamental frequency per synthetic class: tones a model can tell apart.
CLASS_F0 = {"Fl": 660.0, "Tbn": 110.0, "Vn": 330.0}


def tone(f0, *, sample_rate, seconds, rng, harmonics=4):
    """A harmonic tone with a little noise, peak 0.5."""
    t = np.arange(round(sample_rate * seconds)) / sample_rate
    y = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, harmonics + 1))
    y = y + 0.05 * rng.standard_normal(len(t))
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def write_params(path, params) -> Path:
    """Write a params dict as YAML."""
    path = Path(path)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def make_clean_dir(root, *, params=TINY_PARAMS, notes_per_fold=2, windows_per_note=2, libraries=("A", "B"), seed=0,
                   shard_bytes=64 * 2**10) -> Path:
    """A clean-stage output folder (index.csv + 16-bit windows in shards) of synthetic tones in all 5 folds.

    Every note exists once per library; library ``k`` plays it slightly sharper, so the
    libraries differ a little but the classes stay easy. ``shard_bytes`` small: several shards.
    """
    from instrclf import audio, layout

    root = Path(root)
    rng = np.random.default_rng(seed)
    sr = params["clean"]["sample_rate"]
    seconds = params["clean"]["delta_time"]
    width = round(sr * seconds)
    shards = layout.ShardWriter(root, n_samples=width, shard_bytes=shard_bytes)
    rows = []
    for label, f0 in CLASS_F0.items():
        for fold in range(5):
            for n in range(notes_per_fold):
                for k, library in enumerate(libraries):
                    stem = f"{label}-ord-{fold}{n}-mf-N-{library}"
                    source = f"Family/{label}/ordinario/{stem}.wav"
                    cut = [tone(f0 * (1 + 0.01 * k) * rng.uniform(0.97, 1.03), sample_rate=sr, seconds=seconds, rng=rng)
                           for _ in range(windows_per_note)]
                    shard, first = shards.add(audio.to_pcm16(np.array(cut).reshape(-1, width))[0])
                    for w in range(windows_per_note):
                        rel = f"{label}/{stem}_{w}.wav"
                        rows.append((rel, source, label, "Family", library, label, fold, w, shard, first + w))
    shards.flush()
    pd.DataFrame(rows, columns=list(layout.INDEX_COLUMNS)).to_csv(root / "index.csv", index=False)
    return root


def make_features_dir(root, *, params=TINY_PARAMS, **clean_kwargs) -> Path:
    """``<root>/clean`` (:func:`make_clean_dir`) and its features folder ``<root>/features``, as the features stage makes it."""
    from instrclf import features

    root = Path(root)
    clean, feats = tiny_settings(params)
    clean_dir = make_clean_dir(root / "clean", params=params, **clean_kwargs)
    features.run(clean_dir, root / "features", clean=clean, features=feats, progress=False)
    return root / "features"


def tiny_settings(params=TINY_PARAMS) -> tuple:
    """``(clean, features)`` settings objects of ``params``."""
    from instrclf import settings

    return settings.section(params, settings.CleanSettings), settings.section(params, settings.FeatureSettings)


def tiny_card(name, *, labels, test_folds, params=TINY_PARAMS, **changes):
    """A valid :class:`instrclf.card.ModelCard` for model ``name`` built with ``params``; ``changes`` override fields."""
    from instrclf import card, settings

    clean, features = tiny_settings(params)
    fields = {
        "format": card.CARD_FORMAT,
        "model": name,
        "labels": list(labels),
        "target": "instrument",
        "clean": clean,
        "features": features,
        "config": settings.model_config(params, name).model_dump(),
        "test_folds": list(test_folds),
        "unseen_library": params["split"]["unseen_library"],
        "seed": params["seed"],
    }
    return card.ModelCard(**(fields | changes))


#: Tiny, fast ``data.soundfont`` values: 2 notes per instrument and library, fractions of a second each.
TINY_SOUNDFONT = {
    "libraries": ["TimGM6mb", "sf_GMbank"],
    "max_notes_per_instrument": 2,
    "string_span_semitones": 24,
    "jobs": 1,
    "sample_rate": 22050,
    "note_seconds": [0.1, 0.2],
    "release_seconds": [0.02, 0.05],
    "onset_seconds": [0.02, 0.05],
    "detune_cents": 20,
    "vibrato_cents": [10, 30],
    "vibrato_hz": [4.5, 6.5],
    "level_db": [-30, -3],
    "reverb_seconds": [0.05, 0.1],
    "reverb_mix": [0.0, 0.35],
    "snr_db": [12, 40],
    "noise_color": [0.0, 1.0],
    "tilt_db_per_octave": 4,
    "body_db": 8,
    "body_jitter": 0.05,
}


def soundfont_settings(**changes):
    """A :class:`instrclf.settings.SoundfontSettings` of :data:`TINY_SOUNDFONT` with ``changes``."""
    from instrclf.settings import SoundfontSettings

    return SoundfontSettings.from_params({**TINY_SOUNDFONT, **changes})


#: Path, Fold, Family, instrument abbreviation of the notes of :func:`make_raw_dir`.
RAW_ROWS = (
    ("Winds/Flute/ordinario/Fl-ord-C4-mf-N-N.wav", 0, "Winds", "Fl"),
    ("Brass/Horn/ordinario/Hn-ord-A2-ff-N-N.wav", 1, "Brass", "Hn"),
    ("Strings/Violin/ordinario/Vn-ord-G3-pp-4c-N.wav", 4, "Strings", "Vn"),
)


def make_raw_dir(root, *, rows=RAW_ROWS, sample_rate=8000, seed=0) -> Path:
    """A folder in TinySOL's raw layout: ``TinySOL_metadata.csv`` and a short 16-bit tone per row."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    table = []
    for path, fold, family, abbr in rows:
        (root / "audio" / path).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / "audio" / path, tone(CLASS_F0.get(abbr, 440.0), sample_rate=sample_rate, seconds=0.05, rng=rng), sample_rate, subtype="PCM_16")
        table.append({"Path": path, "Fold": fold, "Family": family, "Instrument (abbr.)": abbr})
    pd.DataFrame(table).to_csv(root / "TinySOL_metadata.csv", index=False)
    return root


def interrupt_when(proc, ready, *, timeout=120.0):
    """Send SIGINT to the running ``proc`` once ``ready()`` is true; its ``(stdout, stderr)``. Killed if anything fails."""
    import signal
    import time

    try:
        deadline = time.monotonic() + timeout
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"the process ended before it was interrupted: {proc.stderr.read()}"
        proc.send_signal(signal.SIGINT)
        return proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


#: Headless Chromium, offline: the flags every browser test runs with.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=8000")


def chromium():
    """The Chromium executable, or None (make test installs the Debian package)."""
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` as a module, loaded as when run as a script (its folder on ``sys.path``)."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module
