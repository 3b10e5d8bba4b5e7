"""instrclf.io: outputs appear whole or not at all, and dead writers' leftovers are removed."""

import json
import re
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from instrclf.errors import DataError
from instrclf.io import atomic_dir, atomic_file, read_text, remove_stale, write_json


@pytest.fixture
def live_pid():
    """The PID of a running process other than this one."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_dir_replaces_only_on_success(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            assert tmp.parent == tmp_path and tmp != out
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("boom")
    assert names(tmp_path) == ["out"] and names(out) == ["old.txt"]
    with atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
        assert names(out) == ["old.txt"]  # the old folder stays whole until the new one is done
    assert names(out) == ["new.txt"] and names(tmp_path) == ["out"]


def test_atomic_dir_leaves_nothing_when_there_was_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(tmp_path / "a" / "out") as tmp:
            (tmp / "x").write_text("x")
            raise KeyboardInterrupt  # also on interruption, not only on Exception
    assert names(tmp_path / "a") == []


@pytest.mark.parametrize(("mode", "data"), [("w", "partial"), ("wb", b"partial")])
def test_atomic_file_leaves_nothing_on_failure(tmp_path, mode, data):
    path = tmp_path / "a" / "f.json"
    with pytest.raises(ValueError):
        with atomic_file(path, mode) as f:
            f.write(data)
            raise ValueError
    assert names(path.parent) == []


def test_atomic_file_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(ValueError):
        with atomic_file(path) as f:
            f.write("new")
            raise ValueError
    assert path.read_text() == "old" and names(tmp_path) == ["f.txt"]
    with atomic_file(path) as f:
        f.write("née")
    assert path.read_text(encoding="utf-8") == "née" and names(tmp_path) == ["f.txt"]


def test_dead_writers_leftovers_are_removed_on_next_write(tmp_path, dead_pid, live_pid):
    stale_dir = tmp_path / f".out.tmp-{dead_pid}-x"
    stale_dir.mkdir()
    (stale_dir / "half.wav").write_bytes(b"RIFF")
    stale_file = tmp_path / f".m.json.tmp-{dead_pid}-abc"
    stale_file.write_text("{")
    live_dir = tmp_path / f".out.tmp-{live_pid}-y"
    live_dir.mkdir()
    other = tmp_path / f".other.tmp-{dead_pid}-z"  # another output's leftover: its own writer's business
    other.write_text("")
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "x").write_text("x")
    assert not stale_dir.exists() and live_dir.is_dir() and stale_file.exists() and other.exists()
    write_json(tmp_path / "m.json", {"a": 1})
    assert names(tmp_path) == sorted(["out", "m.json", live_dir.name, other.name])


def test_remove_stale_reports_and_spares_symlink_targets(tmp_path, dead_pid):
    target = tmp_path / "keep"
    target.mkdir()
    (target / "data").write_text("precious")
    link = tmp_path / f".out.tmp-{dead_pid}-l"
    link.symlink_to(target)
    own = tmp_path / f".out.tmp-{os.getpid()}-mine"
    own.mkdir()
    assert remove_stale(tmp_path / "out") == [link]
    assert (target / "data").read_text() == "precious" and own.is_dir()
    assert remove_stale(tmp_path / "missing" / "out") == []


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o002, 0o664, 0o775)])
def test_outputs_get_the_usual_permissions(tmp_path, umask, file_mode, dir_mode):
    mask = os.umask(umask)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        with atomic_file(tmp_path / "b.bin", "wb") as f:
            f.write(b"x")
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == dir_mode


def test_write_json_is_strict(tmp_path):
    write_json(tmp_path / "m.json", {"auc": float("nan"), "n": [1.0, float("inf"), (float("-inf"), 2)], "d": {"x": float("nan")}})
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}")) == {
        "auc": None, "n": [1.0, None, [None, 2]], "d": {"x": None},
    }
    assert text.endswith("}\n")


def test_write_json_refuses_what_json_cannot_hold(tmp_path):
    with pytest.raises(TypeError):
        write_json(tmp_path / "m.json", {"a": object()})
    assert names(tmp_path) == []


def test_a_killed_writer_not_yet_reaped_counts_as_dead(tmp_path):
    """A zombie (exited, not yet reaped by its parent) holds nothing: its leftovers are stale."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        state = ""
        for _ in range(200):  # until it has exited, without reaping it
            with open(f"/proc/{child.pid}/stat", "rb") as f:
                state = f.read().rpartition(b")")[2].split()[0]
            if state == b"Z":
                break
            time.sleep(0.02)
        assert state == b"Z"
        leftover = tmp_path / f".out.tmp-{child.pid}-x"
        leftover.mkdir()
        assert remove_stale(tmp_path / "out") == [leftover]
        assert not leftover.exists()
    finally:
        child.wait()


