"""Tests of instrclf.parallel.process_map: order, errors, in-process work, no orphaned workers."""

import io
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from tqdm import tqdm

from instrclf import parallel
from instrclf.errors import ParameterError

ROOT = Path(__file__).resolve().parents[1]

_STATE = {}


def square_after(x):
    """x**2, the later items faster, so a pool finishes them out of order."""
    time.sleep(0.002 * (20 - x % 20))
    return x * x


def pid_of(_):
    return os.getpid()


def fail_on_seven(x):
    if x == 7:
        raise ValueError(f"bad item {x}")
    return x


def remember(value):
    _STATE["value"] = value


def recall(_):
    return _STATE.get("value"), os.getpid()


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_results_keep_the_order_of_the_items(jobs):
    items = list(range(40))
    assert parallel.process_map(square_after, items, jobs=jobs, progress=False) == [x * x for x in items]


def test_empty_work_gives_an_empty_list():
    assert parallel.process_map(square_after, [], jobs=2, progress=False) == []


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_worker_exception_propagates(jobs):
    with pytest.raises(ValueError, match="bad item 7"):
        parallel.process_map(fail_on_seven, range(20), jobs=jobs, progress=False)


def test_one_job_runs_in_this_process_with_its_initializer():
    _STATE.clear()
    try:
        results = parallel.process_map(recall, range(3), jobs=1, initializer=remember, initargs=("here",), progress=False)
        assert results == [("here", os.getpid())] * 3
    finally:
        _STATE.clear()


def test_workers_run_the_initializer_in_other_processes():
    _STATE.clear()
    results = parallel.process_map(recall, range(8), jobs=2, initializer=remember, initargs=("there",), chunksize=1, progress=False)
    assert {value for value, _ in results} == {"there"}
    assert os.getpid() not in {pid for _, pid in results}
    assert "value" not in _STATE


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_bad_jobs_are_named(bad):
    with pytest.raises(ParameterError, match=f"jobs must be an integer >= 1, got {bad!r}"):
        parallel.process_map(square_after, range(3), jobs=bad, progress=False)


def gone(pid: int) -> bool:
    """Whether a process no longer runs (a zombie waiting for a reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


PARENT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from instrclf import parallel

    def hang(i):
        Path(sys.argv[1], str(os.getpid())).write_text("")
        time.sleep(120)

    if __name__ == "__main__":
        parallel.process_map(hang, range(2), jobs=2, chunksize=1, progress=False)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers die with their parent only on Linux (prctl)")
def test_workers_die_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    pids = tmp_path / "pids"
    pids.mkdir()
    parent = subprocess.Popen([sys.executable, str(script), str(pids)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while len(list(pids.iterdir())) < 2:
            assert parent.poll() is None, "the parent exited before its workers started"
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.05)
        workers = [int(p.name) for p in pids.iterdir()]
        assert parent.pid not in workers and not any(gone(pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 5
        while not all(gone(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(gone(pid) for pid in workers), f"workers {workers} outlived their killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def fail_first_then_slow(x):
    """Item 0 fails at once; every other item takes a while, then leaves a mark in its folder."""
    folder, i = x
    if i == 0:
        raise ValueError("item 0 is bad")
    time.sleep(0.1)
    Path(folder, str(i)).write_text("")
    return i


def slow_mark(x):
    folder, i = x
    Path(folder, f"start-{i}-{os.getpid()}").write_text("")
    time.sleep(0.1)
    Path(folder, str(i)).write_text("")
    return i


def test_a_worker_failure_cancels_the_remaining_work(tmp_path):
    """The error comes back at once: the pool does not finish the other 60 items first."""
    items = [(str(tmp_path), i) for i in range(61)]
    with pytest.raises(ValueError, match="item 0 is bad"):
        parallel.process_map(fail_first_then_slow, items, jobs=2, chunksize=1, progress=False)
    time.sleep(0.3)  # work that was not cancelled would go on finishing items meanwhile
    done = len(list(tmp_path.iterdir()))
    assert done < 20, f"{done} of 60 items still ran after the failure"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_ctrl_c_cancels_the_pool_and_leaves_no_worker(tmp_path):
    """SIGINT to the parent while workers are busy: KeyboardInterrupt, no worker left, no further item done."""
    items = [(str(tmp_path), i) for i in range(60)]
    stop = threading.Event()

    def press_ctrl_c():
        """Once the workers are busy, SIGINT to this process's main thread (where Python raises it)."""
        deadline = time.monotonic() + 20
        while not any(tmp_path.glob("start-*")) and time.monotonic() < deadline and not stop.is_set():
            time.sleep(0.01)
        if not stop.is_set():
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            parallel.process_map(slow_mark, items, jobs=2, chunksize=1, progress=False)
    finally:
        stop.set()
        presser.join()
    workers = {int(p.name.split("-")[2]) for p in tmp_path.glob("start-*")}
    assert workers and os.getpid() not in workers
    assert all(gone(pid) for pid in workers), "a worker outlived the interrupted map"
    done = {p.name for p in tmp_path.iterdir() if not p.name.startswith("start-")}
    time.sleep(0.3)
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith("start-")} == done  # nothing runs on
    assert len(done) < 30


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups, fork")
def test_ctrl_c_at_a_terminal_is_the_parents_alone_to_report(tmp_path):
    """A terminal's Ctrl-C signals the whole process group, workers included: one interruption, no worker tracebacks."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from test_parallel import slow_mark
        from instrclf import parallel
        try:
            parallel.process_map(slow_mark, [({str(tmp_path)!r}, i) for i in range(200)], jobs=2, chunksize=1, progress=False)
        except KeyboardInterrupt:
            print("parent interrupted", file=sys.stderr)
            sys.exit(130)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, start_new_session=True, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len({p.name.split("-")[2] for p in tmp_path.glob("start-*")}) < 2 and time.monotonic() < deadline:  # both workers busy
        time.sleep(0.01)
    os.killpg(child.pid, signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert err.strip() == "parent interrupted", err


def test_without_jobs_the_work_uses_the_cores_this_process_may_use(monkeypatch):
    """Under taskset or a container's cpuset the machine has more cores than this process may run on."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert parallel.jobs_or_cores(None) == 1
    assert parallel.process_map(pid_of, range(4), progress=False) == [os.getpid()] * 4  # one core: no pool at all


