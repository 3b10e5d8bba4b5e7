"""instrclf.compare: the per-model cross-validation table from the workspace, git revisions and experiments."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from instrclf import compare
from instrclf.errors import DataError

CONV1D = {
    "file_accuracy_mean": 0.95, "file_accuracy_std": 0.0123,
    "window_accuracy_mean": 0.9, "window_accuracy_std": 0.02,
    "macro_f1_mean": 0.94, "macro_f1_std": 0.01,
    "roc_auc_macro_mean": 0.999, "roc_auc_macro_std": 0.001,
    "unseen_file_accuracy_mean": 0.61, "unseen_file_accuracy_std": 0.05,
    "unseen_macro_f1_mean": 0.58, "unseen_macro_f1_std": 0.04,
    "ensemble_unseen_file_accuracy": 0.65, "ensemble_unseen_macro_f1": 0.6,
    "ensemble_unseen_alone_file_accuracy": 0.62,
    "folds": 5, "epochs_mean": 12.0,
}
# one fold: std null; no unseen library: no unseen keys
BASELINE = {"file_accuracy_mean": 0.5, "file_accuracy_std": None, "window_accuracy_mean": 0.45, "folds": 1}

TEXT = """\
model         file acc.    window acc.       macro F1        ROC AUC  unseen file acc.  unseen macro F1  ensemble unseen acc.  ensemble, notes alone
--------  -------------  -------------  -------------  -------------  ----------------  ---------------  --------------------  ---------------------
conv1d    0.950 ± 0.012  0.900 ± 0.020  0.940 ± 0.010  0.999 ± 0.001     0.610 ± 0.050    0.580 ± 0.040                 0.650                  0.620
baseline          0.500          0.450            n/a            n/a               n/a              n/a                   n/a                    n/a"""

MARKDOWN = """\
| model | file acc. | window acc. | macro F1 | ROC AUC | unseen file acc. | unseen macro F1 | ensemble unseen acc. | ensemble, notes alone |
|:--|--:|--:|--:|--:|--:|--:|--:|--:|
| conv1d | 0.950 ± 0.012 | 0.900 ± 0.020 | 0.940 ± 0.010 | 0.999 ± 0.001 | 0.610 ± 0.050 | 0.580 ± 0.040 | 0.650 | 0.620 |
| baseline | 0.500 | 0.450 | n/a | n/a | n/a | n/a | n/a | n/a |"""


def write_metrics(folder, **models):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for model, values in models.items():
        (folder / f"{model}.json").write_text(json.dumps(values), encoding="utf-8")
    return folder


def run(capsys, *argv):
    code = compare.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def workspace(tmp_path):
    # baseline written first and an unrelated file beside them: the rows follow the model registry
    metrics = write_metrics(tmp_path / "metrics", baseline=BASELINE, conv1d=CONV1D)
    (metrics / "clean.json").write_text('{"n_windows": 3}')
    return metrics


@pytest.mark.parametrize(("fmt", "expected"), [("text", TEXT), ("markdown", MARKDOWN)])
def test_workspace_table(capsys, workspace, fmt, expected):
    code, out, err = run(capsys, "--metrics", workspace, "--format", fmt)
    assert (code, err) == (0, "")
    assert out == expected + "\n"


def test_workspace_json(capsys, workspace):
    code, out, _ = run(capsys, "--metrics", workspace, "--format", "json")
    assert code == 0
    assert json.loads(out) == [
        {"source": "workspace", "model": "conv1d", **CONV1D},
        {"source": "workspace", "model": "baseline", **BASELINE},
    ]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{", r"baseline\.json: not valid JSON"),
        ("[0.5]", r"baseline\.json: expected a JSON object, got list"),
        ('{"file_accuracy_mean": "high"}', r"baseline\.json: file_accuracy_mean must be a finite number or null, got 'high'"),
        ('{"file_accuracy_mean": NaN}', r"baseline\.json: file_accuracy_mean must be a finite number or null, got nan"),
        ('{"file_accuracy_mean": true}', r"got True"),
    ],
)
def test_bad_metrics_file_is_named(capsys, workspace, content, match):
    (workspace / "baseline.json").write_text(content)
    code, out, err = run(capsys, "--metrics", workspace)
    assert code == 1 and out == ""
    assert err.startswith(f"error: {workspace}") and err.count("\n") == 1
    with pytest.raises(DataError, match=match):
        compare.read_workspace(workspace)


def test_no_metrics(capsys, tmp_path):
    code, _, err = run(capsys, "--metrics", tmp_path / "none")
    assert code == 1 and err == f"error: metrics folder not found: {tmp_path / 'none'} (run dvc repro summary)\n"
    write_metrics(tmp_path / "m", clean={"n": 1})
    code, _, err = run(capsys, "--metrics", tmp_path / "m")
    assert code == 1 and "no <model>.json for any of ['conv1d', 'conv2d', 'lstm', 'baseline']" in err


# --------------------------------------------------------------------------- git revisions


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository with two commits of metrics/, the second better than the first."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    write_metrics(repo / "metrics", conv1d={**CONV1D, "file_accuracy_mean": 0.9})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    write_metrics(repo / "metrics", conv1d=CONV1D, lstm={"file_accuracy_mean": 0.8, "file_accuracy_std": 0.1})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "second")
    write_metrics(repo / "metrics", conv1d={"file_accuracy_mean": 0.1})  # uncommitted: never shown by --rev
    monkeypatch.chdir(repo)
    return repo


def test_revisions(capsys, repo):
    code, out, err = run(capsys, "--rev", "HEAD~1", "--rev", "main", "--format", "json")
    assert (code, err) == (0, "")
    rows = json.loads(out)
    assert [(r["source"], r["model"], r["file_accuracy_mean"]) for r in rows] == [
        ("HEAD~1", "conv1d", 0.9), ("main", "conv1d", 0.95), ("main", "lstm", 0.8),
    ]
    code, out, _ = run(capsys, "--rev", "HEAD~1", "--rev", "main")
    assert out.splitlines()[0].split()[:3] == ["source", "model", "file"]
    assert out.splitlines()[2].startswith("HEAD~1  conv1d  0.900 ± 0.012")


def test_revision_from_a_subfolder(capsys, repo, monkeypatch):
    (repo / "sub").mkdir()
    monkeypatch.chdir(repo / "sub")
    assert compare.read_revision("HEAD", metrics_dir="../metrics")["conv1d"] == CONV1D


def test_revision_errors_name_the_revision(capsys, repo):
    code, _, err = run(capsys, "--rev", "nope")
    assert code == 1 and err.startswith("error: revision 'nope': not a commit") and err.count("\n") == 1
    (repo / "metrics" / "conv1d.json").unlink()
    git(repo, "rm", "-q", "-r", "metrics")
    git(repo, "commit", "-q", "-m", "no metrics")
    code, _, err = run(capsys, "--rev", "HEAD")
    assert code == 1 and err == "error: revision 'HEAD' has no metrics/<model>.json for any of ['conv1d', 'conv2d', 'lstm', 'baseline']\n"
    write_metrics(repo / "metrics", lstm={"x": 1}).joinpath("lstm.json").write_text("{oops")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "broken")
    code, _, err = run(capsys, "--rev", "HEAD")
    assert code == 1 and err.startswith("error: HEAD:metrics/lstm.json: not valid JSON")


def test_revision_outside_a_repository(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    code, _, err = run(capsys, "--rev", "HEAD")
    assert code == 1 and err.startswith("error: revision 'HEAD': not a commit")


# --------------------------------------------------------------------------- experiments


def exp_entry(rev, name, *, library, metrics, error=None, experiments=None):
    """One entry of ``dvc exp show --json`` as DVC 3.67 writes it (null values are left out)."""
    return {
        "rev": rev,
        "name": name,
        "data": {
            "rev": rev,
            "timestamp": "2025-01-01T00:00:00",
            "params": {"params.yaml": {"data": {"seed": 42, "split": {"unseen_library": library, "test_folds": [0, 1]}}}},
            "metrics": {
                f"metrics/{m}.json": {"data": {k: v for k, v in values.items() if v is not None}} for m, values in metrics.items()
            },
            "deps": {"stages/summary.py": {"hash": "0" * 32, "size": 1, "nfiles": None}},
            "outs": {},
            "meta": {},
        },
        "error": error,
        "experiments": experiments,
    }


def scores(conv1d, baseline):
    return {"conv1d": {**CONV1D, "unseen_file_accuracy_mean": conv1d}, "baseline": {**BASELINE, "unseen_file_accuracy_mean": baseline}}


def exp_show():
    """Workspace, a baseline commit with three experiments: two done and one that failed."""
    done = [
        exp_entry("b" * 40, "fluid", library="FluidR3_GM", metrics=scores(0.7, 0.3)),
        exp_entry("c" * 40, "tim", library=["TimGM6mb", "sf_GMbank"], metrics=scores(0.8, None)),  # a family
    ]
    failed = exp_entry("d" * 40, "broken", library="X", metrics={}, error={"msg": "failed to reproduce 'train'", "type": "ReproductionError"})
    failed["data"] = {}
    return [
        exp_entry("workspace", None, library="TimGM6mb", metrics=scores(0.1, 0.1)),
        exp_entry(
            "a" * 40, "main", library="sf_GMbank", metrics=scores(0.6, 0.5),
            experiments=[{"revs": [e], "executor": None, "name": e["name"]} for e in [*done, failed]],
        ),
    ]


@pytest.fixture
def exps_json(tmp_path):
    path = tmp_path / "exps.json"
    path.write_text(json.dumps(exp_show()))
    return path


def test_experiments_table(capsys, exps_json):
    code, out, err = run(capsys, "--exps-json", exps_json, "--format", "json")
    assert code == 0
    assert err == "warning: skipping experiment broken (ddddddd): failed to reproduce 'train'\n"
    rows = json.loads(out)
    assert [(r["source"], r["model"], r.get("unseen_file_accuracy_mean")) for r in rows] == [
        ("main", "conv1d", 0.6), ("main", "baseline", 0.5), ("fluid", "conv1d", 0.7), ("fluid", "baseline", 0.3),
        ("tim", "conv1d", 0.8), ("tim", "baseline", None),
    ]  # the workspace is --metrics' business, the failed experiment is skipped with a warning
    assert "unseen_file_accuracy_mean" not in rows[-1] and "file_accuracy_std" not in rows[-1]  # DVC drops nulls
    code, out, _ = run(capsys, "--exps-json", exps_json, "--format", "markdown")
    assert "| tim | baseline | 0.500 | 0.450 | n/a |" in out


def test_experiments_as_text_fit_one_screen_with_every_model(capsys, tmp_path):
    """Many experiments, every model, every figure: the text table stays within 100 columns."""
    full = {**CONV1D}
    entries = [exp_entry(f"{i:040x}", f"exp-with-a-long-name-{i}", library="FluidR3_GM", metrics={m: full for m in ("conv1d", "conv2d", "lstm", "baseline")}) for i in range(1, 4)]
    data = [exp_entry("a" * 40, "main", library="FluidR3_GM", metrics={"conv1d": full}, experiments=[{"revs": [e], "executor": None, "name": e["name"]} for e in entries])]
    path = tmp_path / "many.json"
    path.write_text(json.dumps(data))
    code, out, _ = run(capsys, "--exps-json", path)
    assert code == 0
    lines = out.splitlines()
    assert max(map(len, lines)) <= 100, max(lines, key=len)
    assert lines[0].split() == ["source", "model", "file", "acc.", "unseen", "file", "acc.", "ensemble", "unseen", "acc."]
    assert "exp-with-a-long-name-3  baseline  0.950 ± 0.012     0.610 ± 0.050                 0.650" in lines
    _, markdown, _ = run(capsys, "--exps-json", path, "--format", "markdown")
    assert "| macro F1 |" in markdown.splitlines()[0]  # Markdown keeps every figure


BY_TEXT = """\
split.unseen_library  conv1d  baseline
--------------------  ------  --------
FluidR3_GM             0.700     0.300
TimGM6mb+sf_GMbank     0.800       n/a
sf_GMbank              0.600     0.500
mean                   0.700       n/a
worst                  0.600       n/a"""


def test_experiments_by_param(capsys, exps_json):
    code, out, _ = run(capsys, "--exps-json", exps_json, "--by", "split.unseen_library")
    assert code == 0 and out == BY_TEXT + "\n"
    code, out, _ = run(capsys, "--exps-json", exps_json, "--by", "split.unseen_library", "--format", "json")
    assert json.loads(out) == {
        "by": "split.unseen_library",
        "models": ["conv1d", "baseline"],
        "rows": {
            "FluidR3_GM": {"conv1d": 0.7, "baseline": 0.3},
            "TimGM6mb+sf_GMbank": {"conv1d": 0.8, "baseline": None},
            "sf_GMbank": {"conv1d": 0.6, "baseline": 0.5},
        },
        "mean": {"conv1d": 0.7, "baseline": None},
        "worst": {"conv1d": 0.6, "baseline": None},
    }
    code, out, _ = run(capsys, "--exps-json", exps_json, "--by", "split.unseen_library", "--format", "markdown")
    assert out.splitlines()[:2] == ["| split.unseen_library | conv1d | baseline |", "|:--|--:|--:|"]
    assert out.splitlines()[-2:] == ["| mean | 0.700 | n/a |", "| worst | 0.600 | n/a |"]


def test_by_lets_a_sweep_experiment_replace_its_baseline_commit(capsys, tmp_path):
    """A one-fold sweep holding out the committed run's library: its figure, not the five-fold commit's, and no conflict."""
    data = exp_show()
    data[1]["data"]["params"]["params.yaml"]["data"]["split"]["unseen_library"] = "FluidR3_GM"  # main = the 'fluid' value
    path = tmp_path / "e.json"
    path.write_text(json.dumps(data))
    code, out, _ = run(capsys, "--exps-json", path, "--by", "split.unseen_library", "--format", "json")
    assert code == 0
    assert json.loads(out)["rows"] == {"FluidR3_GM": {"conv1d": 0.7, "baseline": 0.3},
                                       "TimGM6mb+sf_GMbank": {"conv1d": 0.8, "baseline": None}}
    # A baseline whose value no experiment has keeps its row (the test above: sf_GMbank comes from main).


def test_by_refuses_conflicting_and_missing(capsys, tmp_path):
    data = exp_show()
    twin = copy.deepcopy(data[1]["experiments"][0]["revs"][0])
    twin["name"] = "fluid2"
    twin["data"]["metrics"]["metrics/conv1d.json"]["data"]["unseen_file_accuracy_mean"] = 0.71
    data[1]["experiments"].append({"revs": [twin], "executor": None, "name": "fluid2"})
    path = tmp_path / "e.json"
    path.write_text(json.dumps(data))
    code, _, err = run(capsys, "--exps-json", path, "--by", "split.unseen_library")
    assert code == 1 and "error: experiments fluid and fluid2 both have split.unseen_library=FluidR3_GM but different metrics" in err
    code, _, err = run(capsys, "--exps-json", path, "--by", "train.epochs")
    assert code == 1 and "error: experiment fluid: no param 'train.epochs'" in err  # the sweep's experiments are read first


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("{", r"e\.json: not valid JSON"),
        ('{"rev": "workspace"}', r"e\.json: expected a JSON array, got dict"),
        ("[1]", r"e\.json: not dvc exp show --json output"),
        ('[{"rev": "workspace"}]', r"e\.json: no experiment has metrics/<model>\.json"),
    ],
)
def test_bad_exp_show_json(capsys, tmp_path, data, match):
    (tmp_path / "e.json").write_text(data)
    code, _, err = run(capsys, "--exps-json", tmp_path / "e.json")
    assert code == 1
    with pytest.raises(DataError, match=match):
        compare.compare(compare.parse_args(["--exps-json", str(tmp_path / "e.json")]))


def test_a_broken_metrics_file_in_an_experiment_is_named(capsys, tmp_path):
    data = exp_show()
    data[1]["data"]["metrics"]["metrics/conv1d.json"] = {"error": {"msg": "Expecting value: line 1", "type": "JSONDecodeError"}}
    (tmp_path / "e.json").write_text(json.dumps(data))
    code, _, err = run(capsys, "--exps-json", tmp_path / "e.json")
    assert code == 1 and err == f"error: {tmp_path / 'e.json'}: experiment main: metrics/conv1d.json: Expecting value: line 1\n"


def test_exps_runs_dvc(monkeypatch, capsys):
    calls = []

    def fake_run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout=json.dumps(exp_show()), stderr="")

    monkeypatch.setattr(compare.subprocess, "run", fake_run)
    code, out, _ = run(capsys, "--exps", "--by", "split.unseen_library")
    assert code == 0 and calls == [["dvc", "exp", "show", "--json"]] and out == BY_TEXT + "\n"


# --------------------------------------------------------------------------- README and command line

README = "# Project\n\n## Results\n<!-- results:start -->\nold table\n<!-- results:end -->\n\n## Layout\n"


def test_readme_block_is_replaced(capsys, workspace, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    readme.chmod(0o644)
    args = ("--metrics", workspace, "--readme", readme)
    assert run(capsys, *args, "--check")[:2] == (1, "")
    code, out, _ = run(capsys, *args)
    assert code == 0 and out == f"compare: {readme} updated\n"
    assert readme.read_text() == README.replace("old table", f"\n{MARKDOWN}\n")
    assert readme.stat().st_mode & 0o777 == 0o644 and sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "metrics"]
    assert run(capsys, *args, "--check")[:2] == (0, f"compare: {readme} up to date\n")
    assert run(capsys, *args)[1] == f"compare: {readme} up to date\n"


@pytest.mark.parametrize("mode", [0o600, 0o664, 0o755])
def test_readme_rewrite_keeps_the_files_permissions(capsys, workspace, tmp_path, mode):
    """Whatever the umask would give a new file, the README keeps its own mode (private, group-writable, executable)."""
    readme = tmp_path / "README.md"
    readme.write_text(README)
    readme.chmod(mode)
    umask = os.umask(0o022)
    try:
        code, out, _ = run(capsys, "--metrics", workspace, "--readme", readme)
    finally:
        os.umask(umask)
    assert code == 0 and out == f"compare: {readme} updated\n"
    assert MARKDOWN in readme.read_text()
    assert readme.stat().st_mode & 0o777 == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "metrics"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("# no markers\n", "must contain the marker '<!-- results:start -->' exactly once, found 0"),
        ("<!-- results:start -->\n", "'<!-- results:end -->' exactly once, found 0"),
        ("<!-- results:end -->\n<!-- results:start -->\n", "must come after"),
        ("<!-- results:start -->\n" * 2 + "<!-- results:end -->\n", "exactly once, found 2"),
    ],
)
def test_readme_without_markers_is_named(capsys, workspace, tmp_path, text, match):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    code, out, err = run(capsys, "--metrics", workspace, "--readme", readme)
    assert code == 1 and out == "" and err.startswith(f"error: {readme}") and match in err
    assert readme.read_text() == text


def test_missing_readme(capsys, workspace, tmp_path):
    code, _, err = run(capsys, "--metrics", workspace, "--readme", tmp_path / "NOPE.md")
    assert code == 1 and err == f"error: README not readable: {tmp_path / 'NOPE.md'} (FileNotFoundError)\n"


@pytest.mark.parametrize(
    "argv",
    [["--by", "split.unseen_library"], ["--check"], ["--rev", "HEAD", "--exps"], ["--format", "csv"]],
)
def test_bad_command_lines(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        compare.main(argv)
    assert exit_.value.code == 2 and "usage: instrclf compare" in capsys.readouterr().err


def test_module_runs_as_a_script(workspace):
    done = subprocess.run(
        [sys.executable, "-m", "instrclf.compare", "--metrics", str(workspace), "--format", "markdown"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0 and done.stdout == MARKDOWN + "\n"


# --------------------------------------------------------------------------- like a Unix tool (issue 25, item 5)

from test_stage import modes_bind, without_root_bypass  # noqa: E402, F401  (modes_bind: a fixture)

ROOT = Path(__file__).resolve().parents[1]


def instrclf_compare(*args, **kwargs):
    """The real ``instrclf compare`` in a subprocess."""
    command = [sys.executable, "-m", "instrclf.cli", "compare", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, text=True, timeout=60, check=False, **kwargs)


def test_a_reader_gone_ends_compare_quietly_with_141(workspace):
    """``instrclf compare | head -3`` once head has gone: no BrokenPipeError traceback, status 141."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = instrclf_compare("--metrics", workspace, stdout=write, stderr=subprocess.PIPE)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")


