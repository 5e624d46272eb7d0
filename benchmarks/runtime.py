"""``python -m edgeav.benchmarks.runtime BUNDLE``: what the runtime costs beside the models.

Measured in one run, on file sources (``--video``/``--audio``, or a synthetic stream):

1. **Cold start**: from spawning ``python -m edgeav run --json --no-realtime ...`` to its first
   prediction on stdout (imports, bundle validation, interpreters, the first tick); the median
   of ``--runs`` runs.
2. **Overhead per tick**: the tick's compute time (everything after the frame and the audio
   window are in hand) minus its image and audio model calls -- preprocessing, the audio front-end,
   fusion and bookkeeping -- the median over ``--ticks`` ticks, with ``--no-realtime``.
3. **Against the image model**: the same overhead next to the p50 invoke of the bundle's own
   image model and of a reference network (``--reference``, default ``resnet50-sep-shallow``,
   the smallest of the seed's networks, at 224x224, int8), timed in this process with the same
   thread count. The reference is built and converted with TensorFlow the first time (the
   ``train`` extra) and cached (see :mod:`edgeav.benchmarks.zoo_sweep`); without TensorFlow and
   without a cached copy it is reported as unavailable. ``--reference-tflite FILE`` times a
   ``.tflite`` file instead, e.g. one copied to a device.
4. **Sustained ticks per second** with ``--no-realtime`` (capture included, files looped).

The headline is a ratio measured in the same run (overhead / reference invoke), which survives a
busy machine better than absolute figures do.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.benchmarks.report import run_and_report
from edgeav.errors import EdgeAVError

#: The overhead this runtime aims for, as a fraction of the reference network's invoke.
OVERHEAD_TARGET = 0.10
REFERENCE = "resnet50-sep-shallow"
REFERENCE_SIZE = 224


def synthetic_stream(
    folder: Path, seconds: int = 20, fps: int = 10, sr: int = 16000, seed: int = 0
) -> tuple[Path, Path]:
    """A noise video (640x480, as a webcam) and a WAV of tones in noise, ``seconds`` long."""
    import cv2  # noqa: PLC0415
    import soundfile as sf  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    video = folder / "bench.mkv"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (640, 480))
    if not writer.isOpened():
        raise EdgeAVError(f"cannot write {video}")
    noise = rng.integers(0, 256, (8, 480, 640, 3), dtype=np.uint8)
    for i in range(seconds * fps):
        writer.write(noise[i % len(noise)])
    writer.release()
    t = np.arange(seconds * sr) / sr
    freq = np.repeat(rng.uniform(200, 3000, seconds), sr)
    audio = 0.2 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 0.02, t.size)
    wav = folder / "bench.wav"
    sf.write(wav, audio.astype(np.float32), sr, subtype="PCM_16")
    return video, wav


def cold_start(cmd: list[str], runs: int) -> list[float]:
    """Seconds from spawning ``cmd`` (an ``edgeav run --json``) to its first JSON line."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        elapsed = time.perf_counter() - t0
        _, err = proc.communicate()
        if proc.returncode != 0 or not line.startswith("{"):
            last = err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}"
            raise EdgeAVError(f"edgeav run failed: {last}")
        times.append(elapsed)
    return times


def ticks(bundle: Any, video: Path, wav: Path, n: int, threads: int | None) -> dict[str, Any]:
    """Per-stage medians of ``n`` ticks on the looped files, the overhead, and ticks/s."""
    from edgeav.runtime.pipeline import RunOptions, open_pipeline  # noqa: PLC0415

    options = RunOptions(
        camera=str(video) if "image" in bundle.modalities else None,
        audio_file=wav if "audio" in bundle.modalities else None,
        realtime=False,
        loop=True,
        threads=threads,
    )
    warmup, timings = 5, []
    with open_pipeline(bundle, options) as pipe:
        for i, prediction in enumerate(pipe.run()):
            if i == warmup:
                started = time.perf_counter()
            if i >= warmup:
                timings.append(prediction.timings_ms)
            if len(timings) >= n:
                break
        wall = time.perf_counter() - started
        backend = pipe.backend
    stages = {s: statistics.median(t[s] for t in timings) for s in timings[0]}
    overhead = [t["compute"] - t.get("image", 0.0) - t.get("audio", 0.0) for t in timings]
    return {
        "stages_ms": stages,
        "overhead_ms": statistics.median(overhead),
        "tick_timings_ms": timings,
        "ticks": len(timings),
        "ticks_per_second": len(timings) / wall if wall > 0 else None,
        "backend": backend,
    }


