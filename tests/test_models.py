"""The model zoo: builders, registry, MAC counter and ``edgeav zoo``, on real tf_keras models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeav.errors import EdgeAVError
from edgeav.models.macs import count_macs, count_params, count_trainable_params, layer_macs
from edgeav.models.registry import VARIANTS, build_variant, get_variant

SEED_VARIANTS = [name for name, v in VARIANTS.items() if v.seed_params is not None]
TINY_IMAGE_VARIANTS = ["resnet-sep-tiny", "inception-resnet-sep-tiny"]


@pytest.fixture(scope="module")
def keras():
    from edgeav.tf import keras as _keras

    return _keras()


def _single_layer_model(keras, layer, shape):
    inputs = keras.Input(shape)
    return keras.Model(inputs, layer(inputs))


# --- MAC counter ---------------------------------------------------------------------------------


def test_seed_separable_arithmetic(keras):
    """The seed's example: 5x5, 256 filters, 12x12x3 -> 8x8x256, valid padding."""
    conv = _single_layer_model(keras, keras.layers.Conv2D(256, 5, padding="valid"), (12, 12, 3))
    assert conv.output_shape == (None, 8, 8, 256)
    assert count_macs(conv) == 256 * 3 * 5 * 5 * 8 * 8 == 1_228_800

    sep_layer = keras.layers.SeparableConv2D(256, 5, padding="valid")
    sep = _single_layer_model(keras, sep_layer, (12, 12, 3))
    parts = layer_macs(sep_layer)
    # The seed's 49,152 is the pointwise step (256 kernels of 1x1x3 over 8x8); the depthwise
    # step (3 kernels of 5x5x1 over 8x8) adds 4,800 that the seed's sum leaves out.
    assert parts == {"depthwise": 3 * 5 * 5 * 8 * 8, "pointwise": 256 * 1 * 1 * 3 * 8 * 8}
    assert parts["pointwise"] == 49_152
    assert count_macs(sep) == 4_800 + 49_152
    assert 1_228_800 // parts["pointwise"] == 25


def test_depthwise_dense_and_nested_macs(keras):
    dw = _single_layer_model(
        keras, keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), (10, 10, 4)
    )
    assert count_macs(dw) == 10 * 10 * 4 * 2 * 3 * 3
    dense = _single_layer_model(keras, keras.layers.Dense(7), (5, 11))  # per step of a sequence
    assert count_macs(dense) == 5 * 11 * 7

    inner = _single_layer_model(keras, keras.layers.Conv2D(8, 3, padding="valid"), (6, 6, 2))
    inputs = keras.Input((6, 6, 2))
    a, b = inner(inputs), inner(inputs)  # a nested model called twice counts twice
    outer = keras.Model(inputs, keras.layers.Add()([a, b]))
    assert count_macs(outer) == 2 * (4 * 4 * 8 * 3 * 3 * 2)
    assert count_params(outer) == count_params(inner) == 3 * 3 * 2 * 8 + 8
    assert count_trainable_params(outer) == count_params(outer)
    bn = _single_layer_model(keras, keras.layers.BatchNormalization(), (4,))
    assert (count_params(bn), count_trainable_params(bn)) == (16, 8)


def test_macs_need_a_fixed_input_size(keras):
    model = _single_layer_model(keras, keras.layers.Conv2D(4, 3), (None, None, 3))
    with pytest.raises(EdgeAVError, match="not fully known"):
        count_macs(model)


# --- builders ------------------------------------------------------------------------------------


def test_plain_resnet_matches_keras_applications(keras):
    """Plain full ResNet50 = keras.applications.ResNet50 (no top, avg pool) + Dense head."""
    from edgeav.models.resnet import ResNet50

    ours = ResNet50(input_shape=(32, 32, 3), classes=49)
    ref = keras.applications.ResNet50(
        weights=None, include_top=False, pooling="avg", input_shape=(32, 32, 3)
    )
    dense = 2048 * 49 + 49
    assert count_params(ours) == count_params(ref) + dense
    assert count_macs(ours) == count_macs(ref) + 2048 * 49
    assert ours.get_layer("conv5_block3_out").output_shape == (None, 1, 1, 2048)


