"""TensorFlow's start-up noise is kept out of stage logs, and real errors are not (instrclf.runtime)."""

import subprocess
import sys
import textwrap

from instrclf.runtime import NOISE, filtered_stderr

#: Lines TensorFlow prints at start on a CPU machine (from real stage logs).
NOTICES = [
    "2026-11-24 13:25:01.1: E external/local_xla/xla/stream_executor/cuda/cuda_platform.cc:51] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "I0000 00:00:1.1 cpu_feature_guard.cc:210] This TensorFlow binary is optimized to use available CPU instructions.",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow.",
    "I tensorflow/core/util/port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results",
]


def test_filtered_stderr_drops_the_notices_and_keeps_everything_else():
    script = textwrap.dedent(
        f"""
        import os, sys
        from instrclf.runtime import filtered_stderr
        with filtered_stderr():
            for line in {NOTICES!r}:
                os.write(2, (line + "\\n").encode())           # native writes, as TensorFlow's C++ does
            os.write(2, b"E0000 op_kernel.cc:1] OOM when allocating tensor\\n")
            print("Traceback (most recent call last): boom", file=sys.stderr)
            print("a warning of ours", file=sys.stderr)
        print("after", file=sys.stderr)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines == [
        "E0000 op_kernel.cc:1] OOM when allocating tensor",
        "Traceback (most recent call last): boom",
        "a warning of ours",
        "after",
    ]


def test_every_notice_matches_and_real_errors_do_not():
    assert all(NOISE.search(line) for line in NOTICES)
    for line in ["E0000 op_kernel.cc:1] OOM when allocating tensor", "ValueError: bad input", "error: clean: no rows"]:
        assert not NOISE.search(line)


def test_an_exception_inside_still_replays_what_was_captured(capfd):
    try:
        with filtered_stderr():
            print("kept line", file=sys.stderr)
            raise RuntimeError("inside")
    except RuntimeError:
        pass
    assert "kept line" in capfd.readouterr().err


def test_importing_tensorflow_through_runtime_prints_no_notice():
    proc = subprocess.run(
        [sys.executable, "-c", "from instrclf.runtime import tf; tf.constant(1.0) + 1; print('ok')"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert not [line for line in proc.stderr.splitlines() if NOISE.search(line)]
    assert "cuInit" not in proc.stderr


def test_bytes_that_are_not_utf8_are_replayed_not_raised(capfd):
    """A native library may write any bytes to stderr (a path in Latin-1): they come back, with the exception inside."""
    import os

    try:
        with filtered_stderr():
            os.write(2, b"caf\xe9 path\nnext line\n")
            raise RuntimeError("inside")
    except RuntimeError as exc:
        assert str(exc) == "inside"  # not replaced by a UnicodeDecodeError from the replay
    assert capfd.readouterr().err.splitlines() == ["caf\ufffd path", "next line"]


# Hostile mutants, round 6 (benchmarks/hostile_mutants/round6): cases beside the tested ones.


def test_a_log_level_the_user_set_is_kept():
    """TF_CPP_MIN_LOG_LEVEL=0 to see TensorFlow's every line (or classify's 3): importing through runtime leaves it."""
    import os

    code = "import os; from instrclf.runtime import tf; tf.constant(1.0); print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    for level in ("0", "3"):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": level})
        assert proc.returncode == 0 and proc.stdout.split()[-1] == level, proc.stderr


# Mutation run (benchmarks/mutation.py): what its survivors asked for.


def test_tf_is_tensorflow_imported_on_first_use_and_kept(monkeypatch):
    """``runtime.tf`` is TensorFlow itself, kept in the module after the first use; another name is an AttributeError."""
    import pytest
    import tensorflow

    from instrclf import runtime

    monkeypatch.delattr(runtime, "tf", raising=False)  # as if nothing had asked for it yet (restored afterwards)
    assert runtime.tf is tensorflow
    assert vars(runtime)["tf"] is tensorflow  # cached: the next use does not import again
    with pytest.raises(AttributeError, match=r"'instrclf\.runtime' has no attribute 'nope'"):
        runtime.nope  # noqa: B018


# Hostile mutants, round 7 (benchmarks/hostile_mutants/round7): cases beside the tested ones.


def test_filtering_stderr_leaves_no_descriptor_open(capfd):
    """Every stage filters stderr once per TensorFlow import; a long process doing it many times keeps its descriptors."""
    import os

    before = sorted(os.listdir("/proc/self/fd"))
    for _ in range(5):
        with filtered_stderr():
            print("a line", file=sys.stderr)
    assert sorted(os.listdir("/proc/self/fd")) == before
    assert capfd.readouterr().err == "a line\n" * 5
