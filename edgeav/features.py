"""Audio features in NumPy: MFCC, chroma, mel and spectral contrast, averaged over frames.

This module is *the* feature code for training and for the device. It reproduces
``librosa.feature`` (0.10/0.11) for the same parameters, within ``1e-4`` of the largest value of
each feature, without librosa, numba or scipy: one real FFT per window, the filter banks
precomputed (built once per :class:`FeatureConfig` and cached), scratch arrays reused between
calls.

Two backends compute the same features (within about 1e-12 frame by frame; :func:`backend` says
which one :func:`extract` and :func:`frame_features` use):

- ``"c"``: the C kernel ``edgeav._features`` (``edgeav/_features.c``, built at install when a C
  compiler and Python's headers are there) does each frame's window, FFT, power spectrum, mel
  bank, chroma and contrast peaks and valleys in one pass, eight frames at a time in float64
  SIMD code, without the GIL; NumPy takes the logarithms, the DCT and the statistics. It takes
  configs whose ``n_fft`` is a power of two (>= 16) and whose contrast bands average at most 64
  values per side; others go to NumPy. About 0.14 ms per 1 s window here.
- ``"numpy"``: NumPy alone (one batched FFT in float64, the work after it in float32 as librosa
  does for float32 audio, about 1e-7 relative; float64 for digital silence and absurd levels).
  About 0.4 ms per 1 s window here. ``EDGEAV_FEATURES=numpy`` forces it (``c`` demands the
  kernel, ``auto`` is the default).

``python -m edgeav.benchmarks.features`` times both against librosa.

With the defaults (16 kHz, 1 s windows, ``n_fft=512``, ``hop_length=160``) :func:`extract` returns
187 values per window: 40 MFCC + 12 chroma + 128 mel + 7 spectral contrast, each the mean over the
101 STFT frames. The librosa calls it matches are::

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

Input (:func:`prepare_audio`): int8/int16/int32 are scaled by ``2**(bits-1)``, uint8 is centred on
128, float is used as it is (nominally ``[-1, 1]``; not clipped). 2-D input is
``(frames, channels)`` as soundfile and sounddevice return it; the transposed librosa layout
``(channels, frames)`` is recognised when it has at most 8 rows and more than 8 columns.
Channels are averaged. Other sample rates are resampled with soxr (imported only then). Input
shorter than one window is zero-padded **at the end** to ``window_seconds``; longer input is
analysed whole (every frame is averaged). NaN or infinite samples raise :class:`FeatureError`
(a ``ValueError`` and an :class:`~edgeav.errors.EdgeAVError`). Silence gives finite features.

``import edgeav.features`` imports NumPy, the standard library and (if built) the C kernel only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from edgeav.errors import EdgeAVError

__all__ = [
    "FEATURE_NAMES",
    "STATISTICS",
    "FeatureConfig",
    "FeatureError",
    "RingBuffer",
    "backend",
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

#: The four features, in the order :func:`extract` concatenates them.
FEATURE_NAMES = ("mfcc", "chroma", "mel", "contrast")
#: Statistics over frames that :class:`FeatureConfig` accepts.
STATISTICS = ("mean", "std", "min", "max")
#: Windows (periodic, as ``scipy.signal.get_window(name, n, fftbins=True)``) as cosine sums.
_WINDOWS = {
    "hann": (0.5, 0.5),
    "hamming": (0.54, 0.46),
    "blackman": (0.42, 0.50, 0.08),
    "boxcar": (1.0,),
}
_AMIN = 1e-10  # power_to_db's floor, as librosa
_CONTRAST_TOP_DB = 80.0  # spectral_contrast calls power_to_db with its defaults
_MAX_CHANNELS = 8
_MAX_PEAK = 2.0**200  # larger inputs are scaled down so the power spectrum cannot overflow
_MAX_RESAMPLE_PEAK = 2.0**100  # likewise before resampling


def _load_kernel() -> tuple[Any, str | None]:
    """The C kernel ``edgeav._features`` (or None) and, if ``EDGEAV_FEATURES`` asks for what
    cannot be had, the error :func:`extract` raises."""
    choice = os.environ.get("EDGEAV_FEATURES", "auto").strip().lower() or "auto"
    if choice not in ("auto", "c", "numpy"):
        return None, f"EDGEAV_FEATURES must be auto, c or numpy, got {choice!r}"
    if choice == "numpy":
        return None, None
    try:
        from edgeav import _features
    except ImportError as exc:
        if choice == "c":
            return None, (
                f"EDGEAV_FEATURES=c but the C feature kernel is not built ({exc}); reinstall "
                "edgeav with a C compiler, or unset EDGEAV_FEATURES to use NumPy"
            )
        return None, None
    return _features, None


_KERNEL, _KERNEL_ERROR = _load_kernel()


@contextlib.contextmanager
def _numpy_only():
    """Within the block, extract and frame_features run without the C kernel (for benchmarks and
    tests that compare the two; not thread-safe: it swaps a module global)."""
    global _KERNEL
    saved, _KERNEL = _KERNEL, None
    try:
        yield
    finally:
        _KERNEL = saved


def backend() -> str:
    """``"c"`` when :func:`extract` runs its per-frame work in the C kernel ``edgeav._features``
    (built at install when a C compiler is present), ``"numpy"`` otherwise (or with
    ``EDGEAV_FEATURES=numpy``). Both give the same features within about 1e-12."""
    return "numpy" if _KERNEL is None else "c"


#: Input sample rates accepted for resampling (telephone audio up to 8x 96 kHz studio rates).
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000


class FeatureError(EdgeAVError, ValueError):
    """Bad audio or a bad feature configuration (an EdgeAVError and a ValueError)."""


@functools.lru_cache(maxsize=1)
def _default_config() -> FeatureConfig:
    return FeatureConfig()


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that determines the feature vector; travels in the run dir and the bundle.

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
        chroma_tuning: tuning offset in fractions of a chroma bin (0.0 = A440; see module doc).
        contrast_bands, contrast_fmin, contrast_quantile: spectral contrast's octave bands above
            ``contrast_fmin`` (``contrast_bands + 1`` values) and its peak/valley quantile.
        statistics: statistics over frames, concatenated in this order (each one a block of
            ``n_mfcc + n_chroma + n_mels + contrast_bands + 1`` values).
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
        _plan(self)  # builds (and caches) the filter banks; raises on empty filters or bands

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
        need(self.window in _WINDOWS, f"window={self.window!r} is not one of {sorted(_WINDOWS)}")
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
        """Length of :func:`extract`'s vector (187 with the defaults)."""
        return sum(self.sizes.values()) * len(self.statistics)

    def slices(self) -> dict[str, slice]:
        """Where each ``"<statistic>/<feature>"`` sits in :func:`extract`'s vector."""
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
    """Check one config field's type; ints become floats where floats are due, lists tuples."""
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


