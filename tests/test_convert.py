"""Real conversions of tiny tf_keras models, run in LiteRT, plus ``edgeav convert`` / ``edgeav info``."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeav.errors import EdgeAVError


def _litert_probs(model_bytes: bytes, x: np.ndarray) -> tuple[np.ndarray, object]:
    """Run every sample through ai_edge_litert's Interpreter directly (quantising by hand)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for i in range(len(x)):
        xi = x[i : i + 1].astype(np.float32)
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            xi = np.clip(np.round(xi / scale + zero), -128, 127).astype(inp["dtype"])
        interp.set_tensor(inp["index"], xi)
        interp.invoke()
        y = interp.get_tensor(out["index"]).astype(np.float32)
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y - zero) * scale
        rows.append(y[0])
    return np.stack(rows), (inp, out)


@pytest.mark.parametrize("mode", ["float32", "float16", "dynamic", "int8"])
@pytest.mark.parametrize("modality", ["image", "audio"])
def test_each_mode_runs_in_litert_and_agrees_with_keras(
    tiny_keras_models, tiny_data, mode, modality
):
    from edgeav.converters.quantize import convert_keras, leading_normalization
    from edgeav.converters.validate import compare, keras_predict, tflite_predict
    from edgeav.tflite_schema import describe

    model = tiny_keras_models[modality]
    x_train, y_train = tiny_data["train"].get(modality)
    x_test, y_test = tiny_data["test"].get(modality)
    float_input = mode == "int8" and leading_normalization(model)
    tfl = convert_keras(model, mode, x_train[:100], float_input=float_input)
    assert tfl[4:8] == b"TFL3"
    keras_p = keras_predict(model, x_test)
    probs, (inp, out) = _litert_probs(tfl, x_test)
    c = compare(keras_p, probs, y_test)
    assert c.keras_accuracy > 0.9  # the tiny models learned their task
    assert c.agreement >= 0.95, c
    assert c.drop <= 3.0, c
    if mode in ("float32", "float16"):
        np.testing.assert_allclose(probs, keras_p, atol=2e-3)
    # The runtime's wrapper (used by validation) gives the same predictions.
    np.testing.assert_allclose(tflite_predict(tfl, x_test), probs, atol=1e-6)
    info = describe(tfl)
    expected_in = "int8" if mode == "int8" and not float_input else "float32"
    assert inp["dtype"] == np.dtype(expected_in)
    assert info.inputs[0].dtype == expected_in
    assert info.inputs[0].shape == [1, *x_test.shape[1:]]
    assert info.outputs[0].shape == [1, 10]
    if mode == "int8":
        assert info.weight_dtypes.get("int8", 0) > info.weight_dtypes.get("float32", 0)
        if not float_input:
            assert out["dtype"] == np.int8 and info.outputs[0].dtype == "int8"
            assert info.inputs[0].scale and info.outputs[0].scale


def test_int8_image_model_is_full_integer(tiny_keras_models, tiny_data):
    from edgeav.converters.quantize import convert_keras
    from edgeav.tflite_schema import describe

    f32 = convert_keras(tiny_keras_models["image"], "float32")
    i8 = convert_keras(tiny_keras_models["image"], "int8", tiny_data["train"].images[:50])
    info = describe(i8)
    assert info.inputs[0].dtype == "int8" and info.outputs[0].dtype == "int8"
    assert info.outputs[0].scale == [pytest.approx(1 / 256)]  # softmax output in [0, 1)
    assert set(info.weight_dtypes) <= {"int8", "int32"}
    assert len(i8) < 0.45 * len(f32)


def test_int8_audio_keeps_normalisation_in_float(tiny_keras_models, tiny_data):
    """The audio model's raw features span orders of magnitude: its normalisation stays float."""
    from edgeav.converters.quantize import convert_keras
    from edgeav.converters.validate import compare, keras_predict, tflite_predict
    from edgeav.tflite_schema import describe

    model = tiny_keras_models["audio"]
    x_train = tiny_data["train"].audio
    x_test, y_test = tiny_data["test"].audio, tiny_data["test"].audio_labels
    keras_p = keras_predict(model, x_test)
    selective = convert_keras(model, "int8", x_train[:100], float_input=True)
    full = convert_keras(model, "int8", x_train[:100])
    info = describe(selective)
    assert info.inputs[0].dtype == "float32"
    assert info.op_counts.get("QUANTIZE") == 1 and info.op_counts.get("FULLY_CONNECTED") == 2
    assert info.weight_dtypes.get("int8", 0) > info.weight_dtypes.get("float32", 0)
    good = compare(keras_p, tflite_predict(selective, x_test), y_test)
    crushed = compare(keras_p, tflite_predict(full, x_test), y_test)
    assert good.agreement >= 0.98
    assert good.agreement >= crushed.agreement


