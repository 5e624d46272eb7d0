"""Keras -> TFLite conversion: float32, float16, dynamic-range and full-integer int8.

``int8`` is full-integer quantisation with int8 input and output tensors, calibrated on a
representative data set drawn (stratified) from the training split; the runtime quantises its
float input and dequantises the output with the tensors' scale and zero point.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator

import numpy as np

from edgeav.errors import EdgeAVError
from edgeav.native_stderr import captured_native_stderr

MODES = ("float32", "float16", "dynamic", "int8")


def representative_indices(labels: np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    """Up to ``n`` indices into ``labels``, stratified: every class in proportion, shuffled."""
    labels = np.asarray(labels)
    if n <= 0:
        raise EdgeAVError(f"--calibration-samples must be positive, got {n}")
    if len(labels) == 0:
        raise EdgeAVError("no training samples to calibrate the int8 model with")
    if n >= len(labels):
        return np.random.default_rng(seed).permutation(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.maximum(1, np.floor(counts / counts.sum() * n).astype(int))
    picked = []
    for c, q in zip(classes, quota, strict=True):
        idx = np.flatnonzero(labels == c)
        picked.append(rng.choice(idx, size=min(q, len(idx)), replace=False))
    out = np.concatenate(picked)
    if len(out) < n:  # top up from what is left
        rest = np.setdiff1d(np.arange(len(labels)), out)
        out = np.concatenate([out, rng.choice(rest, size=n - len(out), replace=False)])
    return rng.permutation(out[:n])


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the converter's C++ chatter on fd 2 (MLIR passes print there) and its stdout."""
    with captured_native_stderr(), contextlib.redirect_stdout(io.StringIO()):
        yield


def leading_normalization(model) -> bool:
    """True if the model's first layer after its input is a Keras ``Normalization`` layer."""
    layers = [la for la in model.layers if type(la).__name__ != "InputLayer"]
    return bool(layers) and type(layers[0]).__name__ == "Normalization"


def without_softmax(model):
    """``(model, "logits")`` with a final softmax removed, or ``(model, "probabilities")``.

    int8 outputs have 256 levels: a softmax output in int8 rounds every probability below
    1/512 to 0, and the log-linear fusion reads exactly those. Logits quantise evenly over
    their range, and the runtime takes the softmax in float. A final
    ``Dense(..., activation="softmax")`` becomes the same Dense (same weights) without it; a
    final ``Softmax`` or ``Activation("softmax")`` layer is dropped. Anything else is left as
    it is.
    """
    from edgeav.tf import keras as _keras  # noqa: PLC0415

    keras = _keras()
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", None)
    if type(last).__name__ == "Dense" and activation == "softmax":
        config = dict(last.get_config(), activation="linear")
        dense = type(last).from_config(config)
        logits = dense(last.input)
        dense.set_weights(last.get_weights())
    elif type(last).__name__ == "Softmax" or (
        type(last).__name__ == "Activation" and activation == "softmax"
    ):
        logits = last.input
    else:
        return model, "probabilities"
    return keras.Model(model.inputs, logits, name=model.name), "logits"


def configure_converter(
    tf, converter, mode: str, representative_dataset=None, *, integer_io: bool = True
) -> None:
    """Set a ``TFLiteConverter`` up for one of :data:`MODES`.

    ``int8`` is calibrated on ``representative_dataset`` (a generator function yielding
    ``[sample_batch, ...]``); with ``integer_io`` it is full-integer with int8 input and output,
    without it the ops and I/O types are left for the caller to choose.
    """
    if mode == "float32":
        return
    if mode not in MODES:
        raise EdgeAVError(f"unknown quantisation {mode!r}; choose one of {', '.join(MODES)}")
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        converter.representative_dataset = representative_dataset
        if not integer_io:
            return
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8


def convert_keras(
    model, mode: str, representative: np.ndarray | None = None, *, float_input: bool = False
) -> bytes:
    """Convert a tf_keras ``model`` to ``.tflite`` bytes.

    Args:
        model: a tf_keras Model with one input and one output.
        mode: ``float32``, ``float16`` (float16 weights), ``dynamic`` (int8 weights, float
            activations) or ``int8`` (full integer, int8 input and output).
        representative: float32 samples shaped like the model input (no batch dim per sample,
            stacked on axis 0); required for ``int8``.
        float_input: ``int8`` only: keep the input float32 and the model's leading
            normalisation (its SUB and MUL ops) in float, quantising everything after it, with a
            float32 output. One int8 scale cannot represent raw audio features whose ranges
            differ by orders of magnitude (chroma in 0..1 next to MFCC 0 in the hundreds);
            after standardisation it can.
    """
    if mode not in MODES:
        raise EdgeAVError(f"unknown quantisation {mode!r}; choose one of {', '.join(MODES)}")
    from edgeav.tf import tf as _tf  # noqa: PLC0415

    tf = _tf()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    gen = None
    if mode == "int8":
        if representative is None or len(representative) == 0:
            raise EdgeAVError("int8 conversion needs a representative data set")
        samples = np.asarray(representative, dtype=np.float32)

        def gen():
            for i in range(len(samples)):
                yield [samples[i : i + 1]]

    configure_converter(tf, converter, mode, gen, integer_io=not float_input)
    if mode == "int8" and float_input:
        return _selective_int8(tf, converter, gen, model.name)
    try:
        with _quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Statistics for quantized inputs were expected..."
            return bytes(converter.convert())
    except Exception as exc:  # the converter raises many types (ConverterError, ValueError...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgeAVError(
            f"TFLite {mode} conversion of model {model.name!r} failed: {first}"
        ) from exc


def _selective_int8(tf, converter, gen, name: str) -> bytes:
    """int8 everywhere except the float normalisation at the input (LiteRT selective quantisation)."""
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
    ]
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=["SUB", "MUL"])
    try:
        with _quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the debugger uses the deprecated tf.lite.Interpreter
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=gen, debug_options=options
            )
            return bytes(debugger.get_nondebug_quantized_model())
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgeAVError(f"TFLite int8 conversion of model {name!r} failed: {first}") from exc