@pytest.mark.parametrize("name", TINY_IMAGE_VARIANTS)
@pytest.mark.parametrize("channels", [1, 3])
def test_tiny_variants_forward(keras, name, channels):
    model = build_variant(name, classes=10, channels=channels)
    assert model.input_shape == (None, 32, 32, channels)
    assert 100_000 <= count_params(model) <= 400_000
    x = np.random.default_rng(0).random((4, 32, 32, channels)).astype("float32")
    probs = model.predict(x, verbose=0)
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("head").activation.__name__ == "softmax"
    embedder = keras.Model(model.input, model.get_layer("embedding").output)
    emb = embedder.predict(x, verbose=0)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert count_macs(model) > 0


def test_with_embedding_and_keras_save_round_trip(keras, tmp_path):
    """Two outputs on request; the .keras file loads without edgeav's code (no custom layers)."""
    model = build_variant(
        "inception-resnet-sep-tiny", classes=5, channels=1, with_embedding=True, blocks=(1,)
    )
    assert [tuple(o.shape) for o in model.outputs] == [(None, 5), (None, model.outputs[1].shape[1])]
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    x = np.random.default_rng(1).random((2, 32, 32, 1)).astype("float32")
    for ours, theirs in zip(model.predict(x, verbose=0), loaded.predict(x, verbose=0), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert not any(type(layer).__name__ == "Lambda" for layer in loaded.layers)


def test_projection_embedding_and_small_inputs(keras):
    from edgeav.models.inception_resnet import InceptionResNet
    from edgeav.models.resnet import ResNet

    model = ResNet(input_shape=(48, 48, 2), classes=3, width=0.25, blocks=(1, 1), embedding_dim=16)
    assert model.get_layer("embedding").output_shape == (None, 16)
    assert model.get_layer("projection").output_shape == (None, 16)
    # Keras's "valid" padding cannot go below 75x75: asking for it is a clear error.
    with pytest.raises(EdgeAVError, match="75x75"):
        InceptionResNet(input_shape=(64, 64, 3), classes=3, width=0.2, padding="valid")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_shape": (16, 16, 3)}, "at least 32x32"),
        ({"input_shape": (32, 40, 3)}, "square"),
        ({"classes": 1}, "classes"),
        ({"pooling": "flatten"}, "pooling"),
        ({"blocks": (1, 1, 1, 1, 1)}, "blocks"),
    ],
)
def test_resnet_bad_arguments(kwargs, match):
    from edgeav.models.resnet import ResNet

    args = {"input_shape": (32, 32, 3), "classes": 10, **kwargs}
    with pytest.raises(EdgeAVError, match=match):
        ResNet(**args)


def test_audio_encoder(keras):
    from edgeav.models.audio import build_audio_encoder

    rng = np.random.default_rng(2)
    feats = (rng.normal(size=(64, 187)) * 5 + 3).astype("float32")
    model = build_audio_encoder(
        classes=10, mean=feats.mean(axis=0), variance=feats.var(axis=0), dropout=0.5
    )
    assert model.input_shape == (None, 187)
    assert model.layers[1].name == "standardize"
    assert model.get_layer("dropout_1").rate == 0.5
    probs = model.predict(feats[:8], verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    emb = keras.Model(model.input, model.get_layer("embedding").output).predict(feats, verbose=0)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    std = keras.Model(model.input, model.get_layer("standardize").output).predict(feats, verbose=0)
    np.testing.assert_allclose(std.mean(axis=0), 0.0, atol=1e-4)

    # Without statistics: adapt the standardize layer to the training features afterwards.
    model = build_variant("audio-mlp", classes=4)
    model.get_layer("standardize").adapt(feats)
    std = keras.Model(model.input, model.get_layer("standardize").output).predict(feats, verbose=0)
    np.testing.assert_allclose(std.std(axis=0), 1.0, rtol=1e-3)

    with pytest.raises(EdgeAVError, match="expected input_dim=187"):
        build_audio_encoder(mean=np.zeros(10), variance=np.ones(10))
    with pytest.raises(EdgeAVError, match="dropout"):
        build_audio_encoder(dropout=1.0)


def test_hybrid_head_splits_its_input_into_embeddings_and_statistics():
    """``audio-hybrid`` standardises the whole vector, then reads the first 9x96 values as an
    embedding sequence and the rest as spectral statistics: changing a statistic changes only
    the dense branch's output, changing an embedding value only the convolution branch's."""
    from edgeav.tf import keras as _keras

    keras = _keras()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 9 * 96 + 561)).astype(np.float32)
    model = build_variant(
        "audio-hybrid", classes=4, mean=np.zeros(x.shape[1]), variance=np.ones(x.shape[1])
    )
    assert model.input_shape == (None, 9 * 96 + 561)
    assert model.get_layer("sequence").output_shape == (None, 9, 96)
    assert model.get_layer("features").output_shape == (None, 561)
    branches = keras.Model(
        model.input, [model.get_layer("pool").output, model.get_layer("dropout_2").output]
    )
    pooled, dense = branches.predict(x, verbose=0)
    y = x.copy()
    y[:, -1] += 5.0  # the last statistic
    p2, d2 = branches.predict(y, verbose=0)
    np.testing.assert_array_equal(p2, pooled)
    assert np.abs(d2 - dense).max() > 1e-3
    y = x.copy()
    y[:, 0] += 5.0  # the first embedding's first value
    p3, d3 = branches.predict(y, verbose=0)
    np.testing.assert_array_equal(d3, dense)
    assert np.abs(p3 - pooled).max() > 1e-3
    with pytest.raises(EdgeAVError, match="does not hold whole embeddings"):
        build_variant("audio-hybrid", classes=4, input_size=9 * 96 + 560)


