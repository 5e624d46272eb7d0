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