# --------------------------------------------------------------------------- filter banks


# OpenBLAS hands a matrix product to every core once m*n*k reaches 2**18. For products this
# small the threads cost more than they save, and on a busy machine (a Pi running the camera
# too) they cost milliseconds, so every product here is split to stay below that size.
_BLAS_ONE_THREAD = (1 << 18) - 1
_ROWS_PER_BLOCK = 128  # frames per product; blocks of filters are sized for this many


@dataclass(frozen=True)
class _Plan:
    """Precomputed window and matrices for one config. Products are frames-first:
    ``(n_frames, n_bins) @ (n_bins, n_out)``."""

    window: np.ndarray  # (n_fft,)
    # librosa's float32 mel basis (as float64), transposed and cut into blocks of adjacent
    # filters with the bins they touch: (bin_lo, bin_hi, mel_lo, mel_hi, weights[bins, mels]).
    mel_blocks: tuple[tuple[int, int, int, int, np.ndarray], ...]
    chroma_t: np.ndarray  # (n_bins, n_chroma): librosa's float32 chroma basis, as float64
    dct_t: np.ndarray  # (n_mels, n_mfcc): orthonormal DCT-II
    # spectral contrast bands: [lo, hi) bin ranges and quantile counts
    band_lo: np.ndarray
    band_hi: np.ndarray
    band_q: np.ndarray
    band_starts: np.ndarray  # reduceat indices giving each band's [lo, hi) (see _contrast)
    band_step: int  # 1 when the bands tile the bins (then starts = lo), else 2 (lo, hi pairs)
    # bands averaging more than one value per side: (band, lo, hi, quantile count)
    wide_bands: tuple[tuple[int, int, int, int], ...]
    # the C kernel's tables, or None when it cannot take this config (see _kernel_tables)
    kernel: _KernelTables | None

    @functools.cached_property
    def float32(self) -> _Plan:
        """This plan with float32 matrices (the filter banks are librosa's float32 values)."""

        def f32(a: np.ndarray) -> np.ndarray:
            a = a.astype(np.float32)
            a.setflags(write=False)
            return a

        return dataclasses.replace(
            self,
            mel_blocks=tuple((lo, hi, m0, m1, f32(w)) for lo, hi, m0, m1, w in self.mel_blocks),
            chroma_t=f32(self.chroma_t),
            dct_t=f32(self.dct_t),
        )


class _KernelTables(NamedTuple):
    """What ``edgeav._features.frames`` takes after the signal and the window (see
    ``edgeav/_features.c``): float64 and int32, C-contiguous."""

    twr: np.ndarray  # (M/2,) cos and -sin of 2 pi k / M, M = n_fft / 2 (the complex FFT)
    twi: np.ndarray
    rtr: np.ndarray  # (M + 1,) cos and -sin of 2 pi k / n_fft (the real split)
    rti: np.ndarray
    bitrev: np.ndarray  # (M,) int32
    mel_lo: np.ndarray  # (n_mels,) int32: filter m's nonzero bins [lo, hi) ...
    mel_hi: np.ndarray
    mel_off: np.ndarray  # ... and where their weights start in mel_w
    mel_w: np.ndarray
    chroma: np.ndarray  # (n_chroma, n_bins)
    band_lo: np.ndarray  # (n_bands + 1,) int32
    band_hi: np.ndarray
    band_q: np.ndarray


_KERNEL_MAX_Q = 64  # QMAX in _features.c