def mark_started(item):
    folder, i = item
    Path(folder, str(i)).touch()
    return i


@pytest.mark.parametrize("chunksize", [1, 3])
def test_workers_run_only_a_few_chunks_ahead_of_a_slow_consumer(tmp_path, chunksize):
    """Results do not pile up: while the caller holds the first result, at most ``2 * jobs`` more chunks are done."""
    items = [(str(tmp_path), i) for i in range(60)]
    results = parallel.process_imap(mark_started, items, jobs=2, chunksize=chunksize, progress=False)
    assert next(results) == 0
    time.sleep(0.5)  # unbounded workers would finish all 60 meanwhile
    started = len(list(tmp_path.iterdir()))
    assert chunksize < started <= (1 + 2 * 2) * chunksize, f"{started} of 60 items ran ahead of the caller"
    assert list(results) == list(range(1, 60))
    assert len(list(tmp_path.iterdir())) == 60


# Hostile mutants, round 6 (benchmarks/hostile_mutants/round6): cases beside the tested ones.


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, as a user's is (tqdm hides its bar on anything else)."""

    def isatty(self):
        return True


def _terminal(monkeypatch):
    """sys.stderr as a terminal for one test, without tqdm's monitor thread: a thread left running in a
    process that later forks can leave a fork holding tqdm's lock for ever (mutmut forks from this process)."""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(tqdm, "monitor_interval", 0)
    return terminal


def square(x):
    return x * x


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("progress", [None, True, False])
def test_a_terminal_shows_the_bar_with_its_label_and_count_unless_progress_is_off(monkeypatch, jobs, progress):
    """``progress`` left out (None here) or True: "work: 100%|...| 5/5 [... it/s]" on a terminal; False: nothing."""
    terminal = _terminal(monkeypatch)
    kwargs = {} if progress is None else {"progress": progress}
    assert parallel.process_map(square, range(5), jobs=jobs, desc="work", **kwargs) == [0, 1, 4, 9, 16]
    shown = terminal.getvalue()
    if progress is False:
        assert shown == ""
    else:
        last = shown.replace("\n", "\r").strip("\r").split("\r")[-1]
        assert re.match(r"work: 100%\|.*\| 5/5 \[", last), last
        assert re.search(r"\d(it/s|s/it)\]$", last), last


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_bar_counts_in_the_unit_it_is_given(monkeypatch, jobs):
    terminal = _terminal(monkeypatch)
    assert parallel.process_map(square, range(3), jobs=jobs, desc="render", unit="note") == [0, 1, 4]
    last = terminal.getvalue().replace("\n", "\r").strip("\r").split("\r")[-1]
    assert re.match(r"render: 100%\|.*\| 3/3 \[.*\d(note/s|s/note)\]$", last), last


def test_the_generator_shows_a_bar_of_items_by_default(monkeypatch):
    """process_imap with neither progress nor unit: a bar on a terminal, counting items ("it")."""
    terminal = _terminal(monkeypatch)
    assert list(parallel.process_imap(square, range(3), jobs=1)) == [0, 1, 4]
    last = terminal.getvalue().replace("\n", "\r").strip("\r").split("\r")[-1]
    assert re.match(r"100%\|.*\| 3/3 \[.*\d(it/s|s/it)\]$", last), last


def test_one_item_runs_in_this_process_whatever_the_jobs():
    """The docstring's promise: with one item, no pool at all (its initializer runs here too)."""
    _STATE.clear()
    try:
        assert parallel.process_map(recall, [0], jobs=2, initializer=remember, initargs=("here",), progress=False) == [
            ("here", os.getpid())]
    finally:
        _STATE.clear()


def pid_after_a_while(_):
    time.sleep(0.01)
    return os.getpid()


