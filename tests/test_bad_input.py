"""Bad input across the CLI: one line naming the culprit, exit 3, nothing left behind.

Every failure row runs the real ``edgeav`` in a subprocess (``python -m edgeav``, cwd a fresh
folder) on a real artifact that is broken in one way: the session's real int8 bundle
(``tiny_bundle`` in conftest.py) mutated with zipfile, a real ``av-digits`` data set folder with
one file or folder spoiled, real WAVs and PNGs written with soundfile and OpenCV. Each asserts:

- exit status 3 (:data:`edgeav.errors.EXIT_USER_ERROR`), not a typer usage error (2) nor a crash;
- the error is one line, ``edgeav: error: ...``, naming the file, device or value, and it is the
  last line on stderr; before it only edgeav's own log lines and progress bars (for a command
  that had started working), never native library logs or warnings;
- no ``Traceback`` anywhere;
- the folder listing (and the output location's) is the same before and after: no output file,
  no ``*.part`` left behind.

Inputs that look odd but are valid (grayscale, RGBA and 16-bit images, a 1x1 image, 8-bit,
24-bit, 96 kHz and 6-channel WAVs, a WAV whose header claims more samples than it holds) are
"must succeed" rows: the loader and the runtime's audio source accept them and convert them
(:func:`test_valid_odd_images_are_accepted`, :func:`test_valid_odd_wavs_are_accepted`,
in-process) and ``edgeav run`` runs on one. A WAV whose header claims 0 samples is a failure row.

The cases run a few at a time in one module fixture (each is mostly a Python start-up); each
case's test reports its own outcome.

The read-only folder and the full device are small tmpfs mounts (read-only, and full to the last
byte) that ``make mounts`` makes under ``$EDGEAV_TEST_MOUNTS`` (as root); without them those rows
are skipped.
``/dev/full`` itself is covered as an output path: writing "to" it must be refused, not replace
the device node by a rename.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from edgeav.errors import EXIT_USER_ERROR

BUNDLE = "model.edgeav"


# --- artifacts ------------------------------------------------------------------------------------


def _entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _write_zip(path: Path, entries: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = stat.S_IFLNK | 0o777 if name in symlinks else stat.S_IFREG | 0o644
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def _manifest(entries: dict[str, bytes]) -> dict:
    return json.loads(entries["manifest.json"])


def _with_manifest(entries: dict[str, bytes], manifest: dict) -> dict[str, bytes]:
    return {**entries, "manifest.json": json.dumps(manifest).encode()}


def _with_member(entries: dict[str, bytes], name: str, data: bytes) -> dict[str, bytes]:
    """Replace one member and fix its sha256 in the manifest (so the hash check passes)."""
    m = _manifest(entries)
    m["members"][name] = hashlib.sha256(data).hexdigest()
    return {**_with_manifest(entries, m), name: data}


def _declare_huge(path: Path, member: str, size: int = 0xFFFFFFF0) -> Path:
    """Patch the central directory so ``member`` declares ``size`` uncompressed bytes."""
    data = bytearray(path.read_bytes())
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        name = bytes(data[pos + 46 : pos + 46 + name_len]).decode()
        if name == member:
            struct.pack_into("<I", data, pos + 24, size)
            path.write_bytes(bytes(data))
            return path
        pos = data.find(b"PK\x01\x02", pos + 46 + name_len + extra_len + comment_len)
    raise AssertionError(f"{member} not in {path}")


def _png(path: Path, img: np.ndarray) -> Path:
    import cv2

    ok, buf = cv2.imencode(".png", img)
    assert ok
    path.write_bytes(buf.tobytes())  # by bytes: works for any file name
    return path


def _wav(path: Path, y: np.ndarray, sr: int = 16000, subtype: str = "PCM_16") -> Path:
    import soundfile as sf

    with open(path, "wb") as fh:  # by file object: works for any file name
        sf.write(fh, y, sr, subtype=subtype, format="WAV")
    return path


def _speech_like(seconds: float = 1.0, sr: int = 16000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    y = y.astype(np.float32)
    return y if channels == 1 else np.stack([y * (0.5 + 0.1 * c) for c in range(channels)], 1)


def _wav_header_claims(path: Path, data_bytes: int) -> Path:
    """Rewrite the ``data`` chunk size of a WAV: a header that lies about the length."""
    raw = bytearray(path.read_bytes())
    i = raw.find(b"data")
    struct.pack_into("<I", raw, i + 4, data_bytes)
    path.write_bytes(bytes(raw))
    return path


# --- places -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mounts():
    """``{"ro": read-only tmpfs, "full": tmpfs with 0 bytes free}``, mounted by ``make mounts``
    under ``$EDGEAV_TEST_MOUNTS`` (None where they are not mounted)."""
    base = Path(os.environ.get("EDGEAV_TEST_MOUNTS", "/tmp/edgeav-test-mounts"))
    return {kind: base / kind if os.path.ismount(base / kind) else None for kind in ("ro", "full")}


@pytest.fixture(scope="module")
def av_digits(tmp_path_factory) -> Path:
    """A real, tiny ``av-digits`` data set (1 image and 2 clips per class in train)."""
    from edgeav.data.avdigits import generate_av_digits

    out = tmp_path_factory.mktemp("avd") / "digits"
    generate_av_digits(out, per_class=1, progress=False)
    return out


# --- the table ----------------------------------------------------------------------------------


@dataclass
class Work:
    """What a case builds its input from: the run folder (cwd) and the session's artifacts."""

    dir: Path
    tiny_bundle: Path
    av_digits: Path
    mounts: dict[str, Path | None]
    watch: list[Path] = field(default_factory=list)  # more folders that must stay unchanged

    def bundle_entries(self) -> dict[str, bytes]:
        return _entries(self.tiny_bundle)

    def bundle(self, name: str = BUNDLE) -> Path:
        return Path(shutil.copy(self.tiny_bundle, self.dir / name))

    def zip(self, entries: dict[str, bytes], name: str = BUNDLE, **kw) -> Path:
        return _write_zip(self.dir / name, entries, **kw)

    def data(self, name: str = "data") -> Path:
        return Path(shutil.copytree(self.av_digits, self.dir / name))

    def run_dir(self, name: str = "run", data: Path | None = None, **changes) -> Path:
        """A run folder ``locate_run`` accepts (models are placeholders: never loaded)."""
        from edgeav.features import FeatureConfig
        from edgeav.preprocess import ImageSpec

        run = self.dir / name
        run.mkdir()
        for model in ("image.keras", "audio.keras"):
            (run / model).write_bytes(b"placeholder, not a Keras file")
        meta = {
            "format": "edgeav-run/1",
            "classes": [str(i) for i in range(10)],
            "data_dir": str(data if data is not None else self.data()),
            "image_spec": ImageSpec(size=32, channels=1).to_dict(),
            "feature_config": FeatureConfig().to_dict(),
            "image_model": "image.keras",
            "audio_model": "audio.keras",
            "image_variant": "resnet-sep-tiny",
            "fusion": {"image": 1.0, "audio": 1.0},
            "metrics": {},
        }
        meta.update(changes)
        (run / "run.json").write_text(json.dumps(meta))
        return run

    def mount(self, kind: str) -> Path:
        where = self.mounts[kind]
        if where is None:
            pytest.skip(f"no {kind} tmpfs mounted (`make mounts` mounts it, as root)")
        self.watch.append(where)
        return where

    def file(self, name: str, data: bytes = b"just a file\n") -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path


