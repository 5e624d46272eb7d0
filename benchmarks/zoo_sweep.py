"""Zoo sweep: every chosen zoo variant, converted to each quantisation, timed at each thread count.

Latency does not depend on trained weights, so each variant is built with random weights and
converted with ``tf.lite.TFLiteConverter`` (int8 calibrated on a representative set of random
inputs). Converted models are cached on disk, keyed by their configuration (variant, its
builder arguments and the zoo's source, classes, input size, quantisation, calibration set,
TensorFlow and tf_keras versions), so a second sweep only times. The cache folder is ``--cache-dir``, else
``$EDGEAV_CACHE/bench``, else ``~/.cache/edgeav/bench``. Each cached model ``<sha>.tflite`` has
a ``<sha>.json`` beside it with the parameters and MACs counted on the Keras model, so a cached
sweep never imports TensorFlow.

Conversion happens first for every model, then the timing; each (model, quantisation, threads)
is timed in a fresh process (:func:`~edgeav.benchmarks.timer.time_tflite_in_subprocess`), as
``benchmark_model`` would run it, so TensorFlow's memory and threads stay out of the figures.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.benchmarks.timer import time_tflite_in_subprocess
from edgeav.errors import EdgeAVError
from edgeav.fileio import cache_dir, write_bytes_atomic, write_text_atomic
from edgeav.native_stderr import captured_native_stderr

#: Quantisation modes ``--quant`` accepts.
QUANT_MODES = ("float32", "float16", "dynamic", "int8")

#: Bump when the way models are converted changes, to invalidate cached models.
CACHE_FORMAT = 2

#: Classes of the zoo models' heads (the seed's data set had 49).
DEFAULT_CLASSES = 49


def default_cache_dir() -> Path:
    """``$EDGEAV_CACHE/bench`` if set, else ``~/.cache/edgeav/bench``."""
    return cache_dir("bench")


@dataclass(frozen=True)
class SweepConfig:
    """What one sweep builds and times."""

    models: tuple[str, ...]
    quants: tuple[str, ...] = ("float32", "int8")
    threads: tuple[int, ...] = (1,)
    runs: int = 50
    warmup: int = 5
    max_seconds: float | None = 20.0
    classes: int = DEFAULT_CLASSES
    input_size: int | None = None
    channels: int | None = None  # image models only; None: 3
    representative: int = 8
    cache_dir: Path = field(default_factory=default_cache_dir)


def _variants() -> dict[str, Any]:
    from edgeav.models.registry import VARIANTS  # noqa: PLC0415

    return VARIANTS


def seed_models() -> list[str]:
    """The zoo variants that reproduce a row of the seed's table (``seed_params`` set)."""
    return [n for n, v in _variants().items() if v.seed_params is not None]


def quick_models() -> list[str]:
    """The small image variants whose default input is 32x32 (``--quick``)."""
    return [n for n, v in _variants().items() if v.family != "audio" and v.default_input_size == 32]


def check_models(names: Sequence[str]) -> list[str]:
    """Return ``names`` or raise a one-line error naming an unknown variant."""
    known = _variants()
    for name in names:
        if name not in known:
            raise EdgeAVError(f"unknown model {name!r}; known: {', '.join(sorted(known))}")
    if not names:
        raise EdgeAVError("no models to benchmark")
    return list(names)


def check_quants(quants: Sequence[str]) -> list[str]:
    for quant in quants:
        if quant not in QUANT_MODES:
            raise EdgeAVError(
                f"unknown quantisation {quant!r}; choose from {', '.join(QUANT_MODES)}"
            )
    if not quants:
        raise EdgeAVError("no quantisation modes to benchmark")
    return list(quants)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


def _input_size(name: str, config: SweepConfig) -> int:
    """The input size the variant is built at: ``--input-size`` applies to image models only."""
    variant = _variants()[name]
    if config.input_size is not None and variant.family != "audio":
        return int(config.input_size)
    return int(variant.default_input_size)


def _channels(name: str, config: SweepConfig) -> int | None:
    """Input channels of an image variant (``--channels``, default 3); None for audio models."""
    if _variants()[name].family == "audio":
        return None
    return 3 if config.channels is None else int(config.channels)