def _kernel_tables(
    config: FeatureConfig, mel: np.ndarray, chroma_basis: np.ndarray, lo, hi, q
) -> _KernelTables | None:
    """Tables for the C kernel; None (NumPy does the work) unless n_fft is a power of two of at
    least 16 and every contrast band averages at most 64 values per side."""
    n_fft = config.n_fft
    if n_fft < 16 or n_fft & (n_fft - 1) or int(np.max(q)) > _KERNEL_MAX_Q:
        return None
    m = n_fft // 2
    k = np.arange(m // 2)
    k1 = np.arange(m + 1)
    bits = m.bit_length() - 1
    idx = np.arange(m)
    rev = np.zeros(m, dtype=np.int64)
    for b in range(bits):
        rev |= ((idx >> b) & 1) << (bits - 1 - b)
    nonzero = mel > 0
    any_nz = nonzero.any(axis=1)
    mel_lo = np.where(any_nz, nonzero.argmax(axis=1), 0)
    mel_hi = np.where(any_nz, mel.shape[1] - nonzero[:, ::-1].argmax(axis=1), 0)
    sizes = mel_hi - mel_lo
    mel_off = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    mel_w = np.concatenate([mel[i, mel_lo[i] : mel_hi[i]] for i in range(mel.shape[0])] + [[0.0]])
    i32 = functools.partial(np.ascontiguousarray, dtype=np.int32)
    f64 = functools.partial(np.ascontiguousarray, dtype=np.float64)
    tables = _KernelTables(
        twr=f64(np.cos(2 * np.pi * k / m)),
        twi=f64(-np.sin(2 * np.pi * k / m)),
        rtr=f64(np.cos(2 * np.pi * k1 / n_fft)),
        rti=f64(-np.sin(2 * np.pi * k1 / n_fft)),
        bitrev=i32(rev),
        mel_lo=i32(mel_lo),
        mel_hi=i32(mel_hi),
        mel_off=i32(mel_off),
        mel_w=f64(mel_w),
        chroma=f64(chroma_basis),
        band_lo=i32(lo),
        band_hi=i32(hi),
        band_q=i32(q),
    )
    for arr in tables:
        arr.setflags(write=False)
    return tables


@functools.lru_cache(maxsize=32)
def _plan(config: FeatureConfig) -> _Plan:
    fft_freqs = np.fft.rfftfreq(config.n_fft, d=1.0 / config.sample_rate)
    mel = _mel_basis(config, fft_freqs)
    lo, hi, q = _contrast_bands(config, fft_freqs)
    tiled = bool(np.all(hi[:-1] == lo[1:]))  # true unless a bin sits exactly on a band edge
    # reduceat reduces [i_j, i_j+1); the last band runs to the last bin, so it needs no end.
    starts = lo if tiled else np.ravel(np.column_stack([lo, hi]))[:-1]
    chroma_basis = _chroma_basis(config)
    arrays = dict(
        window=_window(config),
        chroma_t=np.ascontiguousarray(chroma_basis.T),
        dct_t=np.ascontiguousarray(_dct_ortho(config.n_mfcc, config.n_mels).T),
        band_lo=lo,
        band_hi=hi,
        band_q=q,
        band_starts=starts,
    )
    for arr in arrays.values():
        arr.setflags(write=False)
    wide = tuple((int(k), int(lo[k]), int(hi[k]), int(q[k])) for k in np.flatnonzero(q > 1))
    return _Plan(
        mel_blocks=_mel_blocks(mel),
        band_step=1 if tiled else 2,
        wide_bands=wide,
        kernel=_kernel_tables(config, mel, chroma_basis, lo, hi, q),
        **arrays,
    )


def _mel_blocks(mel: np.ndarray) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """Cut the (n_mels, n_bins) basis into runs of adjacent filters whose (bins x filters)
    block keeps a product with _ROWS_PER_BLOCK frames below _BLAS_ONE_THREAD.

    Each triangular filter touches a few bins (about 500 nonzeros of 33,000 with the defaults),
    so the blocks hold nearly all the work and skip the zeros; filters outside any block's
    bins are zero there, so the result is the dense product's.
    """
    nonzero = mel > 0
    first = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), 0)
    last = np.where(nonzero.any(axis=1), mel.shape[1] - nonzero[:, ::-1].argmax(axis=1), 1)
    budget = _BLAS_ONE_THREAD // _ROWS_PER_BLOCK
    blocks = []
    m = 0
    while m < mel.shape[0]:
        end = m + 1
        while end < mel.shape[0]:
            lo, hi = first[m : end + 1].min(), last[m : end + 1].max()
            if (hi - lo) * (end + 1 - m) > budget:
                break
            end += 1
        lo, hi = int(first[m:end].min()), int(last[m:end].max())
        w = np.ascontiguousarray(mel[m:end, lo:hi].T)
        w.setflags(write=False)
        blocks.append((lo, hi, m, end, w))
        m = end
    return tuple(blocks)


def _window(config: FeatureConfig) -> np.ndarray:
    """The periodic window, zero-padded (centred) to n_fft, as librosa.filters.get_window."""
    n = config.n_fft if config.win_length is None else config.win_length
    # scipy's general_cosine: sum_k a_k cos(k * fac), fac from -pi to pi over n + 1 points.
    fac = np.linspace(-np.pi, np.pi, n + 1)[:n]
    w = np.zeros(n)
    for k, a in enumerate(_WINDOWS[config.window]):
        w += a * np.cos(k * fac)
    lpad = (config.n_fft - n) // 2
    out = np.zeros(config.n_fft)
    out[lpad : lpad + n] = w
    out.setflags(write=False)
    return out


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa ``htk=False``): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = f >= min_log_hz
    mels = np.where(
        log_t, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, mels
    )
    return mels


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


def _mel_basis(config: FeatureConfig, fft_freqs: np.ndarray) -> np.ndarray:
    """librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm="slaney")."""
    fmax = config.sample_rate / 2 if config.fmax is None else config.fmax
    lo, hi = _hz_to_mel(np.array([config.fmin, fmax]))
    mel_f = _mel_to_hz(np.linspace(lo, hi, config.n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper)).astype(np.float32)  # librosa keeps float32
    enorm = 2.0 / (mel_f[2:] - mel_f[:-2])
    weights = (weights * enorm[:, None]).astype(np.float32).astype(np.float64)
    empty = np.flatnonzero((mel_f[:-2] != 0) & ~(weights.max(axis=1) > 0))
    if empty.size:
        raise FeatureError(
            f"feature config: mel filters {empty.tolist()[:5]} are empty with n_mels={config.n_mels}, "
            f"n_fft={config.n_fft} at {config.sample_rate} Hz; increase n_fft or reduce n_mels"
        )
    return weights


