"""Shared fixtures: small real artifacts built once per session.

Converters:
- ``tiny_data``: synthetic, learnable train/test arrays for 10 classes (images 32x32x1, audio
  feature vectors of ``FeatureConfig().dim``), as ``edgeav.converters.convert.SplitArrays``.
- ``tiny_keras_models``: ``{"image": model, "audio": model}``, tiny tf_keras classifiers trained
  for a few seconds on ``tiny_data`` (the audio model starts with a Normalization layer, as the
  real audio encoder does).
- ``tiny_bundle``: path to a real int8 ``model.edgeav`` (10 classes "0".."9", image spec
  32x32x1, audio dim ``FeatureConfig().dim``) converted from those models with TFLiteConverter
  and checked in LiteRT by ``edgeav.converters.convert.convert_models``. Treat it as read-only
  (copy it before modifying).
- ``counted_recipe``: ``(recipe, seen)``, a fine-tuning recipe for the tiny image model whose
  augmentation records every batch size it sees.

Devices:
- ``looping_capture``: the class :class:`LoopingCapture`, a stand-in camera device made of a
  real ``cv2.VideoCapture`` of a video file, for ``LiveCamera(..., opener=...)``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

TINY_CLASSES = [str(i) for i in range(10)]

#: Fixtures that train Keras models or convert them to TFLite: a test using one is ``slow`` (run
#: by ``make test``, left out of ``make test-fast``).
SLOW_FIXTURES = {"tiny_keras_models", "tiny_bundle", "av_models", "av_bundle"}


def pytest_configure(config):
    """Every cache edgeav writes during the tests (``$EDGEAV_CACHE``: model inputs, converted zoo
    variants) goes to a folder of this session, removed at its end, never the user's own."""
    config._edgeav_cache = tempfile.mkdtemp(prefix="edgeav-test-cache-")
    os.environ["EDGEAV_CACHE"] = config._edgeav_cache


def pytest_unconfigure(config):
    cache = getattr(config, "_edgeav_cache", None)
    if cache:
        shutil.rmtree(cache, ignore_errors=True)


def pytest_collection_modifyitems(items):
    """Mark the tests that use a slow fixture ``slow``; then run the files with slow tests first
    (each file in its own order), so that `make test`'s workers, which take a file at a time,
    end with quick files instead of one worker finishing a long one alone."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: files keep their order


TINY_IMAGE_SIZE = 32


def _tiny_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """32x32x1 images in 0..1: a bright 8x8 square whose position encodes the class, plus noise."""
    n = len(labels)
    x = rng.uniform(0.0, 0.25, size=(n, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, 1)).astype(np.float32)
    for i, c in enumerate(labels):
        r, q = divmod(int(c), 5)
        top, left = 4 + 16 * r + int(rng.integers(-2, 3)), 1 + 6 * q + int(rng.integers(0, 2))
        x[i, top : top + 8, left : left + 6, 0] += 0.7
    return np.clip(x, 0.0, 1.0)


def _tiny_audio(labels: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Feature vectors with class-dependent means and very different scales per dimension."""
    means = np.random.default_rng(1234).normal(size=(10, dim)).astype(np.float32)
    scales = np.geomspace(0.01, 100.0, dim).astype(np.float32)
    noise = rng.normal(scale=0.6, size=(len(labels), dim)).astype(np.float32)
    return ((means[labels] + noise) * scales + 5.0).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_image_maker():
    """``f(labels, rng) -> (N, 32, 32, 1)`` images in 0..1 of the ``tiny_data`` kind."""
    return _tiny_images


@pytest.fixture(scope="session")
def tiny_data():
    from edgeav.converters.convert import SplitArrays
    from edgeav.features import FeatureConfig

    dim = FeatureConfig().dim
    rng = np.random.default_rng(0)
    splits = {}
    for name, n in (("train", 400), ("test", 200)):
        yi = np.arange(n) % 10
        ya = rng.permutation(yi)
        splits[name] = SplitArrays(
            images=_tiny_images(yi, rng),
            image_labels=yi.astype(np.int64),
            audio=_tiny_audio(ya, dim, rng),
            audio_labels=ya.astype(np.int64),
        )
    return splits