def test_representative_indices_are_stratified():
    from edgeav.converters.quantize import representative_indices

    labels = np.repeat(np.arange(5), [100, 50, 20, 20, 10])
    idx = representative_indices(labels, 40, seed=1)
    assert len(idx) == 40 and len(set(idx.tolist())) == 40
    counts = np.bincount(labels[idx], minlength=5)
    assert np.all(counts >= 1)
    assert counts[0] > counts[1] > counts[4]
    assert len(representative_indices(labels, 1000)) == len(labels)
    with pytest.raises(EdgeAVError):
        representative_indices(labels, 0)


@pytest.mark.parametrize("modality", ["image", "audio"])
def test_logits_export_keeps_the_small_probabilities_int8_softmax_rounds_away(
    tiny_keras_models, tiny_data, modality
):
    """int8 softmax outputs have steps of 1/256: most probabilities become exactly 0, and the
    log-linear fusion reads their logarithms. The converter exports logits instead (the softmax
    runs in float at run time): same predictions, log-probabilities close to Keras's."""
    from edgeav.converters.quantize import convert_keras, leading_normalization, without_softmax
    from edgeav.converters.validate import keras_predict, tflite_predict

    model = tiny_keras_models[modality]
    x_train, _ = tiny_data["train"].get(modality)
    x_test, y_test = tiny_data["test"].get(modality)
    keras_p = keras_predict(model, x_test).astype(np.float64)
    logits_model, output = without_softmax(model)
    assert output == "logits" and logits_model.layers[-1].get_config()["activation"] == "linear"
    assert model.layers[-1].get_config()["activation"] == "softmax"  # the original is untouched
    float_input = leading_normalization(model)
    # float32: the softmax of the exported logits is Keras's output
    f32 = convert_keras(logits_model, "float32", None)
    np.testing.assert_allclose(tflite_predict(f32, x_test, output="logits"), keras_p, atol=1e-5)
    # int8: probabilities from int8 softmax vs softmax of int8 logits
    rep = x_train[:100]
    softmax_q = tflite_predict(convert_keras(model, "int8", rep, float_input=float_input), x_test)
    logits_q = tflite_predict(
        convert_keras(logits_model, "int8", rep, float_input=float_input), x_test, output="logits"
    )
    assert np.mean(softmax_q == 0) > 0.5  # rounded away
    assert np.mean(logits_q == 0) == 0.0
    err_softmax = np.abs(np.log(softmax_q + 1e-7) - np.log(keras_p + 1e-7))
    err_logits = np.abs(np.log(logits_q + 1e-7) - np.log(keras_p + 1e-7))
    assert np.median(err_logits) < 0.5 < np.median(err_softmax), (
        np.median(err_logits),
        np.median(err_softmax),
    )
    assert np.mean(np.argmax(logits_q, 1) == np.argmax(keras_p, 1)) >= 0.95


