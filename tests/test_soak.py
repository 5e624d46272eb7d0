"""The soak benchmark (issue 9): ``python -m edgeav.benchmarks.soak`` runs and reports its figures;
and the runtime benchmark (issue 6), ``python -m edgeav.benchmarks.runtime``, likewise.

A short soak (300 ticks) on the session's real int8 bundle with the sources it generates itself;
the figures are checked for presence and sense, and the error count must be 0. The memory target
(growth <= 5 MB) is judged on the full 10,000-tick soak, not here: 300 ticks are too few for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def _soak(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeav.benchmarks.soak", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_soak_reports_memory_errors_and_speed(tiny_bundle):
    proc = _soak(str(tiny_bundle), "--ticks", "300", "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["errors"] == 0 and res["first_error"] is None
    assert res["ticks"] == 300 and res["warmup_ticks"] == 50
    assert res["ticks_labelled"] == 300  # every tick produced a fused prediction
    assert res["modalities"] == ["image", "audio"]
    for key in ("rss_warmup_mb", "rss_end_mb", "rss_max_mb"):
        assert 10 < res[key] < 4096, key
    assert abs(res["rss_growth_mb"] - (res["rss_end_mb"] - res["rss_warmup_mb"])) <= 0.011
    assert res["rss_max_mb"] >= res["rss_end_mb"]
    assert res["ticks_per_second"] > 0 and res["seconds"] > 0
    assert set(res["latency_ms"]) >= {"capture", "features", "image", "audio", "fusion", "total"}
    assert "tensorflow" not in proc.stderr.lower()


def test_soak_table_for_a_person_and_bad_bundle(tiny_bundle, tmp_path):
    proc = _soak(str(tiny_bundle), "--ticks", "60", "--warmup", "10")
    assert proc.returncode == 0, proc.stderr
    for words in ("rss after warm-up (10 ticks)", "rss growth", "errors: 0", "ticks per second"):
        assert words in proc.stdout, words
    bad = tmp_path / "bad.edgeav"
    bad.write_bytes(b"no zip")
    proc = _soak(str(bad), "--ticks", "10")
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "bad.edgeav" in proc.stderr and "Traceback" not in proc.stderr


def test_runtime_benchmark_reports_its_figures(tiny_bundle):
    """python -m edgeav.benchmarks.runtime: cold start, tick against its parts (overlapped and
    serial) and throughput, measured (the targets are for the note, not asserted here)."""
    proc = subprocess.run(
        [sys.executable, "-m", "edgeav.benchmarks.runtime", str(tiny_bundle), "--json"]
        + ["--ticks", "20", "--runs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["cold_start_s"]["median"] > 0 and len(res["cold_start_s"]["runs"]) == 1
    assert res["parts_sum_ms"] > 0 and res["tick_to_parts_ratio"] > 0
    assert res["ticks_per_second"] > 0
    two_cpus = len(os.sched_getaffinity(0)) >= 2 if hasattr(os, "sched_getaffinity") else False
    assert res["overlap"] is two_cpus
    if res["overlap"]:
        assert res["serial_tick_to_parts_ratio"] > 0
    assert isinstance(res["spin"], bool) and (res["spin"] is False or res["pinned_cpus"])
    bad = subprocess.run(
        [sys.executable, "-m", "edgeav.benchmarks.runtime", "no-such.edgeav"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "no-such.edgeav" in bad.stderr
    assert "Traceback" not in bad.stderr
