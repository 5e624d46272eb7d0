"""Magnitude pruning with tensorflow-model-optimization, measured on the stripped weights.

The kernels of Dense and Conv layers and a SeparableConv's pointwise kernel are wrapped with
tfmot's ``PruneLowMagnitude`` (``depthwise=True`` adds the depthwise kernels of SeparableConv and
DepthwiseConv2D layers, see :data:`_PRUNED_WEIGHTS`); the model is fine-tuned on the training
split while a polynomial-decay schedule raises the sparsity to the target; the wrappers are
stripped. The schedule's step numbers come from the actual number of training steps, and pruning
happens often enough (``frequency``) that the target is reached even on a small data set. What is
reported is the sparsity *measured* in the stripped weights, per layer, never the requested one.

Why it is built this way:

- tfmot's registry prunes only a SeparableConv2D's pointwise kernel and lists DepthwiseConv2D with
  no prunable weight. edgeav exposes the depthwise kernels too (``get_prunable_weights`` on the
  layer, tfmot's own mechanism for custom layers), but they are a small share of the weight bytes,
  pruning them barely shrinks the compressed model and costs accuracy, and one magnitude threshold
  per kernel zeroes whole depthwise channels (their BatchNorm rescales them, so small weights there
  are not unimportant). So they stay dense unless ``depthwise=True``.
- Unstructured magnitude pruning shrinks a gzipped int8 model far less than its sparsity: deflate
  codes a byte that is zero half the time with about one bit, its LZ77 stage wastes bits on short
  false matches in random int8 data, and the quantisation parameters, biases and graph do not
  shrink at all.
- Pruning in blocks of ``block`` consecutive input channels of one output channel (tfmot's
  ``block_size``, magnitudes averaged over the block) lays the zeros out in runs in the ``.tflite``
  (TFLite stores FULLY_CONNECTED weights as [out, in] and CONV_2D ones as [out, h, w, in]), which
  deflate compresses better, at the same measured sparsity (the README's measured results give the
  sizes). Blocks apply to kernels that are 2-D once squeezed (Dense, 1x1 convolutions,
  SeparableConv pointwise kernels) and have more input channels than ``block``; the others
  (depthwise kernels, kxk convolutions, a 3-channel first layer) are pruned element by element.
  tfmot itself accepts blocks only for rank-2 variables; a 1x1 kernel is [1, 1, in, out], so
  :func:`_block_wrapper` lets its blocks apply to those too. Blocks cost accuracy, though: on
  av-digits' unseen handwriting, blocks of 4 lost 2.3 points where element-wise pruning lost 0.7
  (the same fine-tuning), so element-wise is the default and blocks are a choice for size.
- Int8 weights are quantised symmetrically per channel (zero point 0): a pruned 0.0 stays an
  exact int8 0.
- ``2:4`` structured sparsity (two zeros in every four consecutive input channels) is tfmot's
  ``sparsity_m_by_n=(2, 4)``; it prunes what tfmot's registry prunes (not depthwise kernels, whose
  input-channel axis has length 1) and leaves dense any kernel it does not apply to.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeav.converters.finetune import Recipe
from edgeav.errors import EdgeAVError

#: Kernel attributes pruned, per layer class name (unstructured / block pruning).
_PRUNED_WEIGHTS = {
    "Dense": ("kernel",),
    "Conv1D": ("kernel",),
    "Conv2D": ("kernel",),
    "Conv3D": ("kernel",),
    "SeparableConv1D": ("depthwise_kernel", "pointwise_kernel"),
    "SeparableConv2D": ("depthwise_kernel", "pointwise_kernel"),
    "DepthwiseConv2D": ("depthwise_kernel",),
}

#: What tfmot's registry prunes (used for ``2:4``).
_TFMOT_WEIGHTS = {
    "Dense": ("kernel",),
    "Conv1D": ("kernel",),
    "Conv2D": ("kernel",),
    "Conv3D": ("kernel",),
    "SeparableConv1D": ("pointwise_kernel",),
    "SeparableConv2D": ("pointwise_kernel",),
}

#: Default block (consecutive input channels) for unstructured ``--prune``: element-wise, which
#: costs the least accuracy (see the module doc).
DEFAULT_BLOCK = 1


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
    block: int = 1
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
            "block": self.block,
            "measured": round(self.sparsity, 6),
            "overall": round(self.overall, 6),
            "steps": self.steps,
            "frequency": self.frequency,
            "end_step": self.end_step,
            "layers": {
                f"{layer.name}/{layer.weight}": round(layer.sparsity, 6) for layer in self.layers
            },
        }


def measure_sparsity(
    model,
    target: float = 0.0,
    structured: str | None = None,
    *,
    block: int = 1,
    weights: dict[str, tuple[str, ...]] | None = None,
) -> PruneReport:
    """Measure zeros in a (stripped) tf_keras model's pruned kernels and in all its weights.

    ``weights`` names the pruned kernel attributes per layer class (default
    :data:`_PRUNED_WEIGHTS`).
    """
    weights = _PRUNED_WEIGHTS if weights is None else weights
    report = PruneReport(target=target, structured=structured, block=block)
    for layer in _walk_layers(model):
        for attr in weights.get(type(layer).__name__, ()):
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
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    on_epoch: Callable[[int, int], None] | None = None,
    seed: int = 0,
    block: int = DEFAULT_BLOCK,
    depthwise: bool = False,
    distribution: Any = None,
    recipe: Recipe | None = None,
):
    """Prune ``model`` to ``sparsity`` while fine-tuning on ``(x, y)``; return (stripped, report).

    The fine-tuning follows the model's training ``recipe`` when given it
    (:mod:`edgeav.converters.finetune`).

    Args:
        model: a trained tf_keras classifier (softmax output); it is cloned, not modified.
        x, y: training inputs and integer labels.
        sparsity: target fraction of zeros in the prunable kernels, in (0, 1). Ignored for
            ``structured="2:4"`` (which is 50 % by construction).
        structured: ``None`` or ``"2:4"``.
        epochs, batch_size, learning_rate: the fine-tuning run. The schedule reaches the target
            after about two thirds of the steps and keeps it for the rest.
        on_epoch: called as ``on_epoch(done, total)`` after each epoch (progress display).
        block: prune in blocks of this many consecutive input channels of one output channel,
            in the kernels that are 2-D once squeezed (Dense, 1x1 convolutions, pointwise
            kernels); 1 is element-wise. Ignored for ``2:4``. See the module docstring.
        depthwise: also prune depthwise kernels (SeparableConv, DepthwiseConv2D), element-wise
            (off by default: see the module docstring). Not with ``2:4``.
        distribution: an :class:`edgeav.distribute.Distribution` to fine-tune under
            (``batch_size`` is then per replica); default: one device.
        recipe: how the model was trained (:class:`~edgeav.converters.finetune.Recipe`);
            default: plain fine-tuning on ``(x, y)``.
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
    if int(block) != block or block < 1:
        raise EdgeAVError(f"--prune-block must be a whole number of channels >= 1, got {block}")
    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    if len(x) == 0:
        raise EdgeAVError("no training samples to fine-tune the pruned model on")
    recipe = recipe or Recipe()
    x, y = recipe.arrays(x, y, int(model.output_shape[-1]))
    loss = "sparse_categorical_crossentropy" if y.ndim == 1 else "categorical_crossentropy"

    scope = distribution.scope() if distribution is not None else contextlib.nullcontext()
    if distribution is not None:
        batch_size = distribution.global_batch(batch_size)
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
        block, pruned_weights = 1, _TFMOT_WEIGHTS
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
        block = int(block)
        pruned_weights = _PRUNED_WEIGHTS
        if not depthwise:
            pruned_weights = {
                k: tuple(a for a in v if a != "depthwise_kernel")
                for k, v in _PRUNED_WEIGHTS.items()
            }
            pruned_weights = {k: v for k, v in pruned_weights.items() if v}

    wrapper_cls = _block_wrapper(tfmot) if block > 1 else None

    def wrap(layer):
        if isinstance(layer, keras.Model):
            raise EdgeAVError(
                f"cannot prune model {model.name!r}: it nests model {layer.name!r} as a layer"
            )
        fresh = layer.__class__.from_config(layer.get_config())  # weights copied below
        names = pruned_weights.get(type(layer).__name__)
        if names:
            if names != _TFMOT_WEIGHTS.get(type(layer).__name__):
                # Beyond tfmot's registry (depthwise kernels): the layer names its prunable
                # weights itself, as tfmot's PrunableLayer / registry do.
                fresh.get_prunable_weights = lambda f=fresh, n=names: [getattr(f, a) for a in n]
            try:
                if wrapper_cls is not None:
                    return wrapper_cls(fresh, block_size=(block, 1), **params)
                return sched.prune_low_magnitude(fresh, **params)
            except ValueError:
                if structured:  # m_by_n not applicable to this kernel shape: leave it dense
                    return fresh
                raise
        return fresh

    keras.utils.set_random_seed(seed)
    with scope:  # the pruned model's variables and optimiser belong to the strategy
        try:
            pruned = keras.models.clone_model(model, clone_function=wrap)
        except ValueError as exc:
            raise EdgeAVError(f"cannot prune model {model.name!r}: {exc}") from exc
        # clone_model rebuilt the layers: copy the trained weights layer by layer.
        _copy_weights(model, pruned)
        pruned.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=loss,
            metrics=["accuracy"],
        )
    callbacks: list[Any] = [sched.UpdatePruningStep()]
    if on_epoch is not None:
        callbacks.append(
            keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: on_epoch(e + 1, epochs))
        )
    recipe.fit(pruned, x, y, epochs=epochs, batch_size=batch_size, callbacks=callbacks, seed=seed)
    stripped = sched.strip_pruning(pruned)
    for layer in stripped.layers:  # drop the hook (a closure over the layer) before returning
        if "get_prunable_weights" in vars(layer):
            del layer.get_prunable_weights
    report = measure_sparsity(
        stripped, target=target, structured=structured, block=block, weights=pruned_weights
    )
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


