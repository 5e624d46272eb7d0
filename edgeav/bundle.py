"""The ``model.edgeav`` bundle: the one file copied from the laptop to the device.

A bundle is a zip archive (like Keras's ``.keras`` files) holding::

    manifest.json   format version, labels, per-modality model entry, image preprocessing,
                    audio feature config, fusion weights, quantisation, sparsity, accuracy
                    before/after conversion, sha256 of every other member
    image.tflite    the image classifier (optional if the run has no image model)
    audio.tflite    the audio classifier (optional if the run has no audio model)

Format version 6 (this edgeav; it reads versions 1 to 5 too) gives ``calibration.threshold``
one threshold per set of modalities a decision used (``{"image", "audio", "image+audio"}``);
versions 4 and 5 hold one number, read as the threshold of every set.

Format version 5 allows the image spec's
``crop: "digit"``: the digit is found on its sheet of paper and laid out like MNIST
(:mod:`edgeav.locate`); an older edgeav would refuse that spec, so the version says it.

Format version 4 adds ``calibration``
(:class:`edgeav.calibration.Calibration`): per-modality temperatures and minimum confidences and the
fused decision threshold, fitted on the validation split. Older bundles read with the neutral
calibration (temperature 1, no thresholds).

Format version 3 adds ``audio_input`` -- what the
audio head reads (:class:`edgeav.runtime.frontend.AudioInput`: the seed's averaged features, a
log-mel spectrogram, or speech embeddings) -- and ``frontend``: the speech-embedding front-end's
models (members ``frontend_melspectrogram.tflite`` and ``frontend_embedding.tflite``) with their
origin and licence. Bundles of versions 1 and 2 read as ``audio_input`` ``features``.

Format version 2 adds each model entry's ``output``:
``"logits"`` when the converter removed the model's final softmax (it does for every model that
ends in one) and the runtime takes the softmax in float, or ``"probabilities"`` (version 1's
only kind). An int8 softmax output has steps of 1/256, so every probability below 0.2 % becomes
0; log-linear fusion weighs exactly those small probabilities. int8 logits keep them.

The manifest is parsed once, into :class:`Manifest`. Its four structured sections become typed
objects through one helper, :func:`_section`: the image spec
(:class:`edgeav.preprocess.ImageSpec`), the audio feature config
(:class:`edgeav.features.FeatureConfig`), the fusion weights (:class:`edgeav.fusion.FusionWeights`)
and the accuracy (:class:`Accuracy`). Code that reads a bundle uses those objects and never looks
at the JSON again.

:func:`read_bundle` trusts nothing in the file: it checks the format version, every field's type,
member names (no ``..``, no absolute paths, no symlinks, nothing unlisted), sizes (declared and
actual, read in chunks up to a cap so a zip bomb cannot exhaust memory), sha256 hashes, that the
number of labels matches each model's output size and that each model's input matches the image
spec or the audio feature size. Every failure is a :class:`BundleError` naming the bundle.
Nothing in a bundle is executed or unpickled.

This module needs only the standard library and NumPy (through the typed sections' modules):
the device runtime imports it. When LiteRT's flatbuffer schema is installed (``ai-edge-litert``),
the ``.tflite`` members' real input/output tensors are checked against the manifest as well.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edgeav import __version__
from edgeav.calibration import Calibration
from edgeav.errors import EdgeAVError
from edgeav.fileio import write_bytes_atomic
from edgeav.fusion import FusionWeights
from edgeav.preprocess import ImageSpec
from edgeav.runtime.frontend import EMBEDDING_KINDS, EMBEDDING_MODELS, AudioInput, input_shape

if TYPE_CHECKING:
    from edgeav.features import FeatureConfig

#: The bundle format this code writes (it reads :data:`READABLE_VERSIONS`).
FORMAT_VERSION = 6
#: Versions this edgeav reads (1: outputs are probabilities, before ``ModelEntry.output``).
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6)
#: What a model's output holds: softmax probabilities, or the logits before the softmax.
OUTPUTS = ("probabilities", "logits")
FORMAT_NAME = "edgeav-bundle"
MANIFEST_NAME = "manifest.json"
MODALITIES = ("image", "audio")
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32")
#: The names an accuracy section holds figures for.
ACCURACY_MODELS = ("image", "audio", "fused")

#: Caps against hostile or broken files.
MAX_MEMBER_BYTES = 256 * 1024 * 1024
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_BUNDLE_BYTES = 2 * MAX_MEMBER_BYTES + MAX_MANIFEST_BYTES + 1024 * 1024
MAX_ENTRIES = 8
MAX_CLASSES = 100_000
_CHUNK = 1024 * 1024


class BundleError(EdgeAVError):
    """A ``model.edgeav`` file that cannot be used (unreadable, corrupt, tampered or invalid)."""


@dataclass(frozen=True)
class ModelEntry:
    """One modality's model inside the bundle."""

    file: str
    input_shape: list[int]
    input_dtype: str
    output_shape: list[int]
    output_dtype: str
    params: int
    #: "logits": the runtime takes the softmax (int8 probabilities would lose the small ones
    #: that log-linear fusion weighs); "probabilities": the model ends in its softmax.
    output: str = "probabilities"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "input_shape": list(self.input_shape),
            "input_dtype": self.input_dtype,
            "output_shape": list(self.output_shape),
            "output_dtype": self.output_dtype,
            "output": self.output,
            "params": self.params,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ModelEntry:
        obj = _expect(data, dict, where)
        _no_unknown(
            obj,
            {
                "file", "input_shape", "input_dtype", "output_shape", "output_dtype", "output",
                "params",
            },
            where,
        )  # fmt: skip
        output = _get(obj, "output", str, where) if "output" in obj else "probabilities"
        return cls(
            file=_member_name(_get(obj, "file", str, where), f"{where}.file"),
            input_shape=_shape(_get(obj, "input_shape", list, where), f"{where}.input_shape"),
            input_dtype=_choice(
                _get(obj, "input_dtype", str, where), DTYPES, f"{where}.input_dtype"
            ),
            output_shape=_shape(_get(obj, "output_shape", list, where), f"{where}.output_shape"),
            output_dtype=_choice(
                _get(obj, "output_dtype", str, where), DTYPES, f"{where}.output_dtype"
            ),
            params=_nonneg_int(_get(obj, "params", int, where), f"{where}.params"),
            output=_choice(output, OUTPUTS, f"{where}.output"),
        )


