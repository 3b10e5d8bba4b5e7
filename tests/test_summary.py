"""instrclf.summary and stages/summary.py: mean and sample std across folds, one file per model."""

import importlib.util
import json
import math
from pathlib import Path

import pytest
import yaml

from instrclf import summary
from instrclf.errors import DataError
from instrclf.io import write_json

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("values", "mean", "std"),
    [([1, 2, 3, 4], 2.5, 1.2909944487358056), ([0.9, 0.9], 0.9, 0.0), ([2, 4, 4, 4, 5, 5, 7, 9], 5.0, 2.138089935299395)],
)
def test_mean_std_on_known_numbers(values, mean, std):
    got = summary.mean_std(values)
    assert got == pytest.approx((mean, std), rel=1e-12)


def test_one_value_has_no_std_and_is_written_as_null(tmp_path):
    mean, std = summary.mean_std([0.75])
    assert mean == 0.75 and math.isnan(std)
    write_json(tmp_path / "m.json", {"x_mean": mean, "x_std": std})
    assert json.loads((tmp_path / "m.json").read_text()) == {"x_mean": 0.75, "x_std": None}


def test_mean_std_needs_a_value():
    with pytest.raises(DataError, match="at least one value"):
        summary.mean_std([])


def fold_figures(fold):
    """Per-fold predict figures with hand-chosen values."""
    return {
        "file_accuracy": [0.9, 0.8, 0.7][fold],
        "window_accuracy": [0.85, 0.75, 0.65][fold],
        "macro_f1": [0.5, 0.5, 0.5][fold],
        "roc_auc_macro": [0.99, 0.97, 0.98][fold],
        "unseen_file_accuracy": [0.6, 0.4, 0.5][fold],
        "unseen_macro_f1": [0.55, 0.45, 0.35][fold],
        "n_files": 120,
    }


RESULTS = {
    "folds": {str(f): fold_figures(f) for f in range(3)},
    "ensemble": {"unseen_file_accuracy": 0.66666, "unseen_macro_f1": 0.61234, "file_accuracy": 1.0},
}
TRAINING = {0: {"epochs_run": 10}, 1: {"epochs_run": 12}, 2: {"epochs_run": 11}}


def test_summarise_by_hand():
    got = summary.summarise(RESULTS, TRAINING, folds=[0, 1, 2])
    assert got == {
        "file_accuracy_mean": 0.8, "file_accuracy_std": 0.1,
        "window_accuracy_mean": 0.75, "window_accuracy_std": 0.1,
        "macro_f1_mean": 0.5, "macro_f1_std": 0.0,
        "roc_auc_macro_mean": 0.98, "roc_auc_macro_std": 0.01,
        "unseen_file_accuracy_mean": 0.5, "unseen_file_accuracy_std": 0.1,
        "unseen_macro_f1_mean": 0.45, "unseen_macro_f1_std": 0.1,
        "ensemble_unseen_file_accuracy": 0.6667, "ensemble_unseen_macro_f1": 0.6123,
        "folds": 3, "epochs_mean": 11.0,
    }


def test_summarise_uses_only_the_asked_folds():
    got = summary.summarise(RESULTS, TRAINING, folds=[1])
    assert got["file_accuracy_mean"] == 0.8 and math.isnan(got["file_accuracy_std"]) and got["folds"] == 1
    assert got["epochs_mean"] == 12.0


def test_summarise_without_unseen_library():
    results = {"folds": {"0": {k: v for k, v in fold_figures(0).items() if not k.startswith("unseen")}}}
    got = summary.summarise(results, TRAINING, folds=[0])
    assert not any(k.startswith(("unseen", "ensemble")) for k in got)
    assert got["file_accuracy_mean"] == 0.9


def _without(fold, key):
    folds = {str(f): fold_figures(f) for f in range(3)}
    del folds[str(fold)][key]
    return {"folds": folds}


@pytest.mark.parametrize(
    ("results", "training", "match"),
    [
        (_without(1, "unseen_file_accuracy"), TRAINING, r"^unseen_file_accuracy is missing for fold\(s\) \[1\] but present for \[0, 2\]"),
        ({"folds": {**RESULTS["folds"], "2": fold_figures(2) | {"macro_f1": "0.5"}}}, TRAINING, r"^macro_f1 of fold 2 is '0.5', not a number"),
        (RESULTS, {**TRAINING, 0: {"best_epoch": 10}}, r"^training figures of fold\(s\) \[0\] lack epochs_run"),
        (RESULTS, {**TRAINING, 1: {"epochs_run": True}}, r"^epochs_run of fold 1 is True, not a number"),
    ],
    ids=["metric-in-some-folds", "string-metric", "training-key-missing", "bool-epochs"],
)
def test_inconsistent_figures_are_one_line_data_errors(results, training, match):
    with pytest.raises(DataError, match=match):
        summary.summarise(results, training, folds=[0, 1, 2])


