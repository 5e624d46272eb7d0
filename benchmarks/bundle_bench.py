"""Bundle benchmark (``edgeav bench model.edgeav``): each model, then the pipeline stage by stage.

Runs on the device with the ``runtime`` extra only: it imports the bundle reader, the runtime's
interpreter, the audio front-end, image preprocessing and fusion, never TensorFlow.

1. Each model in the bundle is timed alone with :func:`edgeav.benchmarks.timer.time_tflite` at
   each thread count (the figures ``benchmark_model`` reports).
2. The pipeline is timed tick by tick: the runtime's own
   :meth:`edgeav.runtime.pipeline.Pipeline.step`, fed by in-memory sources (a random
   camera-sized frame, a window of random audio), so the stages are the runtime's:
   ``frontend`` (the audio window to the head's input), ``preprocess`` (image preprocessing),
   ``image`` and ``audio`` (the models), ``fusion``, and ``total``; ticks per second =
   1000 / mean total ms.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeav.benchmarks.report import ms
from edgeav.benchmarks.timer import time_tflite
from edgeav.errors import EdgeAVError
from edgeav.runtime.pipeline import STAGES as PIPELINE_STAGES

if TYPE_CHECKING:
    from edgeav.bundle import Accuracy

#: The stages of one pipeline tick that the bundle benchmark reports (capture is synthetic here).
STAGES = tuple(s for s in PIPELINE_STAGES if s not in ("capture", "compute"))

#: Size of the synthetic camera frame (height, width): a common webcam resolution.
FRAME_SHAPE = (480, 640, 3)


def _accuracy(accuracy: Accuracy, name: str) -> float | None:
    """The accuracy the bundle records for ``name`` (a model or "fused"): TFLite's, else Keras's."""
    return accuracy.tflite.get(name, accuracy.keras.get(name))


def _stats(times_ms: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(times_ms, dtype=np.float64)
    return {
        "mean_ms": float(arr.mean()),
        "std_ms": float(arr.std()),
        "p50_ms": float(np.percentile(arr, 50)),
        "p90_ms": float(np.percentile(arr, 90)),
        "p99_ms": float(np.percentile(arr, 99)),
        "max_ms": float(arr.max()),
    }


def _synthetic_sources(bundle: Any, rng: np.random.Generator) -> tuple[Any, Any]:
    """An always-fresh camera (one random camera-sized frame) and microphone (random noise at
    about -20 dBFS) for the bundle's modalities, as runtime sources."""
    from edgeav.runtime.sources import AudioSource, Frame, FrameSource, Window  # noqa: PLC0415

    class SyntheticCamera(FrameSource):
        label, live = "synthetic camera", True

        def __init__(self, channels: int) -> None:
            shape = FRAME_SHAPE if channels != 1 else FRAME_SHAPE[:2]
            self.image = rng.integers(0, 256, size=shape, dtype=np.uint8)

        def frame_at(self, t_us: int) -> Frame:
            return Frame(self.image, t_us / 1e6, 0, time.monotonic())

    class SyntheticAudio(AudioSource):
        label, live = "synthetic audio", True

        def __init__(self, sample_rate: int) -> None:
            self.sample_rate = sample_rate
            self.noise = (0.1 * rng.standard_normal(4 * sample_rate)).astype(np.float32)

        def window(self, t_us: int, n: int) -> Window:
            end = t_us / 1e6
            samples = np.resize(self.noise, n)
            return Window(samples, end - n / self.sample_rate, end, time.monotonic())

    modalities = bundle.modalities
    frames = SyntheticCamera(bundle.image_spec.channels) if "image" in modalities else None
    audio = SyntheticAudio(bundle.feature_config.sample_rate) if "audio" in modalities else None
    return frames, audio


def bundle_name(bundle: Any) -> str:
    path = getattr(bundle, "path", None)
    return Path(path).name if path else "bundle"


def time_pipeline(
    bundle: Any, *, runs: int = 50, warmup: int = 5, threads: int | None = None
) -> list[dict[str, Any]]:
    """Time ``runs`` ticks of the runtime's pipeline after ``warmup`` untimed ones.

    The ticks are :meth:`edgeav.runtime.pipeline.Pipeline.step` itself, fed by in-memory
    sources (a random camera-sized frame, random audio), so the figures are the runtime's own
    per-stage timings. Returns one row per stage of :data:`STAGES`.
    """
    from edgeav.runtime.pipeline import RunOptions, open_pipeline  # noqa: PLC0415

    if runs < 1:
        raise EdgeAVError(f"runs must be at least 1, got {runs}")
    frames, audio = _synthetic_sources(bundle, np.random.default_rng(0))
    modalities = bundle.modalities
    times: dict[str, list[float]] = {s: [] for s in STAGES}
    options = RunOptions(threads=threads, rate=1000.0)
    with open_pipeline(bundle, options, frames=frames, audio=audio) as pipeline:
        for i in range(warmup + runs):
            prediction = pipeline.step(pipeline.first_us + i * pipeline.period_us)
            if i < warmup:
                continue
            if any(prediction.probs[m] is None for m in modalities):  # a model did not run
                flags = ", ".join(f"{m}: {f}" for m, f in prediction.flags.items())
                raise EdgeAVError(f"the pipeline left out a modality on synthetic input ({flags})")
            for name in STAGES:
                times[name].append(float(prediction.timings_ms.get(name, 0.0)))
    rows = []
    for name in STAGES:
        row = {"stage": name, "threads": threads, "runs": runs}
        row.update(_stats(times[name]))
        rows.append(row)
    return rows