@dataclass(frozen=True)
class Accuracy(Mapping[str, Any]):
    """What the converter measured on one split (``split``, normally "test"), as fractions.

    ``keras``, ``tflite`` and ``agreement`` (top-1 agreement of the two) map "image", "audio"
    and "fused" to a fraction; ``keras_pruned`` holds the pruned Keras models' (pruned bundles
    only); ``samples`` how many examples each figure counts. A section that is empty was not
    measured and is left out of the JSON.

    It is also a read-only mapping shaped like manifest.json's ``accuracy`` object, so
    ``accuracy["tflite"]["image"]`` reads as it does in the file.
    """

    split: str | None = None
    keras: dict[str, float] = field(default_factory=dict)
    tflite: dict[str, float] = field(default_factory=dict)
    agreement: dict[str, float] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    keras_pruned: dict[str, float] = field(default_factory=dict)

    _FRACTIONS = ("keras", "tflite", "agreement", "keras_pruned")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.split is None else {"split": self.split}
        for name in ("keras", "tflite", "agreement", "samples", "keras_pruned"):
            if getattr(self, name):
                out[name] = dict(getattr(self, name))
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "manifest.accuracy") -> Accuracy:
        obj = _expect(data, dict, where)
        _no_unknown(obj, {"split", "samples", *cls._FRACTIONS}, where)
        split = _get(obj, "split", str, where) if "split" in obj else None
        sections: dict[str, dict[str, Any]] = {}
        for name in (*cls._FRACTIONS, "samples"):
            if name not in obj:
                continue
            section = _get(obj, name, dict, where)
            _no_unknown(section, set(ACCURACY_MODELS), f"{where}.{name}")
            for model, value in section.items():
                at = f"{where}.{name}.{model}"
                if name == "samples":
                    _nonneg_int(_expect(value, int, at), at)
                elif isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise BundleError(f"{at} must be a number, got {type(value).__name__}")
                elif not 0 <= value <= 1:
                    raise BundleError(f"{at} must be a fraction between 0 and 1, got {value!r}")
            sections[name] = dict(section)
        return cls(split=split, **sections)

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


