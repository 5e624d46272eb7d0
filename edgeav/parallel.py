"""Per-item data preparation spread over the machine's cores (the laptop side only).

Training computes an audio front-end's output for every clip and for augmented copies of every
training clip: tens of thousands of independent calls of about 10 ms, each on one core. On a
machine with more than one core those calls are split into chunks and computed by worker
processes, each row from its own inputs only, so the result is the same as computing them in
order. Workers are spawned, not forked: they share no thread, lock or interpreter with the
parent (forked ones also ran LiteRT slower than the parent did here). A script that calls
training must therefore guard its top level with ``if __name__ == "__main__":``, as for any use
of :mod:`multiprocessing` with ``spawn``; edgeav's own commands do.

``EDGEAV_WORKERS`` sets the number of workers (1: no processes at all); the default is the
number of cores, at most :data:`MAX_WORKERS`. Workers ignore Ctrl-C (the parent stops them) and
use one BLAS thread each.

:func:`in_background` runs such work while the caller does something that leaves cores idle
(training a small image model keeps about 1.3 of 2 cores busy); its workers can run at a lower
priority (``niceness``), so that the caller's own threads come first.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError

#: The most worker processes used by default.
MAX_WORKERS = 8
#: Fewer items than this are computed in the calling process: starting spawned workers (Python,
#: NumPy, an interpreter each) costs 1-2 s, the work of a few hundred clips on one core.
MIN_ITEMS = 1000
#: Chunks per worker: small enough to keep every core busy to the end and the progress moving.
CHUNKS_PER_WORKER = 8


def worker_count(items: int, min_items: int = MIN_ITEMS) -> int:
    """How many processes compute ``items`` items: ``EDGEAV_WORKERS``, else the cores (at most
    :data:`MAX_WORKERS`); 1 for fewer than ``min_items`` items."""
    text = os.environ.get("EDGEAV_WORKERS", "").strip()
    if text:
        try:
            wanted = int(text)
        except ValueError:
            raise EdgeAVError(f"EDGEAV_WORKERS must be a whole number, got {text!r}") from None
        if wanted < 1:
            raise EdgeAVError(f"EDGEAV_WORKERS must be at least 1, got {wanted}")
    else:
        wanted = min(os.cpu_count() or 1, MAX_WORKERS)
    return 1 if items < min_items else wanted


def one_blas_thread() -> contextlib.AbstractContextManager:
    """Limit NumPy's BLAS to one thread (threadpoolctl; nothing without it). The limit holds
    from this call; leaving the returned context restores the previous one."""
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


class Stopped(Exception):
    """:func:`map_rows` stopped early because its ``stop`` event was set."""


def _start_worker(initializer: Callable[..., None] | None, args: tuple, niceness: int = 0) -> None:
    """A worker's start: Ctrl-C ignored, ``niceness`` added to its priority, one BLAS thread,
    then ``initializer``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if niceness:
        with contextlib.suppress(OSError):
            os.nice(niceness)
    # Every worker already has a core of its own: a BLAS that also starts a thread per core
    # (OpenBLAS's default) puts two workers' matrix products on the same cores, and they wait on
    # each other (the spectral statistics of audio-hybrid's input took 2.8x as long).
    one_blas_thread()
    if initializer is not None:
        initializer(*args)


def map_rows(
    compute: Callable[[Sequence[Any]], np.ndarray],
    items: Sequence[Any],
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    advance: Callable[[int], None] | None = None,
    niceness: int = 0,
    stop: threading.Event | None = None,
) -> np.ndarray:
    """``compute`` over ``items`` in chunks, the rows concatenated in the items' order.

    Args:
        compute: a module-level function (workers import it by name) taking a chunk of items and
            returning one row per item, as an array.
        items: the items, picklable.
        initializer, initargs: run once in each worker (and once here when no worker is used)
            before any chunk, e.g. to build a model the chunks share.
        advance: called with the number of items of each finished chunk (a progress bar).
        niceness: added to the workers' priority (Unix ``nice``), so that they take the cores
            only when nothing else wants them; not applied when the work stays in this process.
        stop: when set, the work stops at the next finished chunk and :class:`Stopped` is raised.
    """
    # a worker never starts workers of its own
    workers = 1 if multiprocessing.parent_process() else worker_count(len(items))
    if workers == 1:
        if initializer is not None:
            initializer(*initargs)
        out = compute(items)
        if advance is not None:
            advance(len(items))
        return out
    import concurrent.futures as cf  # noqa: PLC0415

    size = max(1, -(-len(items) // (workers * CHUNKS_PER_WORKER)))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    pool = cf.ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(initializer, initargs, niceness),
    )
    try:
        futures = {pool.submit(compute, chunk): k for k, chunk in enumerate(chunks)}
        results: list[np.ndarray | None] = [None] * len(chunks)
        for future in cf.as_completed(futures):
            if stop is not None and stop.is_set():
                raise Stopped
            k = futures[future]
            results[k] = future.result()
            if advance is not None:
                advance(len(chunks[k]))
    except cf.process.BrokenProcessPool as exc:
        raise EdgeAVError(f"a worker process died while preparing data: {exc}") from exc
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return np.concatenate(results)


@contextlib.contextmanager
def in_background(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[Future]:
    """``fn(*args, stop=EVENT, **kwargs)`` in a thread while the ``with`` body runs; yields its
    :class:`~concurrent.futures.Future` (``result()`` waits for it and raises what it raised).

    Leaving the body sets ``EVENT`` (``fn`` passes it to :func:`map_rows`, which then stops at
    its next chunk) and waits for the thread, so an error or Ctrl-C in the body does not leave
    work running behind it.
    """
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    stop = threading.Event()
    pool = ThreadPoolExecutor(1, thread_name_prefix="edgeav-background")
    future = pool.submit(fn, *args, stop=stop, **kwargs)
    try:
        yield future
    finally:
        stop.set()
        pool.shutdown(wait=True)
