"""One background thread that runs one job at a time for the pipeline's tick.

The tick's two branches are independent until the fusion: the image branch (preprocessing and
the image model) and the audio branch (features and the audio model). The pipeline preprocesses
the frame and sets the image model's input, hands the model's ``invoke`` to a :class:`Worker`
and computes the audio branch meanwhile; only then does it read the image model's output.
LiteRT's ``invoke`` runs without the GIL, so the two really overlap. Everything else that needs
the GIL stays on the tick's thread: with the preprocessing on the worker too, the two threads
took turns at the GIL and the tick was slower. The worker can be pinned to a CPU of its own
(``cpu``; the pipeline pins the tick's thread to another, see :mod:`edgeav.runtime.affinity`).
``python -m edgeav.benchmarks.runtime`` measures overlapped against serial ticks.

Results come back in order and are matched to their job, so a wait cut short (Ctrl-C, SIGTERM)
never hands a stale result to a later tick; an exception in the job is re-raised in the caller.

Waking a thread that sleeps on a queue costs tens of microseconds where CPUs idle deeply (in a
VM here: about 40 µs for the thread that wakes it and 60-90 µs before the woken one runs, for
each of the two hand-overs of a tick whose parts sum to 0.6 ms). So, when ``edgeav._spin`` is
built, the two threads spin instead where a hand-over is imminent: :meth:`Worker.arm` (at the
start of a tick) has the worker spin, without the GIL, until :meth:`Worker.submit` bumps a
counter (at most :data:`ARM_SPIN_S`), and :meth:`Worker.result` spins until the worker bumps
its own (at most :data:`RESULT_SPIN_S`) before either blocks as usual. The counters only signal:
jobs and results still travel through the queues.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeav.runtime.affinity import pin_current_thread

try:
    from edgeav._spin import wait_changed
except ImportError:  # no compiler at install: hand-overs only block
    wait_changed = None

__all__ = ["ARM_SPIN_S", "RESULT_SPIN_S", "Worker"]

#: How long an armed worker spins for its job (a tick's capture is shorter, live).
ARM_SPIN_S = 0.005
#: How long :meth:`Worker.result` spins for the job's end before it blocks (bounds the CPU a
#: long invoke would cost the caller's core).
RESULT_SPIN_S = 0.001

_ARM = object()  # a queue item that makes the worker spin for the next job
_SUBMITTED, _FINISHED = 0, 1  # the two counters


class Worker:
    """A daemon thread that runs submitted callables one at a time.

    ``cpu`` pins the thread to that CPU (best effort, see :attr:`cpu`). ``submit(fn, *args)``
    starts a job; ``result()`` waits for the job submitted last and returns
    its value or raises its exception (the result of a job whose wait was interrupted is dropped
    when it arrives). ``close()`` ends the thread (idempotent).
    """

    def __init__(self, name: str = "edgeav-worker", cpu: int | None = None) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        #: jobs submitted (written by the caller) and finished (by the worker), for the spins
        self._counters = np.zeros(2, dtype=np.int64)
        self._armed_at = 0
        self._armed = False  # an _ARM is queued or spinning (one at a time: they cannot pile up)
        #: spin at hand-overs (False: only block, as without edgeav._spin)
        self.spin = wait_changed is not None
        self._seq = 0  # number of the latest job submitted
        self._pending = False
        #: the CPU the thread is pinned to (None: not asked, or the OS refused)
        self.cpu: int | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(cpu,), name=name, daemon=True)
        self._thread.start()
        self._started.wait()
        #: the thread's id in the OS (for its CPU affinity)
        self.native_id: int | None = self._thread.native_id
        self._closed = False

    def _serve(self, cpu: int | None) -> None:
        if cpu is not None and pin_current_thread(cpu):
            self.cpu = cpu
        self._started.set()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if job is _ARM:  # the job is on its way: wait for it awake
                wait_changed(self._counters, _SUBMITTED, self._armed_at, ARM_SPIN_S)
                self._armed = False
                continue
            seq, fn, args = job
            try:
                self._done.put((seq, True, fn(*args)))
            except BaseException as exc:  # handed to the caller, who decides
                self._done.put((seq, False, exc))
            self._counters[_FINISHED] = seq

    def arm(self) -> None:
        """Tell the worker a job is coming soon: it wakes now and spins for it (up to
        :data:`ARM_SPIN_S`), so that :meth:`submit` finds it awake. No-op without the spin."""
        if self.spin and not self._closed and not self._armed:
            self._armed = True
            self._armed_at = int(self._counters[_SUBMITTED])
            self._jobs.put(_ARM)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Start ``fn(*args)`` on the worker thread."""
        if self._closed:
            raise RuntimeError("worker is closed")
        self._seq += 1
        self._pending = True
        self._jobs.put((self._seq, fn, args))
        self._counters[_SUBMITTED] = self._seq  # after the put: a spinning worker then finds it

    def result(self) -> Any:
        """Wait for the job submitted last; its return value, or its exception raised here."""
        if not self._pending:
            raise RuntimeError("no job submitted")
        finished = int(self._counters[_FINISHED])
        if self.spin and finished != self._seq:
            wait_changed(self._counters, _FINISHED, finished, RESULT_SPIN_S)
        while True:
            seq, ok, value = self._done.get()
            if seq == self._seq:  # older results belong to waits that were interrupted
                break
        self._pending = False
        if not ok:
            raise value
        return value

    def drain(self) -> None:
        """Wait for the job submitted last, whatever its outcome (for error paths)."""
        if self._pending:
            try:
                self.result()
            except Exception:  # the caller is already handling another error
                pass

    def close(self, timeout: float = 5.0) -> None:
        """Let the running job finish and end the thread."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
