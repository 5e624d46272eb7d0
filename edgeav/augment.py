"""Training-time augmentation: images shifted and degraded, clips sped up or slowed in noise.

Images (arrays of model inputs, ``(N, H, W, C)``): :func:`random_shift` moves each image a few
pixels; :func:`degrade_images` gives a fraction of them a cutout block and Gaussian noise;
:func:`image_augmenter` combines the two for one epoch. Audio: :func:`augmented_audio_features`
turns each training clip into extra feature vectors, each from a copy at a random speed, with
background noise at a random SNR and a random gain. NumPy only (the clips are read and their
features extracted with edgeav's own loader and features).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeav.preprocess import ImageSpec

if TYPE_CHECKING:
    from edgeav.features import FeatureConfig

#: One epoch's augmentation of a batch of images: ``augment(x, rng) -> x'``.
Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def random_shift(x: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Shift each image by up to ``max_shift`` pixels in x and y (edges repeated)."""
    if max_shift <= 0:
        return x
    n, h, w = x.shape[:3]
    s = max_shift
    padded = np.pad(x, ((0, 0), (s, s), (s, s), (0, 0)), mode="edge")
    dy = rng.integers(0, 2 * s + 1, size=n)
    dx = rng.integers(0, 2 * s + 1, size=n)
    out = np.empty_like(x)
    for oy in range(2 * s + 1):
        for ox in range(2 * s + 1):
            idx = np.flatnonzero((dy == oy) & (dx == ox))
            if idx.size:
                out[idx] = padded[idx, oy : oy + h, ox : ox + w]
    return out


def degrade_images(
    x: np.ndarray,
    rng: np.random.Generator,
    *,
    fraction: float,
    value_range: tuple[float, float] = (0.0, 1.0),
    max_sigma: float = 0.35,
) -> np.ndarray:
    """Degrade a random ``fraction`` of the images: cutout, then Gaussian noise (a copy).

    Each chosen image gets one square block (side 1/8 to 1/2 of the image, anywhere) filled with
    the darkest or the brightest value, then Gaussian noise with a standard deviation drawn from
    ``0..max_sigma`` of the value range; values are clipped to ``value_range``.
    """
    if fraction <= 0:
        return x
    lo, hi = value_range
    out = x.copy()
    n, h, w = x.shape[:3]
    chosen = np.flatnonzero(rng.random(n) < fraction)
    for i in chosen:
        side = int(rng.integers(max(1, h // 8), h // 2 + 1))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        out[i, top : top + side, left : left + side] = lo if rng.random() < 0.5 else hi
    sigma = rng.uniform(0.0, max_sigma, size=(chosen.size, 1, 1, 1)) * (hi - lo)
    noisy = out[chosen] + rng.normal(size=out[chosen].shape).astype(np.float32) * sigma
    out[chosen] = np.clip(noisy, lo, hi)
    return out


def _change_speed(y: np.ndarray, factor: float) -> np.ndarray:
    """``y`` played ``factor`` times faster, trimmed or zero-padded to its own length."""
    if factor == 1.0:
        return y
    n = y.size
    sped = np.interp(np.arange(0.0, n - 1, factor), np.arange(n), y)
    out = np.zeros(n, dtype=y.dtype)
    out[: min(n, sped.size)] = sped[:n]
    return out


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS white, pink (1/f) or brown (1/f^2) noise, chosen at random."""
    white = rng.standard_normal(n)
    kind = int(rng.integers(0, 3))
    if kind:
        spec = np.fft.rfft(white)
        f = np.fft.rfftfreq(n)
        f[0] = f[1] if n > 1 else 1.0
        spec /= np.sqrt(f) if kind == 1 else f
        white = np.fft.irfft(spec, n)
    white -= white.mean()
    return white / (float(np.sqrt(np.mean(white**2))) or 1.0)


def augmented_audio_features(
    paths: list[Path],
    labels: np.ndarray,
    feature_config: FeatureConfig,
    copies: int,
    seed: int,
    *,
    snr_db: tuple[float, float] = (-5.0, 20.0),
    gain_db: tuple[float, float] = (-12.0, 6.0),
    speed: tuple[float, float] = (0.88, 1.12),
) -> tuple[np.ndarray, np.ndarray]:
    """Feature vectors of ``copies`` degraded versions of each training clip.

    Each copy is played at a random speed in ``speed`` (pitch and tempo together, as in Kaldi's
    speed perturbation; linear interpolation, trimmed or zero-padded to the clip's length), gets
    background noise (white, pink or brown) at a random SNR in ``snr_db``, measured
    against the power of the speech where it is (samples within 30 dB of the peak), and a random
    gain in ``gain_db``; the result is scaled down if it would clip.
    """
    from edgeav.data.loader import read_audio  # noqa: PLC0415
    from edgeav.features import extract  # noqa: PLC0415

    rng = np.random.default_rng([seed, 7919])
    feats = np.empty((len(paths) * copies, feature_config.dim), dtype=np.float32)
    out_labels = np.repeat(np.asarray(labels), copies)
    row = 0
    for path in paths:
        y, sr = read_audio(path)
        if y.ndim == 2:
            y = y.mean(axis=1)
        y = y.astype(np.float64)
        peak = float(np.max(np.abs(y))) or 1.0
        active = y[np.abs(y) >= peak * 10 ** (-30 / 20)]
        power = float(np.mean(active**2)) if active.size else peak**2
        for _ in range(copies):
            sped = _change_speed(y, rng.uniform(*speed))
            snr = rng.uniform(*snr_db)
            mixed = sped + _noise(rng, y.size) * np.sqrt(power / 10 ** (snr / 10))
            mixed *= 10.0 ** (rng.uniform(*gain_db) / 20.0)
            top = float(np.max(np.abs(mixed)))
            if top > 0.999:
                mixed *= 0.999 / top
            feats[row] = extract(mixed.astype(np.float32), feature_config, sr=sr)
            row += 1
    return feats, out_labels


def image_augmenter(spec: ImageSpec, *, shift: int, degrade: float) -> Augment:
    """Shift by up to ``shift`` pixels, then degrade a ``degrade`` fraction of the images.

    Cutouts are filled with the model input's black or white (``spec``'s scale, offset and
    inversion decide which values those are) and noise is clipped to that range.
    """
    black, white = spec.offset, 255.0 * spec.scale + spec.offset
    if spec.invert:
        black, white = white, black
    value_range = (min(black, white), max(black, white))

    def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = random_shift(x, shift, rng)
        return degrade_images(x, rng, fraction=degrade, value_range=value_range)

    return augment