@pytest.mark.parametrize(
    ("results", "training", "missing"),
    [
        ({"folds": {"0": fold_figures(0), "1": fold_figures(1)}}, TRAINING, "'2'"),
        (RESULTS, {0: TRAINING[0], 2: TRAINING[2]}, "'1'"),
        ({}, TRAINING, "'0', '1', '2'"),
    ],
    ids=["no-predict-results", "no-training-results", "empty"],
)
def test_a_missing_fold_is_named(results, training, missing):
    with pytest.raises(DataError, match=rf"no results for fold\(s\) \[{missing}\]"):
        summary.summarise(results, training, folds=[0, 1, 2])


def test_summary_stage_writes_one_file_per_model(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("stage_summary", ROOT / "stages" / "summary.py")
    stage_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage_module)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["models"] = ["lstm", "baseline"]
    params["split"]["test_folds"] = [0, 1, 2]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    results = tmp_path / "results"
    for model in ("lstm", "baseline"):
        write_json(results / "predict" / f"{model}.json", RESULTS)
        for fold, figures in TRAINING.items():
            write_json(results / "train" / model / f"{fold}.json", figures)
    out = tmp_path / "metrics"
    out.mkdir()
    (out / "conv1d.json").write_text("{}")  # a model no longer in train.models disappears
    stage_module.main(["--params", str(tmp_path / "params.yaml"), "--results", str(results), "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["baseline.json", "lstm.json"]
    assert json.loads((out / "lstm.json").read_text()) == summary.summarise(RESULTS, TRAINING, folds=[0, 1, 2])
    assert capsys.readouterr().out == "summary: lstm=0.8, baseline=0.8\n"
    (results / "train" / "lstm" / "1.json").unlink()
    with pytest.raises(SystemExit):
        stage_module.main(["--params", str(tmp_path / "params.yaml"), "--results", str(results), "--out", str(out)])
    assert "1.json: not found" in capsys.readouterr().err


def test_a_figure_of_exactly_zero_is_a_figure_not_a_missing_one():
    """A fold that got every note wrong scores 0.0: it enters the mean, it is not "missing"."""
    results = {"folds": {str(f): fold_figures(f) for f in range(3)}}
    results["folds"]["1"] = results["folds"]["1"] | {"file_accuracy": 0.0, "unseen_macro_f1": 0}
    got = summary.summarise(results, TRAINING, folds=[0, 1, 2])
    assert got["file_accuracy_mean"] == pytest.approx((0.9 + 0.0 + 0.7) / 3, abs=1e-4)
    assert got["file_accuracy_std"] == pytest.approx(summary.mean_std([0.9, 0.0, 0.7])[1], abs=1e-4)
    assert got["unseen_macro_f1_mean"] == pytest.approx((0.55 + 0 + 0.35) / 3, abs=1e-4)
    results["folds"]["1"] = results["folds"]["1"] | {"file_accuracy": None}
    with pytest.raises(DataError, match=r"file_accuracy is missing for fold\(s\) \[1\] but present for \[0, 2\]"):
        summary.summarise(results, TRAINING, folds=[0, 1, 2])


# Mutation run (benchmarks/mutation.py): cases beside the tested ones that mutants survived.


def test_mean_std_says_it_needs_a_value():
    with pytest.raises(DataError) as info:
        summary.mean_std([])
    assert str(info.value) == "mean_std needs at least one value"


def test_a_figure_no_fold_has_does_not_hide_the_figures_after_it():
    results = {"folds": {str(f): {k: v for k, v in fold_figures(f).items() if k != "file_accuracy"} for f in range(3)}}
    got = summary.summarise(results, TRAINING, folds=[0, 1, 2])
    assert "file_accuracy_mean" not in got and got["window_accuracy_mean"] == 0.75 and got["macro_f1_mean"] == 0.5


def test_an_ensemble_figure_that_is_not_a_number_is_named():
    results = {**RESULTS, "ensemble": {"unseen_file_accuracy": "high"}}
    with pytest.raises(DataError) as info:
        summary.summarise(results, TRAINING, folds=[0, 1, 2])
    assert str(info.value) == "unseen_file_accuracy of fold ensemble is 'high', not a number: run dvc repro"


def test_the_ensembles_notes_alone_figure_is_copied_beside_the_set_one():
    """With library colouring the ensemble also reports each held-out note on its own (``unseen_alone_*``)."""
    results = {**RESULTS, "ensemble": {**RESULTS["ensemble"], "unseen_alone_file_accuracy": 0.61119,
                                       "unseen_alone_macro_f1": 0.5}}
    got = summary.summarise(results, TRAINING, folds=[0, 1, 2])
    assert got["ensemble_unseen_alone_file_accuracy"] == 0.6112 and got["ensemble_unseen_file_accuracy"] == 0.6667
    assert "ensemble_unseen_alone_macro_f1" not in got  # only the figures of the table