@dataclass
class Manifest:
    """The bundle's ``manifest.json`` (see the module docstring).

    The four structured sections are typed. Given as their JSON objects (as :meth:`from_dict`
    and a caller holding ``to_dict()`` output pass them), they are parsed on construction with
    the checks a bundle on disk gets.
    """

    classes: list[str]
    image: ModelEntry | None
    audio: ModelEntry | None
    image_spec: ImageSpec
    feature_config: FeatureConfig
    fusion: FusionWeights
    quantization: str
    sparsity: dict[str, Any] | None = None
    accuracy: Accuracy = field(default_factory=Accuracy)
    members: dict[str, str] = field(default_factory=dict)
    created: str = ""
    edgeav_version: str = __version__
    format_version: int = FORMAT_VERSION
    audio_input: AudioInput = field(default_factory=AudioInput)
    #: The speech-embedding front-end: ``{"models": {role: member}, "origin": {...}}``, or None.
    frontend: dict[str, Any] | None = None
    calibration: Calibration = field(default_factory=Calibration)

    def __post_init__(self) -> None:
        from edgeav.features import FeatureConfig  # noqa: PLC0415  (NumPy only)

        self.image_spec = _section(self.image_spec, "image_spec", ImageSpec)
        self.feature_config = _section(self.feature_config, "feature_config", FeatureConfig)
        self.fusion = _section(self.fusion, "fusion", FusionWeights)
        self.accuracy = _section(self.accuracy, "accuracy", Accuracy)
        self.audio_input = _section(self.audio_input, "audio_input", AudioInput)
        self.calibration = _section(self.calibration, "calibration", Calibration)
        if self.frontend is not None:
            self.frontend = _frontend(self.frontend)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "edgeav_version": self.edgeav_version,
            "created": self.created,
            "classes": list(self.classes),
            "image": self.image.to_dict() if self.image else None,
            "audio": self.audio.to_dict() if self.audio else None,
            "image_spec": self.image_spec.to_dict(),
            "feature_config": self.feature_config.to_dict(),
            "fusion": self.fusion.to_dict(),
            "quantization": self.quantization,
            "sparsity": self.sparsity,
            "accuracy": self.accuracy.to_dict(),
            "audio_input": self.audio_input.to_dict(),
            "frontend": self.frontend,
            "calibration": self.calibration.to_dict(),
            "members": dict(self.members),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Validate a decoded ``manifest.json`` (types and values) and build the manifest."""
        where = "manifest"
        obj = _expect(data, dict, where)
        if obj.get("format") != FORMAT_NAME:
            raise BundleError(f"not an edgeav bundle manifest (format {obj.get('format')!r})")
        version = obj.get("format_version")
        if version not in READABLE_VERSIONS or isinstance(version, bool):
            raise BundleError(
                f"unsupported bundle format version {version!r} (this edgeav reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}); convert the run again with this edgeav"
            )
        for m in MODALITIES:
            if version == 1 and isinstance(obj.get(m), dict) and "output" in obj[m]:
                raise BundleError(f"{where}.{m}.output is not part of format version 1")
        known = {
            "format", "format_version", "edgeav_version", "created", "classes", "image", "audio",
            "image_spec", "feature_config", "fusion", "quantization", "sparsity", "accuracy",
            "members",
        }  # fmt: skip
        if version >= 3:
            known |= {"audio_input", "frontend"}
        if version >= 4:
            known |= {"calibration"}
        _no_unknown(obj, known, where)
        classes = _get(obj, "classes", list, where)
        if not 1 <= len(classes) <= MAX_CLASSES:
            raise BundleError(
                f"manifest.classes must list 1..{MAX_CLASSES} labels, got {len(classes)}"
            )
        for i, c in enumerate(classes):
            if not isinstance(c, str) or not c or len(c) > 200:
                raise BundleError(f"manifest.classes[{i}] must be a non-empty string, got {c!r}")
        if len(set(classes)) != len(classes):
            raise BundleError("manifest.classes has duplicate labels")
        entries = {}
        for m in MODALITIES:
            raw = obj.get(m)
            entries[m] = None if raw is None else ModelEntry.from_dict(raw, f"{where}.{m}")
        if entries["image"] is None and entries["audio"] is None:
            raise BundleError("manifest lists neither an image nor an audio model")
        members = _get(obj, "members", dict, where)
        for name, digest in members.items():
            _member_name(name, "manifest.members")
            if name == MANIFEST_NAME:
                raise BundleError("manifest.members must not list manifest.json itself")
            if not (isinstance(digest, str) and len(digest) == 64 and _is_hex(digest)):
                raise BundleError(f"manifest.members[{name!r}] is not a sha256 hex digest")
        sparsity = obj.get("sparsity")
        if sparsity is not None and not isinstance(sparsity, dict):
            raise BundleError("manifest.sparsity must be an object or null")
        return cls(
            classes=list(classes),
            image=entries["image"],
            audio=entries["audio"],
            image_spec=_get(obj, "image_spec", dict, where),
            feature_config=_get(obj, "feature_config", dict, where),
            fusion=_get(obj, "fusion", dict, where),
            quantization=_choice(
                _get(obj, "quantization", str, where), QUANTIZATIONS, "manifest.quantization"
            ),
            sparsity=sparsity,
            accuracy=_get(obj, "accuracy", dict, where),
            members=dict(members),
            created=_get(obj, "created", str, where),
            edgeav_version=_get(obj, "edgeav_version", str, where),
            format_version=version,
            audio_input=_get(obj, "audio_input", dict, where) if version >= 3 else AudioInput(),
            frontend=obj.get("frontend") if version >= 3 else None,
            calibration=_get(obj, "calibration", dict, where) if version >= 4 else Calibration(),
        )

    def entry(self, modality: str) -> ModelEntry | None:
        if modality not in MODALITIES:
            raise BundleError(f"unknown modality {modality!r}; expected 'image' or 'audio'")
        return self.image if modality == "image" else self.audio


class Bundle:
    """A validated bundle held in memory (models are a few MB at most)."""

    def __init__(self, manifest: Manifest, members: dict[str, bytes], path: Path | None = None):
        self.manifest = manifest
        self._members = members
        self.path = path

    @property
    def classes(self) -> list[str]:
        return list(self.manifest.classes)

    @property
    def modalities(self) -> list[str]:
        return [m for m in MODALITIES if self.manifest.entry(m) is not None]

    def model_output(self, modality: str) -> str | None:
        """``"probabilities"`` or ``"logits"``: what the model of ``modality`` outputs."""
        entry = self.manifest.entry(modality)
        return None if entry is None else entry.output

    def frontend_models(self) -> dict[str, bytes] | None:
        """The speech-embedding front-end's ``.tflite`` bytes by role, or None."""
        if self.manifest.frontend is None:
            return None
        return {role: self._members[f] for role, f in self.manifest.frontend["models"].items()}

    @property
    def audio_input(self) -> AudioInput:
        return self.manifest.audio_input

    def model_bytes(self, modality: str) -> bytes | None:
        """The ``.tflite`` bytes of ``"image"`` or ``"audio"``, or None if the bundle has none."""
        entry = self.manifest.entry(modality)
        return None if entry is None else self._members[entry.file]

    @property
    def image_spec(self) -> ImageSpec:
        return self.manifest.image_spec

    @property
    def feature_config(self) -> FeatureConfig:
        return self.manifest.feature_config

    @property
    def fusion(self) -> FusionWeights:
        return self.manifest.fusion

    @property
    def calibration(self) -> Calibration:
        return self.manifest.calibration

    def member_sizes(self) -> dict[str, int]:
        return {name: len(data) for name, data in self._members.items()}