def test_a_few_dozen_items_keep_every_worker_busy():
    """32 items of 10 ms on 2 workers: the default chunks (about 8 per worker) give both of them work."""
    pids = parallel.process_map(pid_after_a_while, range(32), jobs=2, progress=False)
    assert len(set(pids)) == 2 and os.getpid() not in pids


def test_without_sched_getaffinity_the_work_uses_the_cpu_count(monkeypatch):
    """macOS has no os.sched_getaffinity: the CPU count, or one job if even that is unknown."""
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert parallel.jobs_or_cores(None) == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert parallel.jobs_or_cores(None) == 1


def mark_worker(folder):
    Path(folder, str(os.getpid())).touch()


def test_jobs_is_the_number_of_worker_processes(tmp_path, monkeypatch):
    """jobs=3 on a machine that reports 8 cores: three workers, not one per core."""
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    results = parallel.process_map(square, range(30), jobs=3, initializer=mark_worker, initargs=(str(tmp_path),),
                                   chunksize=1, progress=False)
    assert results == [x * x for x in range(30)]
    assert len(list(tmp_path.iterdir())) == 3


def pid_after_a_pause_on_zero(x):
    if x == 0:
        time.sleep(0.5)
    return os.getpid()


def test_a_chunk_of_items_goes_to_one_worker():
    """chunksize=4: items 0-3 run in one worker, one after the other, even while item 0 keeps it busy."""
    pids = parallel.process_map(pid_after_a_pause_on_zero, range(8), jobs=2, chunksize=4, progress=False)
    assert len(set(pids[:4])) == 1 and len(set(pids[4:])) == 1
    assert os.getpid() not in pids


@pytest.mark.parametrize("n, chunk", [(10, 1), (160, 10), (2400, 64)])
def test_the_default_chunks_hold_an_eighth_of_a_workers_share_at_most_64_items(tmp_path, n, chunk):
    """Without chunksize, 2 jobs cut n items into chunks of n // 16 (1 to 64): a slow consumer holding the
    first result has exactly that chunk and 2 x 2 more done, no more (what a caller holds in memory)."""
    items = [(str(tmp_path), i) for i in range(n)]
    results = parallel.process_imap(mark_started, items, jobs=2, progress=False)
    assert next(results) == 0
    expected = (1 + 2 * 2) * chunk
    deadline = time.monotonic() + 10
    while len(list(tmp_path.iterdir())) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # anything beyond the bound would start meanwhile
    assert len(list(tmp_path.iterdir())) == expected
    assert list(results) == list(range(1, n))


def _with_default_start_method(method, run):
    previous = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method(method, force=True)
    try:
        return run()
    finally:
        multiprocessing.set_start_method(previous, force=True)


def test_workers_are_forked_where_the_platform_allows_even_if_its_default_is_spawn():
    """Forked workers start with the parent's state (no re-import): here a value set after import."""
    _STATE.clear()
    _STATE["value"] = "set in the parent"
    try:
        results = _with_default_start_method(
            "spawn", lambda: parallel.process_map(recall, range(4), jobs=2, chunksize=1, progress=False))
    finally:
        _STATE.clear()
    assert {value for value, _ in results} == {"set in the parent"}
    assert os.getpid() not in {pid for _, pid in results}


def test_without_fork_the_platforms_own_start_method_is_used(monkeypatch):
    """Where fork is not offered (Windows), the default start method runs the work (spawned workers re-import)."""
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    _STATE.clear()
    _STATE["value"] = "set in the parent"
    try:
        results = _with_default_start_method(
            "spawn", lambda: parallel.process_map(recall, range(4), jobs=2, chunksize=1, progress=False))
    finally:
        _STATE.clear()
    assert {value for value, _ in results} == {None}
    assert os.getpid() not in {pid for _, pid in results}


def square_slowly(x):
    time.sleep(0.04)
    return x * x


def test_the_bar_redraws_at_most_once_a_second(monkeypatch):
    """Five items in about 0.2 s: the bar is drawn at 0/5 and at 5/5, nothing between (a terminal's log stays short)."""
    terminal = _terminal(monkeypatch)
    parallel.process_map(square_slowly, range(5), jobs=1, desc="work")
    assert set(re.findall(r"\| (\d)/5 \[", terminal.getvalue())) == {"0", "5"}


# Hostile mutants, round 7 (benchmarks/hostile_mutants/round7): cases beside the tested ones.


def test_once_the_results_are_in_no_worker_or_pool_thread_is_left():
    """A stage calls process_imap several times (render, clean, reports): each call ends its pool
    completely before it returns, so workers and the pool's threads do not pile up."""
    def threads():  # tqdm's monitor thread lives on by design
        return {t for t in threading.enumerate() if t.name != "tqdm_monitor"}

    before = threads()
    for _ in range(3):
        assert list(parallel.process_imap(square_after, range(40), jobs=2, progress=False)) == [x * x for x in range(40)]
        assert multiprocessing.active_children() == []
        assert threads() == before
