"""The model.edgeav format: a real tiny bundle round-trips; every kind of damage is one BundleError."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgeav import bundle as bundle_mod
from edgeav.bundle import BundleError, Manifest, read_bundle, write_bundle
from edgeav.calibration import Calibration
from edgeav.errors import EdgeAVError


def _entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_zip(path: Path, entries: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = stat.S_IFLNK if name in symlinks else stat.S_IFREG
            info.external_attr = (mode | 0o644) << 16
            zf.writestr(info, data)
    return path


def _with_manifest(entries: dict[str, bytes], **changes) -> dict[str, bytes]:
    manifest = json.loads(entries["manifest.json"])
    manifest.update(changes)
    return {**entries, "manifest.json": json.dumps(manifest).encode()}


def _assert_rejected(path: Path, *needles: str) -> str:
    before = sorted(os.listdir(path.parent))
    with pytest.raises(BundleError) as info:
        read_bundle(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg, msg
    for needle in needles:
        assert needle in msg, msg
    assert sorted(os.listdir(path.parent)) == before  # reading never writes anything
    return msg


# --- the happy path -----------------------------------------------------------------------------


def test_tiny_bundle_reads_back(tiny_bundle):
    from edgeav.features import FeatureConfig
    from edgeav.fusion import FusionWeights

    b = read_bundle(tiny_bundle)
    m = b.manifest
    assert m.format_version == bundle_mod.FORMAT_VERSION
    assert b.classes == [str(i) for i in range(10)]
    assert b.modalities == ["image", "audio"]
    assert m.quantization == "int8"
    assert b.image_spec.shape == (32, 32, 1)
    assert b.feature_config == FeatureConfig()
    assert b.fusion == FusionWeights(1.0, 1.0)
    assert m.image.input_shape == [1, 32, 32, 1] and m.image.input_dtype == "int8"
    assert m.image.output_shape == [1, 10] and m.image.output_dtype == "int8"
    assert m.audio.input_shape == [1, FeatureConfig().dim]
    raw = _entries(tiny_bundle)
    for modality in ("image", "audio"):
        data = b.model_bytes(modality)
        assert data == raw[f"{modality}.tflite"]
        assert m.members[f"{modality}.tflite"] == hashlib.sha256(data).hexdigest()
        assert data[4:8] == b"TFL3"
    assert set(m.accuracy["tflite"]) == {"image", "audio", "fused"}


def test_write_then_read_round_trips(tiny_bundle, tmp_path):
    original = read_bundle(tiny_bundle)
    members = {
        "image.tflite": original.model_bytes("image"),
        "audio.tflite": original.model_bytes("audio"),
    }
    manifest = Manifest.from_dict(original.manifest.to_dict())
    out = write_bundle(tmp_path / "copy.edgeav", manifest, members)
    again = read_bundle(out)
    assert again.manifest.to_dict() == original.manifest.to_dict()
    assert again.model_bytes("image") == members["image.tflite"]
    assert sorted(os.listdir(tmp_path)) == ["copy.edgeav"]  # no temporary file left behind


def test_reading_needs_no_tensorflow(tiny_bundle):
    code = (
        "import sys, json\n"
        "from edgeav.bundle import read_bundle\n"
        f"b = read_bundle({str(tiny_bundle)!r})\n"
        "b.feature_config; b.fusion; b.image_spec\n"
        "heavy = [m for m in ('tensorflow', 'tf_keras', 'librosa', 'tensorflow_model_optimization') if m in sys.modules]\n"
        "print(json.dumps(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


# --- damaged files: one clear BundleError each, nothing written ----------------------------------


def test_empty_file(tmp_path):
    path = tmp_path / "empty.edgeav"
    path.write_bytes(b"")
    _assert_rejected(path, "empty")


def test_missing_file(tmp_path):
    _assert_rejected(tmp_path / "nope.edgeav", "does not exist")


def test_folder_is_not_a_bundle(tmp_path):
    folder = tmp_path / "dir.edgeav"
    folder.mkdir()
    with pytest.raises(BundleError, match="not a file"):
        read_bundle(folder)


def test_not_a_zip(tmp_path):
    path = tmp_path / "garbage.edgeav"
    path.write_bytes(b"this is not a zip file at all" * 10)
    _assert_rejected(path, "not a valid zip")


def test_bare_tflite_is_named_as_such(tiny_bundle, tmp_path):
    """A user who passes image.tflite (not the bundle) is told what the file is."""
    path = tmp_path / "image.tflite"
    path.write_bytes(read_bundle(tiny_bundle).model_bytes("image"))
    _assert_rejected(path, "bare .tflite model, not a model.edgeav bundle", "edgeav convert")
    proc = subprocess.run(
        [sys.executable, "-m", "edgeav", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "bare .tflite" in proc.stderr


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_truncated(tiny_bundle, tmp_path, keep):
    data = tiny_bundle.read_bytes()
    path = tmp_path / "truncated.edgeav"
    path.write_bytes(data[: int(len(data) * keep)])
    _assert_rejected(path)


def _data_spans(path: Path) -> list[tuple[int, int]]:
    """(start, end) byte offsets of each member's compressed data in the zip file."""
    import struct

    raw = path.read_bytes()
    spans = []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            off = info.header_offset
            name_len, extra_len = struct.unpack("<HH", raw[off + 26 : off + 30])
            start = off + 30 + name_len + extra_len
            spans.append((start, start + info.compress_size))
    return spans


