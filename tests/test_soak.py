"""The soak benchmark, ``python -m edgeav.benchmarks.soak``, runs and reports its figures; and the
runtime benchmark, ``python -m edgeav.benchmarks.runtime``, likewise.

A short soak (300 ticks) on the session's real int8 bundle with the sources it generates itself;
the figures are checked for presence and sense, and the error count must be 0. The memory target
(growth <= 5 MB) is judged on the full 10,000-tick soak, not here: 300 ticks are too few for it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest


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
    assert set(res["latency_ms"]) >= {"capture", "frontend", "image", "audio", "fusion", "total"}
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


def test_runtime_benchmark_reports_its_figures(tiny_bundle, tmp_path):
    """python -m edgeav.benchmarks.runtime: cold start, the tick's overhead beside the model
    calls, ticks/s; the reference network given as a .tflite file (the figures are checked
    for consistency, not against the overhead target: speed depends on the machine)."""
    reference = tmp_path / "reference.tflite"
    from edgeav.bundle import read_bundle

    reference.write_bytes(read_bundle(tiny_bundle).model_bytes("image"))
    proc = subprocess.run(
        [sys.executable, "-m", "edgeav.benchmarks.runtime", str(tiny_bundle), "--json"]
        + ["--ticks", "20", "--runs", "1", "--reference-tflite", str(reference)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["cold_start_s"]["median"] > 0 and len(res["cold_start_s"]["runs"]) == 1
    stages = res["stages_ms"]
    assert 0 < res["overhead_ms"] < stages["compute"]
    per_tick = [t["compute"] - t["image"] - t["audio"] for t in res["tick_timings_ms"]]
    assert len(per_tick) == 20
    assert res["overhead_ms"] == pytest.approx(float(np.median(per_tick)))
    assert set(res["invoke_p50_ms"]) == {"bundle image model", str(reference)}
    assert res["overhead_to_reference"] == pytest.approx(
        res["overhead_ms"] / res["invoke_p50_ms"][str(reference)]
    )
    assert res["ticks"] == 20 and res["ticks_per_second"] > 0
    bad = subprocess.run(
        [sys.executable, "-m", "edgeav.benchmarks.runtime", "no-such.edgeav"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "no-such.edgeav" in bad.stderr
    assert "Traceback" not in bad.stderr
