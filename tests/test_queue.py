"""`dvc exp run --queue` + `dvc queue start --jobs 2` on the tiny project: two experiments side by side.

What the queue needs here: nothing special, with one trap. ``dvc queue start`` returns at once:
each Celery worker is forked into its own process group (same session) and logs to
``.dvc/tmp/exps/celery/dvc-exp-worker-<n>.out``; each experiment runs in its own copy of the
repository under ``.dvc/tmp/exps``; an idle worker exits by itself about 10 s after the queue
empties (``dvc queue stop`` asks it to exit now). The trap: the process that spawns a worker
keeps ``dvc queue start``'s stdout and stderr open until that worker exits, so a caller that
reads them through a pipe (``subprocess.run(capture_output=True)``, ``$(dvc queue start)``, a CI
step piping its log) waits for the whole queue. Send them to a file or /dev/null instead.

The test polls ``dvc queue status`` with a bound and stops (``--kill``) the workers whatever happens.
"""

import json
import os
import subprocess
import time

import psutil
import pytest
import test_pipeline
from test_pipeline import BIN, make_repo, run, tiny_params

pytestmark = test_pipeline.pytestmark  # slow; skipped without the Debian SoundFonts

MODEL = "baseline"
#: One experiment per test fold: each reruns only predict, summary and plot (its train stage is the base's).
EXPERIMENTS = {"fold0": 0, "fold1": 1}
DONE = {"Success", "Failed"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The tiny project reproduced once and committed: the queue's base, every output in the cache."""
    dest = make_repo(tmp_path_factory.mktemp("queue") / "project", tiny_params(models=[MODEL]))
    run(["git", "add", "-A"], dest)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run"], dest)
    return dest


def _env() -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def queue_states(repo) -> dict:
    """``{experiment name: status}`` from ``dvc queue status`` (rows ``<task> <name> <created> <status>``)."""
    states = {}
    for line in run([BIN / "dvc", "queue", "status"], repo).stdout.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[1] in EXPERIMENTS:
            states[parts[1]] = parts[-1]
    return states


def _ours(proc: psutil.Process, repo) -> bool:
    """A queue worker or experiment of this repository (their working folder lies in it)."""
    try:
        return proc.pid != os.getpid() and proc.status() != psutil.STATUS_ZOMBIE and str(repo) in proc.cwd()
    except psutil.Error:
        return False


def stop_workers(repo, timeout: float = 60) -> list:
    """``dvc queue stop --kill``, then wait for every process working in ``repo`` to exit; kill stragglers.

    Returns the processes that had to be killed.
    """
    run([BIN / "dvc", "queue", "stop", "--kill"], repo, check=False, timeout=120)
    deadline = time.monotonic() + timeout
    while (left := [p for p in psutil.process_iter() if _ours(p, repo)]) and time.monotonic() < deadline:
        time.sleep(0.5)
    for proc in left:
        proc.kill()
    return left


def test_two_queued_experiments_run_side_by_side_and_both_have_metrics(repo, tmp_path):
    log = tmp_path / "queue-start.log"
    for name, fold in EXPERIMENTS.items():
        run([BIN / "dvc", "exp", "run", "--queue", "-n", name, "-S", f"split.test_folds=[{fold}]"], repo)
    assert queue_states(repo) == dict.fromkeys(EXPERIMENTS, "Queued")

    most_running = 0
    try:
        # Into a file, not a pipe: reading a pipe to its end would wait for the workers (see above).
        with open(log, "wb") as out:
            started = subprocess.run(
                [BIN / "dvc", "queue", "start", "--jobs", "2"], cwd=repo, env=_env(), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, timeout=120, check=False,
            )
        assert started.returncode == 0, log.read_text()
        deadline = time.monotonic() + 480
        while True:
            states = queue_states(repo)
            most_running = max(most_running, list(states.values()).count("Running"))
            if len(states) == len(EXPERIMENTS) and set(states.values()) <= DONE:
                break
            assert time.monotonic() < deadline, f"the queue did not finish in time: {states}"
            time.sleep(3)  # each `dvc queue status` costs a second of CPU the experiments need
    finally:
        stragglers = stop_workers(repo)
    if states != dict.fromkeys(EXPERIMENTS, "Success"):
        logs = {name: run([BIN / "dvc", "queue", "logs", name], repo, check=False).stdout[-2000:] for name in EXPERIMENTS}
        pytest.fail(f"{states}\n{logs}")
    assert most_running == 2, "the two experiments never ran at the same time"
    assert not stragglers, f"workers did not stop: {[p.pid for p in stragglers]}"

    shown = json.loads(run([BIN / "dvc", "exp", "show", "--json"], repo).stdout)
    revs = {rev["name"]: rev for commit in shown for exp in commit.get("experiments") or [] for rev in exp["revs"]}
    assert set(EXPERIMENTS) <= set(revs), sorted(revs)
    for name, fold in EXPERIMENTS.items():
        data = revs[name]["data"]
        assert revs[name].get("error") is None, revs[name]
        assert data["params"]["params.yaml"]["data"]["split"]["test_folds"] == [fold]
        metrics = data["metrics"][f"metrics/{MODEL}.json"]["data"]
        assert metrics["folds"] == 1 and 0.0 <= metrics["file_accuracy_mean"] <= 1.0, metrics
    # The base's workspace is untouched by the experiments: still up to date with the base commit.
    assert "up to date" in run([BIN / "dvc", "status"], repo).stdout.lower()