@pytest.mark.parametrize("seed", range(8))
def test_corrupted_member_data(tiny_bundle, tmp_path, seed):
    data = bytearray(tiny_bundle.read_bytes())
    rng = np.random.default_rng(seed)
    start, end = _data_spans(tiny_bundle)[seed % 3]
    for i in rng.integers(start, end, size=int(rng.integers(1, 8))):
        data[i] ^= int(rng.integers(1, 256))
    path = tmp_path / "corrupt.edgeav"
    path.write_bytes(bytes(data))
    _assert_rejected(path)


@pytest.mark.parametrize("where", ["central directory", "end record", "first header"])
def test_corrupted_zip_structure(tiny_bundle, tmp_path, where):
    data = bytearray(tiny_bundle.read_bytes())
    cd_offset = int.from_bytes(data[-6:-2], "little")
    start = {"central directory": cd_offset, "end record": len(data) - 22, "first header": 0}[where]
    data[start : start + 22] = b"\xa5" * 22
    path = tmp_path / "corrupt.edgeav"
    path.write_bytes(bytes(data))
    _assert_rejected(path)


def test_missing_member(tiny_bundle, tmp_path):
    entries = _entries(tiny_bundle)
    del entries["audio.tflite"]
    path = _write_zip(tmp_path / "missing.edgeav", entries)
    _assert_rejected(path, "audio.tflite", "missing")


def test_missing_manifest(tiny_bundle, tmp_path):
    entries = _entries(tiny_bundle)
    del entries["manifest.json"]
    path = _write_zip(tmp_path / "nomanifest.edgeav", entries)
    _assert_rejected(path, "manifest.json")


def test_hash_mismatch(tiny_bundle, tmp_path):
    entries = _entries(tiny_bundle)
    tampered = bytearray(entries["image.tflite"])
    tampered[-10] ^= 0x01
    entries["image.tflite"] = bytes(tampered)
    path = _write_zip(tmp_path / "tampered.edgeav", entries)
    _assert_rejected(path, "image.tflite", "sha256")


def test_unknown_format_version(tiny_bundle, tmp_path):
    entries = _with_manifest(_entries(tiny_bundle), format_version=7)
    path = _write_zip(tmp_path / "v7.edgeav", entries)
    _assert_rejected(path, "format version 7")


