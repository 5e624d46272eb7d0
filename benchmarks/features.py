"""Audio features: edgeav's NumPy code against librosa, warm and from a cold start.

    python -m edgeav.benchmarks.features [--runs 200] [--json]

For 1 s windows at the default :class:`~edgeav.features.FeatureConfig` (16 kHz), it measures

- **warm** time per window (``--runs`` calls in 5 blocks after a warm-up; the fastest block,
  timeit's convention, with the median block and CPU time beside it): ``edgeav.features.extract``
  (with its C kernel when it is built, see :func:`edgeav.features.backend`; NumPy alone is
  timed too, as on a machine without a compiler at install) against librosa computing the same four features *from one shared STFT*, as a careful user
  of the seed would (``stft`` once; ``melspectrogram``, ``power_to_db``, ``mfcc``,
  ``chroma_stft``, ``spectral_contrast`` on it; means over frames). That is librosa's fastest
  route; four independent calls from ``y`` (each its own STFT) are timed too, for reference.
- **first call** in a fresh ``python`` process: import plus the first window (for librosa that
  includes numba's JIT and its on-disk cache, whatever state that is in).

Both sides get the same float32 window. librosa is needed (``train`` extra); edgeav is not
affected by its absence. The numbers go to a table on stdout, or JSON with ``--json``.

librosa's matrix products go through NumPy's BLAS, which uses every core; on a busy machine
that makes it slower, not faster (edgeav keeps its own products small enough to stay on one
thread). ``OPENBLAS_NUM_THREADS=1 python -m edgeav.benchmarks.features`` compares the two
single-threaded.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import textwrap
import time

import numpy as np

from edgeav import features
from edgeav.features import FeatureConfig, extract


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
    """The same vector with librosa from one shared STFT (the parity tests use the same calls)."""
    import librosa

    c, sr = config, config.sample_rate
    S = np.abs(librosa.stft(y, n_fft=c.n_fft, hop_length=c.hop_length, window=c.window)) ** 2
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


def librosa_features_four_calls(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The same vector with four librosa calls from ``y`` (four STFTs, as many recipes do)."""
    import librosa

    c, sr = config, config.sample_rate
    kw = {"n_fft": c.n_fft, "hop_length": c.hop_length, "window": c.window}
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=c.n_mels, **kw)
    parts = [
        librosa.feature.mfcc(y=y, sr=sr, n_mfcc=c.n_mfcc, n_mels=c.n_mels, **kw),
        librosa.feature.chroma_stft(y=y, sr=sr, tuning=c.chroma_tuning, **kw),
        librosa.power_to_db(mel, top_db=c.top_db),
        librosa.feature.spectral_contrast(y=y, sr=sr, **kw),
    ]
    return np.concatenate([p.mean(axis=1) for p in parts]).astype(np.float32)


_BLOCKS = 5