@pytest.fixture(scope="session")
def tiny_keras_models(tiny_data):
    from edgeav.tf import keras as _keras

    keras = _keras()
    keras.utils.set_random_seed(0)
    train = tiny_data["train"]

    inp = keras.Input((TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, 1), name="image")
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv")(inp)
    h = keras.layers.SeparableConv2D(
        16, 3, strides=2, padding="same", activation="relu", name="sep"
    )(h)
    h = keras.layers.Flatten(name="flatten")(h)
    out = keras.layers.Dense(10, activation="softmax", name="head")(h)
    image = keras.Model(inp, out, name="tiny_image")

    dim = train.audio.shape[1]
    ain = keras.Input((dim,), name="features")
    norm = keras.layers.Normalization(name="normalization")
    norm.adapt(train.audio)
    a = norm(ain)
    a = keras.layers.Dense(32, activation="relu", name="hidden")(a)
    aout = keras.layers.Dense(10, activation="softmax", name="head")(a)
    audio = keras.Model(ain, aout, name="tiny_audio")

    for model, x, y in (
        (image, train.images, train.image_labels),
        (audio, train.audio, train.audio_labels),
    ):
        model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    return {"image": image, "audio": audio}


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_data, tiny_keras_models):
    """Path to a real int8 ``.edgeav`` (10 classes, image 32x32x1, audio FeatureConfig().dim)."""
    from edgeav.converters.convert import ConvertOptions, convert_models
    from edgeav.features import FeatureConfig
    from edgeav.fusion import FusionWeights
    from edgeav.preprocess import ImageSpec

    out = tmp_path_factory.mktemp("tiny_bundle") / "tiny.edgeav"
    convert_models(
        tiny_keras_models,
        classes=TINY_CLASSES,
        image_spec=ImageSpec(size=TINY_IMAGE_SIZE, channels=1),
        feature_config=FeatureConfig(),
        fusion=FusionWeights(image=1.0, audio=1.0),
        train=tiny_data["train"],
        test=tiny_data["test"],
        out=out,
        options=ConvertOptions(quantize="int8", calibration_samples=100),
    )
    return out


class LoopingCapture:
    """A camera device made of a real ``cv2.VideoCapture`` of ``video``: looped (a camera never
    ends) and paced at ``fps``, with faults on demand.

    ``fault()`` is asked before every read: ``None`` delivers the next frame, ``"false"`` makes
    ``read`` return ``(False, None)`` (a camera that stops delivering), ``"raise"`` raises
    ``cv2.error`` (a crashing driver). ``online()`` answers ``isOpened``.
    """

    def __init__(
        self,
        video: Path,
        fps: float,
        fault: Callable[[], str | None] = lambda: None,
        online: Callable[[], bool] = lambda: True,
    ) -> None:
        import cv2

        self._cv2, self._video, self.period = cv2, video, 1 / fps
        self._fault, self._online = fault, online
        self._cap = cv2.VideoCapture(str(video))

    def isOpened(self):  # noqa: N802 - mirrors cv2.VideoCapture
        return self._online() and self._cap.isOpened()

    def read(self):
        time.sleep(self.period)
        fault = self._fault()
        if fault == "raise":
            raise self._cv2.error("simulated driver failure")
        if fault is not None:
            return False, None
        ok, img = self._cap.read()
        if not ok:  # end of the file: start it again
            self._cap.release()
            self._cap = self._cv2.VideoCapture(str(self._video))
            ok, img = self._cap.read()
        return ok, img

    def get(self, prop):
        return self._cap.get(prop)

    def release(self):
        self._cap.release()


@pytest.fixture(scope="session")
def looping_capture():
    return LoopingCapture


# --- the runtime's three-class models and bundles (see tests/media.py) ---------------------------


