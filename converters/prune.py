"""Magnitude pruning with tensorflow-model-optimization, measured on the stripped weights.

Every layer tfmot knows how to prune (Dense, Conv2D, SeparableConv2D's pointwise kernel, ...)
is wrapped with ``prune_low_magnitude``; the model is fine-tuned on the training split while a
polynomial-decay schedule raises the sparsity to the target; the wrappers are stripped. The
schedule's step numbers come from the actual number of training steps, and pruning happens
often enough (``frequency``) that the target is reached even on a small data set. What is
reported is the sparsity *measured* in the stripped weights, per layer, never the requested one.

Known tfmot behaviour: a SeparableConv2D's depthwise kernel is left dense (only the pointwise
kernel is pruned); ``2:4`` structured sparsity (two zeros in every four consecutive weights) is
tfmot's ``sparsity_m_by_n=(2, 4)`` and applies to layers whose kernels allow it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError

#: Kernel attributes that tfmot prunes, per layer class name.
_PRUNED_WEIGHTS = {
    "Dense": ("kernel",),
    "Conv1D": ("kernel",),
    "Conv2D": ("kernel",),
    "Conv3D": ("kernel",),
    "SeparableConv1D": ("pointwise_kernel",),
    "SeparableConv2D": ("pointwise_kernel",),
}


@dataclass
class LayerSparsity:
    name: str
    weight: str
    elements: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.elements if self.elements else 0.0


@dataclass
class PruneReport:
    """Measured sparsity of a stripped model (the pruned kernels and all weights)."""

    target: float
    structured: str | None
    layers: list[LayerSparsity] = field(default_factory=list)
    total_elements: int = 0
    total_zeros: int = 0
    steps: int = 0
    frequency: int = 0
    end_step: int = 0

    @property
    def sparsity(self) -> float:
        """Zeros / elements over the pruned kernels only."""
        n = sum(layer.elements for layer in self.layers)
        return sum(layer.zeros for layer in self.layers) / n if n else 0.0

    @property
    def overall(self) -> float:
        """Zeros / elements over every weight of the model (depthwise kernels, biases...)."""
        return self.total_zeros / self.total_elements if self.total_elements else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "structured": self.structured,
            "measured": round(self.sparsity, 6),
            "overall": round(self.overall, 6),
            "steps": self.steps,
            "frequency": self.frequency,
            "end_step": self.end_step,
            "layers": {
                f"{layer.name}/{layer.weight}": round(layer.sparsity, 6) for layer in self.layers
            },
        }


def measure_sparsity(model, target: float = 0.0, structured: str | None = None) -> PruneReport:
    """Measure zeros in a (stripped) tf_keras model's prunable kernels and in all its weights."""
    report = PruneReport(target=target, structured=structured)
    for layer in _walk_layers(model):
        for attr in _PRUNED_WEIGHTS.get(type(layer).__name__, ()):
            w = getattr(layer, attr, None)
            if w is None:
                continue
            arr = np.asarray(w.numpy())
            report.layers.append(
                LayerSparsity(layer.name, attr, int(arr.size), int(np.count_nonzero(arr == 0)))
            )
    for w in model.weights:
        if not w.trainable:
            continue
        arr = np.asarray(w.numpy())
        report.total_elements += int(arr.size)
        report.total_zeros += int(np.count_nonzero(arr == 0))
    return report


def _walk_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers and not hasattr(layer, "kernel"):
            yield from _walk_layers(layer)
        else:
            yield layer


