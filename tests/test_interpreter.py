"""One ``.tflite`` model in LiteRT: float in, float out, whatever the tensor types.

Real parts: tiny Keras models converted to real float32 and int8 ``.tflite`` files.
"""

from __future__ import annotations

import numpy as np
import pytest
from media import LEVELS

from edgeav.errors import EdgeAVError
from edgeav.runtime.interpreter import load_interpreter

pytestmark = pytest.mark.slow  # the models are trained and converted with TensorFlow


def test_float_model_matches_keras(av_models):
    model = load_interpreter(av_models["audio_float32"], num_threads=1)
    assert model.backend == "ai_edge_litert"
    assert model.input_shape == (1, av_models["config"].dim)
    assert model.input_dtype == "float32"
    x = av_models["audio_features"][:5]
    expected = av_models["keras_audio"].predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(x), expected, atol=1e-5)
    single = model.predict(x[0])
    assert single.shape == (3,)
    np.testing.assert_allclose(single, expected[0], atol=1e-5)


def test_int8_model_dequantises_to_probabilities(av_models):
    model = load_interpreter(av_models["image_int8"].read_bytes())
    assert model.input_dtype == "int8" and model.output_dtype == "int8"
    in_scale, _ = model.input_quantization
    out_scale, _ = model.output_quantization
    assert 0 < in_scale < 0.01 and out_scale == pytest.approx(1 / 256)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (12, 8, 8, 1)).astype(np.float32)
    x[:3] = np.asarray(LEVELS, np.float32)[:, None, None, None]
    probs = model.predict(x)
    assert probs.dtype == np.float32
    assert np.all(probs >= 0) and np.all(probs <= 1.0 + 1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.02)
    expected = av_models["keras_image"].predict(x, verbose=0)
    assert np.abs(probs - expected).max() < 0.03  # within int8 steps of the Keras model
    assert list(probs[:3].argmax(1)) == [0, 1, 2]
    audio = load_interpreter(av_models["audio_int8"])
    feats = av_models["audio_features"]
    assert (audio.predict(feats).argmax(1) == av_models["audio_labels"]).mean() >= 0.9


def test_tf_lite_fallback_agrees(av_models):
    x = av_models["audio_features"][:4]
    litert = load_interpreter(av_models["audio_int8"])
    tflite = load_interpreter(av_models["audio_int8"], backend="tf.lite")
    assert tflite.backend == "tf.lite"
    np.testing.assert_array_equal(litert.predict(x), tflite.predict(x))


def test_errors_are_one_line(av_models, tmp_path):
    with pytest.raises(EdgeAVError, match="does not exist|cannot read model"):
        load_interpreter(tmp_path / "missing.tflite")
    with pytest.raises(EdgeAVError, match="not a TFLite model"):
        load_interpreter(b"definitely not a flatbuffer")
    data = av_models["image_int8"].read_bytes()
    with pytest.raises(EdgeAVError, match="cannot load model truncated"):
        load_interpreter(data[: len(data) // 2], name="truncated")
    with pytest.raises(EdgeAVError, match="threads"):
        load_interpreter(data, num_threads=0)
    with pytest.raises(EdgeAVError, match="unknown TFLite backend"):
        load_interpreter(data, backend="onnx")
    model = load_interpreter(data)
    with pytest.raises(EdgeAVError, match=r"expects input of shape \(8, 8, 1\)"):
        model.predict(np.zeros((4, 4), np.float32))
