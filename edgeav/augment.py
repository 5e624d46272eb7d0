"""Training-time augmentation: images shifted and degraded; speech altered the ways people and
rooms alter it.

Images (arrays of model inputs, ``(N, H, W, C)``): :func:`random_shift` moves each image a few
pixels; :func:`warp_strokes` turns, scales and slants digits laid out like MNIST and thins or
thickens their strokes (the ways one writer differs from another); :func:`degrade_images` gives a
fraction of them a cutout block and Gaussian noise; :func:`image_augmenter` combines them for one
epoch.

Audio: :func:`augment_speech` turns one spoken word into a randomly altered copy (speed, tempo,
pitch, vocal-tract length, placement in the window, reverberation, microphone colour, telephone
line, background noise, gain), deterministic for a generator's state; each transform is a
function of its own. :func:`augmented_audio_features` gives the feature vectors of such copies of
the training clips. NumPy, and scipy.signal for reverberation and the telephone line (scipy comes
with the train extra, through librosa; the device never augments).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeav.preprocess import ImageSpec

if TYPE_CHECKING:
    from edgeav.features import FeatureConfig

#: One epoch's augmentation of a batch of images: ``augment(x, rng) -> x'``.
Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def augmented_epochs(augment: Augment, x: np.ndarray, rng: np.random.Generator, epochs: int):
    """``augment(x, rng)`` for each of ``epochs`` epochs, the next one prepared in a thread while
    the caller trains on the current one (OpenCV and NumPy release the GIL, so the augmentation
    overlaps TensorFlow's work). The draws from ``rng`` come in the same order as in a plain
    loop, so the epochs are the same."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    if epochs < 1:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="augment") as pool:
        pending = pool.submit(augment, x, rng)
        for epoch in range(epochs):
            current = pending.result()
            if epoch + 1 < epochs:
                pending = pool.submit(augment, x, rng)
            yield current


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


#: :func:`warp_strokes`' ranges: rotation (degrees), scale, shear (slant), shift (fraction of
#: the side), and the chance of a stroke one pixel thicker or thinner.
WARP_ROTATION = 15.0
WARP_SCALE = (0.8, 1.1)
WARP_SHEAR = 0.25
WARP_SHIFT = 0.06
WARP_THICKNESS = 2 / 3
#: Elastic distortion (Simard et al. 2003): a random displacement field smoothed by a Gaussian
#: of WARP_ELASTIC_SIGMA pixels, scaled to WARP_ELASTIC_ALPHA pixels (both at a 28-pixel side).
WARP_ELASTIC_ALPHA = 3.0
WARP_ELASTIC_SIGMA = 4.0


def warp_strokes(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each digit image (light strokes on black, ``(N, S, S, 1)``, laid out like MNIST) turned,
    scaled and slanted about its centre, shifted, bent by a smooth random displacement, and its
    strokes made a pixel thicker or thinner: other hands' versions of the same digit."""
    import cv2  # noqa: PLC0415

    n, size = len(x), x.shape[1]
    angle = np.deg2rad(rng.uniform(-WARP_ROTATION, WARP_ROTATION, n))
    scale = rng.uniform(*WARP_SCALE, n)
    shear = rng.uniform(-WARP_SHEAR, WARP_SHEAR, n)
    shift = rng.uniform(-WARP_SHIFT, WARP_SHIFT, (n, 2)) * size
    pen = rng.choice([-1, 0, 1], n, p=[WARP_THICKNESS / 2, 1 - WARP_THICKNESS, WARP_THICKNESS / 2])
    kernel = np.ones((2, 2), np.uint8)
    centre = np.full(2, (size - 1) / 2)
    grid_x, grid_y = np.meshgrid(
        np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32)
    )
    sigma = WARP_ELASTIC_SIGMA * size / 28
    fields = rng.uniform(-1, 1, (n, 2, size, size)).astype(np.float32)
    out = np.empty_like(x)
    for i in range(n):
        c, s = np.cos(angle[i]) * scale[i], np.sin(angle[i]) * scale[i]
        m = np.array([[c, -s + shear[i] * c], [s, c + shear[i] * s]])
        t = centre - m @ centre + shift[i]
        img = cv2.warpAffine(
            np.ascontiguousarray(x[i, :, :, 0]),
            np.hstack([m, t[:, None]]).astype(np.float32),
            (size, size),
            flags=cv2.INTER_LINEAR,
        )
        dx, dy = (cv2.GaussianBlur(f, (0, 0), sigma) for f in fields[i])
        scale_field = WARP_ELASTIC_ALPHA * size / 28 / max(float(np.abs(dx).max()), 1e-6)
        img = cv2.remap(img, grid_x + dx * scale_field, grid_y + dy * scale_field, cv2.INTER_LINEAR)
        if pen[i] > 0:
            img = cv2.dilate(img, kernel)
        elif pen[i] < 0:
            thin = cv2.erode(img, kernel)
            img = thin if (thin > 0.3 * img.max()).sum() > size else img  # keep the digit
        out[i, :, :, 0] = img
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


# --- audio --------------------------------------------------------------------------------------

#: Changes whenever :func:`augment_speech` gives other samples for the same input and generator
#: (part of the key of cached augmented features).
AUGMENT_VERSION = 2


@dataclass(frozen=True)
class SpeechAugment:
    """Probabilities (``p_*``) and uniform ranges of :func:`augment_speech`'s transforms."""

    p_speed: float = 0.5
    speed: tuple[float, float] = (0.82, 1.2)  # resampling: tempo and pitch together
    p_tempo: float = 0.3
    tempo: tuple[float, float] = (0.82, 1.2)  # phase vocoder: tempo only
    p_pitch: float = 0.3
    pitch_semitones: tuple[float, float] = (-3.0, 3.0)  # tempo kept
    p_vtlp: float = 0.4
    vtlp: tuple[float, float] = (0.85, 1.15)  # spectral envelope warp: formants, pitch kept
    p_reverb: float = 0.35
    rt60: tuple[float, float] = (0.15, 0.9)  # seconds
    drr_db: tuple[float, float] = (-3.0, 12.0)  # direct-to-reverberant ratio
    p_eq: float = 0.5
    eq_db: float = 6.0  # largest boost or cut of the random equaliser
    p_telephone: float = 0.15
    p_noise: float = 0.85
    snr_db: tuple[float, float] = (-5.0, 30.0)
    noise_kinds: tuple[str, ...] = ("white", "pink", "brown")
    gain_db: tuple[float, float] = (-24.0, 6.0)


DEFAULT_SPEECH_AUGMENT = SpeechAugment()

_N_FFT, _HOP = 512, 128


def _stft(y: np.ndarray, n_fft: int = _N_FFT, hop: int = _HOP) -> np.ndarray:
    """Complex STFT ``(bins, frames)``, Hann window, ``n_fft // 2`` zeros on each side."""
    pad = np.pad(y, (n_fft // 2, n_fft // 2 + hop))
    frames = np.lib.stride_tricks.sliding_window_view(pad, n_fft)[::hop]
    return np.fft.rfft(frames * np.hanning(n_fft + 1)[:-1], axis=1).T


def _istft(spec: np.ndarray, length: int, n_fft: int = _N_FFT, hop: int = _HOP) -> np.ndarray:
    """Inverse of :func:`_stft` (weighted overlap-add), ``length`` samples."""
    window = np.hanning(n_fft + 1)[:-1]
    frames = np.fft.irfft(spec.T, n=n_fft, axis=1) * window
    count, parts = frames.shape[0], n_fft // hop  # hop divides n_fft: add hop-long blocks
    out = np.zeros((count + parts - 1, hop))
    norm = np.zeros((count + parts - 1, hop))
    for k in range(parts):
        out[k : k + count] += frames[:, k * hop : (k + 1) * hop]
        norm[k : k + count] += window[k * hop : (k + 1) * hop] ** 2
    out = out.reshape(-1) / np.maximum(norm.reshape(-1), 1e-8)
    out = out[n_fft // 2 : n_fft // 2 + length]
    return np.pad(out, (0, length - out.size))


def change_speed(y: np.ndarray, factor: float) -> np.ndarray:
    """``y`` played ``factor`` times faster (tempo and pitch together, as in Kaldi's speed
    perturbation): ``round(len(y) / factor)`` samples, linear interpolation."""
    n = max(1, int(round(y.size / factor)))
    if factor == 1.0 or y.size < 2:
        return y.copy()
    return np.interp(np.arange(n) * ((y.size - 1) / max(n - 1, 1)), np.arange(y.size), y)


def time_stretch(y: np.ndarray, rate: float) -> np.ndarray:
    """``y`` ``rate`` times faster with its pitch kept (phase vocoder): ``round(len / rate)``."""
    n = max(1, int(round(y.size / rate)))
    if rate == 1.0 or y.size < _N_FFT // 2:
        return change_speed(y, rate) if y.size < _N_FFT // 2 else y.copy()
    spec = _stft(y)
    bins, frames = spec.shape
    steps = np.arange(0.0, frames - 1, rate)
    idx = steps.astype(int)
    frac = (steps - idx)[None, :]
    mags, angles = np.abs(spec), np.angle(spec)
    mag = (1.0 - frac) * mags[:, idx] + frac * mags[:, idx + 1]
    advance = np.linspace(0.0, np.pi * _HOP, bins)[:, None]  # expected phase advance per hop
    dphase = angles[:, idx + 1] - angles[:, idx] - advance
    dphase -= 2.0 * np.pi * np.round(dphase / (2.0 * np.pi))
    phase = np.empty_like(mag)
    phase[:, 0] = angles[:, 0]
    np.cumsum((advance + dphase)[:, :-1], axis=1, out=phase[:, 1:])
    phase[:, 1:] += angles[:, :1]
    out = np.empty(mag.shape, dtype=np.complex128)
    out.real = mag * np.cos(phase)
    out.imag = mag * np.sin(phase)
    return _istft(out, n)


def pitch_shift(y: np.ndarray, semitones: float) -> np.ndarray:
    """``y`` with its pitch (and formants) moved by ``semitones``, same length and tempo."""
    if semitones == 0.0:
        return y.copy()
    ratio = 2.0 ** (semitones / 12.0)
    stretched = time_stretch(y, 1.0 / ratio)
    return change_speed(stretched, stretched.size / y.size)


def _envelope(log_mag: np.ndarray, sr: int) -> np.ndarray:
    """Spectral envelope (log magnitude, per frame) by cepstral smoothing below 1.6 ms."""
    cep = np.fft.irfft(log_mag, axis=0)
    keep = max(8, int(sr * 0.0016))
    cep[keep:-keep] = 0.0
    return np.fft.rfft(cep, axis=0).real


def vtlp(y: np.ndarray, sr: int, alpha: float) -> np.ndarray:
    """Vocal-tract-length perturbation: the spectral envelope (formants) stretched along the
    frequency axis by ``alpha`` (> 1: a shorter vocal tract, higher formants), the harmonics
    (pitch) and length kept."""
    if alpha == 1.0 or y.size < _N_FFT // 2:
        return y.copy()
    spec = _stft(y)
    log_mag = np.log(np.abs(spec) + 1e-9)
    env = _envelope(log_mag, sr)
    bins = np.arange(spec.shape[0], dtype=np.float64)
    warped = np.empty_like(env)
    for t in range(env.shape[1]):  # the envelope at f / alpha, read at f
        warped[:, t] = np.interp(bins / alpha, bins, env[:, t])
    gain = np.exp(np.clip(warped - env, -np.log(10.0), np.log(10.0)))  # at most +-20 dB
    return _istft(spec * gain, y.size)


def reverberate(
    y: np.ndarray,
    sr: int,
    rng: np.random.Generator,
    rt60: float,
    drr_db: float = 3.0,
    *,
    tail: bool = False,
) -> np.ndarray:
    """``y`` in a synthetic room: an impulse response of a direct path plus exponentially
    decaying noise (60 dB down after ``rt60`` s, starting 2-10 ms later), the reverberant part
    ``drr_db`` below the direct one. Same RMS as ``y``; same length, or with the tail."""
    from scipy.signal import fftconvolve  # noqa: PLC0415

    n_ir = max(2, int(min(rt60, 1.0) * sr))
    t = np.arange(n_ir) / sr
    decay = rng.standard_normal(n_ir) * np.exp(-3.0 * np.log(10.0) * t / rt60)
    decay[: int(rng.uniform(0.002, 0.010) * sr)] = 0.0
    decay *= np.sqrt(10 ** (-drr_db / 10.0) / max(float(np.sum(decay**2)), 1e-12))
    decay[0] = 1.0
    wet = fftconvolve(y, decay)
    if not tail:
        wet = wet[: y.size]
    rms_in, rms_out = float(np.sqrt(np.mean(y**2))), float(np.sqrt(np.mean(wet**2)))
    return wet * (rms_in / rms_out) if rms_out > 0 else wet


@functools.lru_cache(maxsize=8)
def _telephone_band(sr: int) -> np.ndarray:
    from scipy.signal import butter  # noqa: PLC0415

    return butter(6, [300.0, min(3400.0, 0.45 * sr)], btype="bandpass", fs=sr, output="sos")


def telephone(y: np.ndarray, sr: int) -> np.ndarray:
    """A telephone line: band-pass 300-3,400 Hz, down to 8 kHz, G.711 mu-law (8 bits), back up
    to ``sr``. Same length."""
    from fractions import Fraction  # noqa: PLC0415

    from scipy.signal import resample_poly, sosfilt  # noqa: PLC0415

    sos = _telephone_band(sr)
    x = sosfilt(sos, y)
    ratio = Fraction(8000, sr).limit_denominator(1000)
    if sr > 8000:
        x = resample_poly(x, ratio.numerator, ratio.denominator)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0:  # mu-law at the line's level: the peak at full scale
        mu = 255.0
        z = np.sign(x / peak) * np.log1p(mu * np.abs(x / peak)) / np.log1p(mu)
        z = np.round(z * 127.0) / 127.0
        x = np.sign(z) * np.expm1(np.abs(z) * np.log1p(mu)) / mu * peak
    if sr > 8000:
        x = resample_poly(x, ratio.denominator, ratio.numerator)
    x = sosfilt(sos, x)
    return np.pad(x[: y.size], (0, max(0, y.size - x.size)))


def random_eq(y: np.ndarray, sr: int, rng: np.random.Generator, max_db: float = 6.0) -> np.ndarray:
    """A microphone's colour: a smooth random response (gains in +-``max_db`` at eight points
    spaced evenly in log frequency from 60 Hz to ``sr / 2``, interpolated in log frequency),
    half the time with a low cut (a second-order roll-off below 80-250 Hz). Same length."""
    n = y.size
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    points = np.geomspace(60.0, sr / 2.0, 8)
    gains_db = rng.uniform(-max_db, max_db, size=points.size)
    logf = np.log(np.maximum(freqs, 1.0))
    response_db = np.interp(logf, np.log(points), gains_db)
    if rng.random() < 0.5:
        cut = rng.uniform(80.0, 250.0)
        response_db += 10.0 * np.log10((freqs / cut) ** 4 / (1.0 + (freqs / cut) ** 4) + 1e-12)
    return np.fft.irfft(np.fft.rfft(y) * 10.0 ** (response_db / 20.0), n)


def speech_power(y: np.ndarray, sr: int) -> float:
    """Mean power of the 20 ms frames within 30 dB of the loudest one (where the speech is)."""
    size = max(1, int(0.02 * sr))
    n = y.size // size
    if n == 0:
        return float(np.mean(y**2)) if y.size else 0.0
    power = np.mean(y[: n * size].reshape(n, size) ** 2, axis=1)
    top = float(power.max())
    if top <= 0:
        return 0.0
    return float(np.mean(power[power >= top * 10 ** (-30 / 10)]))


def add_noise(
    y: np.ndarray, sr: int, rng: np.random.Generator, snr_db: float, kind: str = "white"
) -> np.ndarray:
    """``y`` plus ``kind`` noise (white, pink, brown) at ``snr_db`` against
    :func:`speech_power`."""
    from edgeav.data.avdigits import colored_noise  # noqa: PLC0415

    power = speech_power(y, sr)
    return y + colored_noise(rng, y.size, kind) * np.sqrt(power / 10 ** (snr_db / 10.0))


def speech_region(y: np.ndarray, sr: int, margin: float = 0.02) -> tuple[int, int]:
    """``(start, end)`` of the speech in ``y``: 10 ms frames of the pre-emphasised signal (so
    rumble and brown noise count little) louder than both 35 dB below the loudest frame and 8 dB
    above the quietest tenth, plus ``margin`` seconds each side."""
    size = max(1, int(0.01 * sr))
    n = y.size // size
    if n < 3:
        return 0, y.size
    emphasised = np.diff(y[: n * size], prepend=0.0)
    power = np.mean(emphasised.reshape(n, size) ** 2, axis=1) + 1e-20
    db = 10.0 * np.log10(power)
    floor = float(np.percentile(db, 10))
    active = np.flatnonzero(db >= max(db.max() - 35.0, floor + 8.0))
    if active.size == 0:
        return 0, y.size
    pad = int(margin * sr)
    return max(0, active[0] * size - pad), min(y.size, (active[-1] + 1) * size + pad)


def place_in_window(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``y`` at a random offset in ``n`` samples of silence; a ``y`` longer than ``n`` is cut
    to a random ``n``-sample stretch of it. Returns ``n`` samples (``y``'s dtype)."""
    if n < 1:
        raise ValueError(f"window length must be at least 1, got {n}")
    if y.size >= n:
        start = int(rng.integers(0, y.size - n + 1))
        return y[start : start + n].copy()
    out = np.zeros(n, dtype=y.dtype)
    offset = int(rng.integers(0, n - y.size + 1))
    out[offset : offset + y.size] = y
    return out


def augment_speech(
    y: np.ndarray,
    sr: int,
    rng: np.random.Generator,
    *,
    n: int | None = None,
    trim: bool = True,
    config: SpeechAugment = DEFAULT_SPEECH_AUGMENT,
) -> np.ndarray:
    """One randomly altered copy of a spoken word, as float32; the same ``rng`` state gives the
    same samples.

    In order, each with its probability in ``config``: the word is cut out of the silence
    around it (``trim``, :func:`speech_region`, 5 ms fades), sped up or slowed down
    (:func:`change_speed`), stretched in time (:func:`time_stretch`), shifted in pitch
    (:func:`pitch_shift`) and in vocal-tract length (:func:`vtlp`); placed at a random offset in
    ``n`` samples (:func:`place_in_window`; without ``n`` the clip keeps its new length);
    reverberated (:func:`reverberate`), equalised (:func:`random_eq`), sent down a telephone line
    (:func:`telephone`), mixed with white, pink or brown noise at a random SNR
    (:func:`add_noise`); and always given a random gain, scaled down if it would clip.
    """
    c = config
    x = np.asarray(y, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if trim and x.size:
        start, end = speech_region(x, sr)
        x = x[start:end].copy()
        fade = min(int(0.005 * sr), x.size // 2)
        if fade > 0:
            ramp = np.linspace(0.0, 1.0, fade)
            x[:fade] *= ramp
            x[-fade:] *= ramp[::-1]
    if x.size == 0:
        return np.zeros(n or 0, dtype=np.float32)
    if rng.random() < c.p_speed:
        x = change_speed(x, rng.uniform(*c.speed))
    if rng.random() < c.p_tempo:
        x = time_stretch(x, rng.uniform(*c.tempo))
    if rng.random() < c.p_pitch:
        x = pitch_shift(x, rng.uniform(*c.pitch_semitones))
    if rng.random() < c.p_vtlp:
        x = vtlp(x, sr, rng.uniform(*c.vtlp))
    if n is not None:
        x = place_in_window(x, n, rng)
    if rng.random() < c.p_reverb:
        x = reverberate(x, sr, rng, rng.uniform(*c.rt60), rng.uniform(*c.drr_db))
    if rng.random() < c.p_eq:
        x = random_eq(x, sr, rng, c.eq_db)
    if rng.random() < c.p_telephone:
        x = telephone(x, sr)
    if rng.random() < c.p_noise:
        kind = c.noise_kinds[int(rng.integers(len(c.noise_kinds)))]
        x = add_noise(x, sr, rng, rng.uniform(*c.snr_db), kind)
    x = x * 10.0 ** (rng.uniform(*c.gain_db) / 20.0)
    top = float(np.max(np.abs(x))) if x.size else 0.0
    if top > 0.999:
        x *= 0.999 / top
    return x.astype(np.float32)


def augmented_audio_features(
    paths: list[Path],
    labels: np.ndarray,
    feature_config: FeatureConfig,
    copies: int,
    seed: int,
    *,
    snr_db: tuple[float, float] | None = None,
    gain_db: tuple[float, float] | None = None,
    speed: tuple[float, float] | None = None,
    config: SpeechAugment | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Feature vectors of ``copies`` :func:`augment_speech` versions of each training clip.

    Each copy is the clip's word altered and placed at a random offset in a window as long as
    the clip; copy ``k`` of clip ``i`` uses the generator ``default_rng([seed, 7919, i, k])``.
    ``snr_db``, ``gain_db`` and ``speed`` override those ranges of ``config`` (default
    :data:`DEFAULT_SPEECH_AUGMENT`).
    """
    from dataclasses import replace  # noqa: PLC0415

    from edgeav.data.loader import read_audio  # noqa: PLC0415
    from edgeav.features import extract  # noqa: PLC0415

    cfg = config or DEFAULT_SPEECH_AUGMENT
    overrides = {"snr_db": snr_db, "gain_db": gain_db, "speed": speed}
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    feats = np.empty((len(paths) * copies, feature_config.dim), dtype=np.float32)
    out_labels = np.repeat(np.asarray(labels), copies)
    row = 0
    for i, path in enumerate(paths):
        y, sr = read_audio(path)
        if y.ndim == 2:
            y = y.mean(axis=1)
        for k in range(copies):
            rng = np.random.default_rng([seed, 7919, i, k])
            aug = augment_speech(y, sr, rng, n=y.size, config=cfg)
            feats[row] = extract(aug, feature_config, sr=sr)
            row += 1
    return feats, out_labels


def image_augmenter(spec: ImageSpec, *, shift: int, degrade: float) -> Augment:
    """Shift by up to ``shift`` pixels (digits laid out like MNIST, ``crop="digit"``: warped by
    :func:`warp_strokes` instead), then degrade a ``degrade`` fraction of the images.

    Cutouts are filled with the model input's black or white (``spec``'s scale, offset and
    inversion decide which values those are) and noise is clipped to that range.
    """
    black, white = spec.offset, 255.0 * spec.scale + spec.offset
    if spec.invert:
        black, white = white, black
    value_range = (min(black, white), max(black, white))

    def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if spec.crop == "digit":
            x = warp_strokes(x, rng)
        else:
            x = random_shift(x, shift, rng)
        return degrade_images(x, rng, fraction=degrade, value_range=value_range)

    return augment