@pytest.fixture(scope="session")
def av_models(tmp_path_factory):
    """Keras + float32 and int8 TFLite versions of a brightness image model and a tone model
    for :mod:`media`'s three classes."""
    import media

    from edgeav.converters.quantize import convert_keras
    from edgeav.features import FeatureConfig, extract
    from edgeav.preprocess import ImageSpec
    from edgeav.tf import keras

    keras = keras()
    keras.utils.set_random_seed(0)
    spec = ImageSpec(size=8, channels=1, color_order="rgb", crop="none")
    config = FeatureConfig()
    # image: logits = w_c * mean(pixel) + b_c (hand-set: dark / mid / bright)
    inp = keras.Input(spec.shape)
    dense = keras.layers.Dense(3)
    image_model = keras.Model(inp, keras.layers.Softmax()(dense(keras.layers.Flatten()(inp))))
    n = int(np.prod(spec.shape))
    w = np.array([-40.0, 0.0, 40.0], np.float32) / n
    dense.set_weights([np.tile(w, (n, 1)), np.array([15.0, 0.0, -25.0], np.float32)])
    rng = np.random.default_rng(0)
    image_rep = rng.uniform(0, 1, size=(32, *spec.shape)).astype(np.float32)
    image_rep[:3] = np.asarray(media.LEVELS, np.float32)[:, None, None, None]
    # audio: a normalised softmax regression on edgeav features of noisy tones
    feats, labels = [], []
    for i in range(36):
        y = media.tone(i % 3, amp=rng.uniform(0.05, 0.5), phase=rng.uniform(0, 6))
        y = y + rng.normal(0, 0.01 * (i % 2), y.shape).astype(np.float32)
        feats.append(extract(y, config))
        labels.append(i % 3)
    feats, labels = np.stack(feats).astype(np.float32), np.asarray(labels)
    norm = keras.layers.Normalization()
    norm.adapt(feats)
    a_in = keras.Input((config.dim,))
    audio_model = keras.Model(a_in, keras.layers.Dense(3, activation="softmax")(norm(a_in)))
    audio_model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    audio_model.fit(feats, labels, epochs=40, verbose=0)
    folder = tmp_path_factory.mktemp("av_models")
    out = {"spec": spec, "config": config, "keras_image": image_model, "keras_audio": audio_model}
    for name, kind, model, rep in (
        ("image", "int8", image_model, image_rep),
        ("audio", "int8", audio_model, feats),
        ("audio", "float32", audio_model, feats),
    ):
        path = folder / f"{name}_{kind}.tflite"
        # the audio model keeps its leading normalisation (and so its input) in float, as
        # `edgeav convert` does: one int8 scale cannot hold raw features of such mixed ranges
        path.write_bytes(convert_keras(model, kind, rep, float_input=name == "audio"))
        out[f"{name}_{kind}"] = path
    out["audio_features"], out["audio_labels"] = feats, labels
    return out


def write_av_bundle(
    path: Path, models: dict, modalities=("image", "audio"), calibration=None
) -> Path:
    """A real int8 bundle of :func:`av_models`' models for ``modalities`` (neutral calibration
    unless one is given)."""
    import media

    from edgeav.bundle import Manifest, ModelEntry, write_bundle
    from edgeav.fusion import FusionWeights
    from edgeav.runtime.interpreter import load_interpreter

    members, entries = {}, {"image": None, "audio": None}
    for m in modalities:
        data = models[f"{m}_int8"].read_bytes()
        model = load_interpreter(data)
        members[f"{m}.tflite"] = data
        entries[m] = ModelEntry(
            file=f"{m}.tflite",
            input_shape=list(model.input_shape),
            input_dtype=model.input_dtype,
            output_shape=list(model.output_shape),
            output_dtype=model.output_dtype,
            params=0,
        )
    manifest = Manifest(
        classes=list(media.CLASSES),
        image=entries["image"],
        audio=entries["audio"],
        image_spec=models["spec"],
        feature_config=models["config"],
        fusion=FusionWeights(1.0, 1.0),
        quantization="int8",
        **({"calibration": calibration} if calibration is not None else {}),
    )
    return write_bundle(path, manifest, members)


@pytest.fixture(scope="session")
def av_bundle(av_models, tmp_path_factory):
    """Path to a real int8 bundle that tells :mod:`media`'s three classes apart exactly."""
    return write_av_bundle(tmp_path_factory.mktemp("av_bundle") / "model.edgeav", av_models)


@pytest.fixture()
def av_stream(tmp_path):
    """(video, wav) of :data:`media.SEQUENCE`, one class a second."""
    import media

    return media.write_stream(tmp_path, media.SEQUENCE)


@pytest.fixture()
def pulse(tmp_path):
    """A private PulseAudio server with a null sink whose monitor is the default source: a
    microphone that hears what the test plays (skips where PulseAudio cannot start)."""
    from edgeav.benchmarks.pulse import PulseServer, PulseUnavailable

    server = PulseServer(tmp_path / "pulse")
    try:
        server.start()
    except PulseUnavailable as exc:
        pytest.skip(f"PulseAudio cannot start here: {exc}")
    yield server
    server.close()


@pytest.fixture
def counted_recipe(tiny_data):
    """A fine-tuning :class:`~edgeav.converters.finetune.Recipe` for the tiny image model: 12
    all-black nothing-inputs and a light noise augmentation that records the size of every batch
    it augments (``seen``). Returns ``(recipe, seen)``."""
    from edgeav.converters.finetune import Recipe

    nothing = np.zeros((12, *tiny_data["train"].images.shape[1:]), np.float32)
    seen: list[int] = []

    def augment(x, rng):
        seen.append(len(x))
        return np.clip(x + rng.normal(0, 0.05, x.shape).astype(np.float32), 0, 1)

    return Recipe(nothing, augment), seen
