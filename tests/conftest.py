"""Fixtures shared by the test modules."""

import os
import signal
import subprocess
import sys

import pytest
from hypothesis import settings as hypothesis_settings

# Property tests (Hypothesis) repeat exactly in CI: examples derived from each test's source,
# no example database carried between runs, no per-example deadline (TensorFlow's first call
# is slow). Each test sets its own max_examples.
hypothesis_settings.register_profile("instrclf", derandomize=True, database=None, deadline=None, print_blob=True)
hypothesis_settings.load_profile("instrclf")

# The tests of Ctrl-C send SIGINT to this process and to the processes it starts. A shell that
# starts a job in the background (`make test &`, some CI runners) hands it SIGINT ignored, an
# ignored signal stays ignored across exec, and Python then never raises KeyboardInterrupt:
# give this process, and so every child it starts, the default Ctrl-C of an interactive shell.
signal.signal(signal.SIGINT, signal.default_int_handler)

# The tests make DVC projects of their own (`dvc init`), whose config does not turn analytics off
# as the project's .dvc/config does: every dvc command would start a daemon trying to reach
# analytics.dvc.org. Off for this process and everything it starts.
os.environ["DVC_NO_ANALYTICS"] = "1"


@pytest.fixture(autouse=True)
def instrclf_cache(tmp_path, monkeypatch):
    """Point the download cache ($INSTRCLF_CACHE) at a fresh folder, never the user's cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("INSTRCLF_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def dead_pid():
    """The PID of a process that has exited (started and waited for here): whatever it left is stale."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid
