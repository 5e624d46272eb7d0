"""The audio front-end: one window of samples -> the audio head's input, the same in training and
on the device.

Three kinds (:data:`KINDS`), one per audio model of the zoo:

- ``"features"`` (``audio-mlp``, the seed's recipe): :func:`edgeav.features.extract` -- MFCC,
  chroma, mel and contrast summarised over the window's frames, ``(config.dim,)``.
- ``"log-mel"`` (``audio-dscnn``): the window's log-mel spectrogram, each mel band's mean over the
  window removed (a fixed microphone colouring is a constant offset per band in dB, so this is
  channel invariance), ``(frames, n_mels, 1)``.
- ``"speech-embedding"`` (``audio-embed``): Google's speech-embedding front-end, trained on large
  amounts of real human speech, as two LiteRT models that travel inside the bundle: a log-mel
  model (32 bands every 10 ms) and an embedding model (96 values for every 76 mel frames, one
  every 8 frames = 80 ms), ``(embeddings, 96)``.
- ``"embedding+features"`` (``audio-hybrid``): both at once in one flat vector, the speech
  embeddings (``embeddings * 96`` values, row by row) followed by :func:`edgeav.features.extract`'s
  statistics of the same window, ``(embeddings * 96 + config.dim,)``. The embeddings carry what
  human speech taught the front-end; the spectral statistics carry the detail it smooths away
  (the consonant that tells "five" from "nine"), so a head reading both is more right than either.

Before any of them the window's level is normalised (:func:`normalize_level`): its RMS is
brought to ``target_dbfs`` with at most ``max_gain_db`` of gain, so a quiet and a loud speaker,
or a near and a far microphone, give the same input. NumPy and LiteRT only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError

KINDS = ("features", "log-mel", "speech-embedding", "embedding+features")
#: The kinds that run the speech-embedding front-end's models.
EMBEDDING_KINDS = ("speech-embedding", "embedding+features")
#: The speech-embedding front-end's two models (bundle roles).
EMBEDDING_MODELS = ("melspectrogram", "embedding")
#: Mel frames per embedding and the step between embeddings (the embedding model's design).
EMBEDDING_FRAMES, EMBEDDING_STEP, EMBEDDING_MELS, EMBEDDING_DIM = 76, 8, 32, 96


@dataclass(frozen=True)
class AudioInput:
    """What the audio head reads (travels in the run folder and the bundle's manifest).

    Attributes:
        kind: one of :data:`KINDS`.
        target_dbfs: the window's RMS level after normalisation; None leaves the level as it
            is (bundles written before the front-end existed).
        max_gain_db: the most a quiet window is amplified.
        n_mels: mel bands of the ``"log-mel"`` kind.
    """

    kind: str = "features"
    target_dbfs: float | None = None
    max_gain_db: float = 30.0
    n_mels: int = 40

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise EdgeAVError(
                f"audio input kind must be one of {', '.join(KINDS)}, got {self.kind!r}"
            )
        if self.target_dbfs is not None and not -60.0 <= self.target_dbfs <= 0.0:
            raise EdgeAVError(f"target_dbfs must be in [-60, 0], got {self.target_dbfs!r}")
        if not 0.0 <= self.max_gain_db <= 60.0:
            raise EdgeAVError(f"max_gain_db must be in [0, 60], got {self.max_gain_db!r}")
        if not isinstance(self.n_mels, int) or not 8 <= self.n_mels <= 128:
            raise EdgeAVError(f"n_mels must be an integer in 8..128, got {self.n_mels!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> AudioInput:
        if not isinstance(data, dict):
            raise EdgeAVError(f"audio input must be an object, got {type(data).__name__}")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise EdgeAVError(f"unknown audio input field(s): {', '.join(sorted(unknown))}")
        return cls(**data)


def input_shape(spec: AudioInput, config: Any) -> tuple[int, ...]:
    """The shape of :class:`FrontEnd`'s output for ``spec`` and the feature config's window."""
    if spec.kind == "features":
        return (config.dim,)
    n = config.window_samples
    if spec.kind == "log-mel":
        frames = (
            1 + n // config.hop_length
            if config.center
            else 1 + (n - config.n_fft) // config.hop_length
        )
        return (frames, spec.n_mels, 1)
    steps = (mel_frames(n) - EMBEDDING_FRAMES) // EMBEDDING_STEP + 1
    if spec.kind == "embedding+features":
        return (steps * EMBEDDING_DIM + config.dim,)
    return (steps, EMBEDDING_DIM)


def normalize_level(samples: np.ndarray, target_dbfs: float, max_gain_db: float) -> np.ndarray:
    """``samples`` scaled so their RMS is ``target_dbfs`` (gain at most ``max_gain_db``; never
    more than full scale), float32."""
    x = np.asarray(samples, dtype=np.float32)
    power = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    if power <= 0.0:
        return x
    gain_db = min(target_dbfs - 10.0 * math.log10(power), max_gain_db)
    gain = 10.0 ** (gain_db / 20.0)
    peak = float(np.max(np.abs(x)))
    gain = min(gain, 1.0 / peak) if peak > 0 else gain
    return (x * np.float32(gain)).astype(np.float32, copy=False)


def fit_window(samples: np.ndarray, n: int, offset: int | None = None) -> np.ndarray:
    """``samples`` made exactly ``n`` long: a longer clip's middle, a shorter one zero-padded
    around it (centred, or starting at ``offset``), float32."""
    x = np.asarray(samples, dtype=np.float32)
    if x.size >= n:
        start = (x.size - n) // 2
        return x[start : start + n].copy()
    out = np.zeros(n, np.float32)
    start = (n - x.size) // 2 if offset is None else max(0, min(int(offset), n - x.size))
    out[start : start + x.size] = x
    return out


class FrontEnd:
    """Turns a window of samples (float32 mono at the config's rate) into the head's input.

    Args:
        spec: the :class:`AudioInput`.
        config: the bundle's :class:`~edgeav.features.FeatureConfig` (sample rate, window; the
            ``"features"`` kind's parameters).
        models: for :data:`EMBEDDING_KINDS`, the ``.tflite`` bytes of :data:`EMBEDDING_MODELS`.
        threads: interpreter threads of those models.
    """

    def __init__(
        self,
        spec: AudioInput,
        config: Any,
        models: dict[str, bytes] | None = None,
        threads: int | None = None,
    ) -> None:
        self.spec, self.config = spec, config
        self.window = config.window_samples
        self._models: dict[str, Any] = {}
        self._model_bytes = dict(models or {}) if spec.kind in EMBEDDING_KINDS else {}
        if spec.kind == "log-mel":
            self._mel_config = dataclasses.replace(config, n_mels=spec.n_mels, n_mfcc=13)
        if spec.kind in EMBEDDING_KINDS:
            from edgeav.runtime.interpreter import load_interpreter  # noqa: PLC0415

            missing = [m for m in EMBEDDING_MODELS if not (models or {}).get(m)]
            if missing:
                raise EdgeAVError(f"the speech-embedding front-end needs its {missing[0]} model")
            self._mel_frames = mel_frames(self.window)
            if self._mel_frames < EMBEDDING_FRAMES:
                raise EdgeAVError(
                    f"the window is too short for the speech embedding ({self._mel_frames} mel "
                    f"frames, {EMBEDDING_FRAMES} needed)"
                )
            self._models = {
                "melspectrogram": load_interpreter(
                    models["melspectrogram"],
                    threads,
                    name="front-end melspectrogram model",
                    input_shape=(1, self.window),
                ),
                # The whole window's mel frames at once: see _embeddings.
                "embedding": load_interpreter(
                    models["embedding"],
                    threads,
                    name="front-end embedding model",
                    input_shape=(1, self._mel_frames, EMBEDDING_MELS, 1),
                ),
            }
        self.shape = input_shape(spec, config)
        got = self(np.zeros(self.window, np.float32)).shape
        if got != self.shape:
            raise EdgeAVError(f"the audio front-end gives {got}, expected {self.shape}")

    @property
    def model_bytes(self) -> dict[str, bytes]:
        """The front-end's ``.tflite`` files by role (empty for the kinds without models)."""
        return dict(self._model_bytes)

    def fingerprint(self) -> str:
        """A digest of everything that decides the output (for caches of front-end outputs)."""
        import hashlib  # noqa: PLC0415
        import json  # noqa: PLC0415

        h = hashlib.sha256(json.dumps([self.spec.to_dict(), self.config.to_dict()]).encode())
        for role in sorted(self._model_bytes):
            h.update(hashlib.sha256(self._model_bytes[role]).digest())
        return h.hexdigest()[:24]

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """The head's input for one window (``self.window`` samples), float32 ``self.shape``."""
        x = np.asarray(samples, dtype=np.float32)
        if x.shape != (self.window,):
            raise EdgeAVError(f"the audio front-end takes {self.window} samples, got {x.shape}")
        if self.spec.target_dbfs is not None:
            x = normalize_level(x, self.spec.target_dbfs, self.spec.max_gain_db)
        if self.spec.kind == "features":
            from edgeav.features import extract  # noqa: PLC0415

            return extract(x, self.config)
        if self.spec.kind == "log-mel":
            return self._log_mel(x)
        if self.spec.kind == "embedding+features":
            from edgeav.features import extract  # noqa: PLC0415

            return np.concatenate([self._embeddings(x).reshape(-1), extract(x, self.config)])
        return self._embeddings(x)

    def _log_mel(self, x: np.ndarray) -> np.ndarray:
        from edgeav.features import melspectrogram, power_to_db  # noqa: PLC0415

        db = power_to_db(melspectrogram(x, config=self._mel_config), top_db=80.0).T
        # (frames, n_mels)
        db = db - db.mean(axis=0, keepdims=True)
        return db[:, :, None].astype(np.float32)

    def _embeddings(self, x: np.ndarray) -> np.ndarray:
        """The window's embeddings, ``(n, 96)``: one per 76 mel frames, every 8 frames.

        The embedding model is fully convolutional (no padding in time, pooling that steps 8
        frames), so one pass over the whole window's mel frames gives what a pass over each
        76-frame slice gives (bit for bit on x86-64, to float precision on aarch64), without
        computing the slices' overlap again: about a quarter of the work for a 1.5 s window.
        """
        mel_model = self._models["melspectrogram"]
        # the models were trained on 16-bit PCM values as floats
        mel = mel_model.predict((x * np.float32(32767.0))[None])
        spec = np.squeeze(mel) / np.float32(10.0) + np.float32(2.0)  # (frames, 32)
        if spec.shape != (self._mel_frames, EMBEDDING_MELS):
            raise EdgeAVError(
                f"the melspectrogram model gave {spec.shape}, expected "
                f"{(self._mel_frames, EMBEDDING_MELS)}"
            )
        out = self._models["embedding"].predict(spec[None, :, :, None].astype(np.float32))
        return out.reshape(-1, EMBEDDING_DIM).astype(np.float32)


def mel_frames(samples: int) -> int:
    """Frames of the melspectrogram model for ``samples`` (512-sample frames, 10 ms hop)."""
    return (samples - 512) // 160 + 1
