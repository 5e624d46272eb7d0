"""Quantisation-aware training (``edgeav convert --qat``) with tensorflow-model-optimization.

:func:`qat_model` fine-tunes a trained classifier for a few epochs with tfmot's fake-quantisation
in the graph (``quantize_apply`` with the default 8-bit scheme), so the weights learn to live with
int8 rounding; :func:`edgeav.converters.quantize.convert_keras` then makes it full int8 as it does
for post-training quantisation, from the learnt ranges.

How edgeav's models go through tfmot 0.8:

- **SeparableConv2D**: tfmot's own layout transform (``SeparableConvQuantize``) splits it into a
  ``DepthwiseConv2D`` and a 1x1 ``Conv2D`` with a fake-quant between them, which is how TFLite
  runs it anyway (DEPTHWISE_CONV_2D then CONV_2D). The builders stay as they are; no custom
  ``QuantizeConfig`` is needed. (Older tfmot failed on a bias-less one, the builders' kind:
  tensorflow/model-optimization#655; 0.8 handles it.) ``SeparableConv1D`` (audio-embed's) goes through tfmot's
  transform to a ``SeparableConv2D`` between two ``Lambda`` reshapes, and then the same split.
- **BatchNormalization** is annotated where tfmot's transforms fold it into the layer before it
  (a convolution or a Dense), as the converter folds it; elsewhere it stays float.
- **Layers tfmot does not know** (``Normalization`` at the audio model's input,
  ``UnitNormalization`` at the embedding) are left out of the annotation and stay float in
  training; conversion then quantises them from the representative data set, as post-training
  quantisation does, and keeps the audio model's leading normalisation in float
  (``float_input``), as ``convert`` does without ``--qat``.
- **The softmax** is taken off first (:func:`edgeav.converters.quantize.without_softmax`): the
  model learns with logits (``from_logits=True``) and converts to the same logits output as the
  post-training route.
- **Pruned models** (``--prune`` with ``--qat``) are fine-tuned with tfmot's
  pruning-preserving scheme (``Default8BitPrunePreserveQuantizeScheme``): the zeros stay zeros
  through the quantisation-aware epochs, so the bundle keeps the sparsity measured after pruning.

Fine-tuning runs under the caller's ``tf.distribute`` strategy (:mod:`edgeav.distribute`) when
one is given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError

#: Layers tfmot's default 8-bit transforms fold a following BatchNormalization into.
_FOLDS_BATCH_NORM = ("Conv2D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", "Dense")


def _input_kind(layer) -> str | None:
    """The class name of the one layer feeding ``layer`` (None if not exactly one)."""
    nodes = getattr(layer, "_inbound_nodes", [])
    inbound = nodes[0].inbound_layers if nodes else []
    if isinstance(inbound, list):
        inbound = inbound[0] if len(inbound) == 1 else None
    return type(inbound).__name__ if inbound is not None else None


def _restore_adapted_state(model) -> None:
    """Recompute what adapted preprocessing layers derive from their weights.

    ``quantize_apply`` rebuilds each layer from its config and copies the weights in; an adapted
    ``Normalization`` (``adapt()``, not ``mean=``/``variance=``) keeps its statistics as weights
    but normalises with tensors derived from them in ``finalize_state``, which nothing calls
    again: it would pass its input through unchanged.
    """
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if type(inner).__name__ == "Normalization":
            inner.finalize_state()


#: The range variables of tfmot's moving-average quantisers that watch a layer's output.
_OUTPUT_RANGES = ("post_activation", "output", "quantize_layer")


def _calibrate_ranges(keras, qat, x: np.ndarray, batch_size: int, passes: int = 12) -> None:
    """Start every activation range of ``qat`` at what the data gives, not at tfmot's [-6, 6].

    tfmot's activation quantisers follow each batch's range with an exponential moving average
    of decay 0.999 from [-6, 6]: after the few hundred steps of a short fine-tuning on a small
    data set they are still near [-6, 6], and a layer whose outputs reach 20 is clipped at 6
    (measured: a 10-class audio model fell from 100 % to 64 % in two epochs, its logits clipped).
    Here each range is set to the mean over batches of the batch minimum and maximum (what the
    average converges to) of the layer's output on up to 512 training inputs. The outputs are
    read through the quantisers themselves, which clip at the current range, so a range that
    clips (or is empty: tfmot starts some at [0, 0]) is widened fourfold (to [-6, 6]) and the
    data read again, until none clips (at most ``passes``).

    The weights' ranges (tfmot sets them to each kernel's last value in every training step,
    [-6, 6] until then) are set first by one forward pass in training mode, after which every
    other variable it touched (batch-norm statistics, the activation ranges) is put back.
    """
    layers = [la for la in qat.layers if any(_range_name(w) for w in la.non_trainable_weights)]
    if not layers:
        return
    sample = x[np.random.default_rng(0).permutation(len(x))[:512]]
    weight_range = [w for w in qat.weights if _range_name(w, weights=True)]
    kept = [(w, w.numpy()) for w in qat.weights if not any(w is v for v in weight_range)]
    qat(sample[:batch_size], training=True)
    for w, value in kept:
        w.assign(value)
    probe = keras.Model(qat.inputs, [la.output for la in layers])
    for _ in range(passes):
        outs = probe.predict(sample, batch_size=256, verbose=0)
        outs = outs if isinstance(outs, list) else [outs]
        clipped = False
        for layer, out in zip(layers, outs, strict=True):
            ranges = {_range_name(w): w for w in layer.non_trainable_weights if _range_name(w)}
            low, high = float(np.min(ranges["min"].numpy())), float(np.max(ranges["max"].numpy()))
            if high - low < 1e-6:  # an empty range (tfmot starts some at [0, 0]): see anything
                for kind, w in ranges.items():
                    w.assign(np.full(w.shape, -6.0 if kind == "min" else 6.0, np.float32))
                clipped = True
                continue
            batches = [out[i : i + batch_size] for i in range(0, len(out), batch_size)]
            seen_low, seen_high = float(out.min()), float(out.max())
            lo = min(0.0, float(np.mean([b.min() for b in batches])))
            hi = max(0.0, float(np.mean([b.max() for b in batches])))
            if seen_high >= 0.98 * high > 0:  # clipped at the top: look further next time
                hi, clipped = 4 * high, True
            if seen_low <= 0.98 * low < 0:
                lo, clipped = 4 * low, True
            for kind, w in ranges.items():
                w.assign(np.full(w.shape, lo if kind == "min" else hi, np.float32))
        if not clipped:
            return


def _range_name(variable, *, weights: bool = False) -> str | None:
    """``"min"``/``"max"`` for an output range variable of a tfmot quantiser (``weights``: for
    a weight's range variable), else None."""
    name = variable.name.split("/")[-1].split(":")[0]
    kind = name.rsplit("_", 1)[-1]
    if kind not in ("min", "max") or "_" not in name:
        return None
    is_output = name.rsplit("_", 1)[0] in _OUTPUT_RANGES
    return kind if is_output != weights else None


def _prune_preserve_scheme(tfmot):
    """tfmot's ``Default8BitPrunePreserveQuantizeScheme``, its registry told which layers it
    supports by the default 8-bit registry too.

    Its own registry counts every layer without trainable weights as supported, so a
    ``Normalization`` feeding a quantised layer is asked for a quantisation config the default
    registry does not have, and ``quantize_apply`` fails; the default scheme leaves it float.
    """
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (  # noqa: PLC0415, E501
        prune_preserve_quantize_registry as registries,
    )

    default = tfmot.quantization.keras.default_8bit.Default8BitQuantizeRegistry()

    class Registry(registries.Default8bitPrunePreserveQuantizeRegistry):
        def supports(self, layer):
            return default.supports(layer) and super().supports(layer)

    class Scheme(tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme):
        def get_quantize_registry(self):
            return Registry()

    return Scheme()


def _unsafe_lambdas():
    """Keras's safe-mode scope, off (see :func:`qat_model`)."""
    from tf_keras.src.saving.serialization_lib import SafeModeScope  # noqa: PLC0415

    return SafeModeScope(safe_mode=False)


def _annotate(keras, tfmot, model):
    """``model`` with every layer tfmot's default 8-bit registry supports annotated for
    quantisation (the layers themselves are shared, so their weights come along)."""
    registry = tfmot.quantization.keras.default_8bit.Default8BitQuantizeRegistry()
    annotate = tfmot.quantization.keras.quantize_annotate_layer

    def clone(layer):
        if isinstance(layer, keras.Model):
            raise EdgeAVError(
                f"cannot quantise model {model.name!r} aware of int8: it nests model "
                f"{layer.name!r} as a layer"
            )
        kind = type(layer).__name__
        # SeparableConv1D/2D are not in the registry but tfmot's transforms split them; a batch
        # norm is folded into the convolution or Dense before it, and supported only there.
        if registry.supports(layer) or kind in ("SeparableConv1D", "SeparableConv2D"):
            return annotate(layer)
        if kind == "BatchNormalization" and _input_kind(layer) in _FOLDS_BATCH_NORM:
            return annotate(layer)
        return layer

    return keras.models.clone_model(model, clone_function=clone)


def qat_model(
    model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 3,
    batch_size: int = 32,
    learning_rate: float = 1e-4,
    prune_preserve: bool = False,
    on_epoch: Callable[[int, int], None] | None = None,
    seed: int = 0,
    distribution: Any = None,
    recipe: Any = None,
) -> tuple[Any, str]:
    """Quantisation-aware fine-tuning of ``model`` on ``(x, y)``: ``(qat_model, output)``.

    Args:
        model: a trained tf_keras classifier (it is not modified).
        x, y: training inputs and integer labels.
        epochs, batch_size, learning_rate: the fine-tuning run (``batch_size`` per replica).
        prune_preserve: keep the zeros of a (stripped) pruned model (tfmot's
            pruning-preserving quantisation scheme).
        on_epoch: called as ``on_epoch(done, total)`` after each epoch.
        distribution: an :class:`edgeav.distribute.Distribution` to fine-tune under.
        recipe: how the model was trained (:class:`~edgeav.converters.finetune.Recipe`), which
            the fine-tuning follows; default: plain fine-tuning on ``(x, y)``.

    Returns the fake-quantised model (its output: logits where ``model`` ended in a softmax)
    and what it outputs (``"logits"`` or ``"probabilities"``), for
    :func:`edgeav.converters.quantize.convert_keras` and the runtime.
    """
    from edgeav.converters.quantize import without_softmax  # noqa: PLC0415
    from edgeav.tf import keras as _keras  # noqa: PLC0415
    from edgeav.tf import tfmot as _tfmot  # noqa: PLC0415

    keras, tfmot = _keras(), _tfmot()
    if epochs < 1:
        raise EdgeAVError(f"--qat-epochs must be at least 1, got {epochs}")
    from edgeav.converters.finetune import Recipe  # noqa: PLC0415

    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    if len(x) == 0:
        raise EdgeAVError("no training samples to fine-tune the quantisation-aware model on")
    recipe = recipe or Recipe()
    x, y = recipe.arrays(x, y, int(model.output_shape[-1]))
    keras.utils.set_random_seed(seed)
    scope = distribution.scope() if distribution is not None else contextlib.nullcontext()
    batch = distribution.global_batch(batch_size) if distribution is not None else batch_size
    with scope:
        base, output = without_softmax(model)
        try:
            annotated = _annotate(keras, tfmot, base)
            scheme = tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()
            if prune_preserve:
                scheme = _prune_preserve_scheme(tfmot)
            # tfmot's SeparableConv1D transform adds Lambda layers (its own expand/squeeze
            # lambdas, nothing read from a file), which Keras's safe mode refuses to rebuild.
            with tfmot.quantization.keras.quantize_scope(), _unsafe_lambdas():
                qat = tfmot.quantization.keras.quantize_apply(annotated, scheme=scheme)
        except (ValueError, RuntimeError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EdgeAVError(
                f"cannot quantise model {model.name!r} aware of int8: {first}"
            ) from exc
        _restore_adapted_state(qat)
        _calibrate_ranges(keras, qat, x, batch_size)
        qat.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=(
                keras.losses.SparseCategoricalCrossentropy
                if y.ndim == 1
                else keras.losses.CategoricalCrossentropy
            )(from_logits=output == "logits"),
            metrics=["accuracy"],
        )
    callbacks = []
    if on_epoch is not None:
        callbacks.append(
            keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: on_epoch(e + 1, epochs))
        )
    recipe.fit(qat, x, y, epochs=epochs, batch_size=batch, callbacks=callbacks, seed=seed)
    return qat, output
