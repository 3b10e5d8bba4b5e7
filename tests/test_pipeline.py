"""End to end: the real `dvc repro` in a temporary copy of the project, on tiny parameters."""

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from synthetic import TINY_PARAMS

from instrclf import models
from instrclf.tinysol import INSTRUMENTS

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NOTES_PER_INSTRUMENT = 5  # one per fold

pytestmark = pytest.mark.slow


def tiny_params() -> dict:
    """The project's params.yaml with a tiny rendered set, short windows, small models and one epoch."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["soundfont"].update(max_notes_per_instrument=NOTES_PER_INSTRUMENT, note_seconds=[0.4, 0.8])
    for section in ("clean", "features", "models"):
        params[section] = copy.deepcopy(TINY_PARAMS[section])
    params["train"].update(epochs=1, batch_size=16)
    return params


def run(cmd, cwd, **kwargs):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git repository holding the project's tracked and new files (not its outputs), after `dvc repro`."""
    dest = tmp_path_factory.mktemp("e2e") / "project"
    files = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT).split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file() and not rel.startswith(("metrics/", "plots/", "dvc.lock")):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], dest)
    run([BIN / "python", "-m", "instrclf.plots", "template", ".dvc/plots_template.html"], dest)
    run([BIN / "dvc", "repro"], dest, timeout=1200)
    return dest


def test_raw_data_has_tinysol_layout(repo):
    meta = pd.read_csv(repo / "data/raw/TinySOL_metadata.csv")
    assert len(meta) == NOTES_PER_INSTRUMENT * len(INSTRUMENTS)
    assert all((repo / "data/raw/audio" / p).is_file() for p in meta["Path"])


def test_every_declared_metric_is_flat_numbers(repo):
    clean = json.loads((repo / "metrics/clean.json").read_text())
    assert clean["files_read"] == NOTES_PER_INSTRUMENT * len(INSTRUMENTS) and clean["windows_written"] > 0
    for name in TINY_PARAMS["train"]["models"]:
        scores = json.loads((repo / f"metrics/{name}.json").read_text())
        assert {"file_accuracy", "window_accuracy", "macro_f1", "roc_auc_micro", "n_files", "n_windows"} <= set(scores)
        assert scores["n_files"] == len(INSTRUMENTS)  # one note per instrument in the test fold
        fit = json.loads((repo / f"metrics/train/{name}.json").read_text())
        assert fit["epochs_run"] == 1
        for value in [*scores.values(), *fit.values(), *clean.values()]:
            assert isinstance(value, (int, float)) and not isinstance(value, bool)


def test_models_load_and_predictions_cover_the_test_fold(repo):
    for name in TINY_PARAMS["train"]["models"]:
        model, meta = models.load(repo / f"models/{name}.keras")
        assert model.output_shape == (None, len(INSTRUMENTS)) and len(meta["labels"]) == len(INSTRUMENTS)
        predictions = pd.read_csv(repo / f"data/predictions/{name}.csv")
        assert (predictions["fold"] == 0).all() and predictions["Path"].is_unique


def test_plot_data_is_valid_json_and_images_exist(repo):
    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in plot JSON"))

    for name in TINY_PARAMS["train"]["models"]:
        roc = strict((repo / f"plots/roc/{name}.json").read_text())
        rows = roc if isinstance(roc, list) else next(iter(roc.values()))
        assert rows[0]["fpr"] == 0 and rows[-1]["tpr"] == 1
        confusion = strict((repo / f"plots/confusion/{name}.json").read_text())
        rows = confusion if isinstance(confusion, list) else next(iter(confusion.values()))
        assert len(rows) == len(INSTRUMENTS)
        assert (repo / f"plots/images/models/{name}.png").stat().st_size > 10_000
    for image in ("comparison.png", "threshold.png"):
        assert (repo / "plots/images" / image).stat().st_size > 10_000


def test_dvc_sees_nothing_left_to_do_and_shows_metrics(repo):
    assert "up to date" in run([BIN / "dvc", "status"], repo).lower()
    table = run([BIN / "dvc", "metrics", "show"], repo)
    for name in TINY_PARAMS["train"]["models"]:
        assert f"metrics/{name}.json" in table
    run([BIN / "dvc", "plots", "show"], repo)
    html = (repo / "dvc_plots/index.html").read_text()
    assert "cdn.jsdelivr" not in html and "vegaEmbed" in html


def test_changing_one_models_knob_reruns_only_its_chain(repo):
    dry = run([BIN / "dvc", "repro", "--dry", "-s", "train@conv2d"], repo)  # sanity: a named stage resolves
    assert "train@conv2d" in dry
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["models"]["conv2d"]["dropout"] = 0.3
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = run([BIN / "dvc", "status"], repo)
    assert "train@conv2d" in status
    assert "train@conv1d" not in status and "train@lstm" not in status and "download" not in status