# --- writing ----------------------------------------------------------------------------------


def bundle_bytes(manifest: Manifest, members: dict[str, bytes]) -> bytes:
    """Serialise ``manifest`` and ``members`` to zip bytes (hashes and ``created`` filled in).

    The result is validated with the same checks as :func:`read_bundle` before it is returned,
    so an invalid bundle is never produced.
    """
    for name, data in members.items():
        _member_name(name, "member")
        if name == MANIFEST_NAME:
            raise BundleError("a member may not be called manifest.json")
        if not isinstance(data, (bytes, bytearray)):
            raise BundleError(f"member {name!r} must be bytes, got {type(data).__name__}")
        if len(data) > MAX_MEMBER_BYTES:
            raise BundleError(
                f"member {name!r} is {len(data)} bytes, over the {MAX_MEMBER_BYTES} cap"
            )
    manifest.members = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
    if not manifest.created:
        manifest.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text = json.dumps(manifest.to_dict(), indent=2, sort_keys=False, allow_nan=False)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr(_zipinfo(MANIFEST_NAME), text.encode("utf-8"))
        for name in sorted(members):
            zf.writestr(_zipinfo(name), bytes(members[name]))
    data = buf.getvalue()
    _parse(io.BytesIO(data), "<new bundle>", len(data))  # the reader's checks, before writing
    return data