def _block_wrapper(tfmot):
    """A ``PruneLowMagnitude`` whose blocks also apply to 1x1 convolution kernels."""
    from tensorflow_model_optimization.python.core.sparsity.keras import (  # noqa: PLC0415
        pruning_impl,
        pruning_wrapper,
    )

    def blockable(weights, block) -> bool:
        dims = [int(d) for d in weights.shape if int(d) != 1]
        return len(dims) == 2 and dims[0] > block[0]  # tfmot squeezes a 1-block axis away

    class BlockPruning(pruning_impl.Pruning):
        def _validate_block(self):
            pass  # blocks where a weight squeezes to 2-D, element-wise elsewhere

        def _maybe_update_block_mask(self, weights):
            if not blockable(weights, self._block_size):
                return self._update_mask(weights)
            return super()._maybe_update_block_mask(weights)

    class BlockPruneLowMagnitude(pruning_wrapper.PruneLowMagnitude):
        def build(self, input_shape):
            block, self.block_size = self.block_size, (1, 1)
            try:
                super().build(input_shape)
            finally:
                self.block_size = block
            self.pruning_obj = BlockPruning(
                training_step_fn=self.pruning_obj._step_fn,
                pruning_vars=self.pruning_vars,
                pruning_schedule=self.pruning_schedule,
                block_size=block,
                sparsity_m_by_n=None,
                block_pooling_type=self.block_pooling_type,
            )

    return BlockPruneLowMagnitude