def _chroma_basis(config: FeatureConfig) -> np.ndarray:
    """librosa.filters.chroma(sr, n_fft, n_chroma, tuning) with its defaults (ctroct=5,
    octwidth=2, norm=2, base_c=True)."""
    n_chroma, n_fft, sr = config.n_chroma, config.n_fft, config.sample_rate
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    a440 = 440.0 * 2.0 ** (config.chroma_tuning / n_chroma)
    frqbins = n_chroma * np.log2(frequencies / (a440 / 16))
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    d = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    n_chroma2 = np.round(float(n_chroma) / 2)
    d = np.remainder(d + n_chroma2 + 10 * n_chroma, n_chroma) - n_chroma2
    wts = np.exp(-0.5 * (2 * d / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    norms = np.sqrt(np.sum(wts**2, axis=0, keepdims=True))
    norms[norms < np.finfo(np.float64).tiny] = 1.0
    wts = wts / norms
    wts *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - 5.0) / 2.0) ** 2)), (n_chroma, 1))
    wts = np.roll(wts, -3 * (n_chroma // 12), axis=0)
    return np.ascontiguousarray(wts[:, : int(1 + n_fft / 2)], dtype=np.float32).astype(np.float64)


def _dct_ortho(n_out: int, n_in: int) -> np.ndarray:
    """The first n_out rows of the orthonormal DCT-II matrix (scipy.fft.dct(type=2, norm="ortho"))."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    m[0] /= np.sqrt(2.0)
    return m


def _contrast_bands(
    config: FeatureConfig, freq: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """librosa.feature.spectral_contrast's bands: per band the [lo, hi) range of STFT bins it
    sorts and its quantile count (from the band's size before its top bin is dropped)."""
    n_bands = config.contrast_bands
    octa = np.zeros(n_bands + 2)
    octa[1:] = config.contrast_fmin * (2.0 ** np.arange(0, n_bands + 1))
    lo, hi, q = [], [], []
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:], strict=True)):
        current = (freq >= f_low) & (freq <= f_high)
        idx = np.flatnonzero(current)
        if idx.size == 0:
            raise FeatureError(
                f"feature config: spectral contrast band {k} ({f_low:g}-{f_high:g} Hz) holds no "
                f"FFT bin with n_fft={config.n_fft}; increase n_fft or contrast_fmin"
            )
        if k > 0:
            current[idx[0] - 1] = True
        if k == n_bands:
            current[idx[-1] + 1 :] = True
        bins = np.flatnonzero(current)  # always a contiguous run
        if k < n_bands:
            bins = bins[:-1]
        if bins.size == 0:
            raise FeatureError(
                f"feature config: spectral contrast band {k} is empty with n_fft={config.n_fft}; "
                "increase n_fft or contrast_fmin"
            )
        lo.append(int(bins[0]))
        hi.append(int(bins[-1]) + 1)
        q.append(max(int(np.rint(config.contrast_quantile * np.sum(current))), 1))
    return np.array(lo), np.array(hi), np.array(q)


# --------------------------------------------------------------------------- input


def prepare_audio(y: Any, config: FeatureConfig, sr: int | float | None = None) -> np.ndarray:
    """Mono float64 samples at ``config.sample_rate``, at least one window long.

    See the module docstring for the dtype, channel-layout, resampling and padding rules.
    Raises :class:`FeatureError` on NaN/inf, an unsupported dtype or shape, or a bad ``sr``.
    """
    x = _to_float_mono(y)
    # NaN and inf propagate to max and min (two passes without a temporary, unlike abs)
    hi, lo = (float(np.maximum.reduce(x)), float(np.minimum.reduce(x))) if x.size else (0, 0)
    peak = max(hi, -lo)
    if not (math.isfinite(hi) and math.isfinite(lo)):
        bad = int(np.flatnonzero(~np.isfinite(x))[0])
        raise FeatureError(f"audio contains NaN or infinite values (first at sample {bad})")
    if peak > _MAX_PEAK:  # only absurd float input; a power of two keeps it exact
        x = x * 2.0 ** -(math.ceil(math.log2(peak)) - 200)
    if sr is not None and sr != config.sample_rate:
        if peak > _MAX_RESAMPLE_PEAK:  # soxr overflows past ~2**120 (single-precision inside)
            x = x * 2.0 ** -(math.ceil(math.log2(peak)) - 100)
        x = _resample(x, sr, config.sample_rate)
    if x.size < config.window_samples:
        x = np.concatenate([x, np.zeros(config.window_samples - x.size)])
    return x


def _to_float_mono(y: Any) -> np.ndarray:
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
            raise FeatureError(f"audio of shape {y.shape} has no channels")
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
        import soxr
    except ImportError as exc:  # pragma: no cover - soxr is in the runtime and train extras
        raise FeatureError(
            f"audio at {sr:g} Hz needs resampling to {target} Hz, which needs the soxr package "
            "(pip install soxr)"
        ) from exc
    return np.asarray(soxr.resample(x, float(sr), float(target), quality="HQ"), dtype=np.float64)


# --------------------------------------------------------------------------- features


