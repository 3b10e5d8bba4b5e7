"""End to end: the real `dvc repro` in temporary copies of the project, on tiny parameters."""

import copy
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from synthetic import TINY_PARAMS

from instrclf import layout, models
from instrclf.summary import FOLD_KEYS, mean_std

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LIBRARIES = ["TimGM6mb", "sf_GMbank"]
FOLDS = [0, 1]
MODELS = TINY_PARAMS["train"]["models"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(Path(f"/usr/share/sounds/sf2/{name}.sf2").is_file() for name in LIBRARIES),
        reason="the Debian SoundFonts are not installed (make test installs them)",
    ),
]


def tiny_params(models=MODELS) -> dict:
    """The project's params.yaml with a tiny two-library set, two folds, small models and one epoch."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["soundfont"].update(libraries=LIBRARIES, max_notes_per_instrument=10, note_seconds=[0.4, 0.8])
    for section in ("clean", "features", "models"):
        params[section] = copy.deepcopy(TINY_PARAMS[section])
    params["split"] = {"test_folds": FOLDS, "unseen_library": LIBRARIES[-1]}
    params["train"].update(models=list(models), warmup_epochs=0.0)
    for config in params["models"].values():
        config["epochs"] = 1
    return params


def run(cmd, cwd, check=True, **kwargs):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kwargs)
    if check:
        assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def make_repo(dest: Path, params: dict) -> Path:
    """A git repository holding the project's tracked and new files (not its outputs), after `dvc repro`."""
    files = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT).stdout.split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file() and not rel.startswith(("metrics/", "plots/", "dvc.lock")):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], dest)
    run([BIN / "dvc", "repro"], dest, timeout=1200)
    return dest


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("e2e") / "project", tiny_params())


def test_raw_data_has_tinysol_layout_with_every_library(repo):
    meta = layout.read_metadata(repo / "data/raw")
    assert sorted(meta["library"].unique()) == sorted(LIBRARIES)
    assert set(meta["fold"]) == set(range(5))


def test_summary_is_mean_and_std_of_the_per_fold_files(repo):
    for name in MODELS:
        summary = json.loads((repo / f"metrics/{name}.json").read_text())
        per_fold = json.loads((repo / f"results/predict/{name}.json").read_text())["folds"]
        assert sorted(per_fold) == [str(f) for f in FOLDS] and summary["folds"] == len(FOLDS)
        for key in FOLD_KEYS:
            mean, std = mean_std([per_fold[str(f)][key] for f in FOLDS])
            assert summary[f"{key}_mean"] == pytest.approx(mean, abs=1e-4), (name, key)
            assert summary[f"{key}_std"] == pytest.approx(std, abs=1e-4), (name, key)
        for value in summary.values():
            assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_every_seen_note_is_tested_once_and_unseen_notes_by_the_ensemble(repo):
    meta = layout.read_metadata(repo / "data/raw")
    seen = meta[(meta["library"] != LIBRARIES[-1]) & meta["fold"].isin(FOLDS)]
    unseen = meta[meta["library"] == LIBRARIES[-1]]
    for name in MODELS:
        table, labels = layout.read_predictions(repo / f"data/predictions/{name}.csv")
        test = table[table["set"] == "test"]
        assert sorted(test["Path"]) == sorted(seen["Path"])  # silent notes aside, none here
        assert sorted(table.loc[table["set"] == "unseen", "Path"]) == sorted(unseen["Path"])
        model, card = models.load(repo / f"models/{name}.keras")
        assert card.test_folds == FOLDS and card.unseen_library == LIBRARIES[-1]
        assert model.output_shape[-1] == len(labels)


def test_plot_data_is_strict_json_and_images_exist(repo):
    def strict(path):
        return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c} in {path}"))

    roc = strict(repo / "plots/data/roc.json")
    assert {row["series"] for row in roc} == set(MODELS)
    for name in MODELS:
        assert strict(repo / f"plots/data/confusion/{name}.json")
        assert len({row["series"] for row in strict(repo / f"plots/data/roc_classes/{name}.json")}) > 1
        assert (repo / f"plots/images/{name}.png").stat().st_size > 10_000
    assert (repo / "plots/images/comparison.png").stat().st_size > 10_000
    assert (repo / "plots/clean/threshold.png").stat().st_size > 10_000


def test_dvc_is_up_to_date_and_shows_one_row_per_model(repo):
    assert "up to date" in run([BIN / "dvc", "status"], repo).stdout.lower()
    table = run([BIN / "dvc", "metrics", "show"], repo).stdout.splitlines()
    rows = [line.split()[0] for line in table[1:] if line.strip()]
    assert rows == sorted(f"metrics/{name}.json" for name in MODELS)
    run([BIN / "dvc", "plots", "show"], repo)
    html = (repo / "dvc_plots/index.html").read_text()
    assert "cdn.jsdelivr" not in html and "vegaEmbed" in html


def test_a_no_op_repro_is_fast(repo):
    proc = run([BIN / "dvc", "repro"], repo)
    assert "Stage 'download' didn't change" in proc.stdout or "up to date" in proc.stdout.lower()


def test_changing_one_models_knob_reruns_only_its_chain(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["models"]["conv2d"]["dropout"] = 0.3
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = run([BIN / "dvc", "status"], repo).stdout
    finally:
        run(["git", "checkout", "params.yaml"], repo)
    changed = {line.strip().rstrip(":") for line in status.splitlines() if line and not line.startswith("\t")}
    assert {f"train@conv2d-{f}" for f in FOLDS} <= changed
    assert not any(s.startswith(("train@conv1d", "train@lstm", "train@baseline", "download", "clean")) for s in changed)


def test_two_cold_runs_give_identical_data_predictions_and_metrics(repo, tmp_path):
    other = make_repo(tmp_path / "again", tiny_params(models=["conv1d"]))
    lock, again = (yaml.safe_load((r / "dvc.lock").read_text())["stages"] for r in (repo, other))
    for stage in ("download", "clean", "features"):
        assert lock[stage]["outs"] == again[stage]["outs"], stage
    first, second = (json.loads((r / "metrics/conv1d.json").read_text()) for r in (repo, other))
    first.pop("train_seconds"), second.pop("train_seconds")  # wall time, the one figure that may differ
    assert first == second
    frame = pd.read_csv(repo / "data/predictions/conv1d.csv")
    pd.testing.assert_frame_equal(frame, pd.read_csv(other / "data/predictions/conv1d.csv"))
    weights = [models.load(r / "models/conv1d.keras")[0].get_weights() for r in (repo, other)]
    assert all((a == b).all() for a, b in zip(*weights, strict=True))


def test_a_remote_serves_a_fresh_clone_without_training(repo, tmp_path):
    """Push every output to a local-directory remote; a fresh clone pulls it and is up to date."""
    remote = tmp_path / "remote"
    run([BIN / "dvc", "remote", "add", "-d", "--local", "store", str(remote)], repo)
    run([BIN / "dvc", "push"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run", "--allow-empty"], repo)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    run([BIN / "dvc", "remote", "add", "-d", "--local", "store", str(remote)], clone)
    run([BIN / "dvc", "pull"], clone)
    assert "up to date" in run([BIN / "dvc", "status"], clone).stdout.lower()
    window = next((clone / "data/clean").rglob("*.wav"))
    out = run([BIN / "instrclf", "classify", "--model", "models/conv1d.keras", str(window)], clone).stdout
    assert out.startswith(str(window)) and "%" in out