def bench_bundle(
    path: str | Path,
    *,
    runs: int = 50,
    warmup: int = 5,
    threads: Sequence[int] = (1,),
    max_seconds: float | None = None,
    progress_console: Any = None,
) -> dict[str, Any]:
    """Benchmark a bundle: per-model rows (for :mod:`edgeav.benchmarks.report`) and stage rows.

    Returns ``{"models": [...], "stages": [...], "ticks_per_second": {threads: tps}}``. The
    model rows include a ``fused`` row: both models' parameters and sizes, the pipeline's total
    latency, and the manifest's fused accuracy when it has one.
    """
    from edgeav.bundle import read_bundle  # noqa: PLC0415

    bundle = read_bundle(path)
    manifest = bundle.manifest
    thread_list = list(threads) or [None]
    total_steps = len(thread_list) * (len(bundle.modalities) + 1)

    progress = None
    if progress_console is not None:
        from rich.progress import Progress  # noqa: PLC0415

        progress = Progress(console=progress_console, transient=True)
        progress.start()
        task = progress.add_task("bench", total=total_steps)

    def step(description: str, advance: int) -> None:
        if progress is not None:
            progress.update(task, description=description, advance=advance)

    model_rows: list[dict[str, Any]] = []
    stage_rows: list[dict[str, Any]] = []
    ticks: dict[str, float] = {}
    try:
        for n in thread_list:
            for modality in bundle.modalities:
                step(f"timing {modality} model, {n} thread(s)", 0)
                data = bundle.model_bytes(modality)
                entry = manifest.entry(modality)
                result = time_tflite(
                    data, runs=runs, warmup=warmup, threads=n, max_seconds=max_seconds
                )
                result.pop("times_ms", None)
                shape = result.pop("inputs")[0]["shape"][1:]
                row = {
                    "model": modality,
                    "input": "x".join(str(d) for d in shape),
                    "params": entry.params,
                    "macs": None,
                    "quant": manifest.quantization,
                    "accuracy": _accuracy(manifest.accuracy, modality),
                }
                row.update(result)
                model_rows.append(row)
                step(f"timed {modality} model", 1)
            step(f"timing the pipeline, {n} thread(s)", 0)
            stages = time_pipeline(bundle, runs=runs, warmup=warmup, threads=n)
            stage_rows.extend(stages)
            total = next(r for r in stages if r["stage"] == "total")
            ticks[str(n)] = 1000.0 / total["mean_ms"] if total["mean_ms"] > 0 else float("inf")
            total["ticks_per_second"] = ticks[str(n)]
            mine = [r for r in model_rows if r["threads"] == n]
            model_rows.append(
                {
                    "model": "fused",
                    "input": " + ".join(r["input"] for r in mine),
                    "params": sum(r["params"] for r in mine),
                    "size_bytes": sum(r["size_bytes"] for r in mine),
                    "quant": manifest.quantization,
                    "threads": n,
                    "p50_ms": total["p50_ms"],
                    "p90_ms": total["p90_ms"],
                    "p99_ms": total["p99_ms"],
                    "mean_ms": total["mean_ms"],
                    "runs": runs,
                    "accuracy": _accuracy(manifest.accuracy, "fused"),
                    "backend": mine[0]["backend"] if mine else None,
                }
            )
            step("timed the pipeline", 1)
    finally:
        if progress is not None:
            progress.stop()
    return {"models": model_rows, "stages": stage_rows, "ticks_per_second": ticks}


def _stage_cells(row: dict[str, Any]) -> list[str]:
    tps = row.get("ticks_per_second")
    return [
        str(row["stage"]),
        "-" if row.get("threads") is None else str(row["threads"]),
        ms(row["p50_ms"]),
        ms(row["p90_ms"]),
        ms(row["mean_ms"]),
        "-" if tps is None else f"{tps:.1f}",
    ]


_STAGE_TITLES = ("stage", "threads", "p50 ms", "p90 ms", "mean ms", "ticks/s")


def stages_table(rows: Sequence[dict[str, Any]], title: str | None = None):
    """A rich table of the pipeline's stage rows."""
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=title)
    for i, heading in enumerate(_STAGE_TITLES):
        table.add_column(heading, justify="left" if i == 0 else "right")
    for row in rows:
        if row["stage"] == STAGES[0] and table.row_count:
            table.add_section()
        table.add_row(*_stage_cells(row))
    return table


def stages_markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(_STAGE_TITLES) + " |", "|:---|" + "---:|" * (len(_STAGE_TITLES) - 1)]
    lines += ["| " + " | ".join(_stage_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"
