"""instrclf.stage: the one-line summary and the exit style shared by every stage script."""

import copy
import errno
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from synthetic import TINY_PARAMS, interrupt_when, make_features_dir, make_raw_dir, write_params

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


# --- like a Unix tool: Ctrl-C, a reader that goes away, permissions (real processes) ----------

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}

#: Runs ``argv[1:]`` without the capabilities that let root ignore file modes (CAP_DAC_OVERRIDE,
#: CAP_DAC_READ_SEARCH): prctl(PR_CAPBSET_DROP) before exec, so chmod binds root too.
_NO_BYPASS = (
    "import ctypes, os, sys\n"
    "if os.geteuid() == 0:\n"
    "    libc = ctypes.CDLL(None, use_errno=True)\n"
    "    for cap in (1, 2):\n"
    "        libc.prctl(24, cap, 0, 0, 0)\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def without_root_bypass(command: list) -> list:
    """``command`` run so that a folder's or file's mode binds it even when the tests run as root."""
    return [sys.executable, "-c", _NO_BYPASS, *map(str, command)]


@pytest.fixture
def modes_bind(tmp_path):
    """Skip (only) where no process of this user can be made to obey chmod: root that cannot drop its capabilities."""
    folder = tmp_path / "probe"
    folder.mkdir()
    folder.chmod(0o555)
    probe = subprocess.run(
        without_root_bypass([sys.executable, "-c", f"open({str(folder / 'x')!r}, 'w')"]), capture_output=True, check=False
    )
    folder.chmod(0o755)
    if probe.returncode == 0:
        pytest.skip("running as root with capabilities that cannot be dropped: chmod does not block writes here")


def closed_pipe() -> int:
    """The write end of a pipe whose reader has already gone (``| head`` that has had its lines)."""
    read, write = os.pipe()
    os.close(read)
    return write


def test_a_reader_gone_ends_a_stage_quietly_with_141():
    write = closed_pipe()
    try:
        done = subprocess.run(
            [sys.executable, "-c", "from instrclf import stage; stage.run('summary', lambda: {'conv1d': 0.5})"],
            cwd=ROOT, stdout=write, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (stage.EXIT_BROKEN_PIPE, "")  # no BrokenPipeError, no "Exception ignored"
    assert stage.EXIT_BROKEN_PIPE == 141


def test_a_broken_pipe_that_is_not_stdout_keeps_its_traceback(capsys):
    def work():
        raise BrokenPipeError(32, "Broken pipe")  # a worker's or a subprocess's pipe: stdout is fine

    with pytest.raises(BrokenPipeError):
        stage.run("clean", work)


def test_ctrl_c_is_one_line_and_status_130(capsys):
    def work():
        raise KeyboardInterrupt

    try:
        with pytest.raises(SystemExit) as exit_:
            stage.run("plot", work)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped stage.run")
    assert exit_.value.code == 130
    assert capsys.readouterr() == ("", "plot: interrupted\n")


def test_ctrl_c_mid_training_is_one_line_and_status_130(tmp_path):
    """SIGINT while Keras fits (dvclive has logged an epoch): 130, one line, no model, no temporary."""
    params = copy.deepcopy(TINY_PARAMS)
    params["train"]["patience"] = 0
    params["models"]["baseline"]["epochs"] = 1000  # the most allowed: still fitting when the signal comes
    params["data"] = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["data"]
    write_params(tmp_path / "params.yaml", params)
    features = make_features_dir(tmp_path / "data")
    out = tmp_path / "models"
    command = [
        sys.executable, "stages/train.py", "--params", tmp_path / "params.yaml", "--model", "baseline", "--fold", "0",
        "--features", features, "--out", out / "0.keras", "--metrics", tmp_path / "m.json",
        "--timings", tmp_path / "t.json", "--live", tmp_path / "live",
    ]  # fmt: skip
    proc = subprocess.Popen(
        list(map(str, command)), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    _, err = interrupt_when(proc, (tmp_path / "live" / "metrics.json").exists)
    assert proc.returncode == 130, err
    assert err.splitlines()[-1:] == ["train@baseline-0: interrupted"] and "Traceback" not in err, err
    assert not out.exists() and not (tmp_path / "m.json").exists()


def _clean_command(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["clean"] = TINY_PARAMS["clean"]
    write_params(tmp_path / "params.yaml", params)
    raw = make_raw_dir(tmp_path / "raw")
    return [
        sys.executable, ROOT / "stages" / "clean.py", "--params", "params.yaml", "--raw", raw, "--out", "data/clean",
        "--metrics", "results/clean.json", "--threshold-plot", "plots/threshold.png",
    ]  # fmt: skip


def test_a_read_only_data_folder_is_one_line_naming_it(tmp_path, modes_bind):
    command = _clean_command(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data").chmod(0o555)
    try:
        done = subprocess.run(without_root_bypass(command), cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    finally:
        (tmp_path / "data").chmod(0o755)
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("error: clean: data: folder not writable (Permission denied: data/.clean.tmp-"), line
    assert list((tmp_path / "data").iterdir()) == []


def test_a_path_through_a_file_is_one_line_naming_it(tmp_path, capsys):
    """ENOTDIR binds root too: an output under a file (``data`` is a file, not a folder)."""
    (tmp_path / "data").write_text("not a folder")

    def work():
        (tmp_path / "data" / "clean.json").write_text("{}")

    with pytest.raises(SystemExit) as exit_:
        stage.run("clean", work)
    assert exit_.value.code == 1
    assert capsys.readouterr().err == f"error: clean: {tmp_path / 'data' / 'clean.json'}: Not a directory\n"


def test_other_os_errors_keep_their_traceback(tmp_path):
    def work():
        (tmp_path / "absent.json").read_text()  # a missing input is the package's to name (DataError): here a bug

    with pytest.raises(FileNotFoundError):
        stage.run("clean", work)

@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT], ids=errno.errorcode.get)
def test_a_full_disk_is_one_line_naming_the_file(tmp_path, capsys, code):
    """A disk or quota that fills up is the machine's doing, like a read-only folder: one line, status 1."""
    target = tmp_path / "data" / "clean" / "index.csv"

    def work():
        raise OSError(code, os.strerror(code), str(target))

    with pytest.raises(SystemExit) as exit_:
        stage.run("clean", work)
    assert exit_.value.code == 1
    assert capsys.readouterr().err == f"error: clean: {target}: {os.strerror(code)}\n"


# --- an unknown model in train.models (issue 25, item 8) ----------------------------------------


def test_an_unknown_model_in_train_models_is_refused_by_dvc_and_by_the_stages(tmp_path):
    """`dvc repro` never runs train@gru-0 (DVC: its fingerprint is missing, stage code writes one per known
    model); a stage that reads train.models names it."""
    dvc = Path(sys.executable).parent / "dvc"
    if not dvc.is_file():
        pytest.skip("dvc is not installed beside this Python")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("stages", "instrclf"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for dep in ("data/features", "results/predict", "results/train"):  # the deps of train and summary, empty
        (tmp_path / dep).mkdir(parents=True)
        (tmp_path / dep / "placeholder").touch()
    params = yaml.safe_load((tmp_path / "params.yaml").read_text(encoding="utf-8"))
    params["train"]["models"] = ["gru"]
    write_params(tmp_path / "params.yaml", params)
    env = {**ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}

    def dvc_run(*args):
        return subprocess.run([dvc, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)

    assert dvc_run("init", "--no-scm", "-q").returncode == 0
    assert dvc_run("repro", "--single-item", "code").returncode == 0  # the fingerprints of the models the code has
    train = dvc_run("repro", "--single-item", "train@gru-0")
    assert train.returncode != 0
    assert re.search(r"ERROR: failed to reproduce 'train@gru-0': \[Errno 2\] No such file or directory: '\S*/code/train-gru\.sha256'",
                     train.stderr), train.stderr
    assert "> python stages/train.py" not in train.stdout and not (tmp_path / "models").exists()  # the stage never ran
    summary = dvc_run("repro", "--single-item", "summary")
    assert summary.returncode != 0
    assert "error: summary: train.models[0] = 'gru': Input should be 'conv1d', 'conv2d', 'lstm' or 'baseline'" in (
        summary.stdout + summary.stderr
    ).splitlines()


def test_a_file_that_exists_but_refuses_writing_is_named_not_its_folder(tmp_path, capsys):
    """Permission denied on a file that is there (a read-only metrics file in a writable folder) is the
    file's fault: the line names the file; only a file that could not be created blames its folder."""
    existing = tmp_path / "results" / "clean.json"
    existing.parent.mkdir()
    existing.write_text("{}")

    def work():  # what open(existing, "w") raises for a user without write permission on the file
        raise PermissionError(errno.EACCES, "Permission denied", str(existing))

    with pytest.raises(SystemExit) as exit_:
        stage.run("clean", work)
    assert exit_.value.code == 1
    assert capsys.readouterr().err == f"error: clean: {existing}: Permission denied\n"


# --- in this process: what the subprocess tests above show, where mutation testing can see it ---


@pytest.fixture
def stdout_pipe(monkeypatch):
    """A function that points sys.stdout at the write end of a fresh pipe; returns ``(stdout, fds)``.

    Called in the test itself: pytest's own capture sets sys.stdout again once fixtures are set up.
    """
    opened = []

    def install():
        read, write = os.pipe()
        out = open(write, "w", encoding="utf-8")  # buffered, as a pipe-connected stdout is
        opened.append((out, fds := {"read": read}))
        monkeypatch.setattr(sys, "stdout", out)
        return out, fds

    yield install
    for out, fds in opened:
        monkeypatch.undo()
        out.close()
        if fds["read"] is not None:
            os.close(fds["read"])


def test_the_reader_of_stdout_gone_is_told_apart_from_a_live_or_full_pipe(stdout_pipe):
    out, fds = stdout_pipe()
    assert stage._stdout_reader_gone() is False  # a reader, and room to write
    os.set_blocking(out.fileno(), False)
    try:
        while True:
            os.write(out.fileno(), b"x" * 65536)
    except BlockingIOError:
        pass  # full: a reader that is alive but slow
    assert stage._stdout_reader_gone() is False  # and answered at once, not when the reader catches up
    os.close(fds["read"])
    fds["read"] = None
    assert stage._stdout_reader_gone() is True


def test_a_reader_gone_before_the_summary_is_status_141_in_process(stdout_pipe):
    """The summary is flushed inside the stage's exit handling: a reader gone shows there, as 141."""
    _, fds = stdout_pipe()
    os.close(fds["read"])
    fds["read"] = None
    with pytest.raises(SystemExit) as exit_:
        stage.run("summary", lambda: {"conv1d": 0.5})
    assert exit_.value.code == stage.EXIT_BROKEN_PIPE


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.EROFS], ids=errno.errorcode.get)
def test_a_file_that_could_not_be_created_names_its_folder(tmp_path, capsys, code):
    """The message of test_a_read_only_data_folder_is_one_line_naming_it, in this process (the error simulated)."""
    target = tmp_path / "data" / ".clean.tmp-1-x"
    target.parent.mkdir()

    def work():
        raise OSError(code, os.strerror(code), str(target))

    with pytest.raises(SystemExit) as exit_:
        stage.run("clean", work)
    assert exit_.value.code == 1
    assert capsys.readouterr().err == (
        f"error: clean: {tmp_path / 'data'}: folder not writable ({os.strerror(code)}: {target})\n")


def test_a_file_that_could_not_be_created_in_the_current_folder_names_it_as_dot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    error = PermissionError(errno.EACCES, "Permission denied", "new.csv")
    assert stage.describe_os_error(error) == ".: folder not writable (Permission denied: new.csv)"


def test_a_failed_rename_names_both_paths(tmp_path):
    source = tmp_path / "a.tmp"
    source.write_text("x")
    error = OSError(errno.ENOSPC, "No space left on device", str(source), None, str(tmp_path / "b.json"))
    assert stage.describe_os_error(error) == f"{source} -> {tmp_path / 'b.json'}: No space left on device"


def test_an_os_error_without_a_reason_is_named_by_its_kind(tmp_path):
    assert stage.describe_os_error(OSError(errno.ENOSPC, None, "out.csv")) == "out.csv: OSError"


# Hostile mutants, round 5 (benchmarks/hostile_mutants/round5): cases beside the tested ones.


def test_a_refused_rename_names_both_paths(tmp_path, capsys):
    """A stage's output swapped into place (os.replace) where the destination cannot be: both ends are named."""
    (tmp_path / "data").write_text("not a folder")
    source, target = tmp_path / ".clean.tmp", tmp_path / "data" / "clean"
    source.mkdir()

    def work():
        os.replace(source, target)

    with pytest.raises(SystemExit) as exit_:
        stage.run("clean", work)
    assert exit_.value.code == 1
    assert capsys.readouterr().err == f"error: clean: {source} -> {target}: Not a directory\n"


# Hostile mutants, round 7 (benchmarks/hostile_mutants/round7): cases beside the tested ones.


def test_an_os_error_that_names_no_file_keeps_its_own_traceback():
    """A full disk met by a library that names no path: the OSError itself reaches the user, not a
    TypeError raised while describing it."""
    error = OSError(errno.ENOSPC, "No space left on device")

    def work():
        raise error

    with pytest.raises(OSError) as info:
        stage.run("clean", work)
    assert info.value is error


# Hostile mutants, round 8 (benchmarks/hostile_mutants/round8): cases beside the tested ones.


def test_counts_and_flags_are_printed_whole():
    """Floats get four significant digits; counts keep every digit and flags stay words."""
    line = stage.summary("clean", {"windows_written": 12345, "notes": 7497, "held_out": True, "share": 0.123456})
    assert line == "clean: windows_written=12345, notes=7497, held_out=True, share=0.1235"
