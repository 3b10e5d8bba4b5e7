"""What every stage script and command shares: the exit style and the one-line summary.

A stage script parses its paths, reads params.yaml once, calls the package and ends in
``stage.run(name, work)``; ``instrclf classify`` and ``instrclf compare`` run inside
:func:`unix_exits` too. They behave like Unix tools:

- a project error becomes ``error: <stage>: <message>`` on stderr, exit status 1;
- a file-system error that the machine, not the code, causes (permission denied, read-only
  file system, disk full, a path through a file: :data:`ENVIRONMENT_ERRNOS`) becomes one
  line naming the path, exit status 1;
- Ctrl-C (SIGINT) prints ``<stage>: interrupted`` (``interrupted`` for a command), exit
  status 130 (128 + SIGINT, what a shell reports for a tool stopped by Ctrl-C);
- a reader of stdout that went away (``instrclf compare | head -3``) ends the command
  quietly, exit status 141 (128 + SIGPIPE): what ``set -o pipefail`` sees from any Unix tool
  whose reader closed early, so a cut-off output is never reported as a complete success;
- any other exception is a bug and keeps its traceback.

On success a stage prints its figures as one line, ``<stage>: key=value, key=value``.
"""

import contextlib
import errno
import os
import select
import signal
import sys

from .errors import InstrclfError

#: Exit status after Ctrl-C (SIGINT).
EXIT_INTERRUPTED = 128 + signal.SIGINT

#: Exit status when stdout's reader has gone (EPIPE).
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE

#: ``errno`` values of an OSError that the environment causes, reported as one line naming the path.
ENVIRONMENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR})


def summary(name: str, figures: dict) -> str:
    """The one-line summary of a stage: ``<name>: key=value, ...`` (floats to 4 significant digits)."""
    def fmt(value):
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    return f"{name}: " + ", ".join(f"{key}={fmt(value)}" for key, value in figures.items())


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError of :data:`ENVIRONMENT_ERRNOS`: the path at fault and the reason.

    A file that could not be created in a folder that refuses it (a read-only ``data/``)
    names the folder: ``data: folder not writable (Permission denied: data/.clean.tmp-1-x)``.
    """
    path = os.fsdecode(exc.filename)
    reason = exc.strerror or type(exc).__name__
    folder = os.path.dirname(path) or "."
    creating = exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and not os.path.lexists(path)
    if creating and os.path.isdir(folder):
        return f"{folder}: folder not writable ({reason}: {path})"
    if exc.filename2 is not None:
        return f"{path} -> {os.fsdecode(exc.filename2)}: {reason}"
    return f"{path}: {reason}"


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe or socket whose reading end is closed."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no fileno (replaced stdout) or no poll
        return False


@contextlib.contextmanager
def unix_exits(prefix: str = ""):
    """Turn Ctrl-C, a closed stdout and environment OSErrors into one line and a Unix exit status.

    Parameters
    ----------
    prefix : str
        Put before each line (``"train@conv1d-0: "``); empty for a command.

    Raises
    ------
    SystemExit
        :data:`EXIT_INTERRUPTED`, :data:`EXIT_BROKEN_PIPE`, or 1 for an OSError of
        :data:`ENVIRONMENT_ERRNOS` that names a path. Anything else passes through.
    """
    try:
        yield
    except KeyboardInterrupt:
        print(f"{prefix}interrupted", file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # another pipe (a worker's, a subprocess's) broke: not the reader going away
        # The Python docs' way: point stdout at devnull so that the interpreter's final flush
        # of what is still buffered does not raise a second BrokenPipeError at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        sys.exit(EXIT_BROKEN_PIPE)
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS or exc.filename is None:
            raise
        print(f"error: {prefix}{describe_os_error(exc)}", file=sys.stderr)
        sys.exit(1)


def run(name: str, work) -> None:
    """Run ``work()`` (which returns the stage's flat figures) and print its summary.

    Parameters
    ----------
    name : str
        The stage's name as in dvc.yaml (``train@conv1d-0``...).
    work : callable
        Does the stage's work; returns a dict of figures to print.
    """
    with unix_exits(f"{name}: "):
        try:
            figures = work()
        except InstrclfError as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            sys.exit(1)
        print(summary(name, figures or {}), flush=True)
