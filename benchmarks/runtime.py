"""``python -m edgeav.benchmarks.runtime BUNDLE``: how fast the device runtime starts and ticks.

Three figures, measured in one run on file sources:

1. **Cold start**: from spawning ``python -m edgeav run --json --no-realtime ...`` to its first
   prediction on stdout (process start, imports, bundle validation, interpreter creation, the
   first tick), median of ``--runs`` runs. Target: <= 1.5 s.
2. **Per-tick latency against its parts**: the pipeline's tick (median of its ``compute`` time:
   everything after the frame and audio window are in hand -- preprocessing, features, both
   invokes, fusion, bookkeeping) against the sum of the medians of the same parts timed standalone
   on the tick's own inputs (preprocess + features + image invoke + audio invoke + fusion). Ticks and parts
   alternate, round by round, so both are measured under the same machine load. Each part is
   called three times back to back: the headline uses the fastest (hot caches, the strictest
   baseline); the first call of each round (caches as the tick finds them) is shown too.
   Target: ratio <= 1.15. Where the pipeline overlaps the image invoke with the audio branch
   (its default with both models and two or more CPUs), every other tick runs serially
   (``--serial``) instead, and both ratios are printed, each against the same parts. The
   overlapped tick pins its two threads as ``edgeav run`` does; ``--no-pin`` measures it
   without (the parts are timed on the tick's thread either way).
   Capture (decoding the file's frames on
   the file clock) is reported separately: with a live camera it happens in the reader thread.
3. **Sustained ticks per second** with ``--no-realtime`` (capture included), the stream looped.

Without ``--video``/``--audio`` a synthetic stream (noise frames, tones in noise) is written to a
temporary folder: the figures depend on the models and the input sizes, not on the content.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError

COLD_START_TARGET_S = 1.5
TICK_RATIO_TARGET = 1.15


def synthetic_stream(
    folder: Path, seconds: int = 20, fps: int = 10, sr: int = 16000, seed: int = 0
):
    """A noise video (64x64) and a WAV of tones in noise, ``seconds`` long."""
    import cv2  # noqa: PLC0415
    import soundfile as sf  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    video = folder / "bench.mkv"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"FFV1"), float(fps), (64, 64))
    if not writer.isOpened():
        raise EdgeAVError(f"cannot write {video}")
    for _ in range(seconds * fps):
        writer.write(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    writer.release()
    t = np.arange(seconds * sr) / sr
    freq = np.repeat(rng.uniform(200, 3000, seconds), sr)
    audio = 0.2 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 0.02, t.size)
    wav = folder / "bench.wav"
    sf.write(wav, audio.astype(np.float32), sr, subtype="PCM_16")
    return video, wav


def _source_args(bundle: Any, video: Path, wav: Path) -> list[str]:
    args = []
    if bundle.model_bytes("image") is not None:
        args += ["--camera", str(video)]
    if bundle.model_bytes("audio") is not None:
        args += ["--audio-file", str(wav)]
    return args


def cold_start(
    bundle_path: Path, source_args: list[str], runs: int, threads: int | None, pin: bool = True
) -> tuple[list[float], list[float]]:
    """Seconds from spawning ``edgeav run`` to its first JSON line, one per run, and the CPU
    seconds (user + system) of each whole one-tick run: on a busy machine the wall time includes
    waiting for a core; the CPU time does not."""
    cmd = [sys.executable, "-m", "edgeav", "run", "--model", str(bundle_path), *source_args]
    cmd += ["--json", "--no-realtime", "--duration", "1"]
    if threads:
        cmd += ["--threads", str(threads)]
    if not pin:
        cmd.append("--no-pin")
    times, cpu = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        elapsed = time.perf_counter() - t0
        proc.stdout.read()
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
        proc.stderr.close()
        if proc.returncode != 0 or not line.startswith("{"):
            last = err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}"
            raise EdgeAVError(f"edgeav run failed: {last}")
        times.append(elapsed)
        cpu.append(usage.ru_utime + usage.ru_stime)
    return times, cpu


def tick_and_parts(
    bundle: Any, video: Path, wav: Path, ticks: int, threads: int | None, pin: bool = True
) -> dict[str, Any]:
    """Pipeline tick medians and the same parts timed standalone, on the same inputs."""
    from edgeav.features import extract  # noqa: PLC0415
    from edgeav.fusion import fuse  # noqa: PLC0415
    from edgeav.preprocess import preprocess_image  # noqa: PLC0415
    from edgeav.runtime.camera import Camera  # noqa: PLC0415
    from edgeav.runtime.microphone import AudioFile  # noqa: PLC0415
    from edgeav.runtime.pipeline import Pipeline  # noqa: PLC0415

    has_image = bundle.model_bytes("image") is not None
    has_audio = bundle.model_bytes("audio") is not None
    config = bundle.feature_config

    def make_pipeline(loop: bool) -> Pipeline:
        cam = Camera(str(video), loop=loop).open() if has_image else None
        audio = (
            AudioFile(wav, sample_rate=config.sample_rate, seconds=4, loop=loop).open()
            if has_audio
            else None
        )
        return Pipeline(bundle, camera=cam, audio=audio, realtime=False, threads=threads, pin=pin)

    # the pipeline, ticking as fast as it can (the stream looped)
    pipe = make_pipeline(loop=True)
    warmup = 5
    records = []
    t0 = None
    try:
        for i, record in enumerate(pipe.run()):
            if i == warmup:
                t0 = time.perf_counter()
            if i >= warmup:
                records.append(record)
            if len(records) >= ticks:
                break
        wall = time.perf_counter() - t0
    finally:
        pipe.close()
    stages = ("capture", "preprocess", "features", "image", "audio", "fusion", "compute", "total")
    tick = {
        s: statistics.median(r["timings_ms"][s] for r in records)
        for s in stages
        if all(s in r["timings_ms"] for r in records)
    }

    # The tick against its parts, measured in alternation so that both see the same machine
    # (on a shared machine the load drifts): each round runs one pipeline tick, then each part
    # alone on fixed inputs, three times back to back, keeping the fastest (the hot, standalone
    # figure). Reported: median tick compute time / sum of the parts' medians.
    spec, weights = bundle.image_spec, bundle.fusion
    pipe = make_pipeline(loop=True).open()
    models = pipe.models
    # With the branches overlapped (the default where there are two cores), every other tick
    # runs them one after the other (``--serial``) on the same pipeline, for comparison.
    can_overlap = pipe.overlap
    inputs: dict[str, Any] = {}

    def _preprocess() -> None:
        inputs["x"] = preprocess_image(inputs["frame"].image, spec, source_order="bgr")

    def _features() -> None:
        inputs["feats"] = extract(inputs["window"], config)

    def _fusion() -> None:
        fuse(inputs["probs"], weights)

    calls: dict[str, Any] = {}
    if has_image:
        calls["preprocess"] = _preprocess
        calls["image"] = lambda: models["image"].probabilities(inputs["x"])
    if has_audio:
        calls["features"] = _features
        calls["audio"] = lambda: models["audio"].probabilities(inputs["feats"])
    calls["fusion"] = _fusion
    alternating: list[dict[str, float]] = []  # the timings of the ticks timed
    alternating_serial: list[float] = []
    part_times: dict[str, list[float]] = {name: [] for name in calls}
    part_first: dict[str, list[float]] = {name: [] for name in calls}
    try:
        for k in range(warmup + ticks):
            pipe.overlap = can_overlap and k % 2 == 0
            record = pipe.step(pipe.first_us + k * pipe.period_us)
            if record is None:
                break
            # the parts get exactly the inputs this tick had
            inputs["frame"], inputs["window"] = pipe.last_inputs
            inputs["probs"] = {
                m: None if record["probs"][m] is None else np.asarray(record["probs"][m])
                for m in ("image", "audio")
            }
            for name, fn in calls.items():
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    fn()
                    times.append((time.perf_counter() - t0) * 1e3)
                if k >= warmup:
                    part_first[name].append(times[0])
                    part_times[name].append(min(times))
            if k >= warmup:
                if can_overlap and not pipe.overlap:
                    alternating_serial.append(record["timings_ms"]["compute"])
                else:
                    alternating.append(record["timings_ms"])
    finally:
        pipe.close()
    parts = {name: statistics.median(v) for name, v in part_times.items()}
    first = {name: statistics.median(v) for name, v in part_first.items()}
    tick["compute (alternating)"] = statistics.median(t["compute"] for t in alternating)
    if alternating_serial:
        tick["compute (alternating, serial)"] = statistics.median(alternating_serial)
    tick_alternating = {
        s: statistics.median(t[s] for t in alternating)
        for s in calls
        if alternating and all(s in t for t in alternating)
    }
    serial_ms = tick.get("compute (alternating, serial)", tick["compute (alternating)"])
    return {
        "tick_ms": tick,
        "parts_ms": parts,
        "parts_sum_ms": sum(parts.values()),
        "ratio": tick["compute (alternating)"] / sum(parts.values()),
        "parts_in_alternating_ticks_ms": tick_alternating,
        "parts_first_call_ms": first,
        "parts_first_call_sum_ms": sum(first.values()),
        "ratio_first_call": tick["compute (alternating)"] / sum(first.values()),
        "overlap": can_overlap,
        "pinned_cpus": list(pipe.pinned_cpus) if pipe.pinned_cpus else None,
        "spin": pipe.spin,
        "ratio_serial": serial_ms / sum(parts.values()),
        "ratio_serial_first_call": serial_ms / sum(first.values()),
        "ticks": len(records),
        "ticks_per_second": len(records) / wall if wall > 0 else None,
        "backend": pipe.backend,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgeav.benchmarks.runtime",
        description="Cold start, per-tick latency against its parts, and sustained ticks/s of "
        "`edgeav run` on file sources.",
    )
    parser.add_argument("bundle", type=Path, help="model.edgeav")
    parser.add_argument("--video", type=Path, help="video file (default: synthetic)")
    parser.add_argument("--audio", type=Path, help="WAV/FLAC file (default: synthetic)")
    parser.add_argument("--ticks", type=int, default=200, help="ticks timed (default 200)")
    parser.add_argument("--runs", type=int, default=3, help="cold-start runs (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="leave the tick's two threads to the OS (as edgeav run --no-pin)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        result = run_benchmark(args)
    except EdgeAVError as exc:
        print(f"edgeav: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgeav: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_result(result)
    return 0


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from edgeav.bundle import read_bundle  # noqa: PLC0415

    if args.ticks < 1 or args.runs < 1:
        raise EdgeAVError("--ticks and --runs must be >= 1")
    bundle = read_bundle(args.bundle)
    with tempfile.TemporaryDirectory(prefix="edgeav-bench-") as tmp:
        video, wav = synthetic_stream(Path(tmp))
        video = args.video or video
        wav = args.audio or wav
        for path in (video, wav):
            if not Path(path).is_file():
                raise EdgeAVError(f"input file {path} does not exist")
        cold, cold_cpu = cold_start(
            args.bundle, _source_args(bundle, video, wav), args.runs, args.threads, args.pin
        )
        ticks = tick_and_parts(bundle, video, wav, args.ticks, args.threads, args.pin)
    cold_median = statistics.median(cold)
    return {
        "bundle": str(args.bundle),
        "modalities": bundle.modalities,
        "quantization": bundle.manifest.quantization,
        "backend": ticks["backend"],
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "cold_start_s": {"median": cold_median, "runs": cold},
        "cold_start_cpu_s": {"median": statistics.median(cold_cpu), "runs": cold_cpu},
        "cold_start_ratio_to_target": cold_median / COLD_START_TARGET_S,
        "tick_ms": ticks["tick_ms"],
        "parts_ms": ticks["parts_ms"],
        "parts_sum_ms": ticks["parts_sum_ms"],
        "tick_to_parts_ratio": ticks["ratio"],
        "tick_ratio_to_target": ticks["ratio"] / TICK_RATIO_TARGET,
        "parts_in_alternating_ticks_ms": ticks["parts_in_alternating_ticks_ms"],
        "parts_first_call_ms": ticks["parts_first_call_ms"],
        "parts_first_call_sum_ms": ticks["parts_first_call_sum_ms"],
        "tick_to_parts_first_call_ratio": ticks["ratio_first_call"],
        "overlap": ticks["overlap"],
        "pinned_cpus": ticks["pinned_cpus"],
        "spin": ticks["spin"],
        "serial_tick_to_parts_ratio": ticks["ratio_serial"],
        "serial_tick_to_parts_first_call_ratio": ticks["ratio_serial_first_call"],
        "ticks_per_second": ticks["ticks_per_second"],
        "ticks": ticks["ticks"],
    }


def print_result(result: dict[str, Any]) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    console = Console()
    table = Table(
        title=f"edgeav runtime: {result['bundle']} ({'+'.join(result['modalities'])}, "
        f"{result['quantization']}, {result['backend']}, threads {result['threads'] or 'default'}"
        + (", image and audio branches overlapped" if result["overlap"] else ", serial")
        + (
            ", on CPUs {} and {}".format(*result["pinned_cpus"])
            if result.get("pinned_cpus")
            else ""
        )
        + (", spinning hand-overs" if result.get("spin") else "")
        + ")",
        title_justify="left",
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("ratio to target", justify="right")
    cold = result["cold_start_s"]
    table.add_row(
        "cold start, process start -> first prediction (median)",
        f"{cold['median']:.3f} s",
        f"<= {COLD_START_TARGET_S} s",
        f"{result['cold_start_ratio_to_target']:.2f}",
    )
    table.add_row(
        "  CPU time of that whole one-tick run (user+sys)",
        f"{result['cold_start_cpu_s']['median']:.3f} s",
        "",
        "",
    )
    table.add_row(
        "tick compute / sum of standalone parts",
        f"{result['tick_ms']['compute (alternating)']:.3f} / {result['parts_sum_ms']:.3f} ms = "
        f"{result['tick_to_parts_ratio']:.3f}x",
        f"<= {TICK_RATIO_TARGET}x",
        f"{result['tick_ratio_to_target']:.2f}",
    )
    table.add_row(
        "  same, parts timed by their first call of a round",
        f"{result['tick_ms']['compute (alternating)']:.3f} / "
        f"{result['parts_first_call_sum_ms']:.3f} ms = "
        f"{result['tick_to_parts_first_call_ratio']:.3f}x",
        f"<= {TICK_RATIO_TARGET}x",
        f"{result['tick_to_parts_first_call_ratio'] / TICK_RATIO_TARGET:.2f}",
    )
    if result["overlap"]:
        serial_ms = result["tick_ms"]["compute (alternating, serial)"]
        table.add_row(
            "  serial tick (--serial) / sum of standalone parts",
            f"{serial_ms:.3f} / {result['parts_sum_ms']:.3f} ms = "
            f"{result['serial_tick_to_parts_ratio']:.3f}x",
            "",
            "",
        )
        table.add_row(
            "  serial tick / parts timed by their first call",
            f"{serial_ms:.3f} / {result['parts_first_call_sum_ms']:.3f} ms = "
            f"{result['serial_tick_to_parts_first_call_ratio']:.3f}x",
            "",
            "",
        )
    table.add_row(
        "sustained ticks/s, --no-realtime (capture included)",
        f"{result['ticks_per_second']:.1f}",
        "",
        "",
    )
    console.print(table)
    stages = Table(title="median ms per stage", title_justify="left")
    stages.add_column("stage")
    stages.add_column("in the tick", justify="right")
    stages.add_column("standalone (fastest of 3)", justify="right")
    stages.add_column("standalone (first call)", justify="right")
    for stage, value in result["tick_ms"].items():
        alone = result["parts_ms"].get(stage)
        first = result["parts_first_call_ms"].get(stage)
        stages.add_row(
            stage,
            f"{value:.3f}",
            "" if alone is None else f"{alone:.3f}",
            "" if first is None else f"{first:.3f}",
        )
    stages.add_row(
        "sum of parts",
        "",
        f"{result['parts_sum_ms']:.3f}",
        f"{result['parts_first_call_sum_ms']:.3f}",
    )
    console.print(stages)
    runs = ", ".join(f"{t:.3f}" for t in cold["runs"])
    load = result["load_average"]
    console.print(
        f"cold-start runs: {runs} s; {result['ticks']} ticks timed; "
        f"{result['cpu_count']} CPUs" + (f", load average {load[0]:.1f}" if load else ""),
        highlight=False,
    )


if __name__ == "__main__":
    sys.exit(main())
