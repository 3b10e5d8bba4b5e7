"""One order-preserving process map for the CPU-bound stages (render and clean).

Workers are forked where the platform allows it (fast, no re-import of ``__main__``) and
on Linux they ask the kernel to kill them when their parent dies, so a stage killed with
SIGKILL never leaves orphaned workers behind.
"""

import ctypes
import multiprocessing
import os
import signal
import sys

from tqdm import tqdm

from .errors import ParameterError

#: prctl option that delivers a signal to a process when its parent exits (Linux).
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent exits; no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def _start(initializer, initargs) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if initializer is not None:
        initializer(*initargs)


def jobs_or_cores(jobs) -> int:
    """``jobs`` if given, else the number of cores this process may use."""
    if jobs is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ParameterError(f"jobs must be an integer >= 1, got {jobs!r}")
    return jobs


def process_map(fn, items, *, jobs=None, initializer=None, initargs=(), desc=None, unit="it", chunksize=None, progress=True):
    """``[fn(item) for item in items]`` in worker processes, in order, with a progress bar.

    Parameters
    ----------
    fn : callable
        A module-level function (picklable) of one item.
    items : sequence
        The work; results come back in this order whatever the number of workers.
    jobs : int or None
        Worker processes; ``None`` uses every available core. With one job (or one item)
        everything runs in this process, ``initializer`` included.
    initializer, initargs
        Run once in every worker before its first item (e.g. load a synthesiser).
    desc, unit : str
        Progress-bar labels (tqdm on stderr; hidden when stderr is not a terminal).
    chunksize : int or None
        Items sent to a worker at a time; ``None`` picks about 8 chunks per worker.
    progress : bool
        Show the progress bar at all.

    Returns
    -------
    list
        ``fn(item)`` for every item, in order. An exception in a worker is raised here,
        and the remaining work is cancelled.
    """
    items = list(items)
    jobs = min(jobs_or_cores(jobs), max(1, len(items)))
    bar = tqdm(total=len(items), desc=desc, unit=unit, mininterval=1.0, disable=None if progress else True)
    with bar:
        if jobs == 1:
            if initializer is not None:
                initializer(*initargs)
            results = []
            for item in items:
                results.append(fn(item))
                bar.update(1)
            return results
        if chunksize is None:
            chunksize = max(1, min(64, len(items) // (jobs * 8)))
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        context = multiprocessing.get_context(method)
        pool = context.Pool(jobs, initializer=_start, initargs=(initializer, initargs))
        try:
            results = []
            for result in pool.imap(fn, items, chunksize=chunksize):
                results.append(result)
                bar.update(1)
            pool.close()
        except BaseException:
            pool.terminate()  # a failure or Ctrl-C: do not wait for the rest
            raise
        finally:
            pool.join()
        return results