def test_models_output_logits_and_version_1_bundles_still_read(tiny_bundle, tmp_path):
    """The converter removes the final softmax (int8 probabilities lose the small ones fusion
    weighs); version 1 bundles, whose models end in their softmax, are read as probabilities."""
    bundle = read_bundle(tiny_bundle)
    assert bundle.manifest.format_version == bundle_mod.FORMAT_VERSION
    assert bundle.model_output("image") == bundle.model_output("audio") == "logits"
    manifest = json.loads(_entries(tiny_bundle)["manifest.json"])
    # versions 4 and 5: one decision threshold, which every set of modalities reads
    v5 = {**manifest, "format_version": 5}
    v5["calibration"] = {**manifest["calibration"], "threshold": 0.7}
    path = _write_zip(
        tmp_path / "v5.edgeav", {**_entries(tiny_bundle), "manifest.json": json.dumps(v5).encode()}
    )
    assert read_bundle(path).calibration.threshold == {
        "image": 0.7,
        "audio": 0.7,
        "image+audio": 0.7,
    }
    v3 = {k: v for k, v in manifest.items() if k != "calibration"}  # v4's
    v3["format_version"] = 3
    path = _write_zip(
        tmp_path / "v3.edgeav", {**_entries(tiny_bundle), "manifest.json": json.dumps(v3).encode()}
    )
    assert read_bundle(path).calibration == Calibration()  # neutral: temperature 1, no thresholds
    v3["calibration"] = manifest["calibration"]
    bad = _write_zip(
        tmp_path / "v3-cal.edgeav",
        {**_entries(tiny_bundle), "manifest.json": json.dumps(v3).encode()},
    )
    _assert_rejected(bad, "calibration")
    v1 = {k: v for k, v in v3.items() if k not in ("audio_input", "frontend", "calibration")}
    v1["format_version"] = 1
    for m in ("image", "audio"):
        v1[m] = {k: v for k, v in manifest[m].items() if k != "output"}
    path = _write_zip(
        tmp_path / "v1.edgeav", {**_entries(tiny_bundle), "manifest.json": json.dumps(v1).encode()}
    )
    old = read_bundle(path)
    assert old.manifest.format_version == 1
    assert old.model_output("image") == old.model_output("audio") == "probabilities"
    # "output" is not a version-1 field, and only the two kinds exist
    v1["image"]["output"] = "logits"
    bad = _write_zip(
        tmp_path / "v1-output.edgeav",
        {**_entries(tiny_bundle), "manifest.json": json.dumps(v1).encode()},
    )
    _assert_rejected(bad, "manifest.image.output is not part of format version 1")
    manifest["audio"]["output"] = "log-probabilities"
    bad = _write_zip(
        tmp_path / "kind.edgeav",
        {**_entries(tiny_bundle), "manifest.json": json.dumps(manifest).encode()},
    )
    _assert_rejected(bad, "manifest.audio.output must be one of probabilities, logits")


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/x", "\\\\server\\x", "C:/x"])
def test_unsafe_member_names(tiny_bundle, tmp_path, name):
    entries = {**_entries(tiny_bundle), name: b"payload"}
    path = _write_zip(tmp_path / "unsafe.edgeav", entries)
    _assert_rejected(path, "unsafe member name")
    assert not (tmp_path.parent / "x").exists()


def test_unsafe_name_listed_in_manifest(tiny_bundle, tmp_path):
    entries = _entries(tiny_bundle)
    manifest = json.loads(entries["manifest.json"])
    manifest["members"]["../x"] = hashlib.sha256(b"payload").hexdigest()
    entries["manifest.json"] = json.dumps(manifest).encode()
    path = _write_zip(tmp_path / "listed.edgeav", entries)
    _assert_rejected(path, "unsafe member name")


def test_symlink_member(tiny_bundle, tmp_path):
    entries = _entries(tiny_bundle)
    entries["audio.tflite"] = b"/etc/passwd"
    path = _write_zip(tmp_path / "link.edgeav", entries, symlinks=("audio.tflite",))
    _assert_rejected(path, "not a regular file")


def test_unlisted_member(tiny_bundle, tmp_path):
    entries = {**_entries(tiny_bundle), "extra.bin": b"x"}
    path = _write_zip(tmp_path / "extra.edgeav", entries)
    _assert_rejected(path, "extra.bin", "not listed")


@pytest.mark.parametrize(
    "manifest_bytes, needle",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"[1, 2, 3]", "must be an object"),
        (b'{"format": "something-else"}', "not an edgeav bundle"),
    ],
)
def test_bad_manifest_text(tiny_bundle, tmp_path, manifest_bytes, needle):
    entries = {**_entries(tiny_bundle), "manifest.json": manifest_bytes}
    path = _write_zip(tmp_path / "badmanifest.edgeav", entries)
    _assert_rejected(path, needle)


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"classes": "0123456789"}, "manifest.classes must be a list"),
        ({"classes": [str(i) for i in range(9)]}, "does not match the 9 labels"),
        ({"classes": ["a"] * 10}, "duplicate"),
        ({"quantization": "int4"}, "manifest.quantization"),
        ({"image_spec": {"size": 28, "channels": 1}}, "image spec"),
        ({"feature_config": {"n_mfcc": 20}}, "audio feature size"),
        ({"image": None, "audio": None}, "neither an image nor an audio model"),
        ({"surprise": 1}, "unknown field"),
        ({"fusion": []}, "manifest.fusion must be an object"),
    ],
)
def test_invalid_manifest_fields(tiny_bundle, tmp_path, changes, needle):
    entries = _with_manifest(_entries(tiny_bundle), **changes)
    path = _write_zip(tmp_path / "invalid.edgeav", entries)
    _assert_rejected(path, needle)


