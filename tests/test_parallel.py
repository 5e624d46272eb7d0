"""Per-item work spread over worker processes (edgeav.parallel): the same rows, in order."""

from __future__ import annotations

import numpy as np
import pytest

from edgeav import parallel
from edgeav.errors import EdgeAVError


def test_workers_give_the_rows_in_order(monkeypatch):
    # np.asarray: a function the spawned workers import by name (this module they could not:
    # an installed wheel ships a top-level ``tests`` package that shadows the repository's)
    items = [float(x * x) for x in range(parallel.MIN_ITEMS + 37)]
    monkeypatch.setenv("EDGEAV_WORKERS", "2")
    done = []
    out = parallel.map_rows(np.asarray, items, advance=done.append)
    assert out.tolist() == items
    assert (
        sum(done) == len(items) and len(done) > 2
    )  # chunks: the workers' path, progress per chunk
    monkeypatch.setenv("EDGEAV_WORKERS", "1")
    done.clear()
    assert np.array_equal(parallel.map_rows(np.asarray, items, advance=done.append), out)
    assert done == [len(items)]  # in this process, one piece


def test_a_failing_chunk_is_one_error(monkeypatch):
    monkeypatch.setenv("EDGEAV_WORKERS", "2")
    items = ["x"] * parallel.MIN_ITEMS
    with pytest.raises(TypeError):
        parallel.map_rows(float, items)  # float([...]) raises in a worker: raised here


def test_worker_count(monkeypatch):
    monkeypatch.delenv("EDGEAV_WORKERS", raising=False)
    assert parallel.worker_count(10) == 1  # not worth starting processes
    assert 1 <= parallel.worker_count(10_000) <= parallel.MAX_WORKERS
    monkeypatch.setenv("EDGEAV_WORKERS", "3")
    assert parallel.worker_count(10_000) == 3
    for bad in ("0", "two"):
        monkeypatch.setenv("EDGEAV_WORKERS", bad)
        with pytest.raises(EdgeAVError, match="EDGEAV_WORKERS"):
            parallel.worker_count(10_000)


def test_workers_start_at_the_niceness_asked_for():
    # a worker's start, in a real process of its own: its priority is lowered by `niceness`
    import os
    import subprocess
    import sys

    code = (
        "import os; from edgeav.parallel import _start_worker; "
        "before = os.nice(0); _start_worker(None, (), 5); print(os.nice(0) - before)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == min(5, 19 - os.nice(0))


def test_a_set_stop_event_stops_the_workers(monkeypatch):
    import threading

    monkeypatch.setenv("EDGEAV_WORKERS", "2")
    stop = threading.Event()
    stop.set()
    with pytest.raises(parallel.Stopped):
        parallel.map_rows(np.asarray, [1.0] * parallel.MIN_ITEMS, stop=stop)


def test_in_background_gives_the_result_and_stops_the_work_when_the_body_fails():
    import threading

    seen = {}

    def work(n, *, stop):
        seen["stop"] = stop
        return n * 2

    with parallel.in_background(work, 21) as future:
        assert future.result() == 42
    assert seen["stop"].is_set()

    started, release = threading.Event(), threading.Event()

    def waits(*, stop):
        seen["stop"] = stop
        started.set()
        stop.wait(10)
        release.set()

    with pytest.raises(KeyboardInterrupt), parallel.in_background(waits):
        started.wait(10)
        raise KeyboardInterrupt  # as Ctrl-C in the body would
    # leaving the body set the event and waited for the work to see it
    assert release.is_set() and seen["stop"].is_set()
