"""Tiny synthetic data in the project's own formats, shared by the tests."""

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import yaml

#: Small but valid settings: 0.5-s windows at 8 kHz, a 32-band mel front end, one epoch.
TINY_PARAMS = {
    "seed": 7,
    "clean": {"sample_rate": 8000, "delta_time": 0.5, "threshold_db": -64.3, "envelope_ms": 50},
    "split": {"test_folds": [0, 1], "unseen_library": "B"},
    "features": {"n_mels": 32, "n_fft": 256, "win_length": 200, "hop_length": 80},
    "train": {
        "models": ["conv1d", "conv2d", "lstm", "baseline"],
        "epochs": 2,
        "batch_size": 16,
        "learning_rate": 0.003,
        "warmup_epochs": 0.0,
        "patience": 2,
        "distribute": "default",
        "threads": None,
    },
    "models": {
        "conv1d": {"filters": [4, 8, 16], "kernel_size": 3, "dense": 16, "dropout": 0.1, "l2": 0.001},
        "conv2d": {"filters": [4, 8, 8, 8, 8], "kernel_sizes": [5, 3, 3, 3, 3], "dense": 16, "dropout": 0.2, "l2": 0.001},
        "lstm": {"frame_dense": 16, "units": 8, "dense": [16, 8], "head": 8, "dropout": 0.2, "l2": 0.001},
        "baseline": {"l2": 0.0001},
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


def make_clean_dir(root, *, params=TINY_PARAMS, notes_per_fold=2, windows_per_note=2, libraries=("A", "B"), seed=0) -> Path:
    """A clean-stage output folder (index.csv + 16-bit windows) of synthetic tones in all 5 folds.

    Every note exists once per library; library ``k`` plays it slightly sharper, so the
    libraries differ a little but the classes stay easy.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    sr = params["clean"]["sample_rate"]
    seconds = params["clean"]["delta_time"]
    rows = []
    for label, f0 in CLASS_F0.items():
        for fold in range(5):
            for n in range(notes_per_fold):
                for k, library in enumerate(libraries):
                    stem = f"{label}-ord-{fold}{n}-mf-N-{library}"
                    source = f"Family/{label}/ordinario/{stem}.wav"
                    for w in range(windows_per_note):
                        rel = f"{label}/{stem}_{w}.wav"
                        (root / label).mkdir(parents=True, exist_ok=True)
                        f = f0 * (1 + 0.01 * k) * rng.uniform(0.97, 1.03)
                        sf.write(root / rel, tone(f, sample_rate=sr, seconds=seconds, rng=rng), sr, subtype="PCM_16")
                        rows.append((rel, source, label, "Family", library, label, fold, w))
    columns = ["window", "Path", "instrument", "family", "library", "label", "fold", "window_index"]
    pd.DataFrame(rows, columns=columns).to_csv(root / "index.csv", index=False)
    return root
