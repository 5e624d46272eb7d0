"""Audio in: any sample layout and dtype to mono float64 at the config's rate, one window long.

Integer PCM is scaled to ``[-1, 1)``: int8/int16/int32 by ``2**(bits-1)``, uint8 centred on 128;
float is used as it is (nominally ``[-1, 1]``, not clipped). 2-D input is ``(frames, channels)``,
as soundfile and sounddevice return it; librosa's ``(channels, frames)`` is recognised when it
has at most 8 rows and more than 8 columns. Channels are averaged. Other sample rates are
resampled with soxr (imported only then). Input shorter than one window is zero-padded at the
end; longer input is kept whole. NaN or infinite samples raise :class:`FeatureError`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgeav.features.config import FeatureConfig, FeatureError

#: Input sample rates accepted for resampling (telephone audio up to 8x 96 kHz studio rates).
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
_MAX_CHANNELS = 8
# Larger inputs are scaled down (by a power of two, so exactly) so that the power spectrum
# cannot overflow, and before resampling so that soxr (single precision inside) cannot.
_MAX_PEAK = 2.0**200
_MAX_RESAMPLE_PEAK = 2.0**100


def prepare_audio(y: Any, config: FeatureConfig, sr: int | float | None = None) -> np.ndarray:
    """Mono float64 samples at ``config.sample_rate``, at least ``config.window_samples`` long.

    Args:
        y: samples, 1-D or 2-D (see the module docstring); float or integer PCM.
        config: gives the target rate and the window length.
        sr: ``y``'s sample rate; ``None`` means it is already ``config.sample_rate``.

    Raises :class:`FeatureError` on NaN/inf, an unsupported dtype or shape, or a bad ``sr``.
    """
    x = to_float_mono(y)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if not math.isfinite(peak):
        bad = int(np.flatnonzero(~np.isfinite(x))[0])
        raise FeatureError(f"audio contains NaN or infinite values (first at sample {bad})")
    if peak > _MAX_PEAK:
        x = x * 2.0 ** -(math.ceil(math.log2(peak)) - 200)
    if sr is not None and sr != config.sample_rate:
        if peak > _MAX_RESAMPLE_PEAK:
            x = x * 2.0 ** -(math.ceil(math.log2(peak)) - 100)
        x = _resample(x, sr, config.sample_rate)
    if x.size < config.window_samples:
        x = np.concatenate([x, np.zeros(config.window_samples - x.size)])
    return x


def to_float_mono(y: Any) -> np.ndarray:
    """``y`` as 1-D float64: integer PCM scaled, channels averaged (see the module docstring)."""
    x = np.asarray(y)
    kind, size = x.dtype.kind, x.dtype.itemsize
    if kind == "f":
        x = x.astype(np.float64, copy=False)
    elif kind == "i" and size in (1, 2, 4):
        x = x.astype(np.float64) / float(2 ** (8 * size - 1))
    elif kind == "u" and size == 1:
        x = (x.astype(np.float64) - 128.0) / 128.0
    else:
        raise FeatureError(
            f"audio dtype {x.dtype} is not supported (use float, int8, int16, int32 or uint8)"
        )
    if x.ndim == 2:
        frames, channels = x.shape
        if channels > _MAX_CHANNELS and frames <= _MAX_CHANNELS:
            x = x.T  # librosa's (channels, frames)
        elif channels > _MAX_CHANNELS:
            raise FeatureError(
                f"audio of shape {x.shape} is neither (frames, channels) nor (channels, frames) "
                f"with at most {_MAX_CHANNELS} channels"
            )
        if x.shape[1] == 0:
            raise FeatureError(f"audio of shape {x.shape} has no channels")
        x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    elif x.ndim != 1:
        raise FeatureError(f"audio must be 1-D or (frames, channels), got shape {x.shape}")
    return x


def _resample(x: np.ndarray, sr: int | float, target: int) -> np.ndarray:
    if isinstance(sr, (bool, np.bool_)) or not isinstance(sr, (int, float, np.number)):
        raise FeatureError(f"sample rate {sr!r} is not a number")
    if not (math.isfinite(float(sr)) and sr > 0):
        raise FeatureError(f"sample rate {sr!r} must be positive")
    if not (MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE):
        # A 1 Hz "recording" of a second of samples would resample to hours of audio.
        raise FeatureError(
            f"sample rate {sr:g} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
        )
    if x.size == 0:
        return x
    try:
        import soxr  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - soxr is in the runtime and train extras
        raise FeatureError(
            f"audio at {sr:g} Hz needs resampling to {target} Hz, which needs the soxr package "
            "(pip install soxr)"
        ) from exc
    return np.asarray(soxr.resample(x, float(sr), float(target), quality="HQ"), dtype=np.float64)
