"""The speech-embedding front-end's embedding step: one pass over the window against one per slice.

    python -m edgeav.benchmarks.frontend [--bundle model.edgeav] [--runs 30] [--threads 1] [--json]

The embedding model reads 76 mel frames and gives one 96-value vector; a 1.5 s window has 147
mel frames, so 9 vectors, one every 8 frames. The runtime (:mod:`edgeav.runtime.frontend`) runs
the model once over all 147 frames (it is fully convolutional); the way it was built to be used
runs it on each 76-frame slice. This times both on the same mel frames in one run, alternating
blocks so that both see the same machine load, checks that they give the same vectors, and
prints the ratio. The models come from ``--bundle`` or the installed front-end package.
Device path only: NumPy and LiteRT.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError
from edgeav.runtime.frontend import EMBEDDING_FRAMES, EMBEDDING_MELS, EMBEDDING_STEP, mel_frames

#: Mel frames of a 1.5 s window at 16 kHz.
WINDOW_FRAMES = mel_frames(24_000)


def _models(bundle: str | None) -> dict[str, bytes]:
    if bundle is None:
        from edgeav.speech_embedding import load_models  # noqa: PLC0415

        return load_models()
    from edgeav.bundle import read_bundle  # noqa: PLC0415

    models = read_bundle(bundle).frontend_models() or {}
    if "embedding" not in models:
        raise EdgeAVError(f"bundle {bundle} has no speech-embedding front-end")
    return models


def run(bundle: str | None = None, runs: int = 30, threads: int = 1) -> dict[str, Any]:
    """Time both ways (ms per window: the fastest of 5 alternating blocks) and compare them."""
    from edgeav.runtime.interpreter import load_interpreter  # noqa: PLC0415

    embedding = _models(bundle)["embedding"]
    whole = load_interpreter(
        embedding, threads, name="embedding", input_shape=(1, WINDOW_FRAMES, EMBEDDING_MELS, 1)
    )
    one = load_interpreter(embedding, threads, name="embedding")
    mel = np.random.default_rng(0).uniform(0, 4, (WINDOW_FRAMES, EMBEDDING_MELS))
    mel = mel.astype(np.float32)
    starts = range(0, WINDOW_FRAMES - EMBEDDING_FRAMES + 1, EMBEDDING_STEP)

    def per_slice() -> np.ndarray:
        return np.stack(
            [one.predict(mel[None, s : s + EMBEDDING_FRAMES, :, None]).reshape(-1) for s in starts]
        )

    def one_pass() -> np.ndarray:
        return whole.predict(mel[None, :, :, None]).reshape(len(starts), -1)

    sides = {"per_slice": per_slice, "one_pass": one_pass}
    outputs = {name: fn() for name, fn in sides.items()}  # warm-up, and the vectors to compare
    blocks: dict[str, list[float]] = {name: [] for name in sides}
    per_block = max(1, runs // 5)
    for _ in range(5):
        for name, fn in sides.items():
            t0 = time.perf_counter()
            for _ in range(per_block):
                fn()
            blocks[name].append((time.perf_counter() - t0) / per_block * 1e3)
    best = {name: min(times) for name, times in blocks.items()}
    return {
        "window_frames": WINDOW_FRAMES,
        "vectors": len(starts),
        "threads": threads,
        "ms": best,
        "median_ms": {name: float(np.median(times)) for name, times in blocks.items()},
        "speedup": best["per_slice"] / best["one_pass"],
        "max_abs_difference": float(np.abs(outputs["per_slice"] - outputs["one_pass"]).max()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeav.benchmarks.frontend")
    parser.add_argument("--bundle", help="take the front-end from this model.edgeav")
    parser.add_argument("--runs", type=int, default=30, help="timed windows per side")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    try:
        r = run(args.bundle, runs=args.runs, threads=args.threads)
    except EdgeAVError as exc:
        print(f"edgeav: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(
        f"embedding of a 1.5 s window ({r['vectors']} vectors, {r['threads']} thread(s)): "
        f"per 76-frame slice {r['ms']['per_slice']:.2f} ms, one pass {r['ms']['one_pass']:.2f} "
        f"ms, {r['speedup']:.2f}x; largest difference {r['max_abs_difference']:.3g}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