@pytest.mark.parametrize(("mode", "data"), [("w", "partial"), ("wb", b"partial")])
def test_atomic_file_interrupted_leaves_no_temporary_and_keeps_the_old_file(tmp_path, mode, data):
    """Ctrl-C (KeyboardInterrupt, not an Exception) mid-write: the old file whole, no .tmp- sibling."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(path, mode) as f:
            f.write(data)
            raise KeyboardInterrupt
    assert names(tmp_path) == ["f.bin"] and path.read_bytes() == b"old"


def test_write_json_interrupted_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_json(tmp_path / "m.json", {"a": 1})
    assert names(tmp_path) == []


# Mutation run (benchmarks/mutation.py): cases beside the tested ones that mutants survived.


def test_a_live_writer_whose_name_holds_a_parenthesis_keeps_its_temporary(tmp_path):
    """/proc/<pid>/stat puts the program name in parentheses, and a name may hold ") Z ": still alive."""
    odd = tmp_path / "w) Z x"
    odd.symlink_to(sys.executable)
    child = subprocess.Popen([str(odd), "-c", "import time; time.sleep(60)"])
    try:
        for _ in range(200):  # until the child has exec'd (its name is the link's)
            with open(f"/proc/{child.pid}/stat", "rb") as f:
                if b"(w) Z x)" in f.read():
                    break
            time.sleep(0.01)
        leftover = tmp_path / f".out.tmp-{child.pid}-x"
        leftover.mkdir()
        assert remove_stale(tmp_path / "out") == []
        assert leftover.is_dir()
    finally:
        child.kill()
        child.wait()


def test_without_proc_a_live_writer_keeps_its_temporary(tmp_path, live_pid, monkeypatch):
    """Where /proc cannot be read (another OS, hidepid), a process that exists counts as alive."""
    real_open = open

    def no_proc(file, *args, **kwargs):
        if str(file).startswith("/proc/"):
            raise PermissionError(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_proc)
    leftover = tmp_path / f".out.tmp-{live_pid}-x"
    leftover.mkdir()
    assert remove_stale(tmp_path / "out") == []
    assert leftover.is_dir()


def test_a_leftover_that_cannot_be_removed_does_not_stop_the_write(tmp_path, dead_pid, monkeypatch):
    """A stale folder whose removal fails (busy on NFS, another owner): the new output is written all the same."""
    stale = tmp_path / f".out.tmp-{dead_pid}-x"
    stale.mkdir()
    (stale / "half.wav").write_bytes(b"RIFF")
    real_rmdir = os.rmdir

    def busy(path, *args, **kwargs):
        if os.path.basename(os.fspath(path)) == stale.name:
            raise OSError(16, "Device or resource busy", os.fspath(path))
        return real_rmdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "rmdir", busy)
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "x").write_text("x")
    assert (tmp_path / "out" / "x").read_text() == "x"


def test_two_writers_removing_the_same_leftover_both_succeed(tmp_path, dead_pid, monkeypatch):
    """Another writer of the same output removes a stale file first: this one carries on."""
    import instrclf.io as io_module

    stale = tmp_path / f".m.json.tmp-{dead_pid}-abc"
    stale.write_text("{")
    real_alive = io_module._alive

    def other_writer_cleans_first(pid):
        stale.unlink(missing_ok=True)  # the other writer got there between our listing and our unlink
        return real_alive(pid)

    monkeypatch.setattr(io_module, "_alive", other_writer_cleans_first)
    write_json(tmp_path / "m.json", {"a": 1})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1} and names(tmp_path) == ["m.json"]


def test_write_json_layout_is_fixed(tmp_path):
    """Metrics files are compared byte for byte (git, dvc metrics diff): two-space indent, one item a line."""
    write_json(tmp_path / "m.json", {"a": 1, "b": [1.5, None]})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 1,\n  "b": [\n    1.5,\n    null\n  ]\n}\n'


def test_another_users_live_writer_keeps_its_temporary(tmp_path, dead_pid, monkeypatch):
    """kill(pid, 0) answers EPERM for a live process of another user: its half-written output is not ours to delete."""
    real_kill = os.kill

    def kill(pid, sig):
        if pid == dead_pid:
            raise PermissionError(1, "Operation not permitted")
        return real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", kill)
    theirs = tmp_path / f".m.json.tmp-{dead_pid}-other"
    theirs.write_text("{ half")
    write_json(tmp_path / "m.json", {"a": 1})
    assert theirs.read_text() == "{ half"
    assert remove_stale(tmp_path / "m.json") == []


def test_looking_for_stale_temporaries_leaves_live_writers_running(tmp_path):
    """The liveness probe is signal 0: a writer that is checked must not be hung up or killed."""
    # the writer handles SIGHUP itself (a disposition inherited from nohup would hide the signal)
    writer = subprocess.Popen([sys.executable, "-c", "import signal, sys, time; "
                               "signal.signal(signal.SIGHUP, lambda *a: sys.exit(3)); print(flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE)
    try:
        writer.stdout.readline()  # its handler is in place
        leftover = tmp_path / f".out.tmp-{writer.pid}-x"
        leftover.mkdir()
        assert remove_stale(tmp_path / "out") == []
        time.sleep(0.2)
        assert writer.poll() is None and leftover.is_dir()
    finally:
        writer.kill()
        writer.wait()


# Hostile mutants, round 5 (benchmarks/hostile_mutants/round5): cases beside the tested ones.


def test_a_file_that_is_not_utf8_is_one_error_naming_it(tmp_path):
    """A binary file where a model card or metrics file belongs: one line naming it, no traceback."""
    path = tmp_path / "conv1d.json"
    path.write_bytes(b"\xff\xfe\x00 not text")
    with pytest.raises(DataError, match=f"^{re.escape(str(path))}: not readable model card \\(.*utf-8"):
        read_text(path, what="model card")


# Hostile mutants, round 7 (benchmarks/hostile_mutants/round7): cases beside the tested ones.


def test_a_file_appears_under_its_name_only_once_complete(tmp_path, monkeypatch):
    """At the rename every byte is already in the file (a reader never sees a partial one), and a
    failure of the last flush (a full disk at close) keeps the old file."""
    path = tmp_path / "out.txt"
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append(open(src).read())
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with atomic_file(path) as f:
        f.write("x" * 100)  # smaller than the write buffer: still in memory until the file is closed
    assert seen == ["x" * 100] and path.read_text() == "x" * 100
    monkeypatch.undo()

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, text):
            return self.f.write(text)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()
            raise OSError(28, "No space left on device")

    import builtins

    real_open = builtins.open
    monkeypatch.setattr("instrclf.io.open", lambda *a, **k: FullDisk(real_open(*a, **k)), raising=False)
    with pytest.raises(OSError, match="No space"), atomic_file(path) as f:
        f.write("y" * 100)
    assert path.read_text() == "x" * 100 and os.listdir(tmp_path) == ["out.txt"]


# Hostile mutants, round 8 (benchmarks/hostile_mutants/round8): cases beside the tested ones.


def test_atomic_dir_puts_the_old_folder_back_when_the_final_rename_fails(tmp_path, monkeypatch):
    """The new folder built but not movable into place (a full or read-only disk at the rename): the
    old output is back under its name, whole, and no temporary is left beside it."""
    out = tmp_path / "features"
    out.mkdir()
    (out / "old.npy").write_text("old")
    real_rename = type(out).rename

    def rename(self, target):
        if Path(target) == out and self.name.startswith(".features.tmp-") and (self / "new.npy").exists():
            raise OSError(28, "No space left on device", str(target))
        return real_rename(self, target)

    monkeypatch.setattr(type(out), "rename", rename)
    with pytest.raises(OSError, match="No space"), atomic_dir(out) as tmp:
        (tmp / "new.npy").write_text("new")
    assert sorted(os.listdir(tmp_path)) == ["features"] and os.listdir(out) == ["old.npy"]


@pytest.mark.parametrize("dangling", [False, True])
def test_an_output_that_is_a_link_is_replaced_and_what_it_points_to_left_alone(tmp_path, dangling):
    """data/features linked to another disk: the stage's new folder takes the link's place; the
    folder the link pointed to keeps its files (it is not the stage's to delete)."""
    elsewhere = tmp_path / "elsewhere"
    if not dangling:
        elsewhere.mkdir()
        (elsewhere / "keep.txt").write_text("mine")
    (tmp_path / "project").mkdir()
    out = tmp_path / "project" / "features"
    out.symlink_to(elsewhere, target_is_directory=True)
    with atomic_dir(out) as tmp:
        (tmp / "new.npy").write_text("new")
    assert not out.is_symlink() and os.listdir(out) == ["new.npy"]
    assert os.listdir(tmp_path / "project") == ["features"]  # no link left under a temporary name
    assert dangling or (elsewhere / "keep.txt").read_text() == "mine"
