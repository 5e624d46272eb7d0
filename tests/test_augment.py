"""Augmentation (edgeav.augment): deterministic, and each transform does what it says."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgeav import augment as A

SR = 16_000
NONE = replace(
    A.DEFAULT_SPEECH_AUGMENT,
    p_speed=0.0,
    p_tempo=0.0,
    p_pitch=0.0,
    p_vtlp=0.0,
    p_reverb=0.0,
    p_eq=0.0,
    p_telephone=0.0,
    p_noise=0.0,
)
ALL = replace(
    NONE,
    p_speed=1.0,
    p_tempo=1.0,
    p_pitch=1.0,
    p_vtlp=1.0,
    p_reverb=1.0,
    p_eq=1.0,
    p_telephone=1.0,
    p_noise=1.0,
)


def _sine(freq: float, seconds: float = 0.5, amp: float = 0.3) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)


def _vowel(f0: float = 150.0, formant: float = 1000.0, seconds: float = 0.5) -> np.ndarray:
    """Harmonics of ``f0`` shaped by one resonance at ``formant`` Hz."""
    t = np.arange(int(seconds * SR)) / SR
    y = np.zeros_like(t)
    for k in range(1, int(4000 / f0)):
        y += np.exp(-(((k * f0 - formant) / 250.0) ** 2)) * np.sin(2 * np.pi * k * f0 * t)
    return 0.3 * y / np.abs(y).max()


def _word_in_window(rng_seed: int = 0) -> np.ndarray:
    """A 0.4 s 'word' (a vowel with an attack and decay) in 1 s of faint noise."""
    rng = np.random.default_rng(rng_seed)
    word = _vowel(seconds=0.4) * np.hanning(int(0.4 * SR))
    y = rng.standard_normal(SR) * 1e-4
    y[5000 : 5000 + word.size] += word
    return y


def _peak_freq(y: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.fft.rfftfreq(y.size, 1 / SR)[np.argmax(spec)])


def _band_db(y: np.ndarray, lo: float, hi: float) -> float:
    from scipy.signal import welch

    f, p = welch(y, SR, nperseg=1024)
    return 10 * np.log10(np.mean(p[(f >= lo) & (f <= hi)]) + 1e-30)


# --- augment_speech -----------------------------------------------------------------------------


def test_same_rng_same_output_and_length():
    y = _word_in_window()
    outs = [A.augment_speech(y, SR, np.random.default_rng(s), n=12_000) for s in (1, 1, 2)]
    assert np.array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])
    for seed in range(30):  # many branch combinations
        out = A.augment_speech(y, SR, np.random.default_rng(seed), n=SR)
        assert out.shape == (SR,) and out.dtype == np.float32
        assert np.all(np.isfinite(out)) and np.abs(out).max() <= 0.999 + 1e-6
    every = A.augment_speech(y, SR, np.random.default_rng(3), n=SR, config=ALL)
    assert every.shape == (SR,) and np.all(np.isfinite(every)) and np.abs(every).max() > 0


def test_without_n_the_clip_keeps_its_new_length():
    y = _word_in_window()
    start, end = A.speech_region(y, SR)
    fast = replace(NONE, p_speed=1.0, speed=(1.2, 1.2))
    out = A.augment_speech(y, SR, np.random.default_rng(0), config=fast)
    assert out.size == round((end - start) / 1.2)


def test_no_transform_is_the_word_placed_with_a_gain():
    y = _word_in_window()
    rng = np.random.default_rng(4)
    out = A.augment_speech(y, SR, rng, n=SR, config=NONE).astype(np.float64)
    start, end = A.speech_region(y, SR)
    word = y[start:end]
    k = int(np.argmax(np.correlate(out, word, mode="valid")))
    seg = out[k : k + word.size]
    gain = float(seg @ word / (word @ word))
    assert np.corrcoef(seg[200:-200], word[200:-200])[0, 1] > 0.999  # all but the 5 ms fades
    assert -24.5 <= 20 * np.log10(abs(gain)) <= 6.5
    assert np.abs(np.delete(out, np.arange(k, k + word.size))).max() == 0  # silence around it


def test_place_in_window():
    word = np.arange(1, 101, dtype=np.float32)
    offsets = set()
    for seed in range(20):
        out = A.place_in_window(word, 300, np.random.default_rng(seed))
        assert out.shape == (300,) and out.dtype == np.float32
        nz = np.flatnonzero(out)
        assert np.array_equal(out[nz[0] : nz[0] + 100], word)
        offsets.add(int(nz[0]))
    assert len(offsets) > 10 and min(offsets) >= 0 and max(offsets) <= 200
    cut = A.place_in_window(word, 30, np.random.default_rng(1))
    assert cut.size == 30 and np.all(np.diff(cut) == 1)  # one contiguous stretch of the word
    with pytest.raises(ValueError):
        A.place_in_window(word, 0, np.random.default_rng(0))


def test_speech_region_finds_the_word():
    y = _word_in_window()
    start, end = A.speech_region(y, SR)
    assert 4000 < start < 5600 and 11_000 < end < 12_000


# --- each transform -----------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.82, 1.2])
def test_speed_changes_length_and_pitch_by_the_factor(factor):
    y = _sine(440.0)
    out = A.change_speed(y, factor)
    assert out.size == round(y.size / factor)
    assert abs(_peak_freq(out) - 440.0 * factor) < 0.02 * 440.0 * factor


@pytest.mark.parametrize("rate", [0.82, 1.2])
def test_tempo_changes_length_not_pitch(rate):
    y = _sine(440.0)
    out = A.time_stretch(y, rate)
    assert out.size == round(y.size / rate)
    assert abs(_peak_freq(out) - 440.0) < 0.02 * 440.0
    mid = out[out.size // 4 : 3 * out.size // 4]
    assert 0.8 < np.sqrt(np.mean(mid**2)) / np.sqrt(np.mean(y**2)) < 1.25  # no big level change


@pytest.mark.parametrize("semitones", [-3.0, 2.0])
def test_pitch_shift_moves_pitch_keeps_length(semitones):
    y = _sine(440.0)
    out = A.pitch_shift(y, semitones)
    assert out.size == y.size
    want = 440.0 * 2 ** (semitones / 12)
    assert abs(_peak_freq(out) - want) < 0.02 * want


def test_vtlp_moves_the_formant_not_the_harmonics():
    y = _vowel(f0=150.0, formant=1000.0)
    out = A.vtlp(y, SR, 1.15)
    assert out.size == y.size
    spec_in = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    spec = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    freqs = np.fft.rfftfreq(y.size, 1 / SR)

    def centroid(s):
        band = (freqs > 300) & (freqs < 2500)
        return float((freqs[band] * s[band] ** 2).sum() / (s[band] ** 2).sum())

    assert 1.07 < centroid(spec) / centroid(spec_in) < 1.25  # the envelope moved up by ~alpha
    harmonics = np.isin(np.round(freqs).astype(int), np.arange(150, 4000, 150))
    between = np.isin(np.round(freqs).astype(int), np.arange(225, 4000, 150))
    # the energy stays on the 150 Hz harmonics: the pitch is unchanged
    assert spec[harmonics].sum() > 20 * spec[between].sum()


def test_reverberation_decays_at_the_given_rt60():
    rt60 = 0.5
    impulse = np.zeros(SR)
    impulse[100] = 1.0
    out = A.reverberate(impulse, SR, np.random.default_rng(0), rt60, drr_db=-10.0, tail=True)
    energy = np.cumsum((out[100:] ** 2)[::-1])[::-1]  # Schroeder backward integral
    db = 10 * np.log10(energy / energy[0])
    t = np.arange(db.size) / SR
    fit = (db < -5) & (db > -25)
    slope = np.polyfit(t[fit], db[fit], 1)[0]  # dB per second
    assert abs(-60.0 / slope - rt60) < 0.25 * rt60
    y = _word_in_window()
    wet = A.reverberate(y, SR, np.random.default_rng(1), 0.8)
    assert wet.size == y.size and np.isclose(np.sqrt(np.mean(wet**2)), np.sqrt(np.mean(y**2)))
    # the word's end now rings on: more energy after it than before
    after = slice(11_500, 13_000)
    assert np.mean(wet[after] ** 2) > 100 * np.mean(y[after] ** 2)


def test_telephone_keeps_300_to_3400_hz_only():
    y = np.random.default_rng(0).standard_normal(2 * SR) * 0.1
    out = A.telephone(y, SR)
    assert out.size == y.size and np.all(np.isfinite(out))
    inside = _band_db(out, 500, 3000)
    assert _band_db(out, 30, 200) < inside - 25
    assert _band_db(out, 3900, 7800) < inside - 25
    assert _band_db(y, 3900, 7800) > _band_db(y, 500, 3000) - 3  # the input was flat


def test_random_eq_is_gentle_and_not_flat():
    y = np.random.default_rng(0).standard_normal(SR) * 0.1
    freqs = np.fft.rfftfreq(y.size, 1 / SR)
    band = freqs > 400
    spreads = []
    for seed in range(5):
        out = A.random_eq(y, SR, np.random.default_rng(seed), max_db=6.0)
        assert out.size == y.size
        gain_db = 20 * np.log10(np.abs(np.fft.rfft(out))[band] / np.abs(np.fft.rfft(y))[band])
        assert gain_db.max() <= 6.01 and gain_db.min() >= -6.5  # a low cut barely reaches 400 Hz
        spreads.append(gain_db.max() - gain_db.min())
    assert min(spreads) > 1.0


@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
@pytest.mark.parametrize("snr", [-5.0, 10.0, 30.0])
def test_noise_at_the_requested_snr(kind, snr):
    y = _word_in_window()
    out = A.add_noise(y, SR, np.random.default_rng(0), snr, kind)
    noise = out - y
    achieved = 10 * np.log10(A.speech_power(y, SR) / np.mean(noise**2))
    assert abs(achieved - snr) < 1.0


def test_augmented_audio_features(tmp_path: Path):
    import soundfile as sf

    from edgeav.features import FeatureConfig

    paths = []
    for i in range(2):
        path = tmp_path / f"{i}.wav"
        sf.write(str(path), _word_in_window(i).astype(np.float32), SR, subtype="PCM_16")
        paths.append(path)
    config = FeatureConfig()
    x, y = A.augmented_audio_features(paths, np.array([0, 1]), config, 3, seed=5)
    assert x.shape == (6, config.dim) and np.all(np.isfinite(x))
    assert y.tolist() == [0, 0, 0, 1, 1, 1]
    again, _ = A.augmented_audio_features(paths, np.array([0, 1]), config, 3, seed=5)
    assert np.array_equal(x, again)
    other, _ = A.augmented_audio_features(paths, np.array([0, 1]), config, 3, seed=6)
    assert not np.array_equal(x, other)
    assert not np.allclose(x[0], x[1])  # copies differ


def test_warp_strokes_keeps_the_digit_and_is_deterministic():
    """Digits laid out like MNIST are turned, slanted and bent, not lost: the ink stays near the
    centre, a blank layout stays blank, the same generator state gives the same images."""
    x = np.zeros((8, 32, 32, 1), np.float32)
    x[:4, 8:24, 14:18, 0] = 1.0  # a "1"
    a = A.warp_strokes(x, np.random.default_rng(3))
    b = A.warp_strokes(x, np.random.default_rng(3))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert np.array_equal(a, b)
    assert not a[4:].any()  # nothing to read stays nothing
    for img in a[:4, :, :, 0]:
        ink = img.sum()
        assert 0.5 * x[0].sum() < ink < 2.0 * x[0].sum()
        cy = (img.sum(axis=1) * np.arange(32)).sum() / ink
        cx = (img.sum(axis=0) * np.arange(32)).sum() / ink
        assert abs(cy - 15.5) < 4 and abs(cx - 15.5) < 4
    assert not np.array_equal(a[0], x[0])


def test_image_augmenter_warps_digit_layouts_and_shifts_frames():
    from edgeav.preprocess import ImageSpec

    x = np.zeros((4, 32, 32, 1), np.float32)
    x[:, 8:24, 14:18, 0] = 1.0
    digit = A.image_augmenter(ImageSpec(size=32, channels=1, crop="digit"), shift=0, degrade=0)
    frame = A.image_augmenter(ImageSpec(size=32, channels=1, crop="none"), shift=0, degrade=0)
    rng = np.random.default_rng(0)
    assert not np.array_equal(digit(x, rng), x)  # warped even with shift 0
    assert np.array_equal(frame(x, rng), x)  # a frame with shift 0 and no degrading: as it was


def test_augmented_epochs_prepared_ahead_are_the_plain_loops_epochs():
    """The next epoch's augmentation is prepared in a thread while the current one trains; the
    epochs are exactly those of a plain loop with the same generator."""
    from edgeav.augment import augmented_epochs, image_augmenter
    from edgeav.preprocess import ImageSpec

    augment = image_augmenter(ImageSpec(size=16, channels=1, crop="digit"), shift=2, degrade=0.5)
    x = np.random.default_rng(0).random((20, 16, 16, 1)).astype(np.float32)
    plain_rng = np.random.default_rng(7)
    plain = [augment(x, plain_rng) for _ in range(3)]
    ahead = list(augmented_epochs(augment, x, np.random.default_rng(7), 3))
    assert len(ahead) == 3
    for a, b in zip(ahead, plain, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(ahead[0], ahead[1])
    assert list(augmented_epochs(augment, x, np.random.default_rng(7), 0)) == []
