"""Spectral features as pure functions of arrays, in librosa's layout (frequency x frames).

Each feature takes raw audio ``y`` (which goes through :func:`prepare_audio` first) or a
precomputed spectrogram ``S``, so that one STFT serves all of them::

    power = np.abs(stft(y)) ** 2                  # (1 + n_fft // 2, T)
    mel = melspectrogram(S=power)                 # (n_mels, T)
    mfcc(mel_db=power_to_db(mel))                 # (n_mfcc, T)
    chroma(S=power)                               # (n_chroma, T)
    spectral_contrast(S=np.sqrt(power))           # (contrast_bands + 1, T)

Options come from a :class:`FeatureConfig` (keyword ``config``; default ``FeatureConfig()``).
For the same parameters each function matches its librosa counterpart (``librosa.stft``,
``librosa.feature.melspectrogram``, ``librosa.power_to_db``, ``librosa.feature.mfcc``,
``librosa.feature.chroma_stft`` with ``tuning`` given, ``librosa.feature.spectral_contrast``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from edgeav.features import filters
from edgeav.features.audio import prepare_audio
from edgeav.features.config import FeatureConfig, FeatureError

_AMIN = 1e-10  # power_to_db's floor, as librosa's


@functools.lru_cache(maxsize=1)
def default_config() -> FeatureConfig:
    """``FeatureConfig()``, built once."""
    return FeatureConfig()


def stft(
    y: Any, *, config: FeatureConfig | None = None, sr: int | float | None = None
) -> np.ndarray:
    """Complex STFT ``(1 + n_fft // 2, n_frames)`` of ``prepare_audio(y, config, sr)``.

    As ``librosa.stft(y, n_fft=, hop_length=, win_length=, window=, center=)`` with
    ``pad_mode="constant"``: with ``center``, ``n_frames = 1 + len(y) // hop_length``.
    """
    config = default_config() if config is None else config
    x = prepare_audio(y, config, sr)  # at least one window, so at least n_fft samples
    if config.center:
        pad = np.zeros(config.n_fft // 2)
        x = np.concatenate([pad, x, pad])
    # Every frame a column of a read-only strided view of the signal (librosa.util.frame's
    # layout), all of them windowed into one C-contiguous array and transformed by one batched
    # real FFT. The spectrogram comes out C-contiguous, each frequency a row, as the features'
    # per-band reductions read it fastest.
    n_frames = 1 + (x.size - config.n_fft) // config.hop_length
    step = x.strides[0]
    frames = np.lib.stride_tricks.as_strided(
        x, (config.n_fft, n_frames), (step, step * config.hop_length), writeable=False
    )
    windowed = np.multiply(filters.window(config)[:, None], frames, order="C")
    return np.fft.rfft(windowed, axis=0)


def _check_spectrogram(S: Any, config: FeatureConfig, what: str) -> np.ndarray:
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != 1 + config.n_fft // 2:
        raise FeatureError(
            f"{what}: S must be (1 + n_fft // 2, n_frames) = ({1 + config.n_fft // 2}, T), "
            f"got {S.shape}"
        )
    return S


def _power(y: Any, S: Any, config: FeatureConfig, what: str) -> np.ndarray:
    """The power spectrogram ``S`` (checked), or that of ``y``; exactly one must be given."""
    if (y is None) == (S is None):
        raise FeatureError(f"{what}: give exactly one of y and S")
    if S is not None:
        return _check_spectrogram(S, config, what)
    return power_spectrum(stft(y, config=config))


def power_spectrum(D: np.ndarray) -> np.ndarray:
    """``|D|**2`` of a complex STFT, same shape (librosa squares ``np.abs(D)``; this sums the
    squares of the real and imaginary parts, which agrees to the last bit)."""
    power = np.square(D.real)
    power += np.square(D.imag)
    return power


def power_to_db(S: Any, *, top_db: float | None = 80.0) -> np.ndarray:
    """``10 log10(max(S, 1e-10))``, floored ``top_db`` below its maximum: same shape as ``S``.

    As ``librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=top_db)``: the floor is relative
    to the maximum of the whole array.
    """
    db = np.maximum(np.asarray(S, dtype=np.float64), _AMIN)
    np.log10(db, out=db)
    db *= 10.0
    if top_db is not None and db.size:
        np.maximum(db, db.max() - top_db, out=db)
    return db


def melspectrogram(
    y: Any = None, *, S: Any = None, config: FeatureConfig | None = None
) -> np.ndarray:
    """Power mel spectrogram ``(n_mels, T)``; ``S`` is a power spectrogram ``|stft|**2``."""
    config = default_config() if config is None else config
    return filters.mel(config) @ _power(y, S, config, "melspectrogram")


def mfcc(
    y: Any = None,
    *,
    S: Any = None,
    mel_db: Any = None,
    config: FeatureConfig | None = None,
) -> np.ndarray:
    """MFCCs ``(n_mfcc, T)``: the orthonormal DCT-II of the dB mel spectrogram.

    Give one of ``y``, ``S`` (a power spectrogram ``|stft|**2``) or ``mel_db`` (its mel
    spectrogram already through :func:`power_to_db`, ``(n_mels, T)``: what librosa's ``mfcc``
    calls ``S``).
    """
    config = default_config() if config is None else config
    if mel_db is None:
        mel_db = power_to_db(melspectrogram(y, S=S, config=config), top_db=config.top_db)
    elif y is not None or S is not None:
        raise FeatureError("mfcc: give exactly one of y, S and mel_db")
    return filters.dct(config) @ np.asarray(mel_db, dtype=np.float64)


def chroma(y: Any = None, *, S: Any = None, config: FeatureConfig | None = None) -> np.ndarray:
    """STFT chromagram ``(n_chroma, T)``, each frame divided by its maximum (unless that is 0);
    ``S`` is a power spectrogram ``|stft|**2``."""
    config = default_config() if config is None else config
    raw = filters.chroma(config) @ _power(y, S, config, "chroma")
    peak = raw.max(axis=0)
    peak[peak < np.finfo(np.float64).tiny] = 1.0
    return raw / peak


def spectral_contrast(
    y: Any = None, *, S: Any = None, config: FeatureConfig | None = None
) -> np.ndarray:
    """Spectral contrast in dB ``(contrast_bands + 1, T)``; ``S`` is a magnitude ``|stft|``.

    For each band (:func:`filters.contrast_bands`): the mean of its ``q`` highest magnitudes
    (peak) and of its ``q`` lowest (valley), and ``power_to_db(peak) - power_to_db(valley)``,
    each ``power_to_db`` over all bands and frames at once, as librosa does (on magnitudes).
    """
    config = default_config() if config is None else config
    if (y is None) == (S is None):
        raise FeatureError("spectral_contrast: give exactly one of y and S")
    if S is None:
        S = np.sqrt(_power(y, None, config, "spectral_contrast"))
    else:
        S = _check_spectrogram(S, config, "spectral_contrast")
    bands = filters.contrast_bands(config)
    peak = np.empty((len(bands), S.shape[1]))
    valley = np.empty_like(peak)
    for k, (lo, hi, q) in enumerate(bands):
        if q == 1:  # one value per side (most bands): the band's minimum and maximum
            valley[k], peak[k] = S[lo:hi].min(axis=0), S[lo:hi].max(axis=0)
        else:
            ranked = np.sort(S[lo:hi], axis=0)
            valley[k], peak[k] = ranked[:q].mean(axis=0), ranked[-q:].mean(axis=0)
    return power_to_db(peak) - power_to_db(valley)
