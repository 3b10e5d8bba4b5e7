"""One order-preserving process map for the CPU-bound stages (render and clean).

Workers are forked where the platform allows it (fast, no re-import of ``__main__``) and
on Linux they ask the kernel to kill them when their parent dies, so a stage killed with
SIGKILL never leaves orphaned workers behind.
"""

import collections
import ctypes
import itertools
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
    return list(process_imap(fn, items, jobs=jobs, initializer=initializer, initargs=initargs, desc=desc, unit=unit,
                             chunksize=chunksize, progress=progress))


def _run_chunk(fn, chunk) -> list:
    """``fn`` over one chunk of items, in a worker."""
    return [fn(item) for item in chunk]


def process_imap(fn, items, *, jobs=None, initializer=None, initargs=(), desc=None, unit="it", chunksize=None, progress=True):
    """:func:`process_map` as a generator: each ``fn(item)`` is yielded, in order, as soon as it is ready.

    For results too large to hold all at once (clean's windows): the caller consumes each
    one before the next, and the workers run at most ``2 * jobs`` chunks ahead of it, so
    results never pile up in memory however slow the caller is. Parameters as
    :func:`process_map`.
    """
    items = list(items)
    jobs = min(jobs_or_cores(jobs), max(1, len(items)))
    bar = tqdm(total=len(items), desc=desc, unit=unit, mininterval=1.0, disable=None if progress else True)
    with bar:
        if jobs == 1:
            if initializer is not None:
                initializer(*initargs)
            for item in items:
                yield fn(item)
                bar.update(1)
            return
        if chunksize is None:
            chunksize = max(1, min(64, len(items) // (jobs * 8)))
        chunks = (items[i:i + chunksize] for i in range(0, len(items), chunksize))
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        context = multiprocessing.get_context(method)
        pool = context.Pool(jobs, initializer=_start, initargs=(initializer, initargs))
        try:
            ahead = collections.deque(pool.apply_async(_run_chunk, (fn, chunk)) for chunk in itertools.islice(chunks, 2 * jobs))
            while ahead:
                done = ahead.popleft().get()
                ahead.extend(pool.apply_async(_run_chunk, (fn, chunk)) for chunk in itertools.islice(chunks, 1))
                for result in done:
                    yield result
                    bar.update(1)
            pool.close()
        except BaseException:
            pool.terminate()  # a failure, Ctrl-C or a consumer that stopped early: do not wait for the rest
            raise
        finally:
            pool.join()