@pytest.mark.parametrize("read_only", ["file", "folder"])
def test_a_read_only_readme_is_one_line_naming_it(workspace, tmp_path, modes_bind, read_only):
    folder = tmp_path / "docs"
    folder.mkdir()
    readme = folder / "README.md"
    readme.write_text(README)
    (readme if read_only == "file" else folder).chmod(0o444 if read_only == "file" else 0o555)
    command = [sys.executable, "-m", "instrclf.cli", "compare", "--metrics", workspace, "--readme", readme]
    try:
        done = subprocess.run(without_root_bypass(command), cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    finally:
        folder.chmod(0o755)
    assert done.returncode == 1 and done.stdout == ""
    expected = {
        "file": f"error: {readme}: permission denied (the file is read-only)",
        "folder": f"error: {readme}: cannot be rewritten: its folder {folder} is not writable (Permission denied)",
    }
    assert done.stderr.splitlines() == [expected[read_only]]
    assert readme.read_text() == README and [p.name for p in folder.iterdir()] == ["README.md"]


def test_a_readme_under_a_file_is_one_line_naming_it(workspace, tmp_path):
    """A path through a file fails for root too (ENOTDIR)."""
    (tmp_path / "docs").write_text("a file, not a folder")
    done = instrclf_compare("--metrics", workspace, "--readme", tmp_path / "docs" / "README.md", capture_output=True)
    assert done.returncode == 1
    assert done.stderr == f"error: README not readable: {tmp_path / 'docs' / 'README.md'} (NotADirectoryError)\n"


def test_a_spread_of_exactly_zero_is_shown_not_dropped(capsys, tmp_path):
    """Folds that agree exactly (std 0.0) read '± 0.000'; only a null std (one fold) shows the mean alone."""
    metrics = write_metrics(tmp_path / "metrics", conv1d={**CONV1D, "file_accuracy_std": 0.0}, baseline=BASELINE)
    code, out, _ = run(capsys, "--metrics", metrics, "--format", "markdown")
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in out.splitlines()[2:]}
    assert code == 0 and rows["conv1d"][1] == "0.950 ± 0.000" and rows["baseline"][1] == "0.500"