def _int8_tensors(model_bytes: bytes) -> dict[tuple[int, ...], np.ndarray]:
    """The constant int8 tensors of a ``.tflite`` by shape, read through LiteRT."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes)
    interp.allocate_tensors()
    out = {}
    for d in interp.get_tensor_details():
        if d["dtype"] == np.int8 and len(d["shape"]) >= 2:
            try:
                out[tuple(int(n) for n in d["shape"])] = interp.get_tensor(d["index"]).copy()
            except ValueError:  # an activation not computed yet
                continue
    return out


@pytest.mark.slow
def test_pruning_reaches_measured_sparsity(tiny_keras_models, tiny_data):
    from edgeav.converters.prune import prune_model
    from edgeav.converters.quantize import convert_keras
    from edgeav.tflite_schema import describe

    model = tiny_keras_models["image"]
    train = tiny_data["train"]
    before = [w.copy() for w in model.get_weights()]
    stripped, report = prune_model(
        model,
        train.images,
        train.image_labels,
        sparsity=0.5,
        epochs=2,
        batch_size=32,
        depthwise=True,
        block=4,
    )
    # The original model is untouched.
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # With depthwise=True every kernel is pruned, the depthwise one too (tfmot's registry
    # leaves it dense; so does edgeav by default, see test_element_wise_pruning_without_depthwise).
    layers = report.to_dict()["layers"]
    assert set(layers) == {
        "conv/kernel",
        "sep/depthwise_kernel",
        "sep/pointwise_kernel",
        "head/kernel",
    }
    assert report.block == 4 and report.to_dict()["block"] == 4
    # Measured by the report, and independently here on the stripped weights.
    assert abs(report.sparsity - 0.5) <= 0.02, report.to_dict()
    sep = stripped.get_layer("sep")
    kernels = {
        "conv": stripped.get_layer("conv").kernel.numpy(),  # 3x3x1x8
        "depthwise": sep.depthwise_kernel.numpy(),  # 3x3x8x1
        "pointwise": sep.pointwise_kernel.numpy(),  # 1x1x8x16
        "head": stripped.get_layer("head").kernel.numpy(),  # 1024x10
    }
    for name, k in kernels.items():
        assert abs(np.mean(k == 0) - 0.5) <= 0.02, (name, np.mean(k == 0))
    zeros = sum(int(np.sum(k == 0)) for k in kernels.values())
    total = sum(k.size for k in kernels.values())
    assert report.sparsity == pytest.approx(zeros / total)
    # 2-D kernels are pruned in blocks of 4 consecutive input channels of one output channel:
    # each block is all zeros or has none.
    for name in ("pointwise", "head"):
        k = kernels[name].reshape(-1, kernels[name].shape[-1])  # (in, out)
        blocks = (k.reshape(-1, 4, k.shape[1]) == 0).sum(axis=1)
        assert set(np.unique(blocks)) <= {0, 4}, name
    assert report.frequency <= report.end_step <= report.steps
    # The zeros survive int8 conversion (symmetric per-channel weights: 0.0 -> int8 0), in the
    # depthwise kernel too, and show when compressed, not raw.
    x_rep = train.images[:50]
    dense = convert_keras(model, "int8", x_rep)
    sparse = convert_keras(stripped, "int8", x_rep)
    weights = _int8_tensors(sparse)
    assert np.mean(weights[(1, 3, 3, 8)] == 0) == pytest.approx(np.mean(kernels["depthwise"] == 0))
    pw = weights[(16, 1, 1, 8)].reshape(16, 2, 4)  # TFLite: [out, h, w, in]
    assert set(np.unique((pw == 0).sum(axis=2))) <= {0, 4}
    assert np.mean(pw == 0) == pytest.approx(np.mean(kernels["pointwise"] == 0))
    assert describe(sparse).weight_sparsity > 0.45
    assert len(gzip.compress(sparse)) < 0.8 * len(gzip.compress(dense))
    assert abs(len(sparse) - len(dense)) < 0.05 * len(dense)


@pytest.mark.slow
def test_element_wise_pruning_without_depthwise(tiny_keras_models, tiny_data):
    """By default pruning is element-wise (tfmot's default too) and the depthwise kernel stays
    dense."""
    from edgeav.converters.prune import prune_model

    train = tiny_data["train"]
    stripped, report = prune_model(
        tiny_keras_models["image"],
        train.images,
        train.image_labels,
        sparsity=0.5,
        epochs=1,
    )
    assert report.block == 1
    assert set(report.to_dict()["layers"]) == {"conv/kernel", "sep/pointwise_kernel", "head/kernel"}
    assert abs(report.sparsity - 0.5) <= 0.02
    assert np.mean(stripped.get_layer("sep").depthwise_kernel.numpy() == 0) < 0.05
    head = stripped.get_layer("head").kernel.numpy()
    blocks = (head.reshape(-1, 4, head.shape[1]) == 0).sum(axis=1)
    assert set(np.unique(blocks)) - {0, 4}  # zeros not in blocks


@pytest.mark.slow
def test_pruning_fine_tunes_as_training_did(tiny_keras_models, tiny_data, counted_recipe):
    """With the run's recipe, pruning's fine-tuning sees a fresh augmented copy of the training
    inputs and the nothing-inputs every epoch, the latter taught as the uniform distribution."""
    from edgeav.converters.prune import prune_model

    train = tiny_data["train"]
    model = tiny_keras_models["image"]
    recipe, seen = counted_recipe
    nothing = recipe.x_nothing

    stripped, report = prune_model(
        model,
        train.images,
        train.image_labels,
        sparsity=0.5,
        epochs=3,
        recipe=recipe,
    )
    assert seen == [len(train.images) + len(nothing)] * 3
    assert abs(report.sparsity - 0.5) <= 0.02  # the schedule ran across the three fits
    # The nothing-inputs were taught as unsure: their top probability is close to 1/classes.
    probs = stripped.predict(nothing[:1], verbose=0)[0]
    assert probs.max() < 0.5, probs


@pytest.mark.slow
def test_structured_2_4_sparsity(tiny_keras_models, tiny_data):
    from edgeav.converters.prune import prune_model

    train = tiny_data["train"]
    stripped, report = prune_model(
        tiny_keras_models["image"],
        train.images,
        train.image_labels,
        sparsity=0.5,
        structured="2:4",
        epochs=1,
    )
    layers = report.to_dict()["layers"]
    # conv has one input channel: 2:4 along input channels does not apply, it stays dense.
    assert layers["conv/kernel"] < 0.05
    for name, attr in (("sep", "pointwise_kernel"), ("head", "kernel")):
        k = getattr(stripped.get_layer(name), attr).numpy()
        groups = np.moveaxis(k, -2, -1).reshape(-1, 4)  # 4 consecutive input channels
        assert np.all(np.sum(groups == 0, axis=1) >= 2), name
        assert layers[f"{name}/{attr}"] == pytest.approx(0.5, abs=0.01)


def test_prune_rejects_bad_targets(tiny_keras_models, tiny_data):
    from edgeav.converters.prune import prune_model

    train = tiny_data["train"]
    for kwargs in (
        {"sparsity": 1.5},
        {"sparsity": 0.0},
        {"sparsity": 0.5, "structured": "1:3"},
        {"sparsity": 0.5, "block": 0},
    ):
        with pytest.raises(EdgeAVError):
            prune_model(tiny_keras_models["image"], train.images, train.image_labels, **kwargs)


def test_tiny_bundle_records_the_check(tiny_bundle):
    from edgeav.bundle import read_bundle

    m = read_bundle(tiny_bundle).manifest
    acc = m.accuracy
    for name in ("image", "audio", "fused"):
        assert acc["keras"][name] > 0.9
        assert acc["keras"][name] - acc["tflite"][name] <= 0.01
        assert acc["agreement"][name] >= 0.95
    assert m.sparsity is None


def test_accuracy_drop_fails_and_writes_nothing(tiny_keras_models, tiny_data, tmp_path):
    """Calibrating int8 on blank images saturates the input: a real drop, rejected."""
    from edgeav.converters.convert import ConvertOptions, SplitArrays, convert_models
    from edgeav.converters.validate import AccuracyDropError
    from edgeav.features import FeatureConfig
    from edgeav.fusion import FusionWeights
    from edgeav.preprocess import ImageSpec

    train = tiny_data["train"]
    blank = SplitArrays(
        np.zeros_like(train.images), train.image_labels, train.audio, train.audio_labels
    )
    kwargs = dict(
        classes=[str(i) for i in range(10)],
        image_spec=ImageSpec(size=32, channels=1),
        feature_config=FeatureConfig(),
        fusion=FusionWeights(1.0, 1.0),
        train=blank,
        test=tiny_data["test"],
    )
    out = tmp_path / "bad.edgeav"
    models = {"image": tiny_keras_models["image"]}
    with pytest.raises(AccuracyDropError, match=r"image accuracy fell .* --max-drop 1"):
        convert_models(models, out=out, options=ConvertOptions(), **kwargs)
    assert os.listdir(tmp_path) == []
    # --allow-drop writes it and says so.
    result = convert_models(models, out=out, options=ConvertOptions(allow_drop=True), **kwargs)
    assert result.over_limit and out.is_file()
    assert result.models["image"].comparison.drop > 1.0


# --- the commands on a real run folder ------------------------------------------------------------


def _tone(freq: float, sr: int = 16000, seconds: float = 0.6, seed: int = 0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(seed)
    y = 0.4 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.normal(size=t.size)
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_keras_models, tiny_image_maker):
    """A real run folder: a data set of PNGs and WAVs on disk and models trained on its features."""
    import cv2
    import soundfile as sf

    from edgeav.data.loader import load_dataset
    from edgeav.features import FeatureConfig
    from edgeav.fusion import FusionWeights
    from edgeav.preprocess import ImageSpec
    from edgeav.tf import keras as _keras

    keras = _keras()
    root = tmp_path_factory.mktemp("tiny_run")
    data = root / "data"
    rng = np.random.default_rng(3)
    for split, per_class in (("train", 6), ("test", 3)):
        for c in range(10):
            (data / split / "image" / str(c)).mkdir(parents=True)
            (data / split / "audio" / str(c)).mkdir(parents=True)
            imgs = tiny_image_maker(np.full(per_class, c), rng)
            for i in range(per_class):
                png = (imgs[i, :, :, 0] * 255).round().astype(np.uint8)
                cv2.imwrite(str(data / split / "image" / str(c) / f"{i}.png"), png)
                y = _tone(300.0 * 1.25**c, seed=100 * c + i + (0 if split == "train" else 50))
                sf.write(str(data / split / "audio" / str(c) / f"{i}.wav"), y, 16000)
    spec, fc = ImageSpec(size=32, channels=1), FeatureConfig()
    ds = load_dataset(data, spec, fc, progress=False)
    # The audio model: Normalization adapted to these features, trained briefly.
    x = ds["train"].audio_features
    inp = keras.Input((fc.dim,))
    norm = keras.layers.Normalization()
    norm.adapt(x)
    h = keras.layers.Dense(16, activation="relu")(norm(inp))
    audio = keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="head")(h))
    audio.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    audio.fit(x, ds["train"].audio_labels, epochs=40, batch_size=16, verbose=0)
    run = root / "runs" / "20260101-000000"
    run.mkdir(parents=True)
    tiny_keras_models["image"].save(run / "image.keras")
    audio.save(run / "audio.keras")
    meta = {
        "format": "edgeav-run/1",
        "classes": [str(i) for i in range(10)],
        "data_dir": str(data),
        "image_spec": spec.to_dict(),
        "feature_config": fc.to_dict(),
        "image_model": "image.keras",
        "audio_model": "audio.keras",
        "image_variant": "tiny",
        "fusion": FusionWeights(1.0, 1.0).to_dict(),
        "metrics": {},
    }
    (run / "run.json").write_text(json.dumps(meta))
    return run


def _edgeav(*args: str, cwd: Path | None = None, columns: int = 160) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeav", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={**os.environ, "COLUMNS": str(columns)},
    )


@pytest.mark.slow
def test_convert_command_on_a_run_then_info(tiny_run, tmp_path):
    # No RUN_DIR: the newest run under ./runs is used.
    proc = _edgeav(
        "convert", "--out", str(tmp_path / "m.edgeav"), "--json", cwd=tiny_run.parents[1]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    assert Path(res["run_dir"]).resolve() == tiny_run.resolve()
    assert res["quantization"] == "int8"
    assert set(res["models"]) == {"image", "audio"}
    for m in res["models"].values():
        assert m["drop_points"] <= 1.0 and m["size_bytes"] > 0 and m["gzip_bytes"] > 0
    assert res["fused"]["samples"] == 30

    # The table for a person (float16, explicit run folder), whole on an 80-column terminal.
    out = str(tmp_path / "f16.edgeav")
    proc = _edgeav("convert", str(tiny_run), "-q", "float16", "--out", out, columns=80)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for word in ("image", "audio", "fused", "bundle", "gzip KiB", "TFLite %", "agree %"):
        assert word in proc.stdout
    assert "…" not in proc.stdout
    assert "edgeav: error" not in proc.stderr

    # edgeav info: tables (the figures whole on an 80-column terminal) and --json.
    proc = _edgeav("info", str(tmp_path / "m.edgeav"), columns=80)
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    for word in ("int8", "FULLY_CONNECTED", "zero point", "operators", "image.tflite"):
        assert word in proc.stdout
    proc = _edgeav("info", str(tmp_path / "m.edgeav"), "--json")
    info = json.loads(proc.stdout)
    assert info["manifest"]["quantization"] == "int8"
    image = info["models"]["image"]["tflite"]
    assert image["inputs"][0]["dtype"] == "int8" and image["inputs"][0]["shape"] == [1, 32, 32, 1]
    assert image["outputs"][0]["shape"] == [1, 10]
    assert image["op_counts"]["CONV_2D"] >= 1


def test_convert_command_errors_are_one_line(tmp_path):
    proc = _edgeav("convert", str(tmp_path / "nope"), "--out", str(tmp_path / "x.edgeav"))
    assert proc.returncode == 3
    assert proc.stderr.strip().startswith("edgeav: error:")
    assert "nope" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = _edgeav("convert", "-q", "int4", cwd=tmp_path)
    assert proc.returncode == 3 and "--quantize" in proc.stderr
    proc = _edgeav("convert", "--structured", "2:4", "--prune", "0.7", cwd=tmp_path)
    assert proc.returncode == 3 and "2:4" in proc.stderr
    proc = _edgeav("convert", cwd=tmp_path)  # no runs/ here
    assert proc.returncode == 3 and "runs" in proc.stderr
    assert os.listdir(tmp_path) == []


def test_info_command_on_tiny_bundle(tiny_bundle):
    proc = _edgeav("info", str(tiny_bundle))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for word in ("classes", "10:", "int8", "CONV_2D", "FULLY_CONNECTED", "image", "audio"):
        assert word in out, word
    proc = _edgeav("info", str(tiny_bundle), "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["size_bytes"] == tiny_bundle.stat().st_size
    assert res["manifest"]["classes"] == [str(i) for i in range(10)]
    image = res["models"]["image"]["tflite"]
    assert image["inputs"][0]["dtype"] == "int8" and image["inputs"][0]["scale"]
    assert res["models"]["audio"]["tflite"]["inputs"][0]["shape"][1] > 100


def test_info_needs_no_tensorflow_and_rejects_bad_bundles(tiny_bundle, tmp_path):
    code = (
        "import sys, json\n"
        "from edgeav.bundle import read_bundle\n"
        "from edgeav.commands.info import bundle_info\n"
        f"bundle_info(read_bundle({str(tiny_bundle)!r}))\n"
        "print(json.dumps([m for m in ('tensorflow', 'tf_keras') if m in sys.modules]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    bad = tmp_path / "bad.edgeav"
    bad.write_bytes(tiny_bundle.read_bytes()[:500])
    proc = _edgeav("info", str(bad))
    assert proc.returncode == 3
    assert proc.stderr.startswith("edgeav: error: bundle") and str(bad) in proc.stderr


def test_newest_run_and_output_checks(tmp_path):
    from edgeav.converters.convert import check_output
    from edgeav.run_folder import newest_run

    runs = tmp_path / "runs"
    for i, name in enumerate(["20260101-000000", "20250101-000000", "notarun"]):
        (runs / name).mkdir(parents=True)
        if name != "notarun":
            (runs / name / "run.json").write_text("{}")
            os.utime(runs / name / "run.json", (1000 + i, 1000 + i))
    assert newest_run(runs).name == "20250101-000000"  # written last
    with pytest.raises(EdgeAVError, match="no training run"):
        newest_run(runs / "notarun")
    with pytest.raises(EdgeAVError, match="does not exist"):
        newest_run(tmp_path / "none")
    with pytest.raises(EdgeAVError, match="is a folder"):
        check_output(runs)
    with pytest.raises(EdgeAVError, match="does not exist"):
        check_output(tmp_path / "missing" / "m.edgeav")
    assert check_output(tmp_path / "m.edgeav") == tmp_path / "m.edgeav"


def test_progress_stages_match_the_work(tiny_keras_models, tiny_data, tmp_path):
    from edgeav.converters.convert import ConvertOptions, convert_models
    from edgeav.features import FeatureConfig
    from edgeav.fusion import FusionWeights
    from edgeav.preprocess import ImageSpec

    class Count:
        def __init__(self):
            self.stages, self.notes = [], []

        def stage(self, description):
            self.stages.append(description)

        def note(self, description):
            self.notes.append(description)

    counter = Count()
    options = ConvertOptions(quantize="float32")
    result = convert_models(
        tiny_keras_models,
        classes=[str(i) for i in range(10)],
        image_spec=ImageSpec(size=32, channels=1),
        feature_config=FeatureConfig(),
        fusion=FusionWeights(1.0, 1.0),
        train=tiny_data["train"],
        test=tiny_data["test"],
        out=tmp_path / "f32.edgeav",
        options=options,
        progress=counter,
    )
    assert len(counter.stages) == options.stages(2) == 8
    assert counter.stages[-1].startswith("writing")
    assert result.fused is not None and result.fused.agreement == 1.0
    assert ConvertOptions(prune=0.5).stages(2) == 10
    assert ConvertOptions().stages(1) == 4
