"""SIGKILL each stage kind of the tiny pipeline mid-work: the next `dvc repro` finishes and leaves nothing behind.

One tiny repository (test_pipeline's files and ``tiny_params`` with one model) is shared by
the cases, which run in pipeline order: each starts ``dvc repro <stage>`` in a new session,
waits for a moment when the stage is surely at work, SIGKILLs the whole process group, then
reruns ``dvc repro <stage>`` and checks that it succeeds without any manual step (DVC itself
drops the dead process's entries from ``.dvc/tmp/rwlock``), that ``dvc status`` is clean, that
no temporary file or folder of :mod:`instrclf.io` (or of :func:`instrclf.models.save`) is left
anywhere, and that no process of the killed run survived.

Where a stage's work lasts seconds (download's render pool, plot's images) the trigger is its
own progress: its temporary folder with files in it. Where the moment is too short to hit by
polling (clean's pool works a third of a second here, one epoch is a second, a model save or
the whole summary stage a fraction of one), the stage is held there instead: a
``sitecustomize`` on the killed run's PYTHONPATH (SITECUSTOMIZE below) makes the stage sleep
at that point, after touching a marker file the test waits for.
"""

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import test_pipeline
from test_pipeline import BIN, run, tiny_params

pytestmark = test_pipeline.pytestmark  # slow; skipped without the Debian SoundFonts

MODEL = "baseline"  # the fastest model; two folds as in test_pipeline

#: A name :mod:`instrclf.io` (``.<name>.tmp-<pid>-*``) or :func:`instrclf.models.save` gives a temporary.
TEMP_NAME = re.compile(r"\..+\.tmp-\d+.*")

#: Imported by every Python process of the killed run (it is on their PYTHONPATH); acts only in a
#: stage script, and only as KILLTEST_HOLD (``<kind>:<what>::<marker>``) says: it makes the stage
#: create ``<marker>`` at one precise point of its work, then sleep there until it is killed.
SITECUSTOMIZE = '''
import os, sys

_hold = os.environ.get("KILLTEST_HOLD")
if _hold and sys.argv and sys.argv[0].startswith("stages/"):
    import contextlib, time

    _spec, _marker = _hold.split("::")
    _kind, _, _what = _spec.partition(":")

    def _stop():
        open(_marker, "w").close()
        time.sleep(600)

    if _kind == "write":  # writing output <what>: its temporary sibling was just made
        from instrclf import io

        def _holding(fn):
            @contextlib.contextmanager
            def wrapper(path, *args, **kwargs):
                with fn(path, *args, **kwargs) as tmp:
                    if str(path) == _what:
                        _stop()
                    yield tmp
            return wrapper

        io.atomic_dir, io.atomic_file = _holding(io.atomic_dir), _holding(io.atomic_file)
    elif _kind == "pool":  # every instrclf.parallel worker, once it has done its first item
        from instrclf import parallel

        _process_imap = parallel.process_imap  # process_map runs through it too

        def _first_then_stop(pair):
            fn, item = pair
            fn(item)
            _stop()

        parallel.process_imap = lambda fn, items, **kw: _process_imap(_first_then_stop, [(fn, i) for i in items], **kw)
    elif _kind == "epoch":  # dvclive logging the first epoch, inside Keras's fit
        from dvclive import Live

        _next_step = Live.next_step

        def _next_step_then_stop(self):
            _next_step(self)
            _stop()

        Live.next_step = _next_step_then_stop
'''


@dataclass
class Case:
    stage: str
    #: Glob (relative to the repo) whose first match means the stage is at work (its margin is seconds).
    ready: str | None = None
    #: Or: where the stage is held (see SITECUSTOMIZE), a moment too short to hit by polling.
    hold: str | None = None
    #: Whether the killed run must have left a temporary behind (the rerun must remove it).
    leaves_temp: bool = True
    #: Whether the stage is killed with its instrclf.parallel pool at work (where there are 2+ cores).
    pool: bool = False


CASES = [
    Case("download", ready="data/.raw.tmp-*/audio/**/*.wav", pool=True),  # the render pool is writing notes
    Case("clean", hold="pool", pool=True),  # the pool is writing windows (all of it lasts a third of a second)
    Case("features", hold="write:data/features"),  # the spectrograms computed, their folder being written
    Case(f"train@{MODEL}-0", hold="epoch", leaves_temp=False),  # fitting: no temporary yet
    Case(f"train@{MODEL}-1", hold=f"write:models/folds/{MODEL}/1.json"),  # in models.save: the .keras temp exists
    Case(f"predict@{MODEL}", hold=f"write:models/{MODEL}.json"),  # predictions written, saving the ensemble
    Case("summary", hold="write:metrics"),  # its whole run is a fraction of a second
    Case("plot", ready="plots/.images.tmp-*"),  # drawing the images
    Case(f"report@{MODEL}", hold="pool", pool=True),  # the pool is writing the wrong notes' media
]