def test_a_failed_experiment_is_skipped_even_with_metrics_files(capsys, tmp_path):
    """DVC may list a failed experiment with the metrics files of the commit it started from: not its results."""
    data = exp_show()
    broken = next(rev for group in data[1]["experiments"] for rev in group["revs"] if rev["name"] == "broken")
    broken["data"] = exp_entry("d" * 40, "broken", library="X", metrics=scores(0.9, 0.9))["data"]
    path = tmp_path / "e.json"
    path.write_text(json.dumps(data))
    code, out, err = run(capsys, "--exps-json", path, "--format", "json")
    assert code == 0 and "broken" not in {row["source"] for row in json.loads(out)}
    assert err == "warning: skipping experiment broken (ddddddd): failed to reproduce 'train'\n"


def test_an_up_to_date_readme_is_not_rewritten(capsys, workspace, tmp_path):
    """Nothing to change: the file is left as it is (same inode and time), even when it is read-only."""
    readme = tmp_path / "README.md"
    readme.write_text(README)
    args = ("--metrics", workspace, "--readme", readme)
    assert run(capsys, *args)[:2] == (0, f"compare: {readme} updated\n")
    readme.chmod(0o444)
    before = readme.stat()
    assert run(capsys, *args) == (0, f"compare: {readme} up to date\n", "")
    after = readme.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_mode) == (before.st_ino, before.st_mtime_ns, before.st_mode)


