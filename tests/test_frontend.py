"""The audio front-end: window -> the audio head's input, the same in training and on the device.

Real parts: the speech-embedding front-end's own LiteRT models from the installed
wyoming-openwakeword package (hash-checked), edgeav's NumPy features.
"""

from __future__ import annotations

import numpy as np
import pytest
from media import SR, tone

from edgeav.errors import EdgeAVError
from edgeav.features import FeatureConfig, extract
from edgeav.runtime.frontend import (
    AudioInput,
    FrontEnd,
    fit_window,
    input_shape,
    normalize_level,
)


def speech_like(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """A vowel-like harmonic sound with a syllable envelope, in light noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(np.pi * t / seconds * 3), 0, None) ** 2
    return (0.2 * voice * envelope + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def embedding_models():
    from edgeav.speech_embedding import load_models

    return load_models()


def test_audio_input_validates_and_round_trips():
    spec = AudioInput("speech-embedding", target_dbfs=-20.0)
    assert AudioInput.from_dict(spec.to_dict()) == spec
    assert AudioInput.from_dict({}) == AudioInput()  # bundles before the front-end
    for bad in ({"kind": "mfcc"}, {"target_dbfs": 3.0}, {"n_mels": 2}, {"colour": 1}):
        with pytest.raises(EdgeAVError):
            AudioInput.from_dict(bad)


def test_level_is_normalised_without_clipping_or_amplifying_silence():
    x = tone(1, amp=0.01)
    y = normalize_level(x, -20.0, 30.0)
    assert 10 * np.log10(np.mean(y.astype(np.float64) ** 2)) == pytest.approx(-20.0, abs=0.01)
    quiet = normalize_level(x * 1e-4, -20.0, 30.0)  # 80 dB down: at most 30 dB of gain
    assert np.max(np.abs(quiet)) == pytest.approx(np.max(np.abs(x)) * 1e-4 * 10**1.5, rel=1e-5)
    spiky = np.zeros(SR, np.float32)
    spiky[100] = 0.5
    assert np.max(np.abs(normalize_level(spiky, -3.0, 60.0))) <= 1.0  # never past full scale
    assert not np.any(normalize_level(np.zeros(10, np.float32), -20.0, 30.0))


def test_fit_window_centres_crops_and_places():
    x = np.arange(1, 5, dtype=np.float32)
    np.testing.assert_array_equal(fit_window(x, 8), [0, 0, 1, 2, 3, 4, 0, 0])
    np.testing.assert_array_equal(fit_window(x, 8, offset=4), [0, 0, 0, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(fit_window(np.arange(10, dtype=np.float32), 4), [3, 4, 5, 6])


def test_features_kind_is_the_seeds_extract():
    config = FeatureConfig()
    x = speech_like(1.0)
    front = FrontEnd(AudioInput(), config)
    assert front.shape == (config.dim,)
    np.testing.assert_array_equal(front(x), extract(x, config))


@pytest.mark.parametrize("seconds", [1.0, 1.5, 2.0])
def test_log_mel_shape_level_and_channel_invariance(seconds):
    config = FeatureConfig(window_seconds=seconds)
    front = FrontEnd(AudioInput("log-mel", target_dbfs=-20.0), config)
    x = speech_like(seconds)
    out = front(x)
    assert out.shape == input_shape(front.spec, config) == front.shape
    assert out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(front(4.0 * x), out, atol=1e-3)  # a louder speaker
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-3)  # each band's mean removed


@pytest.mark.parametrize("seconds", [1.0, 1.5, 2.0])
def test_speech_embedding_shape_and_level_invariance(embedding_models, seconds):
    config = FeatureConfig(window_seconds=seconds)
    spec = AudioInput("speech-embedding", target_dbfs=-20.0)
    front = FrontEnd(spec, config, embedding_models, threads=1)
    assert front.shape == input_shape(spec, config)
    x = speech_like(seconds)
    out = front(x)
    assert out.shape == front.shape and out.shape[1] == 96 and np.isfinite(out).all()
    np.testing.assert_array_equal(front(x), out)  # deterministic
    np.testing.assert_allclose(front(0.1 * x), out, atol=0.05 * np.abs(out).max())
    other = front(speech_like(seconds, seed=1) * 0 + tone(2, seconds))
    assert np.abs(other - out).max() > 1.0  # a tone is not that voice


def test_embedding_and_features_kind_is_both_of_the_same_window(embedding_models):
    """``audio-hybrid``'s input: the speech embeddings row by row, then the spectral statistics,
    both of the level-normalised window."""
    config = FeatureConfig(window_seconds=1.5, statistics=("mean", "std", "max"))
    spec = AudioInput("embedding+features", target_dbfs=-20.0)
    front = FrontEnd(spec, config, embedding_models, threads=1)
    embed = FrontEnd(AudioInput("speech-embedding", -20.0), config, embedding_models, threads=1)
    x = speech_like(1.5, seed=3)
    out = front(x)
    assert out.shape == front.shape == input_shape(spec, config) == (9 * 96 + 561,)
    np.testing.assert_array_equal(out[: 9 * 96], embed(x).reshape(-1))
    np.testing.assert_array_equal(out[9 * 96 :], extract(normalize_level(x, -20.0, 30.0), config))
    assert front.model_bytes == embedding_models
    with pytest.raises(EdgeAVError, match="needs its melspectrogram model"):
        FrontEnd(spec, config, {})


@pytest.mark.parametrize("seconds", [1.0, 1.5, 2.0])
def test_one_embedding_pass_over_the_window_equals_one_per_slice(embedding_models, seconds):
    """The front-end runs the embedding model once over all the window's mel frames; that is
    the embedding of each 76-frame slice taken every 8 frames (the model's own design), done one
    slice at a time, to float precision (bit for bit on x86-64 here; 3e-5 apart under aarch64
    emulation, whose kernels round differently)."""
    from edgeav.runtime.interpreter import load_interpreter

    config = FeatureConfig(window_seconds=seconds)
    spec = AudioInput("speech-embedding", target_dbfs=-20.0)
    x = speech_like(seconds, seed=2)
    got = FrontEnd(spec, config, embedding_models, threads=1)(x)
    n = config.window_samples
    mel_model = load_interpreter(embedding_models["melspectrogram"], 1, input_shape=(1, n))
    slice_model = load_interpreter(embedding_models["embedding"], 1)  # (1, 76, 32, 1)
    level = normalize_level(x, spec.target_dbfs, spec.max_gain_db)
    mel = np.squeeze(mel_model.predict((level * np.float32(32767.0))[None])) / 10.0 + 2.0
    want = [
        slice_model.predict(mel[None, s : s + 76, :, None].astype(np.float32)).reshape(96)
        for s in range(0, mel.shape[0] - 76 + 1, 8)
    ]
    assert got.shape == (len(want), 96)
    np.testing.assert_allclose(got, np.stack(want), rtol=0, atol=1e-4)


def test_the_front_end_benchmark_compares_both_ways():
    from edgeav.benchmarks.frontend import run

    r = run(runs=5)
    assert r["vectors"] == 9 and set(r["ms"]) == {"per_slice", "one_pass"}
    assert all(v > 0 for v in r["ms"].values()) and r["speedup"] > 0
    assert r["max_abs_difference"] < 1e-4


def test_front_end_errors_are_one_line(embedding_models):
    config = FeatureConfig(window_seconds=1.5)
    with pytest.raises(EdgeAVError, match="needs its melspectrogram model"):
        FrontEnd(AudioInput("speech-embedding"), config, {})
    front = FrontEnd(AudioInput("log-mel"), config)
    with pytest.raises(EdgeAVError, match="takes 24000 samples"):
        front(np.zeros(100, np.float32))
    with pytest.raises(EdgeAVError, match="too short for the speech embedding"):
        FrontEnd(
            AudioInput("speech-embedding"), FeatureConfig(window_seconds=0.5), embedding_models
        )


def test_the_packaged_models_are_pinned_and_hashed(monkeypatch):
    from edgeav import speech_embedding

    monkeypatch.setitem(
        speech_embedding.FILES, "embedding", ("models/embedding_model.tflite", "0" * 64)
    )
    with pytest.raises(EdgeAVError, match="does not match its pinned sha256"):
        speech_embedding.load_models()
    monkeypatch.setattr(speech_embedding, "VERSION", "0.0.1")
    with pytest.raises(EdgeAVError, match="edgeav needs 0.0.1: pip install --no-deps"):
        speech_embedding.load_models()
