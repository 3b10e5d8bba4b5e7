import json
from pathlib import Path

import pytest

from instrclf import report
from instrclf.errors import DataError

README = """# Project

Intro.

## Results
<!-- results:start -->
old table
<!-- results:end -->

## Layout
"""


def write_metrics(root, model, *, file_accuracy=0.9, roc_auc_macro=0.95, epochs=7):
    root = Path(root)
    (root / "train").mkdir(parents=True, exist_ok=True)
    evaluation = {
        "file_accuracy": file_accuracy, "window_accuracy": 0.81234, "macro_f1": 0.8, "roc_auc_macro": roc_auc_macro,
        "roc_auc_micro": 0.97, "n_files": 120, "n_windows": 300,
    }
    (root / f"{model}.json").write_text(json.dumps(evaluation), encoding="utf-8")
    training = {"epochs_run": epochs, "train_seconds": 123.456, "samples_per_second": 195.04, "best_epoch": 5}
    (root / "train" / f"{model}.json").write_text(json.dumps(training), encoding="utf-8")


@pytest.fixture
def project(tmp_path):
    write_metrics(tmp_path / "metrics", "conv1d")
    write_metrics(tmp_path / "metrics", "baseline", file_accuracy=0.5, roc_auc_macro=None, epochs=3)
    (tmp_path / "metrics" / "clean.json").write_text('{"n_windows": 10}', encoding="utf-8")
    (tmp_path / "README.md").write_text(README, encoding="utf-8")
    return tmp_path


def test_table_has_one_row_per_model_with_formatted_numbers(project):
    rows = report.load_rows(project / "metrics", models=report.find_models(project / "metrics"))
    lines = report.table(rows).splitlines()
    assert lines[0] == (
        "| model | file accuracy | window accuracy | macro F1 | ROC AUC macro | ROC AUC micro "
        "| epochs | training s | samples/s |"
    )
    assert lines[2:] == [
        "| baseline | 0.500 | 0.812 | 0.800 | n/a | 0.970 | 3 | 123 | 195 |",
        "| conv1d | 0.900 | 0.812 | 0.800 | 0.950 | 0.970 | 7 | 123 | 195 |",
    ]


def test_params_order_the_rows(project):
    assert report.find_models(project / "metrics", order=["conv1d", "lstm", "baseline"]) == ["conv1d", "baseline"]
    assert report.find_models(project / "metrics") == ["baseline", "conv1d"]


def test_rewrite_then_check(project, capsys):
    args = ["--metrics", str(project / "metrics"), "--readme", str(project / "README.md")]
    with pytest.raises(SystemExit) as exit_:
        report.main([*args, "--check"])
    assert exit_.value.code == 1 and "out of date" in capsys.readouterr().err
    report.main(args)
    text = (project / "README.md").read_text(encoding="utf-8")
    assert text.startswith("# Project\n\nIntro.\n\n## Results\n<!-- results:start -->\n\n| model |")
    assert text.endswith("|\n\n<!-- results:end -->\n\n## Layout\n") and "old table" not in text
    report.main([*args, "--check"])  # up to date now: returns normally
    report.main(args)
    assert (project / "README.md").read_text(encoding="utf-8") == text  # idempotent
    write_metrics(project / "metrics", "conv1d", file_accuracy=0.91)
    with pytest.raises(SystemExit):
        report.main([*args, "--check"])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("# no markers\n", "results:start"),
        ("<!-- results:start -->\n", "results:end"),
        ("<!-- results:end -->\n<!-- results:start -->\n", "must come after"),
        ("<!-- results:start -->\n<!-- results:start -->\n<!-- results:end -->\n", "exactly once, found 2"),
    ],
)
def test_bad_markers_name_the_readme(project, capsys, text, match):
    (project / "README.md").write_text(text, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        report.main(["--metrics", str(project / "metrics"), "--readme", str(project / "README.md")])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "README.md" in err and match in err
    assert (project / "README.md").read_text(encoding="utf-8") == text  # untouched


def test_missing_or_bad_metrics_name_the_file(project):
    (project / "metrics" / "conv1d.json").unlink()
    with pytest.raises(DataError, match=r"metrics file not found: .*conv1d\.json"):
        report.render(metrics_dir=project / "metrics", readme=project / "README.md")
    write_metrics(project / "metrics", "conv1d", file_accuracy="high")
    with pytest.raises(DataError, match=r"conv1d\.json: file_accuracy must be a finite number, got 'high'"):
        report.render(metrics_dir=project / "metrics", readme=project / "README.md")
    with pytest.raises(DataError, match="no training metrics"):
        report.find_models(project / "nothing")


def test_readme_keeps_its_permissions(project):
    (project / "README.md").chmod(0o644)
    report.main(["--metrics", str(project / "metrics"), "--readme", str(project / "README.md")])
    assert (project / "README.md").stat().st_mode & 0o777 == 0o644


def test_committed_readme_shows_the_committed_metrics():
    """The README's results table is generated from metrics/*.json: regenerate it when they change."""
    root = Path(__file__).resolve().parents[1]
    argv = ["--metrics", str(root / "metrics"), "--readme", str(root / "README.md"), "--params", str(root / "params.yaml")]
    report.main([*argv, "--check"])
