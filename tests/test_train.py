import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import TINY_PARAMS, make_clean_dir, write_params

from instrclf import models, train
from instrclf.errors import ParameterError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory):
    return make_clean_dir(tmp_path_factory.mktemp("clean"))


def test_training_is_reproducible_from_the_seed(clean_dir):
    """Two runs on CPU with the same seed: identical metrics and weights."""
    runs = [train.run(TINY_PARAMS, name="conv1d", clean_dir=clean_dir) for _ in range(2)]
    (m1, meta1, met1), (m2, meta2, met2) = runs
    assert meta1 == meta2
    for key in ("best_val_accuracy", "best_epoch", "epochs_run", "n_train_windows", "n_params"):
        assert met1[key] == met2[key]
    for w1, w2 in zip(m1.get_weights(), m2.get_weights(), strict=True):
        np.testing.assert_array_equal(w1, w2)


def test_a_different_seed_gives_different_weights(clean_dir):
    params = copy.deepcopy(TINY_PARAMS)
    params["seed"] = TINY_PARAMS["seed"] + 1
    a, _, _ = train.run(TINY_PARAMS, name="baseline", clean_dir=clean_dir)
    b, _, _ = train.run(params, name="baseline", clean_dir=clean_dir)
    assert not np.array_equal(a.get_weights()[-2], b.get_weights()[-2])


def test_run_trains_on_three_folds_and_records_its_settings(clean_dir):
    model, meta, metrics = train.run(TINY_PARAMS, name="baseline", clean_dir=clean_dir)
    # 3 classes x 3 training folds x 2 notes x 2 windows; validation is one fold.
    assert metrics["n_train_windows"] == 36 and metrics["n_val_windows"] == 12
    assert meta["labels"] == ["Fl", "Tbn", "Vn"]
    assert meta["clean"] == TINY_PARAMS["clean"]
    assert meta["split"] == {"test_fold": 0, "val_fold": 1, "train_folds": [2, 3, 4]}
    assert 1 <= metrics["epochs_run"] <= TINY_PARAMS["train"]["epochs"]
    assert 0 <= metrics["best_val_accuracy"] <= 1 and metrics["samples_per_second"] > 0
    assert model.output_shape == (None, 3)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("train.batch_size", 0, "train.batch_size must be >= 1, got 0"),
        ("train.epochs", 1.5, "train.epochs must be an integer"),
        ("train.learning_rate", 0, "train.learning_rate must be > 0"),
        ("train.distribute", "tpu", r"train.distribute must be one of \['default', 'mirrored', 'multi_worker'\]"),
        ("split.test_fold", 5, r"split.test_fold must be one of \[0, 1, 2, 3, 4\], got 5"),
        ("split.val_fold", 0, "split.val_fold must differ from split.test_fold"),
        ("clean.delta_time", 0, "clean.delta_time"),
        ("clean.threshold_db", 3, "clean.threshold_db"),
    ],
)
def test_invalid_parameters_fail_before_any_data_is_read(tmp_path, key, value, match):
    params = copy.deepcopy(TINY_PARAMS)
    section, name = key.split(".")
    params[section][name] = value
    # tmp_path has no index.csv: reaching the data would raise DataError instead.
    with pytest.raises(ParameterError, match=match):
        train.run(params, name="lstm", clean_dir=tmp_path)


def test_unknown_model_name_lists_the_allowed_ones(tmp_path):
    with pytest.raises(ParameterError, match=r"train.models must be one of \['baseline', 'conv1d', 'conv2d', 'lstm'\]"):
        train.run(TINY_PARAMS, name="transformer", clean_dir=tmp_path)


def test_strategy_names():
    assert train.strategy("default") is not None
    with pytest.raises(ParameterError, match="train.distribute"):
        train.strategy("horovod")


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_stage_writes_model_metrics_and_curves_without_creating_experiments(tmp_path, clean_dir):
    """The stage script in a committed git repo: dvclive logs curves but saves no DVC experiment."""
    git(tmp_path, "init", "-q")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init")
    params = write_params(tmp_path / "params.yaml", TINY_PARAMS)
    cmd = [
        sys.executable, str(ROOT / "stages" / "train.py"), "--params", str(params), "--model", "baseline",
        "--clean", str(clean_dir), "--out", "models/baseline.keras", "--metrics", "metrics/train/baseline.json",
        "--live", "plots/train/baseline",
    ]  # fmt: skip
    subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True, text=True)
    metrics = json.loads((tmp_path / "metrics/train/baseline.json").read_text())
    assert all(isinstance(v, (int, float)) for v in metrics.values())
    model, meta = models.load(tmp_path / "models/baseline.keras")
    assert meta["model"] == "baseline" and model.output_shape == (None, 3)
    curves = tmp_path / "plots/train/baseline/plots/metrics"
    assert {p.relative_to(curves).as_posix() for p in curves.rglob("*.tsv")} >= {"train/accuracy.tsv", "eval/accuracy.tsv"}
    assert not (tmp_path / "plots/train/baseline/dvc.yaml").exists()
    assert git(tmp_path, "for-each-ref", "refs/exps") == ""
    assert not list(tmp_path.glob(".*.tmp.keras")) and not list((tmp_path / "models").glob(".*"))


def test_stage_reports_bad_parameters_in_one_line(tmp_path, clean_dir):
    params = copy.deepcopy(TINY_PARAMS)
    params["train"]["batch_size"] = 0
    path = write_params(tmp_path / "params.yaml", params)
    cmd = [
        sys.executable, str(ROOT / "stages" / "train.py"), "--params", str(path), "--model", "conv2d",
        "--clean", str(clean_dir), "--out", "m.keras", "--metrics", "m.json", "--live", "live",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "error: train.batch_size must be >= 1, got 0"
    assert not (tmp_path / "m.keras").exists()
