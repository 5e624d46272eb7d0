"""Run one ``.tflite`` model on the device: LiteRT first, then tflite-runtime, then ``tf.lite``.

:func:`load_interpreter` returns a :class:`Model` whose :meth:`Model.predict` takes and returns
float32 arrays whatever the model's tensor types are: a quantised (int8/uint8/int16) input is
quantised with the input tensor's scale and zero-point, a quantised output is dequantised with
the output tensor's, so callers always see float probabilities.

Backends, in order of preference (``backend=`` or ``EDGEAV_TFLITE_BACKEND`` forces one):

- ``ai_edge_litert`` (LiteRT, the successor of tflite-runtime; NumPy 2, aarch64 wheels),
- ``tflite_runtime`` (its last release crashes on NumPy 2; kept for older installs),
- ``tf.lite`` (full TensorFlow, a last resort; imported through :mod:`edgeav.tf`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError
from edgeav.fusion import softmax
from edgeav.native_stderr import captured_native_stderr

#: Backends in the order they are tried.
BACKENDS = ("ai_edge_litert", "tflite_runtime", "tf.lite")


def _interpreter_class(backend: str) -> Any:
    """Return the ``Interpreter`` class of ``backend`` (ImportError if it is not installed)."""
    if backend == "ai_edge_litert":
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

        return Interpreter
    if backend == "tflite_runtime":
        from tflite_runtime.interpreter import Interpreter  # noqa: PLC0415

        return Interpreter
    if backend == "tf.lite":
        from edgeav.tf import tf  # noqa: PLC0415

        try:
            return tf().lite.Interpreter
        except ImportError:
            raise
        except Exception as exc:  # a broken TensorFlow install is as good as none
            raise ImportError(str(exc)) from exc
    raise EdgeAVError(f"unknown TFLite backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def _resolve_backend(backend: str | None) -> tuple[str, Any]:
    backend = backend or os.environ.get("EDGEAV_TFLITE_BACKEND") or None
    candidates = (backend,) if backend else BACKENDS
    errors = []
    for name in candidates:
        try:
            return name, _interpreter_class(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    if backend:
        raise EdgeAVError(f"TFLite backend {backend!r} is not available ({errors[0]})")
    raise EdgeAVError(
        "no TFLite interpreter is installed (tried ai_edge_litert, tflite_runtime, tf.lite); "
        "install the runtime extra: pip install 'edgeav[runtime]'"
    )


class _Quant:
    """Scale and zero-point of one tensor (``scale == 0`` means not quantised)."""

    def __init__(self, detail: dict[str, Any]) -> None:
        self.dtype = np.dtype(detail["dtype"])
        params = detail.get("quantization_parameters") or {}
        scales = np.asarray(params.get("scales", []), dtype=np.float64)
        zeros = np.asarray(params.get("zero_points", []), dtype=np.int64)
        if scales.size == 0:
            scale, zero = detail.get("quantization", (0.0, 0))
            scales = np.asarray([scale], dtype=np.float64)
            zeros = np.asarray([zero], dtype=np.int64)
        if scales.size > 1:  # per-channel on an activation: not produced by edgeav's converter
            raise EdgeAVError(
                f"tensor {detail.get('name')!r} has per-channel quantisation; "
                "only per-tensor input/output quantisation is supported"
            )
        self.scale = float(scales[0]) if scales.size else 0.0
        self.zero_point = int(zeros[0]) if zeros.size else 0
        self.quantized = np.issubdtype(self.dtype, np.integer) and self.scale > 0
        if self.quantized:
            info = np.iinfo(self.dtype)
            self._range = (float(info.min), float(info.max))

    def quantize(self, x: np.ndarray) -> np.ndarray:
        if self.quantized:
            q = np.divide(x, self.scale, dtype=np.float64)
            np.round(q, out=q)
            q += self.zero_point
            np.clip(q, *self._range, out=q)
            return q.astype(self.dtype)
        return x.astype(self.dtype, copy=False)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if self.quantized:
            return ((q.astype(np.float32) - np.float32(self.zero_point)) * self.scale).astype(
                np.float32
            )
        return q.astype(np.float32, copy=False)


class Model:
    """One loaded ``.tflite`` model with a float-in, float-out :meth:`predict`.

    Attributes:
        backend: "ai_edge_litert", "tflite_runtime" or "tf.lite".
        name: where the model came from (a path or a label), used in error messages.
        input_shape, output_shape: tensor shapes including the batch dimension.
        input_dtype, output_dtype: tensor element types ("float32", "int8", ...).
        num_threads: the thread count given to the interpreter (None = backend default).
    """

    def __init__(
        self, interpreter: Any, backend: str, name: str, num_threads: int | None = None
    ) -> None:
        self._interp = interpreter
        self.backend = backend
        self.name = name
        self.num_threads = num_threads
        inputs = interpreter.get_input_details()
        outputs = interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise EdgeAVError(
                f"model {name} has {len(inputs)} inputs and {len(outputs)} outputs; "
                "expected exactly one of each"
            )
        self._in, self._out = inputs[0], outputs[0]
        self._in_q, self._out_q = _Quant(self._in), _Quant(self._out)
        self.input_shape = tuple(int(d) for d in self._in["shape"])
        self.output_shape = tuple(int(d) for d in self._out["shape"])
        self.input_dtype = self._in_q.dtype.name
        self.output_dtype = self._out_q.dtype.name
        self._batch = self.input_shape[0] if self.input_shape else 1
        #: "probabilities" or "logits" (from the bundle): what :meth:`probabilities` converts.
        self.output = "probabilities"

    @property
    def input_quantization(self) -> tuple[float, int]:
        return self._in_q.scale, self._in_q.zero_point

    @property
    def output_quantization(self) -> tuple[float, int]:
        return self._out_q.scale, self._out_q.zero_point

    def _resize(self, batch: int) -> None:
        shape = [batch, *self.input_shape[1:]]
        try:
            self._interp.resize_tensor_input(self._in["index"], shape, strict=False)
            self._interp.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise EdgeAVError(f"model {self.name} cannot run a batch of {batch}: {exc}") from exc
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self._batch = batch

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Run the model on ``x`` (float; with or without the batch dimension).

        Returns float32 outputs (dequantised), with a batch dimension only if ``x`` had one.
        """
        arr = np.asarray(x)
        sample_shape = self.input_shape[1:]
        if arr.shape == sample_shape:
            batched, arr = False, arr[None]
        elif arr.ndim == len(self.input_shape) and arr.shape[1:] == sample_shape:
            batched = True
        else:
            raise EdgeAVError(
                f"model {self.name} expects input of shape {sample_shape} "
                f"(or a batch of them), got {arr.shape}"
            )
        if arr.dtype.kind not in "iuf":  # integers or floats (not bool, complex, str)
            raise EdgeAVError(f"model {self.name} input must be real numbers, got {arr.dtype}")
        if arr.shape[0] != self._batch:
            self._resize(arr.shape[0])
        self._interp.set_tensor(self._in["index"], self._in_q.quantize(arr))
        self._interp.invoke()
        out = self._out_q.dequantize(self._interp.get_tensor(self._out["index"]))
        return out if batched else out[0]

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """:meth:`predict`, then :meth:`to_probabilities`."""
        return self.to_probabilities(self.predict(x))

    def to_probabilities(self, out: np.ndarray) -> np.ndarray:
        """The softmax of :meth:`predict`'s output if the model outputs logits, else ``out``.

        In float64: with float32 ``exp`` the emulated Cortex-A72/A76 differed from x86 in the last
        bits (NumPy's SIMD code differs per architecture); with float64 they agree bit for bit,
        which ``tests/test_pi.py`` checks."""
        if self.output != "logits":
            return out
        return softmax(out.astype(np.float64)).astype(np.float32)


