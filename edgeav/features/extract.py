"""One STFT, four features, statistics over frames: the vector the audio models take."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeav.features.config import FEATURE_NAMES, FeatureConfig
from edgeav.features.spectral import (
    chroma,
    default_config,
    melspectrogram,
    mfcc,
    power_spectrum,
    power_to_db,
    spectral_contrast,
    stft,
)

_STATISTICS = {"mean": np.mean, "std": np.std, "min": np.min, "max": np.max}


def frame_features(
    y: Any, config: FeatureConfig | None = None, sr: int | float | None = None
) -> dict[str, np.ndarray]:
    """The four features frame by frame from one STFT: name -> float64 ``(size, n_frames)``.

    Names and sizes are ``config.sizes`` (MFCC, chroma, mel, contrast); ``y`` and ``sr`` go
    through :func:`~edgeav.features.prepare_audio` (so ``y`` is padded to one window).
    """
    config = default_config() if config is None else config
    power = power_spectrum(stft(y, config=config, sr=sr))
    mel = melspectrogram(S=power, config=config)
    mel_db = power_to_db(mel, top_db=config.top_db)
    return {
        "mfcc": mfcc(mel_db=mel_db, config=config),
        "chroma": chroma(S=power, config=config),
        "mel": mel_db if config.mel_db else mel,
        "contrast": spectral_contrast(S=np.sqrt(power), config=config),
    }


def extract(
    y: Any, config: FeatureConfig | None = None, sr: int | float | None = None
) -> np.ndarray:
    """The feature vector of one window: float32 ``(config.dim,)``.

    Args:
        y: samples, 1-D or ``(frames, channels)``; float (nominally [-1, 1]) or integer PCM.
        config: the feature configuration (default ``FeatureConfig()``).
        sr: ``y``'s sample rate; ``None`` means it is already ``config.sample_rate``.

    For each of ``config.statistics``, that statistic over frames of each feature of
    :func:`frame_features`, in :data:`FEATURE_NAMES` order; ``config.slices()`` gives the
    layout (187 values with the defaults: the means of 40 MFCC, 12 chroma, 128 mel, 7 contrast).
    """
    config = default_config() if config is None else config
    frames = frame_features(y, config, sr)
    stacked = np.concatenate([frames[name] for name in FEATURE_NAMES])
    parts = [_STATISTICS[stat](stacked, axis=1) for stat in config.statistics]
    return np.concatenate(parts).astype(np.float32)
