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
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from edgeav.runtime.affinity import pin_current_thread

__all__ = ["Worker"]


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
            seq, fn, args = job
            try:
                self._done.put((seq, True, fn(*args)))
            except BaseException as exc:  # handed to the caller, who decides
                self._done.put((seq, False, exc))

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Start ``fn(*args)`` on the worker thread."""
        if self._closed:
            raise RuntimeError("worker is closed")
        self._seq += 1
        self._pending = True
        self._jobs.put((self._seq, fn, args))

    def result(self) -> Any:
        """Wait for the job submitted last; its return value, or its exception raised here."""
        if not self._pending:
            raise RuntimeError("no job submitted")
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
