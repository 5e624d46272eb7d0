"""Run under the emulated aarch64 Python (and on the host for comparison) by tests/test_pi.py.

    kernel_probe.py OUT.npz

For three feature configs and one fixed signal (a chirp in noise): ``extract`` through each
backend there is (the C kernel ``edgeav._features`` when it is built, and NumPy), and the C
kernel's own per-frame arrays (mel power, normalised chroma, contrast peaks and valleys) before
NumPy takes any logarithm. ``backend`` in the file says which backend ``extract`` chose;
``spin`` whether the runtime's spin-wait ``edgeav._spin`` loaded and saw a change (or None).
"""

from __future__ import annotations

import sys

import numpy as np

from edgeav import features

CONFIGS = {
    "default": {},
    "22.05 kHz": {"sample_rate": 22050},
    "n_fft 2048": {"sample_rate": 22050, "n_fft": 2048, "hop_length": 512},
}


def signal(sr: int) -> np.ndarray:
    rng = np.random.default_rng(2)
    t = np.arange(int(1.2 * sr)) / sr
    return 0.3 * np.sin(2 * np.pi * (200 * t + 900 * t**2)) + 0.05 * rng.standard_normal(t.size)


def main(argv: list[str]) -> int:
    kernel = features._KERNEL
    arrays = {"backend": np.array(features.backend())}
    try:
        from edgeav._spin import wait_changed
    except ImportError:
        arrays["spin"] = np.array("none")
    else:
        flags = np.zeros(2, dtype=np.int64)
        flags[1] = 5
        seen = wait_changed(flags, 1, 0, 1.0), wait_changed(flags, 0, 0, 0.01)
        arrays["spin"] = np.array(repr(seen))
    for name, kwargs in CONFIGS.items():
        config = features.FeatureConfig(**kwargs)
        y = signal(config.sample_rate)
        arrays[f"{name}/extract/{features.backend()}"] = features.extract(y, config)
        with features._numpy_only():
            arrays[f"{name}/extract/numpy"] = features.extract(y, config)
        if kernel is None:
            continue
        plan = features._plan(config)
        x = features.prepare_audio(y, config)
        n = features._n_frames(x.size, config)
        bands = plan.kernel.band_lo.size
        outs = {
            "mel": np.empty((n, config.n_mels)),
            "chroma": np.empty((n, config.n_chroma)),
            "peak": np.empty((n, bands)),
            "valley": np.empty((n, bands)),
        }
        pad = config.n_fft // 2
        kernel.frames(x, n, config.hop_length, pad, plan.window, *plan.kernel, *outs.values())
        for what, out in outs.items():
            arrays[f"{name}/kernel/{what}"] = out
    np.savez(argv[0], **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