def reference_model(name: str, tflite: Path | None) -> tuple[bytes | None, str]:
    """The reference network's int8 ``.tflite`` bytes and a description (bytes None if it
    cannot be had here)."""
    if tflite is not None:
        try:
            return tflite.read_bytes(), str(tflite)
        except OSError as exc:
            raise EdgeAVError(f"cannot read {tflite}: {exc.strerror or exc}") from exc
    from edgeav.benchmarks.zoo_sweep import SweepConfig, check_models, convert_all  # noqa: PLC0415

    check_models([name])
    config = SweepConfig(models=(name,), quants=("int8",), input_size=REFERENCE_SIZE)
    try:
        converted = convert_all(config)
    except (ImportError, EdgeAVError) as exc:
        return None, f"{name} unavailable ({str(exc).splitlines()[0]})"
    item = converted[(name, "int8")]
    return item.path.read_bytes(), f"{name} {item.meta.get('input')} int8"


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from edgeav.benchmarks.timer import time_tflite  # noqa: PLC0415
    from edgeav.bundle import read_bundle  # noqa: PLC0415

    if args.ticks < 1 or args.runs < 1:
        raise EdgeAVError("--ticks and --runs must be >= 1")
    bundle = read_bundle(args.bundle)
    with tempfile.TemporaryDirectory(prefix="edgeav-bench-") as tmp:
        video, wav = synthetic_stream(Path(tmp))
        video, wav = args.video or video, args.audio or wav
        for path in (video, wav):
            if not Path(path).is_file():
                raise EdgeAVError(f"input file {path} does not exist")
        cmd = [sys.executable, "-m", "edgeav", "run", "--model", str(args.bundle)]
        if "image" in bundle.modalities:
            cmd += ["--camera", str(video)]
        if "audio" in bundle.modalities:
            cmd += ["--audio-file", str(wav)]
        cmd += ["--json", "--no-realtime", "--duration", "1"]
        cmd += ["--threads", str(args.threads)] if args.threads else []
        cold = cold_start(cmd, args.runs)
        tick = ticks(bundle, Path(video), Path(wav), args.ticks, args.threads)
    invokes: dict[str, Any] = {}
    if "image" in bundle.modalities:
        timed = time_tflite(bundle.model_bytes("image"), threads=args.threads, runs=50)
        invokes["bundle image model"] = timed["p50_ms"]
    data, reference = reference_model(args.reference, args.reference_tflite)
    if data is not None:
        invokes[reference] = time_tflite(data, threads=args.threads, runs=20)["p50_ms"]
    ratio = tick["overhead_ms"] / invokes[reference] if reference in invokes else None
    return {
        "bundle": str(args.bundle),
        "modalities": bundle.modalities,
        "quantization": bundle.manifest.quantization,
        "backend": tick["backend"],
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "cold_start_s": {"median": statistics.median(cold), "runs": cold},
        "stages_ms": tick["stages_ms"],
        "overhead_ms": tick["overhead_ms"],
        "tick_timings_ms": tick["tick_timings_ms"],
        "invoke_p50_ms": invokes,
        "reference": reference,
        "overhead_to_reference": ratio,
        "overhead_target": OVERHEAD_TARGET,
        "ticks": tick["ticks"],
        "ticks_per_second": tick["ticks_per_second"],
    }


def print_result(result: dict[str, Any]) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    console = Console()
    title = (
        f"edgeav runtime: {result['bundle']} ({'+'.join(result['modalities'])}, "
        f"{result['quantization']}, {result['backend']}, "
        f"threads {result['threads'] or 'default'}, {result['cpu_count']} CPUs)"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("ms", justify="right")
    for stage, value in result["stages_ms"].items():
        table.add_row(f"tick: {stage} (median)", f"{value:.3f}")
    table.add_row("[bold]overhead: compute - model calls[/bold]", f"{result['overhead_ms']:.3f}")
    for name, value in result["invoke_p50_ms"].items():
        table.add_row(f"invoke p50: {name}", f"{value:.3f}")
    console.print(table)
    ratio = result["overhead_to_reference"]
    if ratio is None:
        console.print(f"reference: {result['reference']}", highlight=False)
    else:
        console.print(
            f"overhead / {result['reference']} invoke = {ratio:.3f} "
            f"(target <= {result['overhead_target']:.2f})",
            highlight=False,
        )
    cold = result["cold_start_s"]
    console.print(
        f"cold start to the first prediction: {cold['median']:.3f} s (median of "
        f"{len(cold['runs'])}); sustained {result['ticks_per_second']:.1f} ticks/s over "
        f"{result['ticks']} ticks, --no-realtime",
        highlight=False,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgeav.benchmarks.runtime",
        description="The runtime's overhead per tick next to the image model's invoke, cold "
        "start and sustained ticks/s of `edgeav run` on file sources.",
    )
    parser.add_argument("bundle", type=Path, help="model.edgeav")
    parser.add_argument("--video", type=Path, help="video file (default: synthetic 640x480)")
    parser.add_argument("--audio", type=Path, help="WAV/FLAC file (default: synthetic)")
    parser.add_argument("--ticks", type=int, default=200, help="ticks timed (default 200)")
    parser.add_argument("--runs", type=int, default=3, help="cold-start runs (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads")
    parser.add_argument(
        "--reference", default=REFERENCE, help=f"zoo network to compare with (default {REFERENCE})"
    )
    parser.add_argument("--reference-tflite", type=Path, help="a .tflite file to compare with")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    return run_and_report(lambda: run_benchmark(args), as_json=args.json, show=print_result)


if __name__ == "__main__":
    sys.exit(main())