def _env(**extra) -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1", **extra}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The tiny project committed to git, nothing reproduced yet (test_pipeline's make_repo, minus its repro)."""
    dest = tmp_path_factory.mktemp("kills") / "project"
    dest.mkdir()

    def no_repro(cmd, cwd, check=True, **kwargs):
        if list(cmd[:2]) == [BIN / "dvc", "repro"]:
            return None
        return run(cmd, cwd, check, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(test_pipeline, "run", no_repro)
        test_pipeline.make_repo(dest, tiny_params(models=[MODEL]))
    return dest


def temporaries(repo: Path) -> list:
    """Every temporary file or folder in the repo, outside .git and .dvc."""
    found = []
    for top, dirs, files in os.walk(repo):
        if Path(top) == repo:
            dirs[:] = [d for d in dirs if d not in (".git", ".dvc")]
        found += [Path(top, n).relative_to(repo) for n in dirs + files if TEMP_NAME.fullmatch(n)]
    return sorted(found)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def _belongs(proc: psutil.Process, repo: Path, session: int) -> bool:
    """Whether a live process was started by the killed run: its session, or its cwd or command line in the repo."""
    try:
        if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if os.getsid(proc.pid) == session:
            return True
        return str(repo) in proc.cwd() or str(repo) in _cmdline(proc)
    except (psutil.Error, OSError):
        return False


def survivors(repo: Path, session: int, known: list, grace: float = 5.0) -> list:
    deadline = time.monotonic() + grace
    while True:
        left = [p for p in known if _alive(p)]
        left += [p for p in psutil.process_iter() if p not in left and _belongs(p, repo, session)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def kill_mid_work(repo: Path, case: Case, scratch: Path, timeout: float = 300) -> tuple:
    """Start ``dvc repro <stage>``, wait until the stage is at work, SIGKILL its process group.

    Returns the killed run's process-group id and every process it had at the kill.
    """
    env = _env()
    if case.hold:
        (scratch / "site").mkdir(exist_ok=True)
        (scratch / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
        marker = scratch / "held"  # outside the repo
        path = os.pathsep.join(filter(None, [str(scratch / "site"), os.environ.get("PYTHONPATH")]))
        env |= {"PYTHONPATH": path, "KILLTEST_HOLD": f"{case.hold}::{marker}"}

        def ready():
            return marker.exists()
    else:
        def ready():
            return next(repo.glob(case.ready), None) is not None

    log = scratch / "killed.log"
    with open(log, "wb") as out:
        dvc = subprocess.Popen(
            [BIN / "dvc", "repro", case.stage], cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if dvc.poll() is not None:
                pytest.fail(f"dvc repro {case.stage} ended ({dvc.returncode}) before the kill:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{case.stage} did not reach its kill point in {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.02)
        procs = [psutil.Process(dvc.pid), *psutil.Process(dvc.pid).children(recursive=True)]
        script = f"stages/{case.stage.split('@')[0]}.py"
        stage = [p for p in procs if _cmdline(p).split()[1:2] == [script]]  # the stage and its pool workers
        assert stage, f"{script} is not running: {[_cmdline(p) for p in procs]}"
        if case.pool and len(os.sched_getaffinity(0)) > 1:
            assert len(stage) >= 3, f"no pool at work: {[_cmdline(p) for p in procs]}"
        os.killpg(dvc.pid, signal.SIGKILL)
        dvc.wait(timeout=30)
    finally:
        if dvc.poll() is None:  # a failed wait above: never leave the run behind
            os.killpg(dvc.pid, signal.SIGKILL)
            dvc.wait(timeout=30)
    return dvc.pid, procs


@pytest.mark.parametrize("case", CASES, ids=[c.stage for c in CASES])
def test_a_killed_stage_reruns_cleanly(repo, case, tmp_path):
    session, procs = kill_mid_work(repo, case, tmp_path)

    left = survivors(repo, session, procs)
    assert not left, f"processes outlived the killed run: {[(p.pid, _cmdline(p)) for p in left]}"
    stale = temporaries(repo)
    if case.leaves_temp:
        assert stale, "the kill left no temporary: it did not hit the stage mid-work"
    # The killed dvc still holds the stage's paths in its rwlock; DVC drops a dead PID's entries itself.
    rwlock = json.loads((repo / ".dvc/tmp/rwlock").read_text())
    assert session in {info["pid"] for info in rwlock["write"].values()}, rwlock

    again = run([BIN / "dvc", "repro", case.stage], repo, timeout=600)
    assert "had been killed. Auto removed it from the lock file" in again.stderr
    status = run([BIN / "dvc", "status", "--with-deps", case.stage], repo).stdout
    assert "up to date" in status.lower(), status
    assert temporaries(repo) == [], f"left behind (before the rerun: {stale})"
    assert not survivors(repo, session, [], grace=0)


def test_after_every_kill_the_whole_pipeline_is_up_to_date(repo):
    """Run last: every stage was killed once and rerun; nothing is left to do, and nothing is left over."""
    run([BIN / "dvc", "repro"], repo, timeout=600)
    assert "up to date" in run([BIN / "dvc", "status"], repo).stdout.lower()
    assert temporaries(repo) == []
    assert json.loads((repo / f"metrics/{MODEL}.json").read_text())["folds"] == 2
    # Read entries of killed runs on paths nobody writes again (their stages' deps) stay in the
    # rwlock; harmless: a writer of such a path drops a dead PID's entry as above.
    rwlock = json.loads((repo / ".dvc/tmp/rwlock").read_text())
    assert rwlock["write"] == {}
    assert not [info for infos in rwlock["read"].values() for info in infos if psutil.pid_exists(info["pid"])]