def load_interpreter(
    model: bytes | str | os.PathLike[str],
    num_threads: int | None = None,
    *,
    backend: str | None = None,
    name: str | None = None,
    output: str = "probabilities",
    input_shape: tuple[int, ...] | None = None,
) -> Model:
    """Load a ``.tflite`` model (raw bytes or a path) into a :class:`Model`.

    Args:
        model: the flatbuffer bytes, or the path of a ``.tflite`` file.
        num_threads: interpreter threads (>= 1); None lets the backend choose.
        backend: force one of :data:`BACKENDS`; default: the first one installed
            (``EDGEAV_TFLITE_BACKEND`` overrides the default).
        name: a label for error messages (defaults to the path, or "model").
        output: "probabilities" or "logits" (a bundle entry's ``output``): what
            :meth:`Model.probabilities` converts.
        input_shape: the input's shape, batch included, for a model whose input has dynamic
            dimensions (set before the tensors are allocated).

    Raises:
        EdgeAVError: unreadable file, invalid model, bad thread count, no backend installed.
    """
    if num_threads is not None and (
        isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
    ):
        raise EdgeAVError(f"number of threads must be an integer >= 1, got {num_threads!r}")
    if isinstance(model, (bytes, bytearray, memoryview)):
        content = bytes(model)
        name = name or "model"
    else:
        path = Path(model)
        name = name or str(path)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise EdgeAVError(f"cannot read model {path}: {exc.strerror or exc}") from exc
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise EdgeAVError(f"{name} is not a TFLite model (no TFL3 flatbuffer identifier)")
    backend_name, interpreter_cls = _resolve_backend(backend)
    try:
        with captured_native_stderr() as native_log, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite warns on every use in TF 2.21
            interp = interpreter_cls(model_content=content, num_threads=num_threads)
            if input_shape is not None:
                index = interp.get_input_details()[0]["index"]
                interp.resize_tensor_input(index, list(input_shape), strict=False)
            interp.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        errors = [line for line in native_log if "ERROR" in line]
        detail = (errors[0] if errors else str(exc).strip().splitlines()[0]).strip()
        raise EdgeAVError(f"cannot load model {name}: {detail}") from exc
    if output not in ("probabilities", "logits"):
        raise EdgeAVError(f"model output must be 'probabilities' or 'logits', got {output!r}")
    model = Model(interp, backend_name, name, num_threads)
    model.output = output
    return model