def _variant_config(name: str) -> dict[str, Any]:
    """The variant's definition as JSON-able data (family and builder arguments)."""
    variant = _variants()[name]
    doc = {"family": variant.family, "kwargs": dict(variant.kwargs)}
    return json.loads(json.dumps(doc, sort_keys=True, default=repr))


def _builders_digest() -> str:
    """sha256 of the model zoo's source files, so a changed builder invalidates the cache."""
    import edgeav.models  # noqa: PLC0415

    digest = hashlib.sha256()
    for path in sorted(Path(edgeav.models.__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(name: str, quant: str, config: SweepConfig) -> str:
    """sha256 of everything the converted model depends on."""
    doc = {
        "format": CACHE_FORMAT,
        "model": name,
        "variant": _variant_config(name),
        "builders": _builders_digest(),
        "classes": config.classes,
        "input_size": _input_size(name, config),
        "channels": _channels(name, config),
        "quant": quant,
        "representative": config.representative if quant == "int8" else 0,
        "tensorflow": _version("tensorflow"),
        "tf_keras": _version("tf-keras"),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@dataclass
class Converted:
    """A converted model in the cache: its file and what was counted on the Keras model."""

    path: Path
    meta: dict[str, Any]
    cached: bool


def _trace(keras_model: Any) -> Any:
    """The model's inference function (batch 1), traced once and shared by every conversion.

    ``TFLiteConverter.from_keras_model`` saves the whole Keras model as a SavedModel on every
    conversion (tracing each layer's call functions); converting the traced function directly
    gives the same ``.tflite`` without that save, so a sweep traces each model once.
    """
    from edgeav.tf import tf  # noqa: PLC0415

    tf_ = tf()
    specs = [
        tf_.TensorSpec([1, *t.shape[1:]], tf_.float32, name=f"input_{i}")
        for i, t in enumerate(keras_model.inputs)
    ]

    def forward(*inputs):
        return keras_model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)

    return tf_.function(forward, input_signature=specs).get_concrete_function()


def _convert(keras_model: Any, quant: str, representative: int, traced: Any = None) -> bytes:
    """Convert a tf_keras model (or its :func:`_trace`) to ``.tflite`` bytes, one quantisation."""
    from edgeav.converters.quantize import configure_converter  # noqa: PLC0415
    from edgeav.tf import tf  # noqa: PLC0415

    tf_ = tf()
    traced = traced if traced is not None else _trace(keras_model)
    converter = tf_.lite.TFLiteConverter.from_concrete_functions([traced], keras_model)
    converter.experimental_lower_to_saved_model = False
    shapes = [tuple(spec.shape) for spec in traced.structured_input_signature[0]]
    rng = np.random.default_rng(0)

    def representative_dataset():
        for _ in range(representative):
            yield [rng.standard_normal(s).astype(np.float32) for s in shapes]

    configure_converter(tf_, converter, quant, representative_dataset)
    try:
        with warnings.catch_warnings(), captured_native_stderr():
            warnings.simplefilter("ignore")
            return converter.convert()
    except Exception as exc:  # noqa: BLE001 - the converter raises many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EdgeAVError(f"cannot convert to {quant}: {first}") from exc


def _build(name: str, config: SweepConfig) -> tuple[Any, dict[str, Any]]:
    """Build a variant with random weights; return it and what is counted on it."""
    from edgeav.models.macs import count_macs, count_params  # noqa: PLC0415
    from edgeav.models.registry import build_variant  # noqa: PLC0415
    from edgeav.tf import keras  # noqa: PLC0415

    with captured_native_stderr():  # TensorFlow's import-time logs (CUDA, absl)
        keras().utils.set_random_seed(0)
        extra = {} if _channels(name, config) is None else {"channels": _channels(name, config)}
        model = build_variant(
            name, classes=config.classes, input_size=_input_size(name, config), **extra
        )
    shape = list(model.inputs[0].shape[1:])
    variant = _variants()[name]
    meta = {
        "model": name,
        "family": variant.family,
        "input": "x".join(str(d) for d in shape),
        "params": int(count_params(model)),
        "macs": int(count_macs(model)),
        "seed_params": variant.seed_params,
    }
    return model, meta


def convert_all(
    config: SweepConfig, on_step: Callable[[str, int], None] | None = None
) -> dict[tuple[str, str], Converted]:
    """Make sure every (model, quant) of the sweep is converted and cached; return them.

    ``on_step(description, advance)`` is called with ``advance=0`` before a conversion starts
    and with ``advance=1`` once per (model, quant) when it is ready (converted or cached).
    """
    folder = Path(config.cache_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeAVError(
            f"cannot create the cache folder {folder}: {exc.strerror or exc}"
        ) from exc
    out: dict[tuple[str, str], Converted] = {}
    for name in config.models:
        model = traced = None
        meta: dict[str, Any] | None = None
        for quant in config.quants:
            key = cache_key(name, quant, config)
            path, meta_path = folder / f"{key}.tflite", folder / f"{key}.json"
            cached = None
            if path.is_file() and meta_path.is_file():
                with contextlib.suppress(OSError, ValueError):
                    cached = json.loads(meta_path.read_text())
            if cached is not None:
                out[(name, quant)] = Converted(path, cached, cached=True)
            else:
                if on_step is not None:
                    on_step(f"converting {name} {quant}", 0)
                if model is None:
                    model, meta = _build(name, config)
                    traced = _trace(model)
                assert meta is not None
                started = time.perf_counter()
                try:
                    data = _convert(model, quant, config.representative, traced)
                except EdgeAVError as exc:
                    raise EdgeAVError(f"{name}: {exc}") from exc
                entry = dict(
                    meta,
                    quant=quant,
                    convert_seconds=round(time.perf_counter() - started, 2),
                    tensorflow=_version("tensorflow"),
                    classes=config.classes,
                )
                write_bytes_atomic(path, data)
                write_text_atomic(meta_path, json.dumps(entry, indent=2))
                out[(name, quant)] = Converted(path, entry, cached=False)
            if on_step is not None:
                on_step(f"converted {name} {quant}", 1)
        if model is not None:
            from edgeav.tf import keras  # noqa: PLC0415

            del model, traced
            keras().backend.clear_session()
    return out


def time_all(
    config: SweepConfig,
    converted: dict[tuple[str, str], Converted],
    on_step: Callable[[str, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Time every converted model at every thread count; one row per (model, quant, threads)."""
    rows = []
    for name in config.models:
        for quant in config.quants:
            item = converted[(name, quant)]
            for threads in config.threads:
                if on_step is not None:
                    on_step(f"timing {name} {quant} {threads} thread(s)", 0)
                result = time_tflite_in_subprocess(
                    item.path,
                    runs=config.runs,
                    warmup=config.warmup,
                    threads=threads,
                    max_seconds=config.max_seconds,
                )
                result.pop("times_ms", None)
                result.pop("inputs", None)
                row = {
                    "model": name,
                    "family": item.meta.get("family"),
                    "input": item.meta.get("input"),
                    "params": item.meta.get("params"),
                    "macs": item.meta.get("macs"),
                    "seed_params": item.meta.get("seed_params"),
                    "quant": quant,
                    "accuracy": None,
                    "cached": item.cached,
                    "convert_seconds": item.meta.get("convert_seconds"),
                }
                row.update(result)
                rows.append(row)
                if on_step is not None:
                    on_step(f"timed {name} {quant} {threads} thread(s)", 1)
    return rows


def steps(config: SweepConfig) -> int:
    """The total of ``on_step``'s ``advance`` over :func:`sweep` (a progress bar's total)."""
    n = len(config.models) * len(config.quants)
    return n + n * len(config.threads)


def sweep(
    config: SweepConfig, on_step: Callable[[str, int], None] | None = None
) -> list[dict[str, Any]]:
    """Convert (or take from the cache) and time every model of ``config``; return the rows."""
    check_models(config.models)
    check_quants(config.quants)
    converted = convert_all(config, on_step)
    return time_all(config, converted, on_step)
