"""CPU affinity for the tick's threads (Linux; a no-op where the OS has no affinity calls).

When a tick overlaps its branches (:mod:`edgeav.runtime.worker`), :func:`pin_tick` puts the
thread that runs the tick and the worker that runs the image model's ``invoke`` on two CPUs of
their own: the last two the process may use that are not SMT siblings (a Raspberry Pi takes
most device interrupts on CPU 0, which then stays with the drivers). Helper threads (the file
decoder, the live camera reader, the audio-file replay) call :func:`helper_thread` when they
start and are kept off those two CPUs; with only two CPUs they share the tick's (the decoder at
a lower priority, so it works while the tick waits), never the worker's.

Left to the scheduler, on this 2-vCPU VM the file decoder often ran beside the invoke: the
overlapped tick of the demo bundle computed in 1.00-1.18 ms; pinned, in 0.89-1.05 ms (fourteen
runs each of ``python -m edgeav.benchmarks.runtime``, with and without ``--no-pin``; README).
Every call is best effort: an OS that refuses (a container's cpuset, an emulator) leaves the
threads where they were. Two pipelines pinned at once in one process share the same two CPUs.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Collection, Iterable

__all__ = [
    "Pinned",
    "choose_tick_cpus",
    "helper_thread",
    "pin_current_thread",
    "pin_tick",
    "process_cpus",
    "tick_cpus",
]

_HAVE_AFFINITY = hasattr(os, "sched_getaffinity") and hasattr(os, "sched_setaffinity")
# The CPUs this process may use, as the importing thread saw them (before any pinning).
_PROCESS_CPUS: frozenset[int] | None = (
    frozenset(os.sched_getaffinity(0)) if _HAVE_AFFINITY else None
)
_lock = threading.Lock()
_helpers: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
_reserved: list[tuple[int, int]] = []  # (tick CPU, worker CPU) of each tick pinned now


def process_cpus() -> int:
    """How many CPUs this process may use (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    if _PROCESS_CPUS is not None:
        return len(_PROCESS_CPUS)
    return os.cpu_count() or 1


def _siblings(cpu: int) -> frozenset[int]:
    """The CPUs sharing ``cpu``'s core (SMT threads, Linux sysfs); just ``cpu`` if unknown."""
    path = f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
    try:
        with open(path) as fh:
            text = fh.read().strip()
        out = set()
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    except (OSError, ValueError):
        return frozenset({cpu})
    return frozenset(out | {cpu})


def choose_tick_cpus(
    cpus: Iterable[int], siblings: Callable[[int], Collection[int]] = _siblings
) -> tuple[int, int] | None:
    """(tick CPU, worker CPU) from ``cpus``: the worker gets the last, the tick the last one
    left that is not an SMT sibling of it (two threads of one core would share its units);
    the last two if every CPU shares the worker's core. None with fewer than two CPUs."""
    order = sorted(cpus)
    if len(order) < 2:
        return None
    worker = order[-1]
    others = [c for c in order[:-1] if c not in siblings(worker)]
    return (others[-1] if others else order[-2]), worker


def tick_cpus() -> tuple[int, int] | None:
    """(CPU for the tick's thread, CPU for the worker) among the process's CPUs (see
    :func:`choose_tick_cpus`), or None with fewer than two CPUs or no affinity calls."""
    if _PROCESS_CPUS is None:
        return None
    return choose_tick_cpus(_PROCESS_CPUS)


def _set(tid: int, cpus: frozenset[int]) -> bool:
    try:
        os.sched_setaffinity(tid, cpus)
    except OSError:  # refused, or the thread has ended
        return False
    return True


def _helper_cpus() -> frozenset[int]:
    """Process CPUs minus the pinned ticks' CPUs; if that leaves none, minus the workers'."""
    assert _PROCESS_CPUS is not None
    free = _PROCESS_CPUS.difference(*_reserved)
    if free:
        return free
    return _PROCESS_CPUS.difference(worker for _, worker in _reserved) or _PROCESS_CPUS


def _place_helpers() -> None:
    cpus = _helper_cpus()
    for thread in list(_helpers):
        if thread.is_alive() and thread.native_id is not None:
            _set(thread.native_id, cpus)


def helper_thread() -> None:
    """Called by a helper thread as it starts: it runs where the tick's threads do not."""
    if _PROCESS_CPUS is None:
        return
    with _lock:
        _helpers.add(threading.current_thread())
        _set(threading.get_native_id(), _helper_cpus())


def pin_current_thread(cpu: int) -> bool:
    """Pin the calling thread to ``cpu`` (for the worker, as it starts); whether the OS agreed."""
    return _HAVE_AFFINITY and _set(0, frozenset({cpu}))


class Pinned:
    """The pinning done by :func:`pin_tick`; :meth:`undo` gives the tick's thread its CPUs back
    and lets the helpers onto the two CPUs again (idempotent, from any thread)."""

    def __init__(self, tick_tid: int, before: frozenset[int], cpus: tuple[int, int]) -> None:
        self.cpus = cpus
        self._tick_tid, self._before = tick_tid, before
        self._done = False

    def undo(self) -> None:
        with _lock:
            if self._done:
                return
            self._done = True
            _reserved.remove(self.cpus)
            _set(self._tick_tid, self._before)
            _place_helpers()


def pin_tick(tick_cpu: int, worker_tid: int, worker_cpu: int) -> Pinned | None:
    """Pin the calling thread (the tick's) to ``tick_cpu``, beside a worker that pinned itself
    to ``worker_cpu`` (:func:`pin_current_thread`), and move the helpers off both. None if the
    OS refuses; the worker then gets the calling thread's CPUs instead of its own."""
    if not _HAVE_AFFINITY:
        return None
    try:
        before = frozenset(os.sched_getaffinity(0))
    except OSError:
        if _PROCESS_CPUS is not None:
            _set(worker_tid, _PROCESS_CPUS)
        return None
    if not _set(0, frozenset({tick_cpu})):
        _set(worker_tid, before)
        return None
    cpus = (tick_cpu, worker_cpu)
    with _lock:
        _reserved.append(cpus)
        _place_helpers()
    return Pinned(threading.get_native_id(), before, cpus)