def write_bundle(path: str | Path, manifest: Manifest, members: dict[str, bytes]) -> Path:
    """Write a bundle atomically: validated in memory, then written to a temp file and renamed."""
    data = bundle_bytes(manifest, members)
    return write_bytes_atomic(Path(path), data)


def _zipinfo(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


# --- reading ----------------------------------------------------------------------------------


def read_bundle(path: str | Path) -> Bundle:
    """Read and validate ``path``; raise :class:`BundleError` for anything wrong with it."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise BundleError(f"bundle {path} does not exist") from None
    except OSError as exc:
        raise BundleError(f"cannot read bundle {path}: {exc.strerror or exc}") from None
    if not path.is_file():
        raise BundleError(f"bundle {path} is not a file")
    if st.st_size == 0:
        raise BundleError(f"bundle {path} is empty")
    if st.st_size > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle {path} is {st.st_size} bytes, over the {MAX_BUNDLE_BYTES} cap")
    try:
        with open(path, "rb") as fh:
            manifest, members = _parse(fh, str(path), st.st_size)
    except OSError as exc:
        raise BundleError(f"cannot read bundle {path}: {exc.strerror or exc}") from None
    return Bundle(manifest, members, path)


def _parse(fh, label: str, size: int) -> tuple[Manifest, dict[str, bytes]]:
    try:
        return _parse_unchecked(fh, label, size)
    except BundleError as exc:
        msg = str(exc)
        raise BundleError(
            msg if msg.startswith(f"bundle {label}") else f"bundle {label}: {msg}"
        ) from None
    except EdgeAVError as exc:  # e.g. ImageSpec / FeatureConfig validation
        raise BundleError(f"bundle {label}: {exc}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, struct.error) as exc:
        fh.seek(0)
        if fh.read(8)[4:8] == b"TFL3":  # a FlatBuffer with the TFLite file identifier
            raise BundleError(
                f"{label} is a bare .tflite model, not a model.edgeav bundle (a bundle holds the "
                "models with their labels, preprocessing and fusion weights; `edgeav convert` "
                "writes one)"
            ) from None
        raise BundleError(
            f"bundle {label} is not a valid zip file (corrupt or truncated): {exc}"
        ) from None
    except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError, NotImplementedError,
            RuntimeError, OverflowError, MemoryError, RecursionError) as exc:  # fmt: skip
        raise BundleError(f"bundle {label} is invalid: {type(exc).__name__}: {exc}") from None


def _parse_unchecked(fh, label: str, size: int) -> tuple[Manifest, dict[str, bytes]]:
    if size == 0:
        raise BundleError("the file is empty")
    with zipfile.ZipFile(fh) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_ENTRIES:
            raise BundleError(f"has {len(infos)} entries (at most {MAX_ENTRIES} expected)")
        by_name: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = _member_name(info.filename, "zip entry")
            if info.is_dir():
                raise BundleError(f"unexpected folder entry {name!r}")
            mode = (info.external_attr >> 16) & 0o170000
            if mode not in (0, stat.S_IFREG):
                raise BundleError(f"entry {name!r} is not a regular file (symlink or device)")
            if name in by_name:
                raise BundleError(f"duplicate entry {name!r}")
            if info.flag_bits & 0x1:
                raise BundleError(f"entry {name!r} is encrypted")
            by_name[name] = info
        if MANIFEST_NAME not in by_name:
            raise BundleError("has no manifest.json (not an edgeav bundle?)")
        raw = _read_capped(zf, by_name[MANIFEST_NAME], MAX_MANIFEST_BYTES)
        try:
            decoded = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise BundleError("manifest.json is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise BundleError(f"manifest.json is not valid JSON: {exc}") from None
        manifest = Manifest.from_dict(decoded)

        listed = set(manifest.members)
        present = set(by_name) - {MANIFEST_NAME}
        missing = sorted(listed - present)
        if missing:
            raise BundleError(f"member {missing[0]!r} listed in the manifest is missing")
        extra = sorted(present - listed)
        if extra:
            raise BundleError(f"entry {extra[0]!r} is not listed in the manifest")
        members: dict[str, bytes] = {}
        for name in sorted(listed):
            data = _read_capped(zf, by_name[name], MAX_MEMBER_BYTES)
            digest = hashlib.sha256(data).hexdigest()
            if digest != manifest.members[name]:
                raise BundleError(
                    f"member {name!r} does not match its sha256 (corrupt or tampered)"
                )
            members[name] = data
    _check_consistency(manifest, members)
    return manifest, members


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """Read one entry in chunks, refusing more than ``cap`` bytes whatever the header claims."""
    if info.file_size > cap:
        raise BundleError(
            f"entry {info.filename!r} declares {info.file_size} bytes, over the {cap} cap"
        )
    out = bytearray()
    with zf.open(info) as src:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            out += chunk
            if len(out) > cap:
                raise BundleError(f"entry {info.filename!r} inflates to more than {cap} bytes")
    if len(out) != info.file_size:
        raise BundleError(
            f"entry {info.filename!r} has {len(out)} bytes, header says {info.file_size}"
        )
    return bytes(out)


def _check_consistency(manifest: Manifest, members: dict[str, bytes]) -> None:
    n_classes = len(manifest.classes)
    files = [e.file for e in (manifest.image, manifest.audio) if e is not None]
    if len(set(files)) != len(files):
        raise BundleError("image and audio entries name the same file")
    for modality in MODALITIES:
        entry = manifest.entry(modality)
        if entry is None:
            continue
        if entry.file not in members:
            raise BundleError(f"manifest.{modality}.file {entry.file!r} is not a listed member")
        if entry.output_shape[-1] != n_classes or len(entry.output_shape) != 2:
            raise BundleError(
                f"{modality} model output shape {entry.output_shape} does not match the "
                f"{n_classes} labels"
            )
        if modality == "image":
            expected = [1, *manifest.image_spec.shape]
        else:
            expected = [1, *input_shape(manifest.audio_input, manifest.feature_config)]
        if list(entry.input_shape) != expected:
            raise BundleError(
                f"{modality} model input shape {entry.input_shape} does not match the "
                f"{_input_name(modality, manifest.audio_input.kind)} {expected}"
            )
        _check_tflite(modality, entry, members[entry.file])
    wants_frontend = manifest.audio is not None and manifest.audio_input.kind in EMBEDDING_KINDS
    if wants_frontend and manifest.frontend is None:
        raise BundleError(f"the {manifest.audio_input.kind} audio input needs manifest.frontend")
    if manifest.frontend is not None:
        for role, name in manifest.frontend["models"].items():
            if name not in members:
                raise BundleError(f"manifest.frontend's {role} model {name!r} is not a member")
            if members[name][4:8] != b"TFL3":
                raise BundleError(f"{name} is not a TFLite model")


def _check_tflite(modality: str, entry: ModelEntry, data: bytes) -> None:
    """Check the model's real tensors against the manifest when the schema is installed."""
    from edgeav import tflite_schema  # noqa: PLC0415

    if not tflite_schema.available():
        return
    try:
        info = tflite_schema.describe(data)
    except EdgeAVError as exc:
        raise BundleError(f"{entry.file} is not a valid TFLite model: {exc}") from None
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        raise BundleError(f"{entry.file} must have one input and one output tensor")
    real_in, real_out = info.inputs[0], info.outputs[0]
    for what, real, shape, dtype in (
        ("input", real_in, entry.input_shape, entry.input_dtype),
        ("output", real_out, entry.output_shape, entry.output_dtype),
    ):
        if list(real.shape) != list(shape) or real.dtype != dtype:
            raise BundleError(
                f"{entry.file} {what} is {real.dtype}{list(real.shape)} but the manifest says "
                f"{dtype}{list(shape)}"
            )


# --- small validators -------------------------------------------------------------------------

_T = TypeVar("_T")


def _section(value: Any, key: str, typ: type[_T]) -> _T:
    """The manifest's ``key`` section as a ``typ``: ``value`` itself if it is one, else the JSON
    object ``value`` parsed by ``typ.from_dict``; any failure is a :class:`BundleError`."""
    if isinstance(value, typ):
        return value
    where = f"manifest.{key}"
    _expect(value, dict, where)
    try:
        return typ.from_dict(value)  # type: ignore[attr-defined]
    except BundleError:
        raise
    except (EdgeAVError, TypeError, ValueError, KeyError) as exc:
        raise BundleError(f"{where} is invalid: {exc}") from None


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _member_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name:
        raise BundleError(f"{where}: member name must be a non-empty string, got {name!r}")
    bad = (
        name.startswith(("/", "\\"))
        or (len(name) > 1 and name[1] == ":")
        or "\\" in name
        or "\x00" in name
        or any(part in ("..", ".", "") for part in name.split("/"))
        or posixpath.isabs(name)
        or len(name) > 100
    )
    if bad:
        raise BundleError(f"{where}: unsafe member name {name!r} (absolute path or '..')")
    return name


def _expect(value: Any, typ: type, where: str) -> Any:
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise BundleError(f"{where} must be {_type_name(typ)}, got {type(value).__name__}")
    return value


def _get(obj: dict, key: str, typ: type, where: str) -> Any:
    if key not in obj:
        raise BundleError(f"{where} is missing required field {key!r}")
    return _expect(obj[key], typ, f"{where}.{key}")


def _type_name(typ: type) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "an integer"}.get(
        typ, typ.__name__
    )


