"""Audio features: edgeav against librosa, warm and in a fresh process.

    python -m edgeav.benchmarks.features [--runs 200] [--no-cold] [--json]

For a 1 s window at the default :class:`~edgeav.features.FeatureConfig` (16 kHz, 187 values)
it measures, in one run:

- **warm** time per window: ``edgeav.features.extract`` against librosa computing the same four
  features from one shared STFT (``stft`` once; ``melspectrogram``, ``power_to_db``, ``mfcc``,
  ``chroma_stft``, ``spectral_contrast`` on it; means over frames), librosa's fastest route.
  After a warm-up, ``--runs`` edgeav calls and a quarter as many librosa calls are timed in 5
  blocks, alternating between the two so that both see the same machine load; the fastest
  block is the figure (timeit's convention), the median block is shown beside it. Both run
  with one BLAS thread, as ``edgeav run`` does (threadpoolctl, which librosa's dependencies
  bring): a multi-threaded BLAS on a machine whose other cores are busy waits for them, and
  both sides' times turn into noise.
- **first call** in a fresh ``python`` process: the imports (NumPy's included) and the first
  window; for librosa that includes numba's JIT and its on-disk cache, whatever state that is in.

Both sides get the same float32 window; the largest difference of the two vectors, relative to
librosa's largest value, is printed too. librosa comes with the ``train`` extra.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from edgeav.features import FeatureConfig, extract
from edgeav.parallel import one_blas_thread

_BLOCKS = 5


def _window(config: FeatureConfig, seed: int = 0) -> np.ndarray:
    """One window of speech-like test audio: a gliding harmonic tone in noise (float32)."""
    rng = np.random.default_rng(seed)
    t = np.arange(config.window_samples) / config.sample_rate
    f0 = 120 + 60 * t
    phase = 2 * np.pi * np.cumsum(f0) / config.sample_rate
    y = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    y = 0.3 * y / np.max(np.abs(y)) + 0.01 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def librosa_features(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The same vector with librosa from one shared STFT (the calls the parity tests make)."""
    import librosa  # noqa: PLC0415

    c, sr = config, config.sample_rate
    D = librosa.stft(
        y,
        n_fft=c.n_fft,
        hop_length=c.hop_length,
        win_length=c.win_length,
        window=c.window,
        center=c.center,
    )
    S = np.abs(D) ** 2
    mel = librosa.feature.melspectrogram(S=S, sr=sr, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)
    mel_db = librosa.power_to_db(mel, top_db=c.top_db)
    parts = [
        librosa.feature.mfcc(S=mel_db, n_mfcc=c.n_mfcc),
        librosa.feature.chroma_stft(S=S, sr=sr, n_chroma=c.n_chroma, tuning=c.chroma_tuning),
        mel_db if c.mel_db else mel,
        librosa.feature.spectral_contrast(
            S=np.sqrt(S),
            sr=sr,
            fmin=c.contrast_fmin,
            n_bands=c.contrast_bands,
            quantile=c.contrast_quantile,
        ),
    ]
    return np.concatenate([p.mean(axis=1) for p in parts]).astype(np.float32)


def _warm(sides: dict, y: np.ndarray, config: FeatureConfig) -> dict[str, dict[str, float]]:
    """Per-call milliseconds of each ``name -> (fn, calls per block)``: 0.3 s of warm-up each,
    then 5 blocks of each, alternating; the fastest and the median block's mean per call."""
    for fn, _ in sides.values():
        t_end = time.perf_counter() + 0.3
        for i in itertools.count():
            fn(y, config)
            if i >= 2 and time.perf_counter() >= t_end:
                break
    blocks: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(_BLOCKS):
        for name, (fn, calls) in sides.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                fn(y, config)
            blocks[name].append((time.perf_counter() - t0) / calls)
    return {
        name: {
            "best_ms": 1e3 * min(times),
            "median_ms": 1e3 * statistics.median(times),
            "calls": sides[name][1] * _BLOCKS,
        }
        for name, times in blocks.items()
    }


_FIRST_CALL = """
import time
t0 = time.perf_counter()
import numpy as np
from edgeav.features import FeatureConfig
{import_line}
config = FeatureConfig()
y = np.load({path!r})
{call}(y, config)
print(time.perf_counter() - t0)
"""

_SIDES = {
    "edgeav": ("from edgeav.features import extract", "extract"),
    "librosa": ("from edgeav.benchmarks.features import librosa_features", "librosa_features"),
}


def _first_call_s(side: str, y: np.ndarray) -> float:
    """Seconds from the first import (NumPy's included) to the first window's features, in a
    fresh interpreter (its own start-up not counted)."""
    import_line, call = _SIDES[side]
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "window.npy")
        np.save(path, y)
        code = _FIRST_CALL.format(import_line=import_line, call=call, path=path)
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=600,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{side} first-call run failed: {proc.stderr.strip()[-500:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def run(runs: int = 200, cold: bool = True) -> dict:
    """Measure everything; returns the dict ``--json`` prints."""
    config = FeatureConfig()
    y = _window(config)
    ours, theirs = extract(y, config), librosa_features(y, config)
    per_block = max(runs // _BLOCKS, 1)
    sides = {"edgeav": (extract, per_block), "librosa": (librosa_features, max(per_block // 4, 1))}
    with one_blas_thread():
        warm = _warm(sides, y, config)
    result = {
        "config": config.to_dict(),
        "dim": config.dim,
        "window_seconds": config.window_seconds,
        "warm": warm,
        "warm_ms": {side: w["best_ms"] for side, w in warm.items()},
        "warm_ratio": warm["librosa"]["best_ms"] / warm["edgeav"]["best_ms"],
        "max_rel_diff_vs_librosa": float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs))),
    }
    if cold:
        result["first_call_s"] = {side: _first_call_s(side, y) for side in _SIDES}
    return result


def _report(r: dict) -> str:
    w, first = r["warm"], r.get("first_call_s", {})
    lines = [
        f"audio features: one {r['window_seconds']:g} s window at {r['config']['sample_rate']} Hz,"
        f" {r['dim']} values",
        f"{'':24}{'warm ms/window':>16}{'(median)':>10}{'first call s':>14}",
    ]
    for side, label in (("edgeav", "edgeav (NumPy)"), ("librosa", "librosa, shared STFT")):
        cold = f"{first[side]:.3f}" if side in first else "-"
        lines.append(
            f"{label:24}{w[side]['best_ms']:>16.3f}{w[side]['median_ms']:>10.3f}{cold:>14}"
        )
    lines.append(
        f"edgeav is {r['warm_ratio']:.1f}x faster warm; largest difference of the vectors "
        f"{r['max_rel_diff_vs_librosa']:.1e} of librosa's largest value"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgeav.benchmarks.features", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=200,
        help="timed edgeav calls, in 5 blocks (librosa gets a quarter as many)",
    )
    parser.add_argument("--no-cold", action="store_true", help="skip the fresh-process timings")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    result = run(runs=max(args.runs, 1), cold=not args.no_cold)
    print(json.dumps(result, indent=2) if args.json else _report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