#: case id -> builder ``Work -> (argv, culprits)``; every culprit must appear in the message.
CASES: dict[str, Callable[[Work], tuple[list, list[str]]]] = {}


def case(name: str):
    def register(fn):
        assert name not in CASES
        CASES[name] = fn
        return fn

    return register


# bundles given to info / run / bench: the file itself ---------------------------------------------


@case("info: empty .edgeav")
def _(w):
    w.file(BUNDLE, b"")
    return ["info", BUNDLE], [BUNDLE, "empty"]


@case("info: truncated .edgeav")
def _(w):
    w.file(BUNDLE, w.tiny_bundle.read_bytes()[: w.tiny_bundle.stat().st_size // 2])
    return ["info", BUNDLE], [BUNDLE, "zip"]


@case("run: random-bytes .edgeav")
def _(w):
    w.file(BUNDLE, np.random.default_rng(1).bytes(5000))
    return ["run", "--model", BUNDLE, "--audio-file", "x.wav"], [BUNDLE]


@case("bench: truncated .edgeav (last byte cut)")
def _(w):
    w.file(BUNDLE, w.tiny_bundle.read_bytes()[:-1])
    return ["bench", BUNDLE, "--runs", "1", "--warmup", "0"], [BUNDLE]


@case("info: missing .edgeav")
def _(w):
    return ["info", "nowhere.edgeav"], ["nowhere.edgeav", "does not exist"]


@case("info: .edgeav is a folder")
def _(w):
    (w.dir / BUNDLE).mkdir()
    return ["info", BUNDLE], [BUNDLE, "not a file"]


@case("info: .edgeav name with spaces")
def _(w):
    w.file("my model v2.edgeav", np.random.default_rng(2).bytes(300))
    return ["info", "my model v2.edgeav"], ["my model v2.edgeav"]


@case("info: non-UTF-8 .edgeav name")
def _(w):
    (w.dir / os.fsdecode(b"mod\xe9le.edgeav")).write_bytes(b"PK\x03\x04 not really")
    # the message shows the undecodable byte escaped; the rest of the name is there verbatim
    return ["info", os.fsdecode(b"mod\xe9le.edgeav")], ["mod", "le.edgeav"]


# raw .tflite files: no command takes one, and each says so naming the file -------------------------


@case("info: empty .tflite")
def _(w):
    w.file("model.tflite", b"")
    return ["info", "model.tflite"], ["model.tflite"]


@case("info: truncated .tflite")
def _(w):
    data = w.bundle_entries()["image.tflite"]
    w.file("model.tflite", data[: len(data) // 3])
    return ["info", "model.tflite"], ["model.tflite"]


@case("bench: random-bytes .tflite")
def _(w):
    w.file("model.tflite", np.random.default_rng(3).bytes(4000))
    return ["bench", "model.tflite", "--runs", "1"], ["model.tflite"]


# .tflite members inside an otherwise valid bundle (hashes fixed up, so the model itself is checked)


@case("info: bundle with an empty image.tflite")
def _(w):
    w.zip(_with_member(w.bundle_entries(), "image.tflite", b""))
    return ["info", BUNDLE], [BUNDLE, "image.tflite"]


@case("run: bundle with a truncated image.tflite")
def _(w):
    e = w.bundle_entries()
    w.zip(_with_member(e, "image.tflite", e["image.tflite"][:700]))
    return ["run", "--model", BUNDLE, "--camera", "0"], [BUNDLE, "image.tflite"]


@case("bench: bundle with a random-bytes audio.tflite")
def _(w):
    e = w.bundle_entries()
    data = np.random.default_rng(4).bytes(len(e["audio.tflite"]))
    w.zip(_with_member(e, "audio.tflite", data))
    return ["bench", BUNDLE, "--runs", "1"], [BUNDLE, "audio.tflite"]


@case("info: bundle member tampered (sha256 mismatch)")
def _(w):
    e = w.bundle_entries()
    data = bytearray(e["audio.tflite"])
    data[len(data) // 2] ^= 0xFF
    w.zip({**e, "audio.tflite": bytes(data)})
    return ["info", BUNDLE], [BUNDLE, "audio.tflite", "sha256"]


# zip structure ----------------------------------------------------------------------------------


@case("info: zip with a ../ member")
def _(w):
    w.zip({**w.bundle_entries(), "../evil.tflite": b"x"})
    return ["info", BUNDLE], [BUNDLE, "../evil.tflite"]


@case("run: zip with an absolute-path member")
def _(w):
    w.zip({**w.bundle_entries(), "/tmp/evil.tflite": b"x"})
    return ["run", "--model", BUNDLE, "--camera", "0"], [BUNDLE, "/tmp/evil.tflite"]


@case("info: zip member declaring a huge size")
def _(w):
    _declare_huge(w.zip(w.bundle_entries()), "image.tflite")
    return ["info", BUNDLE], [BUNDLE, "image.tflite", "4294967280"]


@case("bench: zip with a symlink member")
def _(w):
    w.zip({**w.bundle_entries(), "image.tflite": b"/etc/passwd"}, symlinks=("image.tflite",))
    return ["bench", BUNDLE, "--runs", "1"], [BUNDLE, "image.tflite", "symlink"]


@case("info: zip without manifest.json")
def _(w):
    w.zip({k: v for k, v in w.bundle_entries().items() if k != "manifest.json"})
    return ["info", BUNDLE], [BUNDLE, "manifest.json"]


@case("info: zip with an unlisted member")
def _(w):
    w.zip({**w.bundle_entries(), "payload.py": b"print('hi')"})
    return ["info", BUNDLE], [BUNDLE, "payload.py"]


# manifest ----------------------------------------------------------------------------------------


def _manifest_case(w: Work, change: Callable[[dict], None]) -> None:
    e = w.bundle_entries()
    m = _manifest(e)
    change(m)
    w.zip(_with_manifest(e, m))


@case("run: manifest classes of the wrong type")
def _(w):
    _manifest_case(w, lambda m: m.update(classes="0123456789"))
    return ["run", "--model", BUNDLE, "--camera", "0"], [BUNDLE, "manifest.classes", "list"]


@case("info: manifest missing a field")
def _(w):
    _manifest_case(w, lambda m: m.pop("quantization"))
    return ["info", BUNDLE], [BUNDLE, "quantization"]


@case("bench: manifest input_shape of the wrong type")
def _(w):
    _manifest_case(w, lambda m: m["image"].update(input_shape="1x32x32x1"))
    return ["bench", BUNDLE, "--runs", "1"], [BUNDLE, "manifest.image.input_shape"]


@case("info: manifest is not JSON")
def _(w):
    w.zip({**w.bundle_entries(), "manifest.json": b"{not json"})
    return ["info", BUNDLE], [BUNDLE, "manifest.json"]


@case("info: manifest from a newer format version")
def _(w):
    _manifest_case(w, lambda m: m.update(format_version=7))
    return ["info", BUNDLE], [BUNDLE, "version 7"]


@case("run: labels do not match the model's output size")
def _(w):
    _manifest_case(w, lambda m: m.update(classes=[str(i) for i in range(9)]))
    return ["run", "--model", BUNDLE, "--camera", "0"], [BUNDLE, "9 labels"]


def _input_28(m: dict) -> None:
    m["image_spec"]["size"] = 28
    m["image"]["input_shape"] = [1, 28, 28, 1]


@case("bench: model input shape does not match the manifest")
def _(w):
    _manifest_case(w, _input_28)
    return ["bench", BUNDLE, "--runs", "1"], [BUNDLE, "image.tflite", "[1, 28, 28, 1]"]


@case("info: feature config of the wrong type")
def _(w):
    _manifest_case(w, lambda m: m["feature_config"].update(sample_rate="16k"))
    return ["info", BUNDLE], [BUNDLE, "sample_rate"]


# run: devices and media ---------------------------------------------------------------------------


@case("run: a camera index that does not exist")
def _(w):
    if Path("/dev/video7").exists():
        pytest.skip("this machine has a /dev/video7")
    w.bundle()
    return ["run", "--model", BUNDLE, "--camera", "7"], ["camera index 7"]


@case("run: a video that is not a video")
def _(w):
    w.bundle()
    w.file("clip.mp4", b"\x00\x00\x00\x18ftypmp42 but nothing else" * 20)
    return ["run", "--model", BUNDLE, "--camera", "clip.mp4", "--no-realtime"], ["clip.mp4"]


@case("run: a missing video file")
def _(w):
    w.bundle()
    return ["run", "--model", BUNDLE, "--camera", "gone.mkv"], ["gone.mkv", "does not exist"]


@case("run: an empty WAV")
def _(w):
    w.bundle()
    _wav(w.dir / "empty.wav", np.zeros(0, np.float32))
    return ["run", "--model", BUNDLE, "--audio-file", "empty.wav"], ["empty.wav"]


@case("run: a WAV that is not a WAV")
def _(w):
    w.bundle()
    w.file("noise.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(64))
    return ["run", "--model", BUNDLE, "--audio-file", "noise.wav"], ["noise.wav"]


@case("run: a float WAV with NaN")
def _(w):
    w.bundle()
    y = _speech_like(2.0)
    y[20000] = np.nan
    _wav(w.dir / "nan.wav", y, subtype="FLOAT")
    # the run starts (one log line), then the tick that reads the NaN fails
    return ["run", "--model", BUNDLE, "--audio-file", "nan.wav", "--no-realtime"], ["nan.wav"]


@case("run: a float WAV with NaN, in real time")
def _(w):
    w.bundle()
    y = _speech_like(2.0)
    y[20000] = np.nan  # at 1.25 s: the file is read up to each tick, so a later tick meets it
    _wav(w.dir / "nan.wav", y, subtype="FLOAT")
    return ["run", "--model", BUNDLE, "--audio-file", "nan.wav", "--rate", "5"], ["nan.wav", "NaN"]


@case("run: a WAV whose header says 0 samples")
def _(w):
    w.bundle()
    _wav_header_claims(_wav(w.dir / "liar.wav", _speech_like()), 0)
    return ["run", "--model", BUNDLE, "--audio-file", "liar.wav"], ["liar.wav"]


@case("run: tick rate 0")
def _(w):
    w.bundle()
    _wav(w.dir / "a.wav", _speech_like())
    return ["run", "--model", BUNDLE, "--audio-file", "a.wav", "--rate", "0"], ["rate", "0"]


# train: the data folder ---------------------------------------------------------------------------


def _first(folder: Path) -> Path:
    return sorted(folder.iterdir())[0]


@case("train: data folder does not exist")
def _(w):
    return ["train", "nodata", "--out", "run"], ["nodata", "does not exist"]


@case("train: data folder is a file")
def _(w):
    w.file("data")
    return ["train", "data", "--out", "run"], ["data", "not a folder"]


@case("train: a class with no images")
def _(w):
    data = w.data()
    for f in (data / "train" / "image" / "3").iterdir():
        f.unlink()
    return ["train", "data", "--out", "run"], ["'3'", "train/image/3"]


@case("train: classes that differ between image and audio")
def _(w):
    data = w.data()
    (data / "train" / "audio" / "7").rename(data / "train" / "audio" / "seven")
    return ["train", "data", "--out", "run"], ["'7'", "audio"]


@case("train: a class in test that train lacks")
def _(w):
    data = w.data()
    for m in ("image", "audio"):
        src = _first(data / "test" / m / "1")
        (data / "test" / m / "eleven").mkdir()
        shutil.copy(src, data / "test" / m / "eleven" / src.name)
    return ["train", "data", "--out", "run"], ["'eleven'", "test"]


@case("train: a .png that is not an image")
def _(w):
    data = w.data()
    _first(data / "train" / "image" / "5").write_bytes(b"GIF89a? no, just text")
    return ["train", "data", "--out", "run"], [str(Path("train/image/5"))]


@case("train: a .png with spaces in its name that is not an image")
def _(w):
    data = w.data()
    (data / "val" / "image" / "2" / "my scan (copy).png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + bytes(40)
    )
    return ["train", "data", "--out", "run"], ["my scan (copy).png"]


@case("train: a non-UTF-8 .png name that is not an image")
def _(w):
    data = w.data()
    bad = os.fsdecode(b"caf\xe9.png")
    (data / "test" / "image" / "4" / bad).write_bytes(np.random.default_rng(5).bytes(500))
    return ["train", "data", "--out", "run"], ["caf", ".png", "test/image/4"]


@case("train: an empty WAV")
def _(w):
    data = w.data()
    _wav(_first(data / "train" / "audio" / "0"), np.zeros(0, np.float32))
    return ["train", "data", "--out", "run"], [str(Path("train/audio/0"))]


@case("train: a float WAV with NaN")
def _(w):
    data = w.data()
    y = _speech_like()
    y[100] = np.nan
    target = _first(data / "train" / "audio" / "6")
    _wav(target, y, subtype="FLOAT")
    return ["train", "data", "--out", "run"], [target.name, "NaN"]


@case("train: a .wav that is not audio")
def _(w):
    data = w.data()
    target = _first(data / "val" / "audio" / "8")
    target.write_bytes(b"ID3\x04 an mp3 in disguise" * 10)
    return ["train", "data", "--out", "run"], [target.name]


@case("train: only one class")
def _(w):
    data = w.data()
    for split in ("train", "val", "test", "test-noisy", "test-unseen"):
        for m in ("image", "audio"):
            for d in (data / split / m).iterdir():
                if d.name != "0":
                    shutil.rmtree(d)
    return ["train", "data", "--out", "run"], ["one class"]


@case("train: unknown image model")
def _(w):
    w.data()
    return ["train", "data", "--out", "run", "--image-model", "vgg-huge"], ["vgg-huge"]


@case("train: --out already exists")
def _(w):
    w.data()
    (w.dir / "run").mkdir()
    return ["train", "data", "--out", "run"], ["run", "already exists"]


@case("train: --out under a file")
def _(w):
    w.data()
    w.file("notes.txt")
    return ["train", "data", "--out", "notes.txt/run"], ["notes.txt"]


@case("train: --out in a read-only folder")
def _(w):
    ro = w.mount("ro")
    w.data()
    return ["train", "data", "--out", str(ro / "run")], [str(ro)]


# data -------------------------------------------------------------------------------------------


@case("data: unknown data set")
def _(w):
    return ["data", "av-letters", "out", "-q"], ["av-letters"]


@case("data: --per-class beyond the MNIST subset")
def _(w):
    return ["data", "av-digits", "out", "--per-class", "400", "-q"], ["--per-class 400"]


@case("data: OUT exists and is not empty")
def _(w):
    (w.dir / "out").mkdir()
    (w.dir / "out" / "keep.txt").write_text("mine")
    return ["data", "av-digits", "out", "--per-class", "1", "-q"], ["out", "--force"]


@case("data: OUT under a file")
def _(w):
    w.file("notes.txt")
    return ["data", "av-digits", "notes.txt/out", "--per-class", "1", "-q"], ["notes.txt"]


@case("data: OUT in a read-only folder")
def _(w):
    ro = w.mount("ro")
    return ["data", "av-digits", str(ro / "out"), "--per-class", "1", "-q"], [str(ro / "out")]


@case("data: OUT on a full device")
def _(w):
    full = w.mount("full")
    return ["data", "av-digits", str(full / "out"), "--per-class", "1", "-q"], [
        str(full / "out"),
        "No space left",
    ]


# convert ----------------------------------------------------------------------------------------


@case("convert: run folder does not exist")
def _(w):
    return ["convert", "norun", "--out", BUNDLE], ["norun"]


@case("convert: folder without run.json")
def _(w):
    (w.dir / "run").mkdir()
    return ["convert", "run", "--out", BUNDLE], ["run.json"]


@case("convert: run.json is not JSON")
def _(w):
    run = w.run_dir()
    (run / "run.json").write_text("{'classes': oops")
    return ["convert", "run", "--out", BUNDLE], ["run.json"]


@case("convert: run.json missing a field")
def _(w):
    run = w.run_dir()
    meta = json.loads((run / "run.json").read_text())
    del meta["fusion"]
    (run / "run.json").write_text(json.dumps(meta))
    return ["convert", "run", "--out", BUNDLE], ["run.json", "fusion"]


@case("convert: run.json classes of the wrong type")
def _(w):
    w.run_dir(classes="0123456789")
    return ["convert", "run", "--out", BUNDLE], ["run.json", "classes"]


@case("convert: run's data set is gone")
def _(w):
    w.run_dir(data_dir=str(w.dir / "moved-away"))
    return ["convert", "run", "--out", BUNDLE], ["moved-away", "--data"]


@case("convert: unknown --quantize")
def _(w):
    w.run_dir()
    return ["convert", "run", "--out", BUNDLE, "-q", "int4"], ["int4"]


@case("convert: --prune out of range")
def _(w):
    w.run_dir()
    return ["convert", "run", "--out", BUNDLE, "--prune", "1.5"], ["--prune", "1.5"]


@case("convert: run classes differ from the data set's")
def _(w):
    w.run_dir(classes=[str(i) for i in range(11)])
    return ["convert", "run", "--out", BUNDLE, "-q", "float32"], ["data", "run", "classes"]


@case("convert: --out under a file")
def _(w):
    w.run_dir()
    w.file("notes.txt")
    return ["convert", "run", "--out", "notes.txt/m.edgeav"], ["notes.txt"]


@case("convert: --out is /dev/full")
def _(w):
    w.run_dir()
    return ["convert", "run", "--out", "/dev/full"], ["/dev/full"]


@case("convert: --out in a read-only folder")
def _(w):
    ro = w.mount("ro")
    w.run_dir()
    return ["convert", "run", "--out", str(ro / BUNDLE)], [str(ro)]


# bench --------------------------------------------------------------------------------------------


@case("bench: missing bundle")
def _(w):
    return ["bench", "gone.edgeav"], ["gone.edgeav"]


@case("bench: --threads 0")
def _(w):
    w.bundle()
    return ["bench", BUNDLE, "--threads", "0"], ["--threads", "0"]


@case("bench: --threads not a number")
def _(w):
    w.bundle()
    return ["bench", BUNDLE, "--threads", "two"], ["'two'"]


@case("bench: --runs 0")
def _(w):
    w.bundle()
    return ["bench", BUNDLE, "--runs", "0"], ["--runs", "0"]


@case("bench: unknown --quant")
def _(w):
    return ["bench", "--quick", "--quant", "int3"], ["int3"]


@case("bench: --csv to /dev/full")
def _(w):
    w.bundle()
    return ["bench", BUNDLE, "--runs", "1", "--warmup", "0", "--csv", "/dev/full"], ["/dev/full"]


@case("bench: --csv on a full device")
def _(w):
    full = w.mount("full")
    w.bundle()
    csv = str(full / "rows.csv")
    return ["bench", BUNDLE, "--runs", "1", "--warmup", "0", "--csv", csv], [csv, "No space"]


# --- the test -------------------------------------------------------------------------------------


def _listing(root: Path) -> dict[str, int]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = st.st_size if stat.S_ISREG(st.st_mode) else -1
    return out


def _is_progress_or_log(line: str) -> bool:
    return line.startswith("edgeav: ") or "━" in line or bool(re.search(r"\d+/\d+ +\d:\d\d", line))


def _edgeav(args: list, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "PYTHONFAULTHANDLER": "1"}
    return subprocess.run(
        [sys.executable, "-m", "edgeav", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        timeout=timeout,
        env=env,
    )


def _check_case(name: str, folder: Path, tiny_bundle: Path, av_digits: Path, mounts) -> None:
    """Build case ``name`` in ``folder``, run the CLI, assert everything (raises on failure)."""
    work = Work(folder / "cwd", tiny_bundle, av_digits, mounts)
    work.dir.mkdir(parents=True)
    args, culprits = CASES[name](work)
    watched = [work.dir, *work.watch]
    before = {str(d): _listing(d) for d in watched}
    dev_before = sorted(os.listdir("/dev"))

    proc = _edgeav(args, work.dir)

    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    where = f"{name}: exit {proc.returncode}\nstdout: {out[-2000:]}\nstderr: {err[-3000:]}"
    assert proc.returncode == EXIT_USER_ERROR, where
    assert "Traceback" not in err and "Traceback" not in out, where
    lines = [line for line in err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("edgeav: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], where
    # before the error only edgeav's own log lines and progress bars (work that had started):
    # no native library logs, warnings or stray prints
    noise = [line for line in lines[:-1] if not _is_progress_or_log(line)]
    assert not noise, where
    message = errors[0]
    for culprit in culprits:
        assert culprit in message, f"{culprit!r} not named in {message!r}"
    for d in watched:
        after = _listing(d)
        assert after == before[str(d)], f"{name}: {d} changed: {set(after) ^ set(before[str(d)])}"
        assert not [p for p in after if p.endswith(".part")]
    assert sorted(os.listdir("/dev")) == dev_before, "something was written into /dev"
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode), "/dev/full is no longer a device"


def _uses_mounts(name: str) -> bool:
    return "read-only" in name or "full device" in name


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory, tiny_bundle, av_digits, mounts):
    """Run the selected cases, a few at a time (each is mostly a Python start-up), once.

    Cases on the shared read-only and full mounts run one after another, so no case sees
    another's temporary files there. ``{name: None | exception}``.
    """
    from concurrent.futures import ThreadPoolExecutor

    wanted = [
        item.callspec.params["name"]
        for item in request.session.items
        if item.originalname == "test_bad_input_is_one_line_exit_3_nothing_written"
    ]
    results: dict[str, BaseException | None] = {}

    def run(names: list[str]) -> None:
        for name in names:
            folder = tmp_path_factory.mktemp("case")
            try:
                _check_case(name, folder, tiny_bundle, av_digits, mounts)
                results[name] = None
            except BaseException as exc:  # noqa: BLE001 - re-raised by the case's own test
                results[name] = exc

    jobs = [[n] for n in wanted if not _uses_mounts(n)]
    jobs.append([n for n in wanted if _uses_mounts(n)])
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(run, jobs))
    return results


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_3_nothing_written(name, outcomes):
    outcome = outcomes[name]
    if outcome is not None:
        raise outcome


def test_the_table_has_at_least_40_failure_cases_over_every_command():
    assert len(CASES) >= 40
    commands = {name.split(":")[0] for name in CASES}
    assert commands >= {"data", "train", "convert", "info", "run", "bench"}


# --- valid odd input: must succeed -------------------------------------------------------------

ODD_IMAGES = {
    # grayscale PNG: read as (H, W) and replicated/used as the model's channels
    "grayscale": lambda: np.tile(np.arange(28, dtype=np.uint8)[None, :] * 9, (28, 1)),
    # RGBA: alpha is dropped
    "rgba": lambda: np.dstack(
        [np.full((20, 24, 3), 200, np.uint8), np.full((20, 24), 9, np.uint8)]
    ),
    # 16-bit: scaled 0..65535 -> 0..255
    "16-bit": lambda: np.arange(30 * 30, dtype=np.uint16).reshape(30, 30) * 70,
    # 1x1: a decodable image; resizing a single pixel gives a uniform input (useless, not broken)
    "1x1": lambda: np.array([[[10, 200, 30]]], np.uint8),
}


@pytest.mark.parametrize("kind", list(ODD_IMAGES))
@pytest.mark.parametrize("channels", [1, 3])
def test_valid_odd_images_are_accepted(kind, channels, tmp_path):
    from edgeav.data.loader import read_image
    from edgeav.preprocess import ImageSpec, preprocess_image

    img = ODD_IMAGES[kind]()
    path = _png(tmp_path / f"{kind} image.png", img)
    raw = read_image(path)
    assert raw.dtype == img.dtype and raw.shape == img.shape
    spec = ImageSpec(size=32, channels=channels)
    x = preprocess_image(raw, spec)
    assert x.shape == (32, 32, channels) and x.dtype == np.float32
    assert np.isfinite(x).all() and 0.0 <= x.min() and x.max() <= 1.0
    if kind == "16-bit":  # the top of the 16-bit range maps to the top of the 8-bit one
        assert x.max() > 0.9


def _odd_wav(kind: str, path: Path) -> Path:
    if kind == "8-bit":
        return _wav(path, _speech_like(), subtype="PCM_U8")
    if kind == "24-bit":
        return _wav(path, _speech_like(), subtype="PCM_24")
    if kind == "96 kHz":
        return _wav(path, _speech_like(sr=96000), sr=96000)
    if kind == "6 channels":
        return _wav(path, _speech_like(channels=6))
    if kind == "header claims more samples":  # libsndfile reads the samples that are there
        return _wav_header_claims(_wav(path, _speech_like()), 10 * 32000)
    if kind == "header claims fewer samples":  # the declared 50 samples; short input is padded
        return _wav_header_claims(_wav(path, _speech_like()), 100)
    raise AssertionError(kind)


ODD_WAVS = [
    "8-bit",
    "24-bit",
    "96 kHz",
    "6 channels",
    "header claims more samples",
    "header claims fewer samples",
]


@pytest.mark.parametrize("kind", ODD_WAVS)
def test_valid_odd_wavs_are_accepted(kind, tmp_path):
    """The training loader and the runtime's file source both read them, at 16 kHz mono."""
    from edgeav.data.loader import read_audio
    from edgeav.features import FeatureConfig, extract
    from edgeav.runtime.audio import AudioFile

    config = FeatureConfig()
    path = _odd_wav(kind, tmp_path / f"{kind}.wav")
    y, sr = read_audio(path)
    feats = extract(y, config, sr=sr)
    assert feats.shape == (config.dim,) and np.isfinite(feats).all()
    # the same clip as 16 kHz mono 16-bit gives nearly the same features (not for the liars)
    if "header" not in kind:
        ref = extract(_speech_like(), config)
        assert np.corrcoef(feats, ref)[0, 1] > 0.98

    src = AudioFile(path, sample_rate=16000).open()
    try:
        t = min(0.5, src.duration)  # the "fewer samples" liar is 50 samples long
        n = int(t * 16000)
        window = src.window(int(t * 1e6), n)
        assert window is not None and not src.ended
        assert window.samples.shape == (n,) and np.isfinite(window.samples).all()
        assert np.abs(window.samples).max() > 0.05
    finally:
        src.close()


def test_run_accepts_a_6_channel_96_khz_wav(tiny_bundle, tmp_path):
    """End to end: ``edgeav run`` mixes down and resamples an odd WAV; exit 0, records written."""
    path = tmp_path / "six.wav"
    _wav(path, _speech_like(3.0, sr=96000, channels=6), sr=96000, subtype="PCM_24")
    proc = _edgeav(
        ["run", "--model", tiny_bundle, "--audio-file", path.name, "--no-realtime", "--json"],
        tmp_path,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    records, summary = lines[:-1], lines[-1]["summary"]
    assert len(records) == 3 and all(r["used"] == ["audio"] for r in records)
    assert summary["end"] == "end of input" and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path):
    """Tracebacks only with ``--debug``: the same bad input, then the full story."""
    (tmp_path / BUNDLE).write_bytes(b"")
    proc = _edgeav(["--debug", "info", BUNDLE], tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "Traceback" in err and "BundleError" in err and BUNDLE in err
