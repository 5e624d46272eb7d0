"""``edgeav train``: a tiny end-to-end run that ``read_run`` reads back, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeav.errors import EdgeAVError

CLASSES = ("a", "b", "c")
SPLITS = {"train": 4, "val": 2, "test": 2, "test-noisy": 2}


def _edgeav(*args):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "edgeav", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _write_tiny_dataset(root: Path) -> Path:
    """3 classes of 28x28 PNG stripes (class = orientation) and 1 s WAV tones (class = pitch)."""
    import cv2
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000.0
    for split, n in SPLITS.items():
        for k, cls in enumerate(CLASSES):
            img_dir = root / split / "image" / cls
            aud_dir = root / split / "audio" / cls
            img_dir.mkdir(parents=True)
            aud_dir.mkdir(parents=True)
            for i in range(n):
                img = np.zeros((28, 28), np.uint8)
                if k == 0:
                    img[:, 10 + i : 16 + i] = 255
                elif k == 1:
                    img[10 + i : 16 + i, :] = 255
                else:
                    np.fill_diagonal(img, 255)
                img = np.clip(img + rng.integers(0, 40, img.shape), 0, 255).astype(np.uint8)
                assert cv2.imwrite(str(img_dir / f"{i}.png"), img)
                tone = 0.3 * np.sin(2 * np.pi * (300 + 400 * k) * t)
                clip = tone + 0.01 * rng.normal(size=t.size)
                sf.write(aud_dir / f"{i}.wav", clip.astype(np.float32), 16000, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from edgeav.train import TrainConfig, train

    root = tmp_path_factory.mktemp("train")
    data = _write_tiny_dataset(root / "data")
    cfg = TrainConfig(
        audio_model="audio-mlp",
        input_size=32,
        epochs=1,
        audio_epochs=1,
        triplet_epochs=1,
        audio_triplet_epochs=1,
        head_epochs=1,
        batch_size=8,
        triplet_batch_size=12,
        audio_augment=1,
    )
    metrics = train(data, root / "run", cfg, progress=False)
    return root / "run", metrics


@pytest.mark.slow
@pytest.mark.parametrize("audio_model", ["audio-hybrid", "audio-embed", "audio-dscnn"])
def test_sequence_audio_models_train_convert_and_run(audio_model, tmp_path):
    """Each audio model end to end: trained (tiny), converted to int8 with its front-end in the
    bundle, described by `edgeav info` and run by `edgeav run` on a WAV of its tones."""
    import soundfile as sf

    from edgeav.bundle import read_bundle
    from edgeav.converters.convert import ConvertOptions, convert_run
    from edgeav.run_folder import read_run
    from edgeav.train import TrainConfig, train

    data = _write_tiny_dataset(tmp_path / "data")
    cfg = TrainConfig(
        audio_model=audio_model,
        input_size=32,
        epochs=1,
        audio_epochs=25,
        triplet_epochs=0,
        audio_triplet_epochs=1,
        head_epochs=2,
        batch_size=8,
        triplet_batch_size=12,
        audio_augment=1,
    )
    metrics = train(data, tmp_path / "run", cfg, progress=False)
    assert metrics["audio_model"] == audio_model
    assert metrics["audio_augmented"] == 12
    run = read_run(tmp_path / "run")
    assert run.audio_variant == audio_model and run.audio_input.target_dbfs == -20.0
    assert run.feature_config.window_seconds == 1.5
    embed = audio_model in ("audio-hybrid", "audio-embed")
    assert (run.frontend_models is not None) == embed
    assert metrics["step2"]["accuracy"]["test"]["audio"] >= 0.9  # three tones

    out = tmp_path / "model.edgeav"
    options = ConvertOptions(quantize="int8", calibration_samples=12, allow_drop=True)
    convert_run(tmp_path / "run", out, options)
    bundle = read_bundle(out)
    assert bundle.manifest.format_version == 6
    assert bundle.calibration == run.calibration  # fitted on val, carried into the bundle
    assert all(t > 0 for t in run.calibration.temperature.values())
    assert bundle.audio_input == run.audio_input
    assert (bundle.frontend_models() is not None) == embed
    if embed:
        assert bundle.frontend_models() == run.frontend_models
        assert bundle.manifest.frontend["origin"]["license"] == "Apache-2.0"

    info = _edgeav("info", out)
    assert info.returncode == 0, info.stderr
    assert ("speech embeddings" if embed else "log-mel frames") in info.stdout
    t = np.arange(16000) / 16000.0
    t = np.arange(24000) / 16000.0
    clips = [
        0.3 * np.sin(2 * np.pi * (300 + 400 * k) * t[: 16000 + 8000 * (k == 0)]) for k in (0, 2, 1)
    ]
    wav = tmp_path / "tones.wav"  # 1.5 s of the first tone, then 1 s of each other
    sf.write(wav, np.concatenate(clips).astype(np.float32), 16000)
    run_ = _edgeav("run", "--model", out, "--audio-file", wav, "--no-realtime", "--json")
    assert run_.returncode == 0, run_.stderr
    lines = [json.loads(line) for line in run_.stdout.splitlines()]
    records, summary = lines[:-1], lines[-1]["summary"]
    assert [r["window"] for r in records] == [[0.0, 1.5], [1.0, 2.5], [2.0, 3.5]]
    assert {"frontend", "audio"} <= set(summary["latency_ms"])
    assert records[0]["label"] == CLASSES[0]  # the first window holds only the first tone


@pytest.mark.slow
def test_tiny_run_writes_a_run_folder_read_run_reads(tiny_run):
    from edgeav.features import FeatureConfig
    from edgeav.fusion import FusionWeights
    from edgeav.preprocess import ImageSpec
    from edgeav.run_folder import read_run

    run_dir, metrics = tiny_run
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "audio.keras",
        "image.keras",
        "metrics.json",
        "run.json",
    ]
    run = read_run(run_dir)
    assert run.classes == list(CLASSES)
    assert run.image_spec == ImageSpec(size=32, channels=3)
    assert run.feature_config == FeatureConfig(statistics=("mean", "std", "max"))
    assert isinstance(run.fusion, FusionWeights)
    assert run.image_variant == "resnet-sep-tiny"
    assert run.data_dir is not None and run.data_dir.is_absolute()

    # Both steps evaluated on every split, for image, audio and fused.
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    for step in ("step1", "step2"):
        for split in ("val", "test", "test-noisy"):
            acc = on_disk[step]["accuracy"][split]
            assert set(acc) == {"image", "audio", "fused", "pairs"}
            assert all(0.0 <= acc[m] <= 1.0 for m in ("image", "audio", "fused"))
            assert acc["pairs"] == SPLITS[split] * len(CLASSES)
    assert on_disk["counts"]["train"] == {"image": 12, "audio": 12}
    assert on_disk["audio_augmented"] == 12
    assert metrics["step2"]["accuracy"] == on_disk["step2"]["accuracy"]

    # The saved models are classifiers: raw input -> softmax over the classes, no Lambda layers,
    # and the audio model standardises raw feature vectors itself.
    image = run.load_image_model()
    audio = run.load_audio_model()
    for model in (image, audio):
        assert not any(type(layer).__name__ == "Lambda" for layer in model.layers)
        assert model.get_layer("embedding") is not None and model.get_layer("head") is not None
    x = np.zeros((2, 32, 32, 3), np.float32)
    p = image.predict(x, verbose=0)
    assert p.shape == (2, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert any(type(layer).__name__ == "Normalization" for layer in audio.layers)
    dim = run.feature_config.dim
    assert audio.input_shape == (None, dim)
    feats = np.random.default_rng(1).normal(size=(2, dim)).astype(np.float32)
    assert audio.predict(feats, verbose=0).shape == (2, 3)


def test_read_run_errors_name_the_problem(tmp_path):
    from edgeav.run_folder import read_run

    with pytest.raises(EdgeAVError, match="does not exist"):
        read_run(tmp_path / "nope")
    with pytest.raises(EdgeAVError, match="run.json is missing"):
        read_run(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(EdgeAVError, match="cannot read"):
        read_run(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(EdgeAVError, match="not an edgeav-run/1 file"):
        read_run(tmp_path)
    meta = {
        "format": "edgeav-run/1",
        "classes": ["a", "b"],
        "image_spec": {"size": 32},
        "feature_config": {},
        "image_model": "image.keras",
        "audio_model": "audio.keras",
        "fusion": {"image": 1.0, "audio": 1.0},
    }
    (tmp_path / "run.json").write_text(json.dumps(meta))
    with pytest.raises(EdgeAVError, match="image.keras is missing"):
        read_run(tmp_path)


def test_train_rejects_bad_arguments_before_training(tmp_path):
    from edgeav.train import TrainConfig, train

    with pytest.raises(EdgeAVError, match="data folder .* does not exist"):
        train(tmp_path / "missing", tmp_path / "run")
    (tmp_path / "run").mkdir()
    with pytest.raises(EdgeAVError, match="already exists"):
        train(tmp_path, tmp_path / "run")
    with pytest.raises(EdgeAVError, match="--margin"):
        train(tmp_path, tmp_path / "run2", TrainConfig(margin=0))
    for name in ("no-such-model", "audio-mlp"):
        with pytest.raises(EdgeAVError, match=f"unknown image model '{name}'"):
            train(tmp_path, tmp_path / "run2", TrainConfig(image_model=name))
    assert not (tmp_path / "run2").exists()


def test_cli_missing_data_dir_is_a_one_line_error(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeav",
            "train",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3
    assert (
        proc.stderr.strip() == f"edgeav: error: data folder {tmp_path / 'missing'} does not exist"
    )
    assert proc.stdout == ""
    assert not (tmp_path / "r").exists()


def test_random_shift_moves_content_within_bounds():
    from edgeav.augment import random_shift

    x = np.zeros((50, 8, 8, 1), np.float32)
    x[:, 3:5, 3:5] = 1.0
    out = random_shift(x, 2, np.random.default_rng(0))
    assert out.shape == x.shape
    np.testing.assert_allclose(out.sum(axis=(1, 2, 3)), 4.0)  # the blob is never cut off
    assert (out != x).any(axis=(1, 2, 3)).sum() > 25  # most images moved
    np.testing.assert_array_equal(random_shift(x, 0, np.random.default_rng(0)), x)


def test_degrade_images_cutout_and_noise_stay_in_range():
    from edgeav.augment import degrade_images

    x = np.full((40, 16, 16, 1), 0.5, np.float32)
    rng = np.random.default_rng(0)
    assert degrade_images(x, rng, fraction=0.0) is x
    out = degrade_images(x, rng, fraction=1.0, value_range=(0.0, 1.0))
    assert out.shape == x.shape and out.min() >= 0.0 and out.max() <= 1.0
    assert np.all((out != 0.5).any(axis=(1, 2, 3)))  # every image changed
    np.testing.assert_array_equal(x, 0.5)  # the input is left alone
    half = degrade_images(x, np.random.default_rng(1), fraction=0.5)
    changed = int((half != 0.5).any(axis=(1, 2, 3)).sum())
    assert 8 <= changed <= 32


def test_step2_is_kept_only_where_it_does_not_lower_val_accuracy():
    from types import SimpleNamespace

    from edgeav.tf import keras as get_keras
    from edgeav.train import _keep_step2

    keras = get_keras()
    models = {}
    for name in ("image", "audio"):
        inp = keras.Input((4,))
        models[name] = keras.Model(inp, keras.layers.Dense(3)(inp))
    before = {n: m.get_weights() for n, m in models.items()}
    for m in models.values():  # "step 2" changes every weight
        m.set_weights([w + 1.0 for w in m.get_weights()])
    after = {n: m.get_weights() for n, m in models.items()}
    results = {
        "step1": {"accuracy": {"val": {"image": 0.90, "audio": 0.95}}},
        "step2": {"accuracy": {"val": {"image": 0.90, "audio": 0.93}}},
    }
    lines: list[str] = []
    mods = tuple(SimpleNamespace(name=n, model=m) for n, m in models.items())
    kept = _keep_step2(mods, before, results, lines.append)
    assert kept == {"image": True, "audio": False}
    for got, want in zip(models["image"].get_weights(), after["image"], strict=True):
        np.testing.assert_array_equal(got, want)  # a tie keeps step 2
    for got, want in zip(models["audio"].get_weights(), before["audio"], strict=True):
        np.testing.assert_array_equal(got, want)
    assert lines == ["audio: step 2 lowered val accuracy (95.0 -> 93.0); the step-1 model is kept"]