# --------------------------------------------------------------------------- what mutation testing asked for


HELP = """\
usage: instrclf compare [-h] [--metrics METRICS] [--rev REV | --exps | --exps-json FILE] [--by PARAM]
[--format {text,markdown,json}] [--readme FILE] [--check]
``instrclf compare``: the models' cross-validation summaries side by side.
options:
-h, --help show this help message and exit
--metrics METRICS the summary stage's metrics folder (default: metrics)
--rev REV a git revision (repeatable)
--exps every experiment of dvc exp show --json
--exps-json FILE saved output of dvc exp show --json
--by PARAM with --exps: matrix of this param's value x model (unseen accuracy)
--format {text,markdown,json} output format (default: text)
--readme FILE replace this README's results block with the Markdown table
--check with --readme: change nothing, exit 1 if out of date"""


def test_help_documents_every_option(capsys):
    """``instrclf compare --help``, whitespace aside (it wraps at the terminal's width)."""
    with pytest.raises(SystemExit) as exit_:
        compare.main(["--help"])
    assert exit_.value.code == 0
    assert " ".join(capsys.readouterr().out.split()) == " ".join(HELP.split())


@pytest.mark.parametrize(("argv", "message"), [
    (["--by", "split.unseen_library"], "--by needs --exps or --exps-json"),
    (["--rev", "HEAD", "--by", "x"], "--by needs --exps or --exps-json"),
    (["--check"], "--check needs --readme"),
])
def test_a_bad_command_line_says_what_is_missing(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        compare.main(argv)
    assert exit_.value.code == 2 and capsys.readouterr().err.splitlines()[-1] == f"instrclf compare: error: {message}"


def test_an_out_of_date_readme_under_check_says_how_to_update_it(capsys, workspace, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    assert run(capsys, "--metrics", workspace, "--readme", readme, "--check") == (
        1, "", f"error: {readme}'s results table is out of date; run instrclf compare --readme {readme}\n")
    assert readme.read_text() == README


def test_json_output_is_indented_by_two(capsys, workspace):
    code, out, _ = run(capsys, "--metrics", workspace, "--format", "json")
    assert code == 0 and out == json.dumps(json.loads(out), indent=2) + "\n"


def test_update_readme_and_replace_section_by_default(tmp_path):
    """Called as functions: update_readme rewrites (check is opt-in), replace_section names 'README'."""
    readme = tmp_path / "R.md"
    readme.write_text(README)
    assert compare.update_readme(readme, "new table") is True
    assert readme.read_text() == README.replace("old table", "\nnew table\n")
    with pytest.raises(DataError, match=r"^README must contain the marker '<!-- results:start -->' exactly once, found 0$"):
        compare.replace_section("no markers", "x")


def test_a_readme_not_writable_is_one_line_naming_it_in_process(workspace, tmp_path, monkeypatch, capsys):
    """The messages of test_a_read_only_readme_is_one_line_naming_it, in this process (root ignores modes: simulated)."""
    readme = tmp_path / "README.md"
    readme.write_text(README)
    monkeypatch.setattr(compare.os, "access", lambda path, mode: False)
    assert run(capsys, "--metrics", workspace, "--readme", readme) == (
        1, "", f"error: {readme}: permission denied (the file is read-only)\n")
    monkeypatch.undo()

    def not_writable(path):
        raise PermissionError(13, "Permission denied", str(path) + ".tmp")

    monkeypatch.setattr(compare, "atomic_file", not_writable)
    assert run(capsys, "--metrics", workspace, "--readme", readme) == (
        1, "", f"error: {readme}: cannot be rewritten: its folder {tmp_path} is not writable (Permission denied)\n")
    assert readme.read_text() == README


def test_a_one_column_text_table_has_no_trailing_spaces():
    assert compare.render(["model"], [["a"], ["conv1d"]], fmt="text").splitlines() == ["model", "------", "a", "conv1d"]


# git revisions


def test_a_revision_read_from_outside_the_repository_with_the_default_folder(repo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert compare.read_revision("HEAD", cwd=repo) == {"conv1d": CONV1D, "lstm": {"file_accuracy_mean": 0.8,
                                                                                   "file_accuracy_std": 0.1}}


def test_a_revision_with_a_metrics_folder_named_like_an_option_with_a_space(capsys, repo):
    write_metrics(repo / "-my metrics", baseline=BASELINE)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "odd folder")
    code, out, err = run(capsys, "--metrics", "-my metrics", "--rev", "HEAD", "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out) == [{"source": "HEAD", "model": "baseline", **BASELINE}]


def test_a_bad_value_in_a_committed_metrics_file_names_revision_and_file(capsys, repo):
    write_metrics(repo / "metrics", lstm={"file_accuracy_mean": "high"})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bad value")
    code, _, err = run(capsys, "--rev", "HEAD")
    assert code == 1 and err == "error: HEAD:metrics/lstm.json: file_accuracy_mean must be a finite number or null, got 'high'\n"
    write_metrics(repo / "metrics", lstm=[0.5])
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a list")
    with pytest.raises(DataError, match=r"^HEAD:metrics/lstm\.json: expected a JSON object, got list$"):
        compare.read_revision("HEAD")


def test_git_errors_are_one_line_with_what_git_said(capsys, repo, tmp_path, monkeypatch):
    code, _, err = run(capsys, "--rev", "nope")
    assert (code, err) == (1, f"error: revision 'nope': not a commit of the repository at {repo} "
                              "(git rev-parse --verify --quiet nope^{commit} failed)\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.chdir(outside)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    code, _, err = run(capsys, "--rev", "HEAD")
    assert code == 1 and err.startswith(f"error: revision 'HEAD': not a commit of the repository at {outside} "
                                        "(fatal: not a git repository (or any of the parent directories): .git)")


def test_without_git_or_dvc_installed_the_option_that_needs_it_is_named(capsys, repo, tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, _, err = run(capsys, "--rev", "HEAD")
    assert code == 1 and err.endswith(" (git is not installed: --rev needs it)\n")
    assert run(capsys, "--exps") == (1, "", "error: dvc is not installed: --exps needs it\n")


# experiments


@pytest.fixture
def fake_dvc(tmp_path, monkeypatch):
    """A ``dvc`` on PATH whose ``exp show --json`` prints ./exps.json of the folder it runs in, or fails."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    script = bin_ / "dvc"
    script.write_text('#!/bin/sh\n[ -f exps.json ] || { echo "ERROR: you are not inside\n  of a DVC repository" >&2; '
                      'exit 255; }\ncat exps.json\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return project


def test_exps_runs_dvc_here_and_warns_of_what_it_skips(capsys, fake_dvc):
    (fake_dvc / "exps.json").write_text(json.dumps(exp_show()))
    code, out, err = run(capsys, "--exps", "--format", "json")
    assert code == 0 and err == "warning: skipping experiment broken (ddddddd): failed to reproduce 'train'\n"
    assert [row["source"] for row in json.loads(out)] == ["main", "main", "fluid", "fluid", "tim", "tim"]


def test_exps_failing_or_without_results_is_one_line(capsys, fake_dvc):
    assert run(capsys, "--exps") == (
        1, "", "error: dvc exp show --json failed: ERROR: you are not inside of a DVC repository\n")
    (fake_dvc / "exps.json").write_text("[]")
    assert run(capsys, "--exps") == (
        1, "", "error: dvc exp show --json: no experiment has metrics/<model>.json (run dvc exp run)\n")
    (fake_dvc / "exps.json").write_text("{}")
    assert run(capsys, "--exps")[2] == "error: dvc exp show --json: expected a JSON array, got dict\n"


def relocated(data, folder):
    """``dvc exp show`` output whose metrics files lie in ``folder`` instead of metrics/."""
    text = json.dumps(data).replace('"metrics/', f'"{folder}/')
    return json.loads(text)


def test_metrics_names_the_folder_for_every_source(capsys, fake_dvc, repo, monkeypatch):
    monkeypatch.chdir(fake_dvc)
    (fake_dvc / "exps.json").write_text(json.dumps(relocated(exp_show(), "results/cv")))
    for argv in (["--exps"], ["--exps-json", fake_dvc / "exps.json"]):
        code, out, err = run(capsys, *argv, "--metrics", "results/cv", "--format", "json")
        assert code == 0, err
        assert [row["source"] for row in json.loads(out)] == ["main", "main", "fluid", "fluid", "tim", "tim"]
    (repo / "metrics").rename(repo / "cv")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "moved")
    monkeypatch.chdir(repo)
    code, out, _ = run(capsys, "--rev", "HEAD", "--metrics", "cv", "--format", "json")
    assert code == 0 and [row["model"] for row in json.loads(out)] == ["conv1d", "lstm"]


def test_read_experiments_reports_what_it_read_and_skips(tmp_path):
    data = exp_show()
    unnamed = exp_entry("e" * 40, None, library="Y", metrics=scores(0.5, 0.5))
    empty = exp_entry("f" * 40, "empty", library="Z", metrics={})
    odd = exp_entry("0" * 40, "odd", library="Z", metrics={}, error="killed")  # an error as a bare string
    vague = exp_entry("1" * 40, "vague", library="Z", metrics={}, error={"type": "Unknown"})  # no message
    norev = exp_entry("x", "norev", library="W", metrics=scores(0.4, 0.4))
    del norev["rev"]
    data[1]["experiments"] += [None, {"revs": [unnamed, empty, odd, vague, norev]}]
    warnings = []
    found = compare.read_experiments(data, warn=warnings.append)
    assert [(e["name"], e["rev"], e["baseline"]) for e in found] == [
        ("main", "a" * 40, True), ("fluid", "b" * 40, False), ("tim", "c" * 40, False),
        ("eeeeeee", "e" * 40, False), ("norev", "", False)]  # an unnamed experiment is its short hash
    assert found[1]["params"]["params.yaml"]["data"]["split"]["unseen_library"] == "FluidR3_GM"
    assert warnings == ["skipping experiment broken (ddddddd): failed to reproduce 'train'",
                        "skipping experiment empty (fffffff): no metrics/<model>.json",
                        "skipping experiment odd (0000000): killed",
                        "skipping experiment vague (1111111): {'type': 'Unknown'}"]
    with pytest.raises(DataError, match=r"^x\.json: expected the JSON list of dvc exp show --json, got dict$"):
        compare.read_experiments({"rev": "a"}, name="x.json")


def test_a_bad_experiment_metrics_file_names_experiment_and_file(capsys, tmp_path):
    for value, message in (([0.5], "expected a JSON object, got list"),
                           ({"file_accuracy_mean": None, "macro_f1_mean": "x"}, "macro_f1_mean must be a finite number or null, got 'x'")):
        data = exp_show()
        data[1]["data"]["metrics"]["metrics/conv1d.json"] = {"data": value}
        (tmp_path / "e.json").write_text(json.dumps(data))
        code, _, err = run(capsys, "--exps-json", tmp_path / "e.json")
        assert (code, err) == (1, f"error: {tmp_path / 'e.json'}: experiment main: metrics/conv1d.json: {message}\n")


def test_lookup_param_searches_every_params_file():
    params = {"broken.yaml": None, "other.yaml": {"data": {"x": 1}}, "failed.yaml": {"error": {"msg": "bad"}},
              "params.yaml": {"data": {"split": {"unseen_library": None}}}}
    assert compare.lookup_param(params, "split.unseen_library") is None
    assert compare.lookup_param(params, "x") == 1
    with pytest.raises(KeyError, match="train.epochs"):
        compare.lookup_param(params, "train.epochs")


def by_data(*experiments, baselines=()):
    """dvc exp show output: baseline commits ``(name, library, scores)`` with the experiments under the first."""
    data = [exp_entry(f"{i:040x}", name, library=library, metrics=s) for i, (name, library, s) in enumerate(baselines)]
    data[0]["experiments"] = [{"revs": [exp_entry(f"{9 + i:040x}", name, library=library, metrics=s)]}
                              for i, (name, library, s) in enumerate(experiments)]
    return data


def test_by_matrix_null_values_missing_models_other_baselines_and_rounding():
    experiments = compare.read_experiments(by_data(
        ("none", None, scores(0.7, 0.31)),
        ("fluid", "FluidR3_GM", {"conv1d": {**CONV1D, "unseen_file_accuracy_mean": 0.8}}),  # no baseline model
        baselines=[("main", "FluidR3_GM", scores(0.1, 0.1)), ("older", "sf_GMbank", scores(0.65, 0.3))]))
    matrix = compare.by_matrix(experiments, key="split.unseen_library")
    assert matrix["rows"] == {"FluidR3_GM": {"conv1d": 0.8, "baseline": None},  # the experiment, not main
                              "null": {"conv1d": 0.7, "baseline": 0.31},
                              "sf_GMbank": {"conv1d": 0.65, "baseline": 0.3}}  # a second baseline keeps its row
    assert matrix["mean"] == {"conv1d": 0.7167, "baseline": None} and matrix["worst"]["conv1d"] == 0.65


def test_by_conflict_message_says_how_to_resolve_it():
    experiments = compare.read_experiments(by_data(("a", "X", scores(0.7, 0.3)), ("b", "X", scores(0.6, 0.3)),
                                                   baselines=[("main", "Y", scores(0.1, 0.1))]))
    with pytest.raises(DataError) as excinfo:
        compare.by_matrix(experiments, key="split.unseen_library")
    assert str(excinfo.value) == ("experiments a and b both have split.unseen_library=X but different metrics; "
                                  "remove one (dvc exp remove) to compare")


def test_run_exp_show_runs_in_the_folder_it_is_given(fake_dvc, tmp_path, monkeypatch):
    (fake_dvc / "exps.json").write_text(json.dumps(exp_show()))
    monkeypatch.chdir(tmp_path)  # no exps.json here
    assert compare.run_exp_show(cwd=fake_dvc) == exp_show()


# Hostile mutants, round 6 (benchmarks/hostile_mutants/round6): cases beside the tested ones.


def test_a_readme_written_from_experiments_holds_every_column(capsys, exps_json, tmp_path):
    """The three-column table is for a screen; the README's Markdown table keeps every figure, as --format markdown does."""
    readme = tmp_path / "README.md"
    readme.write_text(README)
    code, _, _ = run(capsys, "--exps-json", exps_json, "--readme", readme)
    assert code == 0
    header = "| source | model | " + " | ".join(h for h, _ in compare.COLUMNS) + " |"
    assert header in readme.read_text().splitlines()
    markdown = run(capsys, "--exps-json", exps_json, "--format", "markdown")[1]
    assert markdown.strip() in readme.read_text()