def _no_unknown(obj: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        raise BundleError(f"{where} has unknown field(s): {', '.join(map(str, unknown))}")


def _choice(value: str, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise BundleError(f"{where} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _nonneg_int(value: int, where: str) -> int:
    if value < 0:
        raise BundleError(f"{where} must be >= 0, got {value}")
    return value


def _shape(value: list, where: str) -> list[int]:
    if not 1 <= len(value) <= 6:
        raise BundleError(f"{where} must have 1..6 dimensions, got {len(value)}")
    for d in value:
        if not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= 1_000_000:
            raise BundleError(f"{where} has an invalid dimension {d!r}")
    return list(value)


def _frontend(value: Any) -> dict[str, Any]:
    """A checked ``frontend`` section: ``{"models": {role: member name}, "origin": {str: str}}``."""
    where = "manifest.frontend"
    obj = _expect(value, dict, where)
    _no_unknown(obj, {"models", "origin"}, where)
    models = _get(obj, "models", dict, where)
    if sorted(models) != sorted(EMBEDDING_MODELS):
        raise BundleError(f"{where}.models must name {', '.join(EMBEDDING_MODELS)}")
    for role, name in models.items():
        _member_name(name, f"{where}.models.{role}")
    origin = _get(obj, "origin", dict, where)
    for key, text in origin.items():
        if not isinstance(text, str) or len(text) > 500:
            raise BundleError(f"{where}.origin.{key} must be a short string")
    return {"models": dict(models), "origin": dict(origin)}


def _input_name(modality: str, kind: str) -> str:
    """What a model's input must match, for error messages."""
    if modality == "image":
        return "image spec"
    return "audio feature size" if kind == "features" else f"audio input ({kind})"
