"""Filter banks and windows for one :class:`FeatureConfig`, built once and cached.

Each function reproduces its librosa counterpart for the config's parameters and returns a
read-only float64 array (the caches share it between calls). The mel and chroma banks hold
librosa's float32 values, as librosa builds them in float32.
"""

from __future__ import annotations

import functools

import numpy as np

from edgeav.features.config import FeatureConfig, FeatureError

#: The windows as cosine sums: ``sum_k a_k cos(k x)``, ``x`` from -pi to pi (scipy's
#: ``general_cosine``).
_COSINE_SUMS = {
    "hann": (0.5, 0.5),
    "hamming": (0.54, 0.46),
    "blackman": (0.42, 0.50, 0.08),
    "boxcar": (1.0,),
}


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    a.setflags(write=False)
    return a


def fft_frequencies(config: FeatureConfig) -> np.ndarray:
    """Centre frequency (Hz) of each STFT bin: ``(1 + n_fft // 2,)``."""
    return np.fft.rfftfreq(config.n_fft, d=1.0 / config.sample_rate)


@functools.lru_cache(maxsize=32)
def window(config: FeatureConfig) -> np.ndarray:
    """The periodic window, centred and zero-padded to ``n_fft``: ``(n_fft,)``.

    As ``librosa.filters.get_window(window, win_length, fftbins=True)`` padded by
    ``librosa.util.pad_center``.
    """
    n = config.n_fft if config.win_length is None else config.win_length
    x = np.linspace(-np.pi, np.pi, n + 1)[:n]
    w = sum(a * np.cos(k * x) for k, a in enumerate(_COSINE_SUMS[config.window]))
    out = np.zeros(config.n_fft)
    lpad = (config.n_fft - n) // 2
    out[lpad : lpad + n] = w
    return _frozen(out)


def hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa ``htk=False``): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    logstep = np.log(6.4) / 27.0
    log_part = min_log_hz / f_sp + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep
    return np.where(f >= min_log_hz, log_part, f / f_sp)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=32)
def mel(config: FeatureConfig) -> np.ndarray:
    """Slaney mel filter bank ``(n_mels, 1 + n_fft // 2)``.

    As ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm="slaney")``.
    Raises :class:`FeatureError` when a filter is empty (too many mels for the FFT).
    """
    fmax = config.sample_rate / 2 if config.fmax is None else config.fmax
    lo, hi = hz_to_mel(np.array([config.fmin, fmax]))
    mel_f = mel_to_hz(np.linspace(lo, hi, config.n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_frequencies(config)[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper)).astype(np.float32)
    enorm = 2.0 / (mel_f[2:] - mel_f[:-2])
    weights = (weights * enorm[:, None]).astype(np.float32)
    empty = np.flatnonzero((mel_f[:-2] != 0) & ~(weights.max(axis=1) > 0))
    if empty.size:
        raise FeatureError(
            f"feature config: mel filters {empty.tolist()[:5]} are empty with "
            f"n_mels={config.n_mels}, n_fft={config.n_fft} at {config.sample_rate} Hz; "
            "increase n_fft or reduce n_mels"
        )
    return _frozen(weights)


@functools.lru_cache(maxsize=32)
def chroma(config: FeatureConfig) -> np.ndarray:
    """STFT chroma filter bank ``(n_chroma, 1 + n_fft // 2)``.

    As ``librosa.filters.chroma(sr, n_fft, n_chroma, tuning)`` with its defaults (``ctroct=5``,
    ``octwidth=2``, ``norm=2``, ``base_c=True``).
    """
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
    return _frozen(wts[:, : 1 + n_fft // 2].astype(np.float32))


@functools.lru_cache(maxsize=32)
def dct(config: FeatureConfig) -> np.ndarray:
    """The first ``n_mfcc`` rows of the orthonormal DCT-II matrix: ``(n_mfcc, n_mels)``.

    ``dct(config) @ x`` is ``scipy.fft.dct(x, axis=0, type=2, norm="ortho")[:n_mfcc]``.
    """
    n_in = config.n_mels
    k = np.arange(config.n_mfcc)[:, None]
    n = np.arange(n_in)[None, :]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    m[0] /= np.sqrt(2.0)
    return _frozen(m)


@functools.lru_cache(maxsize=32)
def contrast_bands(config: FeatureConfig) -> tuple[tuple[int, int, int], ...]:
    """Spectral contrast's bands as ``(lo, hi, q)``: the STFT bins ``[lo, hi)`` a band ranks
    and how many of its lowest and highest values make its valley and peak.

    As ``librosa.feature.spectral_contrast``: band 0 is ``[0, fmin]``, band ``k`` the octave
    ``[fmin 2**(k-1), fmin 2**k]`` widened by one bin below, the last band runs to Nyquist; all
    but the last drop their top bin; ``q`` is ``quantile`` times the band's size before that
    drop, rounded, at least 1. Raises :class:`FeatureError` when a band holds no bin.
    """
    freq = fft_frequencies(config)
    n_bands = config.contrast_bands
    octa = np.zeros(n_bands + 2)
    octa[1:] = config.contrast_fmin * (2.0 ** np.arange(0, n_bands + 1))
    bands = []
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
        q = max(int(np.rint(config.contrast_quantile * np.sum(current))), 1)
        bands.append((int(bins[0]), int(bins[-1]) + 1, q))
    return tuple(bands)
