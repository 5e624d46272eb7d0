"""Read a ``.tflite`` flatbuffer without TensorFlow: tensors, quantisation, operators, weights.

Uses the flatbuffer schema that LiteRT ships as generated Python
(``ai_edge_litert.schema_py_generated``, which needs the pure-Python ``flatbuffers`` package):
no interpreter is created and nothing in the file is executed. Used by ``edgeav info`` and by
:mod:`edgeav.bundle` to check a bundle's models against its manifest.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError

_NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "uint8": np.uint8,
                 "int16": np.int16, "int32": np.int32, "int64": np.int64}  # fmt: skip


@dataclass(frozen=True)
class TensorInfo:
    """One tensor: name, shape (batch dim included), dtype and quantisation."""

    name: str
    shape: list[int]
    dtype: str
    scale: list[float] = field(default_factory=list)
    zero_point: list[int] = field(default_factory=list)

    @property
    def quantized(self) -> bool:
        return bool(self.scale)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TFLiteInfo:
    """What ``edgeav info`` shows about one model."""

    version: int
    description: str
    subgraphs: int
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    op_counts: dict[str, int]
    tensors: int
    weight_tensors: int
    weight_bytes: int
    weight_elements: int
    zero_weights: int
    weight_dtypes: dict[str, int]

    @property
    def weight_sparsity(self) -> float:
        """Fraction of exactly-zero elements among the constant float/int8 weight tensors."""
        return self.zero_weights / self.weight_elements if self.weight_elements else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["inputs"] = [t.to_dict() for t in self.inputs]
        out["outputs"] = [t.to_dict() for t in self.outputs]
        out["weight_sparsity"] = round(self.weight_sparsity, 6)
        return out


@functools.lru_cache(maxsize=1)
def _schema() -> ModuleType | None:
    try:
        from ai_edge_litert import schema_py_generated  # noqa: PLC0415
    except ImportError:
        return None
    return schema_py_generated


def available() -> bool:
    """True when LiteRT's generated flatbuffer schema (and ``flatbuffers``) can be imported."""
    return _schema() is not None


@functools.lru_cache(maxsize=4)
def _enum_names(enum_name: str) -> dict[int, str]:
    enum = getattr(_schema(), enum_name)
    return {v: k for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, int)}


def describe(data: bytes) -> TFLiteInfo:
    """Parse ``data`` (a ``.tflite`` model) and summarise it.

    Raises:
        EdgeAVError: if the schema is not installed or the bytes are not a TFLite flatbuffer.
    """
    schema = _schema()
    if schema is None:
        raise EdgeAVError(
            "reading .tflite files needs ai-edge-litert (its flatbuffer schema); "
            "install the runtime extra: pip install 'edgeav[runtime]'"
        )
    if len(data) < 8 or bytes(data[4:8]) != b"TFL3":
        raise EdgeAVError("not a TFLite flatbuffer (missing the TFL3 identifier)")
    try:
        return _describe(schema, bytes(data))
    except EdgeAVError:
        raise
    except Exception as exc:  # malformed offsets surface as struct/index/value errors
        raise EdgeAVError(f"malformed TFLite flatbuffer: {type(exc).__name__}: {exc}") from None


def _describe(schema: ModuleType, data: bytes) -> TFLiteInfo:
    buf = bytearray(data)
    model = schema.Model.GetRootAs(buf, 0)
    types = _enum_names("TensorType")
    ops = _enum_names("BuiltinOperator")
    if model.SubgraphsLength() < 1:
        raise EdgeAVError("TFLite model has no subgraph")

    def tensor_info(sub, index: int) -> TensorInfo:
        if not 0 <= index < sub.TensorsLength():
            raise EdgeAVError(f"tensor index {index} out of range")
        t = sub.Tensors(index)
        q = t.Quantization()
        scale: list[float] = []
        zero: list[int] = []
        if q is not None and q.ScaleLength() > 0:
            scale = [float(q.Scale(i)) for i in range(min(q.ScaleLength(), 4096))]
            zero = [int(q.ZeroPoint(i)) for i in range(min(q.ZeroPointLength(), 4096))]
        name = t.Name()
        return TensorInfo(
            name=name.decode("utf-8", "replace") if name else "",
            shape=[int(t.Shape(i)) for i in range(t.ShapeLength())],
            dtype=types.get(t.Type(), f"type{t.Type()}").lower(),
            scale=scale,
            zero_point=zero,
        )

    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        if code == getattr(schema.BuiltinOperator, "CUSTOM", 32):
            custom = oc.CustomCode()
            codes.append(f"CUSTOM:{custom.decode('utf-8', 'replace') if custom else '?'}")
        else:
            codes.append(ops.get(code, f"BUILTIN_{code}"))

    op_counts: Counter[str] = Counter()
    n_tensors = 0
    weight_tensors = weight_bytes = weight_elements = zero_weights = 0
    weight_dtypes: Counter[str] = Counter()
    seen_buffers: set[int] = set()
    for s in range(model.SubgraphsLength()):
        sub = model.Subgraphs(s)
        n_tensors += sub.TensorsLength()
        for o in range(sub.OperatorsLength()):
            idx = sub.Operators(o).OpcodeIndex()
            op_counts[codes[idx] if 0 <= idx < len(codes) else f"OPCODE_{idx}"] += 1
        for t in range(sub.TensorsLength()):
            tensor = sub.Tensors(t)
            b = tensor.Buffer()
            if b <= 0 or b >= model.BuffersLength() or b in seen_buffers:
                continue
            raw = _buffer_bytes(model.Buffers(b), data)
            if not raw:
                continue
            seen_buffers.add(b)
            dtype = types.get(tensor.Type(), "?").lower()
            weight_tensors += 1
            weight_bytes += len(raw)
            weight_dtypes[dtype] += len(raw)
            np_dtype = _NUMPY_DTYPES.get(dtype)
            # Count zeros in weights (not in int32 biases or shape constants).
            if np_dtype is not None and dtype in ("float32", "float16", "int8"):
                arr = np.frombuffer(
                    raw[: len(raw) - len(raw) % np.dtype(np_dtype).itemsize], np_dtype
                )
                if arr.size >= 16:
                    weight_elements += int(arr.size)
                    zero_weights += int(np.count_nonzero(arr == 0))

    sub0 = model.Subgraphs(0)
    desc = model.Description()
    return TFLiteInfo(
        version=int(model.Version()),
        description=desc.decode("utf-8", "replace") if desc else "",
        subgraphs=int(model.SubgraphsLength()),
        inputs=[tensor_info(sub0, int(sub0.Inputs(i))) for i in range(sub0.InputsLength())],
        outputs=[tensor_info(sub0, int(sub0.Outputs(i))) for i in range(sub0.OutputsLength())],
        op_counts=dict(sorted(op_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        tensors=n_tensors,
        weight_tensors=weight_tensors,
        weight_bytes=weight_bytes,
        weight_elements=weight_elements,
        zero_weights=zero_weights,
        weight_dtypes=dict(weight_dtypes),
    )


def _buffer_bytes(buffer, data: bytes) -> bytes:
    offset, size = int(buffer.Offset()), int(buffer.Size())
    if offset > 1:  # large models keep buffers after the flatbuffer
        if offset + size > len(data):
            raise EdgeAVError("buffer extends past the end of the file")
        return data[offset : offset + size]
    if buffer.DataLength() == 0:
        return b""
    arr = buffer.DataAsNumpy()
    return arr.tobytes() if isinstance(arr, np.ndarray) else b""
