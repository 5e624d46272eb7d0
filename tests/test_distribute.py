"""``edgeav train --strategy``: mirrored over two logical CPU devices in one process, and two
multi-worker processes on 127.0.0.1, each against a single-device run of the same data.

Every training here is a real ``edgeav train`` process: logical devices and the multi-worker
runtime can only be set up before TensorFlow's first operation, so they cannot share the test
process's TensorFlow.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import media
import pytest

from edgeav.distribute import CPU_DEVICES_ENV

CLASSES = media.BAR_CLASSES
#: Accuracy a distributed run may lose against the single-device one: 3 of the 30 test samples.
NOISE = 0.1
TRAIN_ARGS = (
    "--audio-model",
    "audio-mlp",
    "--input-size",
    "32",
    "--epochs",
    "6",
    "--triplet-epochs",
    "1",
    "--head-epochs",
    "3",
    "--batch-size",
    "8",
    "--audio-augment",
    "0",
    "--json",
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", CPU_DEVICES_ENV)}
    return {**env, **extra}


def _train(data: Path, out: Path, *args: str, env: dict[str, str] | None = None):
    cmd = [sys.executable, "-m", "edgeav", "train", str(data), "--out", str(out), *args]
    return subprocess.Popen(
        [*cmd, *TRAIN_ARGS],
        env=env or _env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> dict:
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-2000:]
    return json.loads(stdout)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _test_accuracy(metrics: dict) -> dict[str, float]:
    return {m: metrics["step2"]["accuracy"]["test"][m] for m in ("image", "audio", "fused")}


def _assert_within_noise(metrics: dict, single: dict) -> None:
    got, ref = _test_accuracy(metrics), _test_accuracy(single)
    for modality in ref:
        assert got[modality] >= ref[modality] - NOISE, (modality, got, ref)


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """The data set and the single-device run's metrics (and its wall time)."""
    root = tmp_path_factory.mktemp("distribute")
    data = media.write_bars_dataset(root / "data", {"train": 50, "val": 6, "test": 10})
    t0 = time.perf_counter()
    metrics = _finish(_train(data, root / "one", "--strategy", "one"))
    assert metrics["distribution"]["replicas"] == 1
    # the data is learnable in these few epochs, so "within noise" below means something
    assert min(_test_accuracy(metrics).values()) >= 0.9, _test_accuracy(metrics)
    return data, metrics, time.perf_counter() - t0


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus(single_run, tmp_path):
    data, single, _ = single_run
    env = _env(**{CPU_DEVICES_ENV: "2"})
    metrics = _finish(_train(data, tmp_path / "run", "--strategy", "mirrored", env=env))
    assert metrics["distribution"]["strategy"] == "mirrored"
    assert metrics["distribution"]["replicas"] == 2
    assert metrics["config"]["batch_size"] == 8  # per replica; fit() got 16
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["training"]["strategy"] == "mirrored" and run["training"]["replicas"] == 2
    _assert_within_noise(metrics, single)

    # Pruning's fine-tuning of that run under the same strategy (quantisation-aware fine-tuning
    # goes through the same code path, tests/test_qat.py, and would double this test's time).
    cmd = [sys.executable, "-m", "edgeav", "convert", str(tmp_path / "run"), "--json"]
    cmd += ["--out", str(tmp_path / "m.edgeav"), "--strategy", "mirrored", "--prune", "0.5"]
    cmd += ["--prune-epochs", "1", "--allow-drop"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout)
    assert res["distribution"]["strategy"] == "mirrored" and res["distribution"]["replicas"] == 2
    assert (tmp_path / "m.edgeav").is_file()
    for name, m in res["models"].items():
        assert abs(m["sparsity"]["measured"] - 0.5) < 0.02, name
        # int8 after pruning under the strategy loses nothing beyond the pruning
        assert m["tflite_accuracy"] >= m["keras_pruned_accuracy"] - NOISE, (name, m)


@pytest.mark.slow
def test_multi_worker_two_processes_on_localhost(single_run, tmp_path):
    data, single, single_seconds = single_run
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    out = tmp_path / "run"  # the same command on both workers: only the chief writes it
    t0 = time.perf_counter()
    procs = [
        _train(
            data,
            out,
            "--strategy",
            "multi-worker",
            env=_env(
                TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            ),
        )
        for i in range(2)
    ]
    with ThreadPoolExecutor(len(procs)) as pool:
        futures = [pool.submit(_finish, p) for p in procs]
        try:
            for future in as_completed(futures):
                future.result()
        finally:  # a worker that failed leaves the other waiting for it: stop both
            for p in procs:
                if p.poll() is None:
                    p.kill()
    results = [f.result() for f in futures]
    seconds = time.perf_counter() - t0
    print(f"multi-worker (2 processes) {seconds:.1f} s, single device {single_seconds:.1f} s")
    for i, metrics in enumerate(results):
        assert metrics["distribution"]["strategy"] == "multi-worker"
        assert metrics["distribution"]["replicas"] == 2 and metrics["distribution"]["workers"] == 2
        assert metrics["run_dir"] == (str(out) if i == 0 else None)
        _assert_within_noise(metrics, single)
    run = json.loads((out / "run.json").read_text())
    assert run["training"] == {
        k: run["training"][k] for k in ("strategy", "replicas", "workers", "devices")
    }
    assert run["training"]["strategy"] == "multi-worker" and run["training"]["replicas"] == 2
    assert sorted(p.name for p in out.parent.iterdir()) == ["run"]  # the worker wrote no copy


@pytest.mark.parametrize(
    ("strategy", "env", "message"),
    [
        ("bogus", {}, "unknown --strategy 'bogus'"),
        ("multi-worker", {}, "--strategy multi-worker needs TF_CONFIG"),
        ("auto", {"TF_CONFIG": "{not json"}, "TF_CONFIG is not valid JSON"),
        (
            "auto",
            {
                "TF_CONFIG": '{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 3}}'
            },
            "is not in its cluster",
        ),
        ("mirrored", {CPU_DEVICES_ENV: "two"}, f"{CPU_DEVICES_ENV} must be a whole number"),
    ],
)
def test_bad_strategy_settings_are_one_line_errors(tmp_path, strategy, env, message):
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, "-m", "edgeav", "train", str(data), "--strategy", strategy],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()


def test_chief_is_the_chief_task_or_worker_0():
    from edgeav.distribute import _is_chief

    workers = {"worker": ["a:1", "b:1"]}
    assert _is_chief({"cluster": workers, "task": {"type": "worker", "index": 0}})
    assert not _is_chief({"cluster": workers, "task": {"type": "worker", "index": 1}})
    with_chief = {**workers, "chief": ["c:1"]}
    assert _is_chief({"cluster": with_chief, "task": {"type": "chief", "index": 0}})
    assert not _is_chief({"cluster": with_chief, "task": {"type": "worker", "index": 0}})