class _Workspace(threading.local):
    """Per-thread scratch arrays, reused from call to call.

    A window's spectrogram arrays are a few hundred kB each; allocated afresh every call,
    malloc returns them to the kernel and every call pays page faults for them again, which
    costs more than the FFT (measured here: 0.4 ms of a 0.5 ms STFT). Only :func:`extract`'s
    internals use these; nothing that escapes to a caller aliases them.
    """

    #: Larger arrays (inputs of more than about 10 s at 16 kHz) are not kept.
    max_bytes = 4 << 20

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}  # name -> flat buffer
        self.views: dict[tuple, np.ndarray] = {}  # (name, shape, dtype) -> view of it

    def get(self, name: str, shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
        key = (name, shape, dtype)
        view = self.views.get(key)
        if view is not None:
            return view
        size = math.prod(shape)
        if size * np.dtype(dtype).itemsize > self.max_bytes:
            return np.empty(shape, dtype=dtype)
        flat = self.arrays.get(name)
        if flat is None or flat.size < size or flat.dtype != dtype:
            flat = np.empty(max(size, 1), dtype=dtype)
            self.arrays[name] = flat
            self.views = {k: v for k, v in self.views.items() if k[0] != name}
        if len(self.views) > 64:  # many different lengths: start over
            self.views.clear()
        view = self.views[key] = flat[:size].reshape(shape)
        return view


_WS = _Workspace()
_RFFT_HAS_OUT = int(np.__version__.split(".")[0]) >= 2  # np.fft.rfft(..., out=) is NumPy 2


def _n_frames(n_samples: int, config: FeatureConfig) -> int:
    padded = n_samples + (2 * (config.n_fft // 2) if config.center else 0)
    if padded < config.n_fft:
        raise FeatureError(f"audio of {n_samples} samples is shorter than n_fft={config.n_fft}")
    return 1 + (padded - config.n_fft) // config.hop_length


def _padded(x: np.ndarray, config: FeatureConfig, scratch: bool) -> np.ndarray:
    """``x`` with ``n_fft // 2`` zeros each side when ``config.center`` (librosa's zero padding),
    C-contiguous float64 (in this thread's workspace with ``scratch=True``)."""
    if config.center:
        half = config.n_fft // 2
        padded = _WS.get("padded", (x.size + 2 * half,)) if scratch else np.empty(x.size + 2 * half)
        padded[:half] = 0.0
        padded[half : half + x.size] = x
        padded[half + x.size :] = 0.0
        return padded
    return np.ascontiguousarray(x, dtype=np.float64)


def _stft_frames_first(
    x: np.ndarray, config: FeatureConfig, scratch: bool = False, plan: _Plan | None = None
) -> np.ndarray:
    """Complex STFT, shape ``(n_frames, 1 + n_fft // 2)`` (frames first, for fast products).

    With ``scratch=True`` the result lives in this thread's workspace (overwritten next call).
    """
    n_fft, half = config.n_fft, config.n_fft // 2
    n_frames = _n_frames(x.size, config)
    x = _padded(x, config, scratch)
    step = x.itemsize  # overlapping frames as a read-only view (as_strided, 10x cheaper here)
    frames = np.ndarray(
        (n_frames, n_fft), x.dtype, buffer=x, strides=(step * config.hop_length, step)
    )
    frames.flags.writeable = False
    window = (_plan(config) if plan is None else plan).window
    if not scratch:
        return np.fft.rfft(frames * window, axis=1)
    windowed = np.multiply(frames, window, out=_WS.get("windowed", (n_frames, n_fft)))
    if not _RFFT_HAS_OUT:  # pragma: no cover - NumPy 1.x
        return np.fft.rfft(windowed, axis=1)
    out = _WS.get("spectrum", (n_frames, half + 1), np.complex128)
    return np.fft.rfft(windowed, axis=1, out=out)


def _abs2(d: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``|d|**2`` (librosa squares ``np.abs``; the two differ in the last bit at most)."""
    out = np.square(d.real, out=out)
    out += np.square(d.imag)
    return out


_DB = 10.0 / math.log(10.0)  # 10 * log10(x) == _DB * ln(x); np.log is twice as fast as log10


def power_to_db(S: np.ndarray, *, top_db: float | None = 80.0) -> np.ndarray:
    """``librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=top_db)``: the floor is relative to
    the maximum of the whole array."""
    S = np.asarray(S, dtype=np.float64)
    return _to_db(S, top_db, False, out=np.empty_like(S))


def _small_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` in row blocks small enough that OpenBLAS stays on one thread."""
    rows = max(1, _BLAS_ONE_THREAD // (b.shape[0] * b.shape[1]))
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    for i in range(0, a.shape[0], rows):
        np.matmul(a[i : i + rows], b, out=out[i : i + rows])
    return out


def _mel(power: np.ndarray, plan: _Plan, out: np.ndarray | None = None) -> np.ndarray:
    """Mel power spectrogram ``(n_frames, n_mels)`` from ``(n_frames, n_bins)`` power."""
    if out is None:
        out = np.empty((power.shape[0], plan.mel_blocks[-1][3]))
    for r in range(0, power.shape[0], _ROWS_PER_BLOCK):
        rows = power[r : r + _ROWS_PER_BLOCK]
        for lo, hi, m_lo, m_hi, w in plan.mel_blocks:
            np.matmul(rows[:, lo:hi], w, out=out[r : r + _ROWS_PER_BLOCK, m_lo:m_hi])
    return out


def _chroma(power: np.ndarray, plan: _Plan, out: np.ndarray | None = None) -> np.ndarray:
    """STFT chroma ``(n_frames, n_chroma)``, each frame divided by its maximum (if not ~0)."""
    return _normalise_chroma(_small_matmul(power, plan.chroma_t), out=out)


def _normalise_chroma(raw: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Each frame's chroma (a row of ``raw >= 0``) divided by its maximum, if that is not ~0."""
    length = np.maximum.reduce(raw, axis=1, keepdims=True)
    length[length < np.finfo(np.float64).tiny] = 1.0
    return np.divide(raw, length, out=out)


def _to_db(
    s: np.ndarray, top_db: float | None, half: bool, out: np.ndarray, peak: float | None = None
) -> np.ndarray:
    """``power_to_db`` of ``s`` (``half=False``), or of ``sqrt(s)`` (``half=True``: the same as
    ``5 * log10(max(amin**2, s))``, so a magnitude's dB comes from its power without a root).

    The ``top_db`` floor (that far below the array's maximum) is applied to the power before
    the logarithm, together with ``amin``: three passes instead of five. ``peak`` is
    ``s.max()`` when the caller knows it.
    """
    amin = _AMIN * _AMIN if half else _AMIN
    floor = amin
    if top_db is not None and s.size:
        # max(s, amin) in dB, less top_db, back in power units
        top = float(np.maximum.reduce(s, axis=None)) if peak is None else peak
        floor = max(amin, top * 10.0 ** (-top_db / (5 if half else 10)))
    np.maximum(s, floor, out=out)
    np.log(out, out=out)
    out *= _DB / 2 if half else _DB
    return out


def _contrast(
    spec: np.ndarray, plan: _Plan, power: bool, out: np.ndarray | None = None
) -> np.ndarray:
    """Spectral contrast ``(n_frames, n_bands + 1)`` from a frames-first magnitude
    (``power=False``) or power spectrogram (``power=True``: square roots are taken of the few
    values a wider band averages, as the root commutes with sorting; the rest go to dB straight
    from power)."""
    # Bands with one value per side (all but one with the defaults): min and max of each band
    # in one reduceat call (with (lo, hi) pairs the odd columns are the gaps: dropped).
    step = plan.band_step
    valley = np.minimum.reduceat(spec, plan.band_starts, axis=1)[:, ::step]
    peak = np.maximum.reduceat(spec, plan.band_starts, axis=1)[:, ::step]
    for k, lo, hi, q in plan.wide_bands:
        ranked = np.sort(spec[:, lo:hi], axis=1)
        low, high = ranked[:, :q], ranked[:, -q:]
        if power:
            low, high = np.sqrt(low), np.sqrt(high)
        valley[:, k] = np.add.reduce(low, axis=1) / q
        peak[:, k] = np.add.reduce(high, axis=1) / q
        if power:  # back to power units, so that every column takes the same route to dB
            valley[:, k] *= valley[:, k]
            peak[:, k] *= peak[:, k]
    return _contrast_db(peak, valley, power, out=out)


def _contrast_db(
    peak: np.ndarray,
    valley: np.ndarray,
    power: bool,
    out: np.ndarray | None = None,
    maxima: tuple[float, float] | None = None,
) -> np.ndarray:
    """Contrast in dB from the bands' peaks and valleys (magnitudes, or powers with ``power``);
    ``peak`` and ``valley`` are overwritten. ``maxima``: their maxima, when the caller knows
    them."""
    top_peak, top_valley = (None, None) if maxima is None else maxima
    peak_db = _to_db(peak, _CONTRAST_TOP_DB, power, out=peak, peak=top_peak)
    valley_db = _to_db(valley, _CONTRAST_TOP_DB, power, out=valley, peak=top_valley)
    return np.subtract(peak_db, valley_db, out=out)


def _columns(config: FeatureConfig) -> dict[str, slice]:
    """Where each feature sits in a frame's row of :func:`_frames_matrix` (the layout of one
    statistic's block in :func:`extract`'s vector)."""
    out, start = {}, 0
    for name, size in config.sizes.items():
        out[name] = slice(start, start + size)
        start += size
    return out


#: Window power spectra whose maximum lies inside this range are processed in float32 after the
#: FFT (as librosa does for float32 audio): twice the values per cache line and SIMD lane,
#: about 1e-7 relative. Outside it (digital silence, absurd levels) float64 keeps every value.
_FLOAT32_POWER = (1e-25, 1e30)


def _frames_matrix(
    x: np.ndarray, config: FeatureConfig, scratch: bool = False, mfcc: bool = True
) -> np.ndarray:
    """The four features of every frame in one frames-first array ``(n_frames, n_mfcc +
    n_chroma + n_mels + n_bands + 1)``, columns in :data:`FEATURE_NAMES` order.

    With ``scratch=True`` (for :func:`extract`) the arrays live in this thread's workspace and
    the work after the FFT is in float32 when the power spectrum allows (``_FLOAT32_POWER``);
    otherwise everything is float64. ``mfcc=False`` leaves the MFCC columns unset: the DCT is
    linear, so a caller that wants only the mean takes the DCT of the mean log-mel instead.
    """
    plan, dtype = _plan(config), np.float64

    def buf(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return _WS.get(name, shape, dtype) if scratch else np.empty(shape, dtype)

    if _KERNEL_ERROR is not None:
        raise FeatureError(_KERNEL_ERROR)
    if _KERNEL is not None and plan.kernel is not None:
        parts = _kernel_parts(x, config, plan, buf, mfcc)
        out = buf("frames", (parts["mel"].shape[0], sum(config.sizes.values())), dtype)
        for name, where in _columns(config).items():
            if name in parts:
                out[:, where] = parts[name]
        return out
    spectrum = _stft_frames_first(x, config, scratch=scratch, plan=plan)
    n_frames, n_bins = spectrum.shape

    power = _abs2(spectrum, out=buf("power", (n_frames, n_bins), np.float64))
    if scratch and _FLOAT32_POWER[0] < power.max() < _FLOAT32_POWER[1]:
        plan, dtype = plan.float32, np.float32
        power32 = buf("power32", power.shape, dtype)
        np.copyto(power32, power, casting="same_kind")
        power = power32
    columns = _columns(config)
    out = buf("frames", (n_frames, sum(config.sizes.values())), dtype)
    cols = {name: out[:, where] for name, where in columns.items()}
    mel = _mel(power, plan, out=buf("mel", (n_frames, config.n_mels), dtype))
    if not config.mel_db:
        cols["mel"][...] = mel
    mel_db = _to_db(mel, config.top_db, False, out=mel)  # contiguous: faster than into cols
    if config.mel_db:
        cols["mel"][...] = mel_db
    if mfcc:
        _small_matmul(mel_db, plan.dct_t, out=cols["mfcc"])
    _chroma(power, plan, out=cols["chroma"])
    _contrast(power, plan, power=True, out=cols["contrast"])
    return out


def _kernel_parts(
    x: np.ndarray, config: FeatureConfig, plan: _Plan, buf, mfcc: bool
) -> dict[str, np.ndarray]:
    """The features frame by frame, name -> C-contiguous float64 ``(n_frames, size)``, with the
    per-frame work (window, FFT, power, the mel bank, chroma, contrast peaks and valleys) in the
    C kernel; the logarithms and the DCT in NumPy. ``mfcc=False`` leaves the MFCCs out."""
    n_frames, f64 = _n_frames(x.size, config), np.float64
    t = plan.kernel
    mel = buf("k_mel", (n_frames, config.n_mels), f64)
    chroma = buf("k_chroma", (n_frames, config.n_chroma), f64)
    bands = buf("k_bands", (2, n_frames, t.band_lo.size), f64)  # peaks, valleys (power)
    pad = config.n_fft // 2 if config.center else 0
    mel_max, peak_max, valley_max = _KERNEL.frames(
        np.ascontiguousarray(x, dtype=f64), n_frames, config.hop_length, pad, plan.window,
        *t, mel, chroma, bands[0], bands[1],
    )  # fmt: skip
    parts = {"chroma": chroma}
    mel_db = mel if config.mel_db else buf("k_mel_db", mel.shape, f64)
    if not config.mel_db:
        parts["mel"] = mel
    _to_db(mel, config.top_db, False, out=mel_db, peak=mel_max)
    if config.mel_db:
        parts["mel"] = mel_db
    if mfcc:
        parts["mfcc"] = _small_matmul(
            mel_db, plan.dct_t, out=buf("k_mfcc", (n_frames, config.n_mfcc), f64)
        )
    parts["contrast"] = _contrast_db(
        bands[0],
        bands[1],
        power=True,
        out=buf("k_contrast", bands.shape[1:], f64),
        maxima=(peak_max, valley_max),
    )
    return parts


def frame_features(
    y: Any, config: FeatureConfig | None = None, sr: int | float | None = None
) -> dict[str, np.ndarray]:
    """The four features frame by frame, librosa's layout: name -> float64 ``(size, n_frames)``.

    ``y`` goes through :func:`prepare_audio` first (so it is padded to one window).
    """
    config = _default_config() if config is None else config
    x = prepare_audio(y, config, sr)
    frames = _frames_matrix(x, config)
    return {name: frames[:, where].T for name, where in _columns(config).items()}


def extract(
    y: Any, config: FeatureConfig | None = None, sr: int | float | None = None
) -> np.ndarray:
    """One STFT, four features, each summarised over frames: float32 ``(config.dim,)``.

    Args:
        y: samples, 1-D or ``(frames, channels)``; float (nominally [-1, 1]) or integer PCM.
        config: the feature configuration (default :class:`FeatureConfig()`).
        sr: ``y``'s sample rate; ``None`` means it is already ``config.sample_rate``.

    The layout is ``config.slices()``: for each statistic, MFCC, chroma, mel, contrast.
    """
    config = _default_config() if config is None else config
    x = prepare_audio(y, config, sr)
    mean_only = config.statistics == ("mean",) and config.mel_db
    plan = _plan(config)
    if mean_only and _KERNEL is not None and plan.kernel is not None:
        # the means straight from the kernel's per-feature arrays (MFCC: DCT of the mean log-mel)
        parts = _kernel_parts(x, config, plan, _WS.get, mfcc=False)
        columns, mean = _columns(config), np.empty(config.dim)
        for name, where in columns.items():
            if name != "mfcc":
                np.add.reduce(parts[name], axis=0, out=mean[where])
        mean /= parts["mel"].shape[0]
        mean[: config.n_mfcc] = mean[columns["mel"]] @ plan.dct_t
        return mean.astype(np.float32)
    frames = _frames_matrix(x, config, scratch=True, mfcc=not mean_only)
    n, n_mfcc = frames.shape[0], config.n_mfcc
    if mean_only:  # the MFCC columns are unset: their mean is the DCT of the mean log-mel
        mean = np.empty(frames.shape[1])
        np.add.reduce(frames[:, n_mfcc:], axis=0, dtype=np.float64, out=mean[n_mfcc:])
        mean /= n
        mean[:n_mfcc] = mean[_columns(config)["mel"]] @ _plan(config).dct_t
        return mean.astype(np.float32)
    mean = np.add.reduce(frames, axis=0, dtype=np.float64) / n
    parts = []
    for stat in config.statistics:
        if stat == "mean":
            parts.append(mean)
        elif stat == "std":
            dev = frames - mean.astype(frames.dtype)
            np.multiply(dev, dev, out=dev)
            parts.append(np.sqrt(np.add.reduce(dev, axis=0, dtype=np.float64) / n))
        elif stat == "min":
            parts.append(np.minimum.reduce(frames, axis=0))
        else:
            parts.append(np.maximum.reduce(frames, axis=0))
    return np.concatenate(parts, dtype=np.float32, casting="same_kind")


def _spectrum(y: Any, S: Any, config: FeatureConfig, what: str) -> np.ndarray | None:
    if (y is None) == (S is None):
        raise FeatureError(f"{what}: give exactly one of y and S")
    if S is not None:
        S = np.asarray(S, dtype=np.float64)
        if S.ndim != 2 or S.shape[0] != 1 + config.n_fft // 2:
            raise FeatureError(
                f"{what}: S must be (1 + n_fft // 2, n_frames) = ({1 + config.n_fft // 2}, T), "
                f"got {S.shape}"
            )
        return S
    return None


def stft(y: Any, config: FeatureConfig | None = None, sr: int | float | None = None) -> np.ndarray:
    """Complex STFT ``(1 + n_fft // 2, n_frames)`` as ``librosa.stft`` (after prepare_audio)."""
    config = _default_config() if config is None else config
    return _stft_frames_first(prepare_audio(y, config, sr), config).T


def _power(y: Any, S: Any, config: FeatureConfig, what: str) -> np.ndarray:
    """Frames-first power spectrogram from ``y`` or from a librosa-layout power ``S``."""
    S = _spectrum(y, S, config, what)
    if S is None:
        return _abs2(_stft_frames_first(prepare_audio(y, config), config))
    return S.T


def melspectrogram(
    y: Any = None, *, S: Any = None, config: FeatureConfig | None = None
) -> np.ndarray:
    """Power mel spectrogram ``(n_mels, T)``; ``S`` is a power spectrogram ``|stft|**2``."""
    config = _default_config() if config is None else config
    return _mel(_power(y, S, config, "melspectrogram"), _plan(config)).T


def mfcc(y: Any = None, *, S: Any = None, config: FeatureConfig | None = None) -> np.ndarray:
    """MFCCs ``(n_mfcc, T)``; ``S`` is a power spectrogram ``|stft|**2`` (not log-mel)."""
    config = _default_config() if config is None else config
    plan = _plan(config)
    mel = _mel(_power(y, S, config, "mfcc"), plan)
    mel_db = _to_db(mel, config.top_db, False, out=mel)
    return _small_matmul(mel_db, plan.dct_t).T


def chroma(y: Any = None, *, S: Any = None, config: FeatureConfig | None = None) -> np.ndarray:
    """STFT chromagram ``(n_chroma, T)``, each frame scaled to max 1; ``S`` = ``|stft|**2``."""
    config = _default_config() if config is None else config
    return _chroma(_power(y, S, config, "chroma"), _plan(config)).T


def spectral_contrast(
    y: Any = None, *, S: Any = None, config: FeatureConfig | None = None
) -> np.ndarray:
    """Spectral contrast in dB ``(contrast_bands + 1, T)``; ``S`` is a magnitude ``|stft|``."""
    config = _default_config() if config is None else config
    plan = _plan(config)
    S = _spectrum(y, S, config, "spectral_contrast")
    if S is None:
        power = _abs2(_stft_frames_first(prepare_audio(y, config), config))
        return _contrast(power, plan, power=True).T
    return _contrast(np.ascontiguousarray(S.T), plan, power=False).T


# --------------------------------------------------------------------------- streaming


class RingBuffer:
    """The last ``seconds`` of mono audio, written by a capture thread, read by the loop.

    ``write`` accepts what a microphone callback gets (1-D or ``(frames, channels)``, float or
    integer PCM; channels are averaged, integers scaled as :func:`prepare_audio` does) and keeps
    float32. Thread-safe.
    """

    def __init__(self, seconds: float, sample_rate: int) -> None:
        if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
            raise FeatureError(f"ring buffer: sample_rate={sample_rate!r} must be a positive int")
        capacity = int(round(float(seconds) * sample_rate))
        if not (math.isfinite(float(seconds)) and capacity > 0):
            raise FeatureError(f"ring buffer: seconds={seconds!r} must hold at least one sample")
        self.sample_rate = int(sample_rate)
        self.capacity = capacity
        self._buf = np.zeros(capacity, dtype=np.float32)
        self._pos = 0  # next write index
        self._total = 0
        self._lock = threading.Lock()

    @property
    def total_written(self) -> int:
        """Samples written since creation (or :meth:`clear`), including overwritten ones."""
        return self._total

    def __len__(self) -> int:
        """Samples available to :meth:`latest` (at most ``capacity``)."""
        return min(self._total, self.capacity)

    def write(self, samples: Any) -> None:
        """Append samples; when more than ``capacity`` arrive, only the newest are kept."""
        x = _to_float_mono(samples).astype(np.float32)
        n = x.size
        with self._lock:
            self._total += n
            if n >= self.capacity:
                self._buf[:] = x[-self.capacity :]
                self._pos = 0
                return
            end = self._pos + n
            if end <= self.capacity:
                self._buf[self._pos : end] = x
            else:
                first = self.capacity - self._pos
                self._buf[self._pos :] = x[:first]
                self._buf[: n - first] = x[first:]
            self._pos = end % self.capacity

    def latest(self, n_samples: int | None = None) -> np.ndarray:
        """The newest ``n_samples`` (default: all available), oldest first, as a float32 copy.

        Fewer come back while fewer have been written; ``n_samples > capacity`` is an error.
        """
        if n_samples is None:
            n_samples = self.capacity
        if not isinstance(n_samples, (int, np.integer)) or not 0 <= n_samples <= self.capacity:
            raise FeatureError(
                f"ring buffer: latest({n_samples!r}) must ask for 0..{self.capacity} samples"
            )
        with self._lock:
            n = min(int(n_samples), self._total, self.capacity)
            start = self._pos - n
            if start >= 0:
                return self._buf[start : self._pos].copy()
            return np.concatenate([self._buf[start:], self._buf[: self._pos]])

    def clear(self) -> None:
        """Forget everything written."""
        with self._lock:
            self._buf[:] = 0
            self._pos = 0
            self._total = 0
