"""Audio features in NumPy: MFCC, chroma, mel and spectral contrast, summarised over frames.

The feature code for training and for the device. For the same parameters it reproduces
``librosa.feature`` (0.10/0.11) within ``1e-4`` of the largest value of each feature, without
librosa, numba or scipy. The modules:

- :mod:`~edgeav.features.config`: :class:`FeatureConfig`, every parameter, validated.
- :mod:`~edgeav.features.filters`: window, mel and chroma banks, DCT, contrast bands (cached).
- :mod:`~edgeav.features.audio`: :func:`prepare_audio`, any PCM to mono float64 at the rate.
- :mod:`~edgeav.features.spectral`: :func:`stft`, :func:`melspectrogram`, :func:`power_to_db`,
  :func:`mfcc`, :func:`chroma`, :func:`spectral_contrast`: pure functions over a shared STFT.
- :mod:`~edgeav.features.extract`: :func:`frame_features` and :func:`extract`.

With the defaults (16 kHz, 1 s windows, ``n_fft=512``, ``hop_length=160``) :func:`extract`
returns 187 values per window: 40 MFCC + 12 chroma + 128 mel + 7 spectral contrast, each the
mean over the 101 STFT frames. The librosa calls it matches are::

    S = np.abs(librosa.stft(y, n_fft=512, hop_length=160)) ** 2          # center, zero padding
    mel = librosa.feature.melspectrogram(S=S, sr=16000, n_mels=128)        # Slaney mel, norm="slaney"
    mel_db = librosa.power_to_db(mel)                                      # ref=1, amin=1e-10, top_db=80
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=40)                       # DCT-II, ortho
    chroma = librosa.feature.chroma_stft(S=S, sr=16000, tuning=0.0)        # A440, no estimation
    contrast = librosa.feature.spectral_contrast(S=np.sqrt(S), sr=16000)   # fmin=200, 6 bands, q=0.02

Two choices differ from librosa's *defaults* (parity holds for the same parameters):

- ``chroma_tuning=0.0``: librosa's ``chroma_stft`` estimates the tuning of every call with
  ``piptrack`` unless ``tuning`` is given, which makes the filter bank depend on the input (and
  costs more than all four features together). Speech has no tuning to estimate, so edgeav fixes
  A440.
- The ``mel`` feature is in decibels (``mel_db=True``; the log-mel that MFCCs are made from).
  ``mel_db=False`` averages the power mel spectrogram instead, as many librosa recipes do.

``import edgeav.features`` imports NumPy and the standard library only (soxr when resampling).
"""

from __future__ import annotations

from edgeav.features.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, prepare_audio
from edgeav.features.config import FEATURE_NAMES, STATISTICS, FeatureConfig, FeatureError
from edgeav.features.extract import extract, frame_features
from edgeav.features.spectral import (
    chroma,
    melspectrogram,
    mfcc,
    power_to_db,
    spectral_contrast,
    stft,
)

__all__ = [
    "FEATURE_NAMES",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "STATISTICS",
    "FeatureConfig",
    "FeatureError",
    "chroma",
    "extract",
    "frame_features",
    "melspectrogram",
    "mfcc",
    "power_to_db",
    "prepare_audio",
    "spectral_contrast",
    "stft",
]
