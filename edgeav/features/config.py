"""The feature configuration: one frozen dataclass that travels in the run folder and the bundle."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError

#: The four features, in the order :func:`~edgeav.features.extract` concatenates them.
FEATURE_NAMES = ("mfcc", "chroma", "mel", "contrast")
#: Statistics over frames that :class:`FeatureConfig` accepts.
STATISTICS = ("mean", "std", "min", "max")
#: Windows that :class:`FeatureConfig` accepts (periodic, as scipy's ``get_window``).
WINDOWS = ("hann", "hamming", "blackman", "boxcar")


class FeatureError(EdgeAVError, ValueError):
    """Bad audio or a bad feature configuration (an EdgeAVError and a ValueError)."""


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that determines the feature vector.

    Attributes:
        sample_rate: Hz the features are computed at; other input is resampled to it.
        window_seconds: analysis window; shorter input is zero-padded to it.
        n_fft: FFT length (samples). 512 at 16 kHz is 32 ms, a usual speech frame.
        hop_length: samples between frames (160 = 10 ms at 16 kHz).
        win_length: window length (``None`` = ``n_fft``); centred and zero-padded to ``n_fft``.
        window: ``"hann"``, ``"hamming"``, ``"blackman"`` or ``"boxcar"`` (periodic).
        center: pad ``n_fft // 2`` zeros on both sides so frame ``t`` is centred on
            ``t * hop_length`` (librosa's default, ``pad_mode="constant"``).
        n_mels, fmin, fmax: Slaney-style mel filter bank (``htk=False, norm="slaney"``);
            ``fmax=None`` is ``sample_rate / 2``.
        mel_db: the mel feature in dB (``power_to_db``) rather than power.
        top_db: ``power_to_db``'s range below the window's maximum for the mel spectrogram (and
            so the MFCCs); ``None`` for no floor but ``amin``.
        n_mfcc: MFCCs (DCT-II, orthonormal, of the dB mel spectrogram).
        n_chroma: chroma bins per octave (STFT chroma, librosa's ``chroma_stft``).
        chroma_tuning: tuning offset in fractions of a chroma bin (0.0 = A440; librosa would
            estimate it from each input, which makes the filter bank depend on the input).
        contrast_bands, contrast_fmin, contrast_quantile: spectral contrast's octave bands above
            ``contrast_fmin`` (``contrast_bands + 1`` values) and its peak/valley quantile.
        statistics: statistics over frames, concatenated in this order (each one a block of
            ``n_mfcc + n_chroma + n_mels + contrast_bands + 1`` values).

    Construction checks every value and builds the filter banks (cached), so a config that
    exists can be computed.
    """

    sample_rate: int = 16000
    window_seconds: float = 1.0
    n_fft: int = 512
    hop_length: int = 160
    win_length: int | None = None
    window: str = "hann"
    center: bool = True
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    mel_db: bool = True
    top_db: float | None = 80.0
    n_mfcc: int = 40
    n_chroma: int = 12
    chroma_tuning: float = 0.0
    contrast_bands: int = 6
    contrast_fmin: float = 200.0
    contrast_quantile: float = 0.02
    statistics: tuple[str, ...] = ("mean",)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            object.__setattr__(self, f.name, _check_field(f.name, _FIELD_TYPES[f.name], value))
        self._validate()
        # The banks raise on empty mel filters or contrast bands. (filters imports this module.)
        from edgeav.features import filters  # noqa: PLC0415

        filters.mel(self)
        filters.contrast_bands(self)

    def _validate(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise FeatureError(f"feature config: {what}")

        nyquist = self.sample_rate / 2
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels", "n_mfcc", "n_chroma"):
            need(getattr(self, name) > 0, f"{name}={getattr(self, name)} must be positive")
        need(self.contrast_bands > 0, f"contrast_bands={self.contrast_bands} must be positive")
        need(self.window_seconds > 0, f"window_seconds={self.window_seconds} must be positive")
        need(
            self.window_samples >= self.n_fft,
            f"window_seconds={self.window_seconds} is shorter than n_fft={self.n_fft} samples",
        )
        win = self.n_fft if self.win_length is None else self.win_length
        need(0 < win <= self.n_fft, f"win_length={self.win_length} must be in 1..n_fft")
        need(self.window in WINDOWS, f"window={self.window!r} is not one of {sorted(WINDOWS)}")
        need(self.n_mfcc <= self.n_mels, f"n_mfcc={self.n_mfcc} exceeds n_mels={self.n_mels}")
        fmax = nyquist if self.fmax is None else self.fmax
        need(0 <= self.fmin < fmax, f"fmin={self.fmin} must be >= 0 and below fmax={fmax}")
        need(fmax <= nyquist, f"fmax={self.fmax} exceeds the Nyquist frequency {nyquist:g} Hz")
        need(self.top_db is None or self.top_db >= 0, f"top_db={self.top_db} must be >= 0")
        need(self.contrast_fmin > 0, f"contrast_fmin={self.contrast_fmin} must be positive")
        need(
            0 < self.contrast_quantile < 1,
            f"contrast_quantile={self.contrast_quantile} must be in (0, 1)",
        )
        top_edge = self.contrast_fmin * 2.0 ** (self.contrast_bands - 1)
        need(
            top_edge < nyquist,
            f"contrast band edge {top_edge:g} Hz (contrast_fmin * 2**(contrast_bands-1)) is not "
            f"below the Nyquist frequency {nyquist:g} Hz; reduce contrast_fmin or contrast_bands",
        )
        need(len(self.statistics) > 0, "statistics must name at least one of " + str(STATISTICS))
        for stat in self.statistics:
            need(stat in STATISTICS, f"statistic {stat!r} is not one of {STATISTICS}")
        need(len(set(self.statistics)) == len(self.statistics), "statistics repeat")

    @property
    def window_samples(self) -> int:
        """Samples in one analysis window at :attr:`sample_rate`."""
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def sizes(self) -> dict[str, int]:
        """Values per frame of each feature, in :data:`FEATURE_NAMES` order."""
        return {
            "mfcc": self.n_mfcc,
            "chroma": self.n_chroma,
            "mel": self.n_mels,
            "contrast": self.contrast_bands + 1,
        }

    @property
    def dim(self) -> int:
        """Length of :func:`~edgeav.features.extract`'s vector (187 with the defaults)."""
        return sum(self.sizes.values()) * len(self.statistics)

    def slices(self) -> dict[str, slice]:
        """Where each ``"<statistic>/<feature>"`` sits in ``extract``'s vector."""
        out: dict[str, slice] = {}
        start = 0
        for stat in self.statistics:
            for name, size in self.sizes.items():
                out[f"{stat}/{name}"] = slice(start, start + size)
                start += size
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``from_dict(to_dict())`` gives an equal config)."""
        d = dataclasses.asdict(self)
        d["statistics"] = list(self.statistics)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureConfig:
        """Build from :meth:`to_dict` output; missing keys take the defaults, unknown keys fail."""
        if not isinstance(data, Mapping):
            raise FeatureError(f"feature config must be a JSON object, not {type(data).__name__}")
        unknown = sorted(set(data) - set(_FIELD_TYPES))
        if unknown:
            raise FeatureError(f"feature config: unknown key(s) {', '.join(map(repr, unknown))}")
        return cls(**dict(data))


_FIELD_TYPES = {
    "sample_rate": "int",
    "window_seconds": "float",
    "n_fft": "int",
    "hop_length": "int",
    "win_length": "int?",
    "window": "str",
    "center": "bool",
    "n_mels": "int",
    "fmin": "float",
    "fmax": "float?",
    "mel_db": "bool",
    "top_db": "float?",
    "n_mfcc": "int",
    "n_chroma": "int",
    "chroma_tuning": "float",
    "contrast_bands": "int",
    "contrast_fmin": "float",
    "contrast_quantile": "float",
    "statistics": "strs",
}


def _check_field(name: str, kind: str, value: Any) -> Any:
    """Check one field's type (``kind`` from ``_FIELD_TYPES``, ``?`` = may be None); ints
    become floats where floats are due, lists tuples."""
    if kind.endswith("?"):
        if value is None:
            return None
        kind = kind[:-1]
    bad = FeatureError(f"feature config: {name}={value!r} is not a valid {kind}")
    if kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise bad
        return bool(value)
    if kind == "int":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise bad
        return int(value)
    if kind == "float":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            raise bad
        if not math.isfinite(float(value)):
            raise bad
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise bad
        return value
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise FeatureError(f"feature config: {name}={value!r} must be a list of names")
    if not all(isinstance(v, str) for v in value):
        raise FeatureError(f"feature config: {name}={value!r} must be a list of names")
    return tuple(value)
