"""The data set folder's ``none`` class folders: inputs that show or say nothing, not a class."""

from __future__ import annotations

import cv2
import media
import numpy as np
import pytest

from edgeav.data.loader import NOTHING, load_dataset, scan_dataset
from edgeav.features import FeatureConfig
from edgeav.preprocess import ImageSpec
from edgeav.streams import make_test_stream


def write_folder(root, nothing_image=2, nothing_audio=1):
    for split in ("train", "val"):
        for cls, level in (("dark", 30), ("bright", 220)):
            img_dir = root / split / "image" / cls
            img_dir.mkdir(parents=True)
            aud_dir = root / split / "audio" / cls
            aud_dir.mkdir(parents=True)
            for k in range(3):
                cv2.imwrite(str(img_dir / f"{k}.png"), np.full((16, 16), level, np.uint8))
                media.write_wav(aud_dir / f"{k}.wav", media.tone(0 if cls == "dark" else 1))
        for k in range(nothing_image):
            path = root / split / "image" / NOTHING / f"{k}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.full((16, 16), 128, np.uint8))
        for k in range(nothing_audio):
            path = root / split / "audio" / NOTHING / f"{k}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            noise = np.random.default_rng(k).normal(0, 0.01, media.SR).astype(np.float32)
            media.write_wav(path, noise)
    return root


def test_none_is_not_a_class_but_its_inputs_are_loaded(tmp_path):
    root = write_folder(tmp_path / "data")
    assert scan_dataset(root).classes == ["bright", "dark"]
    ds = load_dataset(root, ImageSpec(size=16, channels=1), FeatureConfig(), progress=False)
    train = ds["train"]
    assert train.images.shape == (6, 16, 16, 1) and set(train.image_labels) == {0, 1}
    assert train.nothing["image"].shape == (2, 16, 16, 1)
    assert np.allclose(train.nothing["image"], 128 / 255)
    assert train.nothing["audio"].shape[0] == 1 and len(train.audio_labels) == 6
    assert train.counts() == {"image": 6, "audio": 6, "image_nothing": 2, "audio_nothing": 1}


def test_through_a_front_end_none_clips_come_centred_and_filling_the_window(tmp_path):
    """Each none clip twice: in silence as every clip, and repeated to fill the window, as a
    microphone hears room noise; a second load reads both from the cache."""
    from edgeav.data.loader import read_audio
    from edgeav.features import prepare_audio
    from edgeav.runtime.frontend import AudioInput, FrontEnd, fit_window

    root = write_folder(tmp_path / "data", nothing_audio=2)
    config = FeatureConfig(window_seconds=1.5)
    front = FrontEnd(AudioInput("log-mel", target_dbfs=-20.0), config)
    spec = ImageSpec(size=16, channels=1)
    cache = tmp_path / "cache"
    ds = load_dataset(root, spec, config, progress=False, frontend=front, cache_dir=cache)
    nothing = ds["train"].nothing["audio"]
    assert nothing.shape == (4, *front.shape)
    y, sr = read_audio(root / "train" / "audio" / NOTHING / "0.wav")
    clip = prepare_audio(y, config, sr=sr)  # 1 s of noise
    np.testing.assert_allclose(nothing[0], front(fit_window(clip, front.window)), atol=1e-5)
    np.testing.assert_allclose(nothing[2], front(np.resize(clip, front.window)), atol=1e-5)
    assert ds["train"].counts()["audio_nothing"] == 4 and len(ds["train"].audio_labels) == 6
    again = load_dataset(root, spec, config, progress=False, frontend=front, cache_dir=cache)
    np.testing.assert_array_equal(again["train"].nothing["audio"], nothing)
    assert sorted(p.name.split("-")[0] for p in cache.iterdir()).count("looped") == 2


def test_a_folder_without_none_has_empty_nothing_arrays(tmp_path):
    root = write_folder(tmp_path / "data", nothing_image=0, nothing_audio=0)
    ds = load_dataset(root, ImageSpec(size=16, channels=1), FeatureConfig(), progress=False)
    assert ds["train"].nothing["image"].shape == (0, 16, 16, 1)
    assert ds["train"].counts() == {"image": 6, "audio": 6}