def prune_model(
    model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    sparsity: float,
    structured: str | None = None,
    epochs: int = 3,
    batch_size: int = 32,
    learning_rate: float = 5e-4,
    on_epoch: Callable[[int, int], None] | None = None,
    seed: int = 0,
):
    """Prune ``model`` to ``sparsity`` while fine-tuning on ``(x, y)``; return (stripped, report).

    Args:
        model: a trained tf_keras classifier (softmax output); it is cloned, not modified.
        x, y: training inputs and integer labels.
        sparsity: target fraction of zeros in the prunable kernels, in (0, 1). Ignored for
            ``structured="2:4"`` (which is 50 % by construction).
        structured: ``None`` or ``"2:4"``.
        epochs, batch_size, learning_rate: the fine-tuning run. The schedule reaches the target
            after about two thirds of the steps and keeps it for the rest.
        on_epoch: called as ``on_epoch(done, total)`` after each epoch (progress display).
    """
    from edgeav.tf import keras as _keras  # noqa: PLC0415
    from edgeav.tf import tfmot as _tfmot  # noqa: PLC0415

    keras, tfmot = _keras(), _tfmot()
    if structured not in (None, "2:4"):
        raise EdgeAVError(f"--structured must be 2:4, got {structured!r}")
    if structured is None and not 0.0 < sparsity < 1.0:
        raise EdgeAVError(f"--prune must be a fraction between 0 and 1, got {sparsity}")
    if epochs < 1:
        raise EdgeAVError(f"pruning needs at least one fine-tuning epoch, got {epochs}")
    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    if len(x) == 0:
        raise EdgeAVError("no training samples to fine-tune the pruned model on")

    steps_per_epoch = math.ceil(len(x) / batch_size)
    total = steps_per_epoch * epochs
    # Prune every `frequency` steps up to end_step (a multiple of it), ~10 pruning events.
    ramp = max(1, int(total * 2 / 3))
    frequency = max(1, ramp // 10)
    end_step = max(frequency, (ramp // frequency) * frequency)
    sched = tfmot.sparsity.keras
    if structured == "2:4":
        schedule = sched.ConstantSparsity(0.5, begin_step=0, end_step=end_step, frequency=frequency)
        params: dict[str, Any] = {"pruning_schedule": schedule, "sparsity_m_by_n": (2, 4)}
        target = 0.5
    else:
        schedule = sched.PolynomialDecay(
            initial_sparsity=0.0,
            final_sparsity=float(sparsity),
            begin_step=0,
            end_step=end_step,
            frequency=frequency,
        )
        params = {"pruning_schedule": schedule}
        target = float(sparsity)

    def wrap(layer):
        if isinstance(layer, keras.Model):
            raise EdgeAVError(
                f"cannot prune model {model.name!r}: it nests model {layer.name!r} as a layer"
            )
        fresh = layer.__class__.from_config(layer.get_config())  # weights copied below
        if type(layer).__name__ in _PRUNED_WEIGHTS:
            try:
                return sched.prune_low_magnitude(fresh, **params)
            except ValueError:
                if structured:  # m_by_n not applicable to this kernel shape: leave it dense
                    return fresh
                raise
        return fresh

    keras.utils.set_random_seed(seed)
    try:
        pruned = keras.models.clone_model(model, clone_function=wrap)
    except ValueError as exc:
        raise EdgeAVError(f"cannot prune model {model.name!r}: {exc}") from exc
    # clone_model rebuilt the layers: copy the trained weights layer by layer.
    _copy_weights(model, pruned)
    pruned.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks: list[Any] = [sched.UpdatePruningStep()]
    if on_epoch is not None:
        callbacks.append(
            keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: on_epoch(e + 1, epochs))
        )
    pruned.fit(
        x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0, callbacks=callbacks
    )
    stripped = sched.strip_pruning(pruned)
    report = measure_sparsity(stripped, target=target, structured=structured)
    report.steps, report.frequency, report.end_step = total, frequency, end_step
    if not report.layers:
        raise EdgeAVError(f"model {model.name!r} has no layer that can be pruned")
    return stripped, report


def _copy_weights(src, dst) -> None:
    """Copy weights from ``src`` to the cloned ``dst`` (pruning wrappers add mask variables)."""
    src_layers = {layer.name: layer for layer in src.layers}
    for layer in dst.layers:
        inner = getattr(layer, "layer", layer)  # PruneLowMagnitude wraps the original layer
        original = src_layers.get(inner.name)
        if original is None:
            continue
        weights = original.get_weights()
        if weights:
            inner.set_weights(weights)