# --- registry ------------------------------------------------------------------------------------


def test_registry_names_and_unknown_variant():
    assert SEED_VARIANTS == [
        "resnet50-sep",
        "resnet50-sep-narrow",
        "resnet50-sep-shallow",
        "inception-resnet",
        "inception-resnet-sep",
        "inception-resnet-sep-small",
    ]
    assert {"resnet-sep-tiny", "inception-resnet-sep-tiny", "audio-mlp"} <= set(VARIANTS)
    assert get_variant("audio-mlp").modality == "audio"
    with pytest.raises(EdgeAVError, match="unknown model variant 'resnet51'.*resnet50-sep"):
        build_variant("resnet51", classes=10)


# --- the CLI -------------------------------------------------------------------------------------


def test_zoo_cli_subset_json():
    from typer.testing import CliRunner

    from edgeav.cli import app

    result = CliRunner().invoke(
        app, ["zoo", "resnet-sep-tiny", "audio-mlp", "--classes", "10", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["resnet-sep-tiny", "audio-mlp"]
    by_name = {r["name"]: r for r in rows}
    assert by_name["resnet-sep-tiny"]["input_size"] == 32
    assert by_name["audio-mlp"]["input_size"] == 187
    model = build_variant("resnet-sep-tiny", classes=10)
    assert by_name["resnet-sep-tiny"]["params"] == count_params(model)
    assert by_name["resnet-sep-tiny"]["macs"] == count_macs(model)
    assert all(r["seed_params"] is None for r in rows)


def test_zoo_cli_unknown_variant_is_one_line_error():
    proc = subprocess.run(
        [sys.executable, "-m", "edgeav", "zoo", "no-such-net"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        f"edgeav: error: unknown model variant 'no-such-net'; known variants: {', '.join(VARIANTS)}"
    ]


@pytest.mark.slow
def test_zoo_cli_seed_variants_match_the_seed():
    """The acceptance check: ``edgeav zoo --classes 49 --json``, each seed row within 2 %."""
    proc = subprocess.run(
        [sys.executable, "-m", "edgeav", "zoo", *SEED_VARIANTS, "--classes", "49", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert list(rows) == SEED_VARIANTS
    for name, row in rows.items():
        assert row["seed_params"] == VARIANTS[name].seed_params
        assert abs(row["params"] - row["seed_params"]) <= 0.02 * row["seed_params"], row
        assert row["macs"] > 0
    assert rows["inception-resnet"]["params"] == 54_412_049
    # The seed's separable full-size figures are trainable counts, and match exactly.
    assert rows["resnet50-sep"]["trainable_params"] == 13_618_884
    assert rows["inception-resnet-sep"]["trainable_params"] == 40_606_444
    assert rows["resnet50-sep"]["input_size"] == 224
    assert rows["inception-resnet"]["input_size"] == 299
