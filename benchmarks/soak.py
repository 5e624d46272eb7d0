"""Soak test: the runtime pipeline for many ticks on file sources, watching memory and errors.

    python -m edgeav.benchmarks.soak model.edgeav --ticks 10000
    python -m edgeav.benchmarks.soak model.edgeav --camera clip.mkv --audio-file clip.wav --json

Runs the runtime's pipeline (:func:`edgeav.runtime.pipeline.open_pipeline`) tick by tick on the files' own clock (as
``edgeav run --no-realtime --loop``: as fast as possible, the video and the audio looping), so
10,000 ticks take seconds to minutes, not hours. Without ``--camera``/``--audio-file`` it writes
a small video (moving pattern) and WAV (tones and noise) to a temporary folder. A tick that
raises is counted as an error and the soak goes on.

Prints the resident memory (RSS) after the warm-up ticks and at the end -- the target is growth
of at most 5 MB -- the peak, the error count (target 0) and ticks per second. Device path only:
no TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.benchmarks.timer import rss_bytes
from edgeav.errors import EdgeAVError

#: Targets: resident memory may grow this much over the run; errors allowed.
RSS_GROWTH_TARGET_MB = 5.0
ERRORS_TARGET = 0


def rss_mb() -> float:
    """Resident memory of this process in MiB (psutil, else Linux /proc)."""
    size = rss_bytes()
    if size is None:
        raise EdgeAVError("cannot read this process's resident memory (no psutil, no /proc)")
    return size / 2**20


def make_sources(folder: Path, *, seconds: float = 3.0, fps: int = 10) -> tuple[Path, Path]:
    """A small lossless video (a moving bar) and a 16 kHz WAV (changing tones plus noise)."""
    import cv2  # noqa: PLC0415
    import soundfile as sf  # noqa: PLC0415

    video = folder / "soak.mkv"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"FFV1"), fps, (64, 48))
    if not writer.isOpened():
        raise EdgeAVError(f"cannot write the soak video {video} (no FFV1 encoder in OpenCV?)")
    for i in range(int(seconds * fps)):
        frame = np.full((48, 64, 3), 30, np.uint8)
        x = (4 * i) % 56
        frame[:, x : x + 8] = (200, 120 + i % 100, 60)
        writer.write(frame)
    writer.release()
    sr = 16000
    t = np.arange(int(seconds * sr)) / sr
    freq = 300.0 * (1 + np.floor(t))  # a new tone every second
    rng = np.random.default_rng(0)
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.normal(size=t.size)
    audio = folder / "soak.wav"
    sf.write(audio, y.astype(np.float32), sr, subtype="PCM_16")
    return video, audio


def soak(
    bundle_path: str | Path,
    *,
    ticks: int = 10000,
    warmup: int | None = None,
    camera: str | Path | None = None,
    audio_file: str | Path | None = None,
    rate: float = 10.0,
    threads: int | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Run ``ticks`` pipeline ticks on looping file sources; memory, errors and speed.

    ``warmup`` ticks (default: a tenth, 50..500) run first; the RSS after them is the baseline.
    ``progress(done, total)`` is called every 500 ticks.
    """
    from edgeav.bundle import read_bundle  # noqa: PLC0415
    from edgeav.runtime.pipeline import RunOptions, open_pipeline  # noqa: PLC0415

    if ticks < 1:
        raise EdgeAVError(f"--ticks must be at least 1, got {ticks}")
    warmup = min(max(50, ticks // 10), 500) if warmup is None else warmup
    if warmup < 0:
        raise EdgeAVError(f"--warmup must be 0 or more, got {warmup}")
    bundle = read_bundle(bundle_path)
    with tempfile.TemporaryDirectory(prefix="edgeav-soak-") as tmp:
        generated = camera is None and audio_file is None
        if generated:
            camera, audio_file = make_sources(Path(tmp))
        options = RunOptions(
            camera=str(camera) if camera is not None and "image" in bundle.modalities else None,
            audio_file=audio_file if "audio" in bundle.modalities else None,
            rate=rate,
            threads=threads,
            realtime=False,
            loop=True,
        )
        errors, first_error, labelled = 0, None, 0
        samples: list[tuple[int, float]] = []
        rss_start = rss_mb()
        rss_warm = None
        timed_from = time.perf_counter()
        with open_pipeline(bundle, options) as pipe:
            for k in range(warmup + ticks):
                if k == warmup:
                    rss_warm = rss_mb()
                    samples.append((0, rss_warm))
                    timed_from = time.perf_counter()
                try:
                    prediction = pipe.step(pipe.first_us + k * pipe.period_us)
                except Exception as exc:  # noqa: BLE001 - counted, and the soak goes on
                    errors += 1
                    first_error = first_error or f"tick {k}: {type(exc).__name__}: {exc}"
                    continue
                if prediction is None:  # a looping source must never end
                    errors += 1
                    first_error = first_error or f"tick {k}: a source ended"
                    break
                if k >= warmup:
                    labelled += prediction.label is not None
                    done = k - warmup + 1
                    if done % 500 == 0:
                        samples.append((done, rss_mb()))
                        if progress is not None:
                            progress(done, ticks)
            elapsed = time.perf_counter() - timed_from
            summary = pipe.summary()
            modalities, backend = list(pipe.models), pipe.backend
        rss_end = rss_mb()
        if rss_warm is None:
            rss_warm = rss_end
    return {
        "bundle": str(bundle_path),
        "sources": "generated" if generated else {"camera": str(camera), "audio": str(audio_file)},
        "modalities": modalities,
        "backend": backend,
        "threads": threads,
        "rate_hz": rate,
        "warmup_ticks": warmup,
        "ticks": ticks,
        "ticks_labelled": labelled,
        "errors": errors,
        "first_error": first_error,
        "rss_start_mb": round(rss_start, 2),
        "rss_warmup_mb": round(rss_warm, 2),
        "rss_end_mb": round(rss_end, 2),
        "rss_growth_mb": round(rss_end - rss_warm, 2),
        "rss_max_mb": round(max([rss_end, *(r for _, r in samples)]), 2),
        "rss_samples_mb": [[n, round(r, 2)] for n, r in samples],
        "seconds": round(elapsed, 2),
        "ticks_per_second": round(ticks / elapsed, 1) if elapsed > 0 else None,
        "latency_ms": summary["latency_ms"],
        "frames_dropped": summary["frames_dropped"],
        "targets": {"rss_growth_mb": RSS_GROWTH_TARGET_MB, "errors": ERRORS_TARGET},
        "ok": errors == ERRORS_TARGET and rss_end - rss_warm <= RSS_GROWTH_TARGET_MB,
    }


def format_report(res: dict[str, Any]) -> str:
    growth_ok = res["rss_growth_mb"] <= RSS_GROWTH_TARGET_MB
    lines = [
        f"soak: {res['bundle']} ({'+'.join(res['modalities'])}, {res['backend']}), "
        f"{res['ticks']} ticks at {res['rate_hz']:g} Hz on the files' clock, "
        f"sources {res['sources'] if isinstance(res['sources'], str) else 'given'}",
        f"rss after warm-up ({res['warmup_ticks']} ticks): {res['rss_warmup_mb']:.1f} MB",
        f"rss at end: {res['rss_end_mb']:.1f} MB (max {res['rss_max_mb']:.1f} MB)",
        f"rss growth: {res['rss_growth_mb']:+.2f} MB (target <= {RSS_GROWTH_TARGET_MB:g} MB: "
        f"{'ok' if growth_ok else 'OVER'})",
        f"errors: {res['errors']} (target {ERRORS_TARGET})"
        + (f"; first: {res['first_error']}" if res["first_error"] else ""),
        f"ticks per second: {res['ticks_per_second']} ({res['seconds']:.1f} s; "
        f"total p50 {res['latency_ms'].get('total', {}).get('p50', float('nan')):.2f} ms)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgeav.benchmarks.soak",
        description="Run the runtime pipeline for many ticks on looping file sources; report "
        "memory growth (target <= 5 MB), errors (target 0) and ticks per second.",
    )
    parser.add_argument("bundle", help="a model.edgeav bundle")
    parser.add_argument("--ticks", type=int, default=10000, help="ticks after warm-up")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up ticks (default 10%%)")
    parser.add_argument("--camera", help="a video file (default: a generated one)")
    parser.add_argument("--audio-file", help="a WAV/FLAC file (default: a generated one)")
    parser.add_argument("--rate", type=float, default=10.0, help="ticks per second of file time")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads per model")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    def progress(done: int, total: int) -> None:
        print(f"soak: {done}/{total} ticks, rss {rss_mb():.1f} MB", file=sys.stderr, flush=True)

    try:
        res = soak(
            args.bundle,
            ticks=args.ticks,
            warmup=args.warmup,
            camera=args.camera,
            audio_file=args.audio_file,
            rate=args.rate,
            threads=args.threads,
            progress=None if args.json else progress,
        )
    except EdgeAVError as exc:
        print(f"edgeav: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    print(json.dumps(res, indent=2) if args.json else format_report(res))
    return 0 if res["errors"] == 0 else 1


if __name__ == "__main__":
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    sys.exit(main())
