"""instrclf.stage: the one-line summary and the exit style shared by every stage script."""

import pytest

from instrclf import stage
from instrclf.errors import DataError, InstrclfError, ParameterError


def test_summary_formats_floats_to_four_significant_digits():
    line = stage.summary("train@conv1d-0", {"accuracy": 0.912345, "epochs": 12, "model": "conv1d", "auc": float("nan")})
    assert line == "train@conv1d-0: accuracy=0.9123, epochs=12, model=conv1d, auc=nan"
    assert stage.summary("clean", {}) == "clean: "


def test_run_prints_the_summary(capsys):
    stage.run("summary", lambda: {"conv1d": 0.97531, "baseline": 0.5})
    out, err = capsys.readouterr()
    assert out == "summary: conv1d=0.9753, baseline=0.5\n" and err == ""


def test_run_accepts_no_figures(capsys):
    stage.run("plot", lambda: None)
    assert capsys.readouterr().out == "plot: \n"


@pytest.mark.parametrize("error", [DataError("data/clean/index.csv: no rows"), ParameterError("train.epochs = 0: bad"), InstrclfError("x")])
def test_project_errors_become_one_line_and_status_1(capsys, error):
    def work():
        raise error

    with pytest.raises(SystemExit) as exit_:
        stage.run("clean", work)
    out, err = capsys.readouterr()
    assert exit_.value.code == 1
    assert out == "" and err == f"error: clean: {error}\n"
    assert "Traceback" not in err


def test_other_errors_are_not_hidden():
    def work():
        raise KeyError("a bug")

    with pytest.raises(KeyError, match="a bug"):  # a bug keeps its traceback
        stage.run("clean", work)
