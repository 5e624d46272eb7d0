"""``edgeav convert --qat``: quantisation-aware fine-tuning (tfmot), full int8, PTQ side by side."""

from __future__ import annotations

import numpy as np
import pytest

from edgeav.errors import EdgeAVError


def _convert(models, tiny_data, out, **options):
    from edgeav.converters.convert import ConvertOptions, convert_models
    from edgeav.features import FeatureConfig
    from edgeav.fusion import FusionWeights
    from edgeav.preprocess import ImageSpec

    return convert_models(
        models,
        classes=[str(i) for i in range(10)],
        image_spec=ImageSpec(size=32, channels=1),
        feature_config=FeatureConfig(),
        fusion=FusionWeights(1.0, 1.0),
        train=tiny_data["train"],
        test=tiny_data["test"],
        out=out,
        options=ConvertOptions(calibration_samples=100, **options),
    )


@pytest.mark.slow
def test_qat_bundle_is_int8_in_litert_and_close_to_ptq(tiny_keras_models, tiny_data, tmp_path):
    from edgeav.bundle import read_bundle
    from edgeav.runtime.interpreter import load_interpreter
    from edgeav.tflite_schema import describe

    result = _convert(tiny_keras_models, tiny_data, tmp_path / "qat.edgeav", qat=True, qat_epochs=2)
    assert result.ptq is not None and result.ptq_fused is not None
    bundle = read_bundle(result.out)
    assert bundle.manifest.quantization == "int8"
    for modality in ("image", "audio"):
        data = bundle.model_bytes(modality)
        assert data == result.models[modality].tflite  # the bundle holds the QAT models
        assert data != result.ptq[modality].tflite
        model = load_interpreter(data)  # LiteRT, as on the device
        x = tiny_data["test"].images if modality == "image" else tiny_data["test"].audio
        assert model.probabilities(x[:1].astype(np.float32)).shape[-1] == 10
        floats = describe(data).weight_dtypes.get("float32", 0)  # bytes
        # kernels int8, biases int32; only the audio model's leading normalisation (its mean and
        # variance, one float each per input) stays float, as in post-training int8
        assert floats <= (0 if modality == "image" else 2 * 4 * x.shape[1] + 64), floats
        q, p = result.models[modality], result.ptq[modality]
        assert q.comparison.tflite_accuracy >= p.comparison.tflite_accuracy - 0.03, (q, p)
        assert q.latency_ms is not None and q.latency_ms > 0 and p.latency_ms > 0
    image = describe(bundle.model_bytes("image"))
    assert image.inputs[0].dtype == "int8" and image.outputs[0].dtype == "int8"
    # tfmot split the SeparableConv2D into a depthwise and a 1x1 convolution
    assert image.op_counts.get("DEPTHWISE_CONV_2D", 0) >= 1
    assert result.fused.tflite_accuracy >= result.ptq_fused.tflite_accuracy - 0.03
    res = result.to_dict()
    assert res["qat"] is True and set(res["ptq"]["models"]) == {"image", "audio"}


@pytest.mark.slow
def test_qat_after_pruning_keeps_the_zeros(tiny_keras_models, tiny_data, tmp_path):
    """--prune with --qat: tfmot's pruning-preserving scheme keeps the pruned weights at zero."""
    models = {"audio": tiny_keras_models["audio"]}
    result = _convert(
        models, tiny_data, tmp_path / "pq.edgeav", prune=0.5, qat=True, qat_epochs=1, max_drop=5
    )
    pruned = result.ptq["audio"].tflite_zero_fraction
    assert pruned > 0.3  # the post-training int8 of the pruned model
    assert result.models["audio"].tflite_zero_fraction >= 0.95 * pruned


@pytest.mark.slow
def test_qat_fine_tunes_as_training_did(tiny_keras_models, tiny_data, counted_recipe):
    """With the run's recipe, QAT's fine-tuning sees a fresh augmented copy of the inputs and the
    nothing-inputs (taught as the uniform distribution) every epoch."""
    from edgeav.converters.qat import qat_model

    train = tiny_data["train"]
    recipe, seen = counted_recipe
    nothing = recipe.x_nothing

    qat, output = qat_model(
        tiny_keras_models["image"],
        train.images,
        train.image_labels,
        epochs=2,
        learning_rate=1e-3,
        recipe=recipe,
    )
    assert output == "logits"
    assert seen == [len(train.images) + len(nothing)] * 2
    logits = qat.predict(nothing[:1], verbose=0)[0]
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert np.isfinite(logits).all() and probs.max() < 0.9, probs


@pytest.mark.slow
def test_the_default_audio_model_prunes_fine_tunes_and_converts(tmp_path):
    """audio-hybrid's splitting layers (Reshape, Cropping1D, Flatten, Concatenate) go through
    tfmot's pruning and pruning-preserving QAT and convert to int8 that LiteRT runs."""
    from edgeav.converters.prune import prune_model
    from edgeav.converters.qat import qat_model
    from edgeav.converters.quantize import convert_keras
    from edgeav.models.registry import build_variant
    from edgeav.runtime.interpreter import load_interpreter

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    x = rng.normal(size=(len(y), 9 * 96 + 561)).astype(np.float32)
    x[:, :96] += y[:, None]  # the first embedding tells the class
    x[:, -561:] += y[:, None]  # and so do the statistics
    model = build_variant(
        "audio-hybrid", classes=3, mean=x.mean(axis=0), variance=x.var(axis=0), hidden=(16, 8)
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=5, verbose=0)
    pruned, report = prune_model(model, x, y, sparsity=0.5, epochs=1, batch_size=32)
    assert report.sparsity > 0.4
    qat, output = qat_model(pruned, x, y, epochs=1, prune_preserve=True)
    assert output == "logits"
    data = convert_keras(qat, "int8", x[:32], float_input=True)
    probs = load_interpreter(data).probabilities(x[:1])
    assert probs.shape[-1] == 3 and np.isfinite(probs).all()


def test_qat_options_are_checked():
    from edgeav.converters.convert import ConvertOptions

    with pytest.raises(EdgeAVError, match="--qat fine-tunes for full int8"):
        ConvertOptions(quantize="float16", qat=True).check()
    with pytest.raises(EdgeAVError, match="--qat-epochs must be at least 1"):
        ConvertOptions(qat=True, qat_epochs=0).check()
    with pytest.raises(EdgeAVError, match="unknown --strategy"):
        ConvertOptions(qat=True, strategy="bogus").check()
    # Keras predictions, convert, validate + QAT fine-tuning, convert, validate; fused; write
    assert ConvertOptions(qat=True).stages(2) == 14
    assert ConvertOptions(qat=True, prune=0.5).stages(1) == 8
