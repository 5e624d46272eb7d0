"""Which ``tf.distribute`` strategy training runs under (``edgeav train --strategy``).

:func:`resolve` turns a name into a :class:`Distribution`: the TensorFlow strategy, how many
replicas it trains on, and whether this process is the one that writes results.

- ``one``: the default strategy (one device, no copies of the model).
- ``mirrored``: ``MirroredStrategy``, one replica per GPU of this machine; without GPUs, one per
  logical CPU device (:data:`CPU_DEVICES_ENV` splits the CPU into several, which is how the
  tests run it for real on a machine without GPUs).
- ``multi-worker``: ``MultiWorkerMirroredStrategy`` across the machines listed in ``TF_CONFIG``
  (every machine runs the same command with its own ``task``); only the chief writes the run
  folder or the bundle, the others write to a temporary folder (:meth:`Distribution.output`).
- ``auto``: ``multi-worker`` when ``TF_CONFIG`` is set, ``mirrored`` when more than one GPU is
  visible, else ``one``.

Batch sizes given to the user are per replica: the global batch is ``per-replica x replicas``
(:meth:`Distribution.global_batch`), so every replica sees the batch a single device would,
and the triplet loss mines its negatives in batches of the same size.

``MultiWorkerMirroredStrategy`` has to be created before TensorFlow runs its first operation,
and logical devices can only be configured before then too: :func:`resolve` is called first.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeav.errors import EdgeAVError

STRATEGIES = ("auto", "one", "mirrored", "multi-worker")
#: Split this machine's CPU into this many logical devices before TensorFlow starts (so
#: ``mirrored`` has several replicas without GPUs; used by the tests).
CPU_DEVICES_ENV = "EDGEAV_CPU_DEVICES"


@dataclass
class Distribution:
    """A resolved strategy: ``strategy`` (a ``tf.distribute.Strategy``), its ``name`` (``one``,
    ``mirrored`` or ``multi-worker``), ``replicas`` in all, ``workers`` (machines/processes)
    and whether this process is the ``chief`` (the one that writes)."""

    strategy: Any
    name: str
    replicas: int = 1
    workers: int = 1
    chief: bool = True
    devices: tuple[str, ...] = ()

    def scope(self):
        """The strategy's scope: models built, compiled and fitted inside it are replicated."""
        return self.strategy.scope()

    def global_batch(self, per_replica: int) -> int:
        """The batch ``fit`` is given: ``per_replica`` for every replica."""
        return int(per_replica) * self.replicas

    @contextlib.contextmanager
    def output(self, path: str | os.PathLike[str]) -> Iterator[Path]:
        """Where this process writes what would go to ``path``: ``path`` itself on the chief, a
        temporary path (removed afterwards) on the other workers, as TensorFlow's multi-worker
        guide recommends (every worker saves, only the chief's copy is kept)."""
        if self.chief:
            yield Path(path)
            return
        with tempfile.TemporaryDirectory(prefix="edgeav-worker-") as tmp:
            yield Path(tmp) / Path(path).name

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.name,
            "replicas": self.replicas,
            "workers": self.workers,
            "devices": list(self.devices),
        }


def tf_config() -> dict[str, Any] | None:
    """``TF_CONFIG`` parsed (None when unset or empty); a malformed one is a one-line error."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise EdgeAVError(f"TF_CONFIG is not valid JSON: {exc}") from exc
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster or not isinstance(task, dict):
        raise EdgeAVError(
            'TF_CONFIG needs "cluster" (e.g. {"worker": ["host1:12345", "host2:12345"]}) and '
            '"task" (e.g. {"type": "worker", "index": 0})'
        )
    kind, index = task.get("type"), task.get("index")
    members = cluster.get(kind)
    if not isinstance(members, list) or not isinstance(index, int) or not 0 <= index < len(members):
        raise EdgeAVError(
            f"TF_CONFIG's task {task} is not in its cluster ({', '.join(sorted(cluster))})"
        )
    return config


def _is_chief(config: dict[str, Any]) -> bool:
    """TensorFlow's rule: the ``chief`` task, or worker 0 when the cluster has no chief."""
    task = config["task"]
    if task["type"] == "chief":
        return True
    return task["type"] == "worker" and task["index"] == 0 and "chief" not in config["cluster"]


def _split_cpu(tf, count: int) -> None:
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError as exc:  # TensorFlow already started: too late to split
        raise EdgeAVError(f"{CPU_DEVICES_ENV}: cannot split the CPU now ({exc})") from exc


def check(name: str) -> tuple[dict[str, Any] | None, int]:
    """Check ``name``, ``TF_CONFIG`` and :data:`CPU_DEVICES_ENV` without starting TensorFlow:
    ``(TF_CONFIG parsed or None, logical CPU devices wanted)``.

    Raises:
        EdgeAVError: an unknown name, ``multi-worker`` without ``TF_CONFIG``, a bad
            ``TF_CONFIG`` or a bad :data:`CPU_DEVICES_ENV`.
    """
    if name not in STRATEGIES:
        raise EdgeAVError(f"unknown --strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    config = tf_config()
    if name == "multi-worker" and config is None:
        raise EdgeAVError(
            "--strategy multi-worker needs TF_CONFIG (the cluster and this machine's task; "
            "see the README's two-machine example)"
        )
    raw_cpus = os.environ.get(CPU_DEVICES_ENV, "").strip()
    cpus = 1
    if raw_cpus:
        try:
            cpus = int(raw_cpus)
        except ValueError:
            cpus = 0
        if cpus < 1:
            raise EdgeAVError(f"{CPU_DEVICES_ENV} must be a whole number >= 1, got {raw_cpus!r}")
    return config, cpus


def resolve(name: str = "auto") -> Distribution:
    """The :class:`Distribution` for ``name`` (one of :data:`STRATEGIES`); see the module doc.
    Call it before TensorFlow runs anything.

    Raises:
        EdgeAVError: as :func:`check`.
    """
    config, cpus = check(name)

    from edgeav.tf import tf as _tf  # noqa: PLC0415

    tf = _tf()
    if cpus > 1:
        _split_cpu(tf, cpus)
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "multi-worker" if config is not None else "mirrored" if len(gpus) > 1 else "one"

    if name == "multi-worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        workers = sum(len(v) for k, v in config["cluster"].items() if k in ("chief", "worker"))
        return Distribution(
            strategy,
            "multi-worker",
            replicas=int(strategy.num_replicas_in_sync),
            workers=workers,
            chief=_is_chief(config),
            devices=tuple(strategy.extended.worker_devices),
        )
    if name == "mirrored":
        if gpus:
            devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        else:  # no GPU: one replica per logical CPU device
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        # Without NCCL (CPU devices), gradients are summed on one device.
        ops = None if gpus else tf.distribute.ReductionToOneDevice()
        strategy = tf.distribute.MirroredStrategy(devices=devices, cross_device_ops=ops)
        return Distribution(
            strategy,
            "mirrored",
            replicas=int(strategy.num_replicas_in_sync),
            devices=tuple(devices),
        )
    return Distribution(tf.distribute.get_strategy(), "one", devices=())