def test_streams_leave_the_none_folder_out(tmp_path):
    root = write_folder(tmp_path / "data")
    stream = make_test_stream(root, "val", tmp_path / "v.mkv", tmp_path / "a.wav")
    assert sorted(stream.labels) == ["bright"] * 3 + ["dark"] * 3
    assert all(NOTHING not in p.parts for p in stream.image_files)


@pytest.mark.parametrize("modality", ["image", "audio"])
def test_only_none_in_a_modality_is_not_a_class_mismatch(tmp_path, modality):
    root = write_folder(tmp_path / "data")
    other = "audio" if modality == "image" else "image"
    for split in ("train", "val"):
        for f in (root / split / other / NOTHING).iterdir():
            f.unlink()
        (root / split / other / NOTHING).rmdir()
    assert scan_dataset(root).classes == ["bright", "dark"]


def test_a_stream_of_nothing(tmp_path):
    from edgeav.data.loader import read_audio
    from edgeav.streams import make_nothing_stream

    root = write_folder(tmp_path / "data")
    stream = make_nothing_stream(root, "val", tmp_path / "n.mkv", tmp_path / "n.wav", seconds=5)
    assert stream.labels == [""] * 5 and len(stream.image_files) == 5
    assert all(p.parent.name == NOTHING for p in stream.image_files + stream.audio_files)
    cap = cv2.VideoCapture(str(stream.video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 50
    y, sr = read_audio(stream.wav)
    assert sr == media.SR and len(y) == 5 * media.SR and 0 < np.std(y) < 0.05


def test_image_inputs_are_cached_and_a_changed_file_is_read_again(tmp_path, monkeypatch):
    """A second load takes the images' inputs from the cache (the preprocessing is not run);
    a rewritten file, or another image spec, is prepared again."""
    from edgeav.data import loader

    root = write_folder(tmp_path / "data")
    cache = tmp_path / "cache"
    spec = ImageSpec(size=16, channels=1)
    first = load_dataset(root, spec, FeatureConfig(), progress=False, cache_dir=cache)
    assert len(list(cache.glob("image-*.npy"))) == 2  # train and val

    def not_again(*args, **kwargs):
        raise AssertionError("the images were prepared again")

    monkeypatch.setattr(loader, "_image_inputs", not_again)
    second = load_dataset(root, spec, FeatureConfig(), progress=False, cache_dir=cache)
    np.testing.assert_array_equal(second["train"].images, first["train"].images)
    with pytest.raises(AssertionError, match="prepared again"):
        load_dataset(
            root, ImageSpec(size=12, channels=1), FeatureConfig(), progress=False, cache_dir=cache
        )
    cv2.imwrite(str(root / "train" / "image" / "dark" / "0.png"), np.zeros((16, 16), np.uint8))
    with pytest.raises(AssertionError, match="prepared again"):
        load_dataset(root, spec, FeatureConfig(), progress=False, cache_dir=cache)


def test_camera_frames_load_as_every_candidate_of_the_digit_finder(tmp_path):
    """``crop="digit"``: each image is loaded as all its candidate layouts (the finder's two
    searches), the first of them the training input preprocess_image gives."""
    from edgeav.data import scenes
    from edgeav.preprocess import image_candidates, preprocess_image

    root = write_folder(tmp_path / "data")
    rng = np.random.default_rng(0)
    ink = np.zeros((28, 28), np.uint8)
    cv2.line(ink, (8, 6), (20, 6), 255, 3)
    cv2.line(ink, (20, 6), (12, 22), 255, 3)  # a 7
    paths = sorted((root / "train" / "image").glob("*/*.png"))
    for path in paths:  # the flat grey squares become camera frames of the 7
        cv2.imwrite(str(path), scenes.compose_scene(ink, rng).image)
    spec = ImageSpec(size=32, channels=1, crop="digit", invert=False)
    ds = load_dataset(root, spec, FeatureConfig(), splits=["train"], progress=False)
    train = ds["train"]
    assert train.images.shape == (6, 2, 32, 32, 1)
    assert train.nothing["image"].shape == (2, 2, 32, 32, 1)
    for row, path in zip(train.images, train.image_paths, strict=True):
        frame = cv2.imread(str(path))
        np.testing.assert_array_equal(row, image_candidates(frame, spec))
        np.testing.assert_array_equal(row[0], preprocess_image(frame, spec))