def test_manifest_shapes_must_match_the_model(tiny_bundle, tmp_path):
    entries = _entries(tiny_bundle)
    manifest = json.loads(entries["manifest.json"])
    manifest["image"]["input_dtype"] = "float32"  # the real model's input is int8
    entries["manifest.json"] = json.dumps(manifest).encode()
    path = _write_zip(tmp_path / "dtype.edgeav", entries)
    _assert_rejected(path, "image.tflite input is int8")


def test_member_that_is_not_tflite(tiny_bundle, tmp_path):
    entries = _entries(tiny_bundle)
    entries["audio.tflite"] = b"definitely not a flatbuffer"
    manifest = json.loads(entries["manifest.json"])
    manifest["members"]["audio.tflite"] = hashlib.sha256(entries["audio.tflite"]).hexdigest()
    entries["manifest.json"] = json.dumps(manifest).encode()
    path = _write_zip(tmp_path / "notflite.edgeav", entries)
    _assert_rejected(path, "not a valid TFLite model")


def test_zip_bomb_is_capped(tiny_bundle, tmp_path, monkeypatch):
    # A member that inflates far beyond the (here lowered) cap is refused while reading,
    # whatever its header claims.
    entries = _entries(tiny_bundle)
    big = b"\0" * (4 * 1024 * 1024)
    entries["audio.tflite"] = big
    manifest = json.loads(entries["manifest.json"])
    manifest["members"]["audio.tflite"] = hashlib.sha256(big).hexdigest()
    entries["manifest.json"] = json.dumps(manifest).encode()
    path = _write_zip(tmp_path / "bomb.edgeav", entries)
    assert path.stat().st_size < 100_000
    monkeypatch.setattr(bundle_mod, "MAX_MEMBER_BYTES", 1024 * 1024)
    _assert_rejected(path, "audio.tflite", "cap")


def test_too_many_entries(tiny_bundle, tmp_path):
    entries = _entries(tiny_bundle)
    entries.update({f"pad{i}.bin": b"" for i in range(bundle_mod.MAX_ENTRIES)})
    path = _write_zip(tmp_path / "many.edgeav", entries)
    _assert_rejected(path, "entries")


# --- writing ------------------------------------------------------------------------------------


def _manifest_and_members(tiny_bundle) -> tuple[Manifest, dict[str, bytes]]:
    b = read_bundle(tiny_bundle)
    members = {"image.tflite": b.model_bytes("image"), "audio.tflite": b.model_bytes("audio")}
    return Manifest.from_dict(b.manifest.to_dict()), members


@pytest.mark.parametrize("bad_name", ["../x.tflite", "/abs.tflite", "manifest.json"])
def test_write_refuses_unsafe_names_and_writes_nothing(tiny_bundle, tmp_path, bad_name):
    manifest, members = _manifest_and_members(tiny_bundle)
    members[bad_name] = b"x"
    out = tmp_path / "out.edgeav"
    with pytest.raises(BundleError):
        write_bundle(out, manifest, members)
    assert os.listdir(tmp_path) == []


def test_write_refuses_inconsistent_manifest_and_writes_nothing(tiny_bundle, tmp_path):
    manifest, members = _manifest_and_members(tiny_bundle)
    manifest.classes = manifest.classes[:-1]  # 9 labels for a 10-class model
    out = tmp_path / "out.edgeav"
    with pytest.raises(BundleError, match="9 labels"):
        write_bundle(out, manifest, members)
    assert os.listdir(tmp_path) == []


def test_write_refuses_missing_model_member(tiny_bundle, tmp_path):
    manifest, members = _manifest_and_members(tiny_bundle)
    del members["audio.tflite"]
    with pytest.raises(BundleError, match="audio.tflite"):
        write_bundle(tmp_path / "out.edgeav", manifest, members)
    assert os.listdir(tmp_path) == []


def test_write_into_missing_folder(tiny_bundle, tmp_path):
    manifest, members = _manifest_and_members(tiny_bundle)
    with pytest.raises(EdgeAVError, match="does not exist"):
        write_bundle(tmp_path / "no" / "out.edgeav", manifest, members)


def test_bundle_error_is_an_edgeav_error():
    assert issubclass(BundleError, EdgeAVError)
    assert BundleError("x").exit_code == 3