def _warm(fn, y: np.ndarray, config: FeatureConfig, runs: int) -> dict[str, float]:
    """Per-call wall and CPU milliseconds: ``runs`` calls in 5 blocks after 0.3 s of warm-up.

    ``best`` is the fastest block's mean (timeit's convention: the block least disturbed by
    other processes on a shared machine); ``median`` the median block's. CPU time is the
    process's (all threads), so a multi-threaded BLAS shows its full cost there.
    """
    # Warm up for at least 0.3 s: OpenBLAS's threads spin for a while after a parallel product
    # (the plan's set-up, librosa's calls), and that CPU time would be counted in the blocks.
    t_end = time.perf_counter() + 0.3
    for i in itertools.count():
        fn(y, config)
        if i >= 2 and time.perf_counter() >= t_end:
            break
    per_block = max(runs // _BLOCKS, 1)
    wall, cpu = [], []
    for _ in range(_BLOCKS):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(per_block):
            fn(y, config)
        wall.append((time.perf_counter() - t0) / per_block)
        cpu.append((time.process_time() - c0) / per_block)
    return {
        "best_ms": 1e3 * min(wall),
        "median_ms": 1e3 * statistics.median(wall),
        "cpu_best_ms": 1e3 * min(cpu),
        "calls": per_block * _BLOCKS,
    }


_COLD = {
    "edgeav": """
        import time
        t0, c0 = time.perf_counter(), time.process_time()
        import numpy as np
        from edgeav.features import FeatureConfig, extract
        config = FeatureConfig()
        y = np.load({path!r})
        extract(y, config)
        print(time.perf_counter() - t0, time.process_time() - c0)
    """,
    "librosa": """
        import time
        t0, c0 = time.perf_counter(), time.process_time()
        import numpy as np
        from edgeav.benchmarks.features import librosa_features
        from edgeav.features import FeatureConfig
        config = FeatureConfig()
        y = np.load({path!r})
        librosa_features(y, config)
        print(time.perf_counter() - t0, time.process_time() - c0)
    """,
}


def _first_call_s(which: str, y: np.ndarray) -> tuple[float, float]:
    """(wall, CPU) seconds for imports + the first window in a fresh interpreter (from the
    first import, NumPy's included, to the features; interpreter start-up not counted)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "window.npy")
        np.save(path, y)
        code = textwrap.dedent(_COLD[which].format(path=path))
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=600
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{which} first-call run failed: {proc.stderr.strip()[-500:]}")
    wall, cpu = proc.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def _extract_numpy(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """extract without the C kernel (edgeav's NumPy route)."""
    with features._numpy_only():
        return extract(y, config)


def run(runs: int = 200, cold: bool = True) -> dict:
    """Measure everything; returns the dict ``--json`` prints."""
    config = FeatureConfig()
    y = _window(config)
    ours = extract(y, config)
    # edgeav first: after a librosa call OpenBLAS's threads spin for a while, and that CPU
    # time (not edgeav's) would be counted in edgeav's CPU figure
    edgeav_warm = _warm(extract, y, config, runs)
    numpy_warm = _warm(_extract_numpy, y, config, runs) if features.backend() == "c" else None
    theirs = librosa_features(y, config)
    rel = float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))
    result = {
        "backend": features.backend(),
        "config": config.to_dict(),
        "dim": config.dim,
        "window_seconds": config.window_seconds,
        "runs": runs,
        "warm": {
            "edgeav": edgeav_warm,
            **({"edgeav_numpy": numpy_warm} if numpy_warm else {}),
            "librosa_shared_stft": _warm(librosa_features, y, config, max(runs // 4, _BLOCKS)),
            "librosa_four_calls": _warm(
                librosa_features_four_calls, y, config, max(runs // 4, _BLOCKS)
            ),
        },
        "max_rel_diff_vs_librosa": rel,
    }
    warm = result["warm"]
    result["warm_ms"] = {side: w["best_ms"] for side, w in warm.items()}
    result["warm_ratio"] = warm["librosa_shared_stft"]["best_ms"] / warm["edgeav"]["best_ms"]
    result["warm_ratio_four_calls"] = (
        warm["librosa_four_calls"]["best_ms"] / warm["edgeav"]["best_ms"]
    )
    # CPU time is steadier than wall time when other processes share the cores
    result["warm_ratio_cpu"] = (
        warm["librosa_shared_stft"]["cpu_best_ms"] / warm["edgeav"]["cpu_best_ms"]
    )
    result["warm_ratio_four_calls_cpu"] = (
        warm["librosa_four_calls"]["cpu_best_ms"] / warm["edgeav"]["cpu_best_ms"]
    )
    if numpy_warm:  # what a machine without the kernel gets
        result["warm_ratio_numpy"] = (
            warm["librosa_shared_stft"]["best_ms"] / warm["edgeav_numpy"]["best_ms"]
        )
    if cold:
        cold_runs = {side: _first_call_s(side, y) for side in ("edgeav", "librosa")}
        result["first_call_s"] = {side: wall for side, (wall, _) in cold_runs.items()}
        result["first_call_cpu_s"] = {side: cpu for side, (_, cpu) in cold_runs.items()}
    return result


def _print_table(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"audio features, {r['window_seconds']:g} s window, D={r['dim']}")
    table.add_column("")
    table.add_column("warm ms/window (best)", justify="right")
    table.add_column("(median)", justify="right")
    table.add_column("CPU ms/window", justify="right")
    table.add_column("first call s (fresh process; CPU s)", justify="right")
    first = {
        side: f"{wall:.3f} ({r['first_call_cpu_s'][side]:.3f})"
        for side, wall in r.get("first_call_s", {}).items()
    }
    backend = {"c": "C kernel + NumPy", "numpy": "NumPy"}[r["backend"]]
    rows = (
        (f"edgeav ({backend})", "edgeav", first.get("edgeav")),
        ("edgeav, NumPy only", "edgeav_numpy", None),
        ("librosa, one shared STFT", "librosa_shared_stft", first.get("librosa")),
        ("librosa, four calls from y", "librosa_four_calls", None),
    )
    for label, key, cold in rows:
        if key not in r["warm"]:
            continue
        w = r["warm"][key]
        table.add_row(
            label,
            f"{w['best_ms']:.3f}",
            f"{w['median_ms']:.3f}",
            f"{w['cpu_best_ms']:.3f}",
            cold or "",
        )
    console = Console()
    console.print(table)
    console.print(
        f"warm speed-up (wall, best block): {r['warm_ratio']:.1f}x vs librosa with one shared "
        f"STFT, {r['warm_ratio_four_calls']:.1f}x vs four librosa calls\n"
        f"warm speed-up (CPU time): {r['warm_ratio_cpu']:.1f}x vs one shared STFT, "
        f"{r['warm_ratio_four_calls_cpu']:.1f}x vs four calls\n"
        f"max relative difference of the vectors: {r['max_rel_diff_vs_librosa']:.1e}"
    )
    if "warm_ratio_numpy" in r:
        console.print(
            f"NumPy only (no C kernel): {r['warm_ratio_numpy']:.1f}x vs one shared STFT (wall)"
        )


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
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
