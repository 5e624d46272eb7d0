"""Load a paired image+audio data set folder into arrays ready for training and evaluation.

The folder layout::

    DATA/<split>/image/<class>/*.png|jpg|...     e.g. train, val, test, test-noisy, test-unseen
    DATA/<split>/audio/<class>/*.wav|flac|...

Images and audio are paired by class, not by file. Class names are the folder names, sorted,
except ``none`` (:data:`NOTHING`): an optional folder, in either modality, of inputs that show or
say nothing (an empty camera frame, room noise). It is no class; training teaches the models to
be unsure on it and calibration chooses thresholds with it (:attr:`Split.nothing`). A
folder without split folders (``DATA/image/<class>``, ``DATA/audio/<class>``) is split
deterministically (70/15/15 per class and modality, by a hash of each file's name) and the
:class:`Dataset` says so in ``split_note``; so is a folder with ``train`` but no ``val`` (15 % of
``train`` becomes ``val``).

Every expected problem (missing folder, no classes, an empty class, a class in one modality only,
a file that cannot be read or decoded) raises :class:`~edgeav.errors.EdgeAVError` naming the
folder, class or file.

Images are decoded with OpenCV (``cv2.imdecode`` of the file's bytes, so any file name works) and
prepared with :func:`edgeav.preprocess.preprocess_image`; audio is read with soundfile and turned
into a feature vector with :func:`edgeav.features.extract`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeav.errors import EdgeAVError
from edgeav.preprocess import ImageSpec

if TYPE_CHECKING:  # pragma: no cover - typing only
    from edgeav.features import FeatureConfig

#: The two modalities, as folder names.
MODALITIES = ("image", "audio")

#: File name extensions read as images / audio (lower case); other files are skipped and listed.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
_EXTENSIONS = {"image": IMAGE_EXTENSIONS, "audio": AUDIO_EXTENSIONS}

#: Split folders in the order they are reported; other split folder names are loaded after them.
#: Only train is required (val is cut from it when missing); test, test-noisy and test-unseen
#: (voices and synthesizers no train or val clip uses) are loaded when present.
KNOWN_SPLITS = ("train", "val", "test", "test-noisy", "test-unseen")

#: The folder of inputs that show or say nothing: not a class.
NOTHING = "none"

#: Fractions used when a folder has no split folders (train, val, test).
AUTO_SPLIT = (0.70, 0.15, 0.15)


# --- the index: which files belong to which split, modality and class ---------------------------


@dataclass
class SplitIndex:
    """The files of one split: ``files[modality][class_name] -> sorted list of paths``."""

    name: str
    files: dict[str, dict[str, list[Path]]]

    def count(self, modality: str) -> int:
        return sum(len(v) for v in self.files[modality].values())


@dataclass
class DatasetIndex:
    """What :func:`scan_dataset` found: classes, splits and their files (nothing decoded yet)."""

    root: Path
    classes: list[str]
    splits: dict[str, SplitIndex]
    split_note: str | None = None
    skipped: list[Path] = field(default_factory=list)


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _subdirs(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise EdgeAVError(f"cannot read folder {folder}: {exc.strerror or exc}") from exc
    return [p for p in entries if p.is_dir() and not _is_hidden(p)]


def _scan_modality(folder: Path, modality: str, skipped: list[Path]) -> dict[str, list[Path]]:
    """``{class: [files]}`` for ``folder`` = ``<split>/<modality>``; errors name what is wrong."""
    classes = _subdirs(folder)
    if not classes:
        raise EdgeAVError(f"no class folders in {folder} (expected {folder}/<class>/...)")
    out: dict[str, list[Path]] = {}
    for class_dir in classes:
        files = []
        for entry in sorted(class_dir.iterdir()):
            if _is_hidden(entry) or entry.is_dir():
                continue
            if entry.suffix.lower() in _EXTENSIONS[modality]:
                files.append(entry)
            else:
                skipped.append(entry)
        if not files:
            kinds = "/".join(e.lstrip(".") for e in _EXTENSIONS[modality][:3])
            raise EdgeAVError(
                f"class {class_dir.name!r} has no {modality} files in {class_dir} "
                f"(expected {kinds}...)"
            )
        out[class_dir.name] = files
    return out


def _scan_split(folder: Path, name: str, skipped: list[Path]) -> SplitIndex:
    files: dict[str, dict[str, list[Path]]] = {}
    for modality in MODALITIES:
        sub = folder / modality
        if not sub.is_dir():
            raise EdgeAVError(f"{folder} has no {modality} folder (expected {sub}/<class>/...)")
        files[modality] = _scan_modality(sub, modality, skipped)
    only_image = sorted(set(files["image"]) - set(files["audio"]) - {NOTHING})
    only_audio = sorted(set(files["audio"]) - set(files["image"]) - {NOTHING})
    if only_image:
        raise EdgeAVError(
            f"class {only_image[0]!r} has images but no audio in {folder} "
            f"(missing {folder / 'audio' / only_image[0]})"
        )
    if only_audio:
        raise EdgeAVError(
            f"class {only_audio[0]!r} has audio but no images in {folder} "
            f"(missing {folder / 'image' / only_audio[0]})"
        )
    return SplitIndex(name=name, files=files)


def _hash_fraction(text: str) -> float:
    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _auto_split(files: list[Path], fractions: Sequence[float], key_prefix: str) -> list[list[Path]]:
    """Split ``files`` by the rank of a hash of each name: deterministic, order-independent.

    Sizes are ``round(fraction * n)`` for every part but the first, which takes the rest, so the
    first part (train) is never empty.
    """
    ranked = sorted(files, key=lambda p: (_hash_fraction(f"{key_prefix}/{p.name}"), p.name))
    n = len(ranked)
    sizes = [round(f * n) for f in fractions[1:]]
    while sum(sizes) >= n and any(sizes):  # keep at least one file for the first part
        i = max(range(len(sizes)), key=lambda k: sizes[k])
        sizes[i] -= 1
    parts = [ranked[: n - sum(sizes)]]
    start = n - sum(sizes)
    for size in sizes:
        parts.append(ranked[start : start + size])
        start += size
    return parts


def _split_index(
    index: SplitIndex, names: Sequence[str], fractions: Sequence[float]
) -> dict[str, SplitIndex]:
    out = {name: SplitIndex(name, {m: {} for m in MODALITIES}) for name in names}
    for modality in MODALITIES:
        for cls, files in index.files[modality].items():
            parts = _auto_split(files, fractions, f"{modality}/{cls}")
            for name, part in zip(names, parts, strict=True):
                if part:
                    out[name].files[modality][cls] = part
    return out


def scan_dataset(path: str | os.PathLike[str]) -> DatasetIndex:
    """Find the classes, splits and files of a data set folder without decoding anything.

    Raises:
        EdgeAVError: the folder is missing or not a folder, has no split folders and no
            ``image``/``audio`` folders, has no classes, an empty class, or a class present in one
            modality and not the other.
    """
    root = Path(path)
    if not root.exists():
        raise EdgeAVError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise EdgeAVError(f"data folder {root} is not a folder")
    skipped: list[Path] = []
    note = None
    has_flat = any((root / m).is_dir() for m in MODALITIES)
    split_dirs = [d for d in _subdirs(root) if any((d / m).is_dir() for m in MODALITIES)]
    if has_flat and split_dirs:
        raise EdgeAVError(
            f"{root} mixes split folders ({', '.join(d.name for d in split_dirs)}) with "
            f"top-level image/audio folders; use one layout"
        )
    if has_flat:
        whole = _scan_split(root, "all", skipped)
        names = ("train", "val", "test")
        splits = _split_index(whole, names, AUTO_SPLIT)
        note = (
            f"{root} has no split folders: split deterministically per class and modality by a "
            f"hash of each file name, {'/'.join(f'{round(f * 100)}' for f in AUTO_SPLIT)} % "
            f"train/val/test"
        )
    elif split_dirs:
        splits = {d.name: _scan_split(d, d.name, skipped) for d in split_dirs}
        if "train" not in splits:
            raise EdgeAVError(
                f"{root} has no train split (found {', '.join(sorted(splits))}); expected "
                f"{root}/train/image/<class>/..."
            )
        if "val" not in splits:
            parts = _split_index(splits["train"], ("train", "val"), (0.85, 0.15))
            splits["train"], splits["val"] = parts["train"], parts["val"]
            note = (
                f"{root} has no val split: 15 % of train (per class and modality, by a hash of "
                f"each file name) is used as val"
            )
    else:
        raise EdgeAVError(
            f"no data in {root}: expected {root}/<split>/image/<class>/... and "
            f"{root}/<split>/audio/<class>/... (or {root}/image/<class>/... without splits)"
        )

    classes = sorted(set().union(*(s.files["image"] for s in splits.values())) - {NOTHING})
    train_classes = set(splits["train"].files["image"])
    for name, split in splits.items():
        extra = sorted(set(split.files["image"]) - train_classes - {NOTHING})
        if extra:
            raise EdgeAVError(
                f"class {extra[0]!r} appears in split {name!r} but not in train ({root})"
            )
    if len(classes) < 2:
        raise EdgeAVError(f"{root} has only one class ({classes[0]!r}); need at least two")
    order = {n: i for i, n in enumerate(KNOWN_SPLITS)}
    ordered = dict(sorted(splits.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    return DatasetIndex(
        root=root, classes=classes, splits=ordered, split_note=note, skipped=skipped
    )


# --- decoding -----------------------------------------------------------------------------------


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file as OpenCV does (BGR/BGRA or grayscale, its own bit depth).

    Reads the bytes with NumPy and decodes them with ``cv2.imdecode``, so names with spaces or
    non-UTF-8 bytes work. Raises :class:`EdgeAVError` naming the file if it cannot be read or
    decoded.
    """
    import cv2  # noqa: PLC0415

    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise EdgeAVError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    # OpenCV logs its own lines for a file it cannot decode; the error below says it in one line
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    level = log.getLogLevel() if log is not None else None
    if log is not None:
        log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    finally:
        if log is not None:
            log.setLogLevel(level)
    if img is None or img.size == 0:
        raise EdgeAVError(f"cannot decode image {path} (not a valid image file)")
    return img


def read_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read an audio file with soundfile: ``(samples float32 (n,) or (n, ch), sample_rate)``.

    Raises :class:`EdgeAVError` naming the file if it cannot be read or decoded or is empty.
    """
    import soundfile as sf  # noqa: PLC0415

    path = Path(path)
    try:
        y, sr = sf.read(str(path), dtype="float32", always_2d=False)
    except (
        RuntimeError,
        OSError,
        ValueError,
        TypeError,
    ) as exc:  # LibsndfileError is a RuntimeError
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EdgeAVError(f"cannot decode audio {path}: {detail}") from exc
    if y.size == 0:
        raise EdgeAVError(f"audio file {path} has no samples")
    return y, int(sr)


# --- the loaded data set ------------------------------------------------------------------------


@dataclass
class Split:
    """One split, decoded.

    Attributes:
        images: ``(N, S, S, C)`` float32, already :func:`~edgeav.preprocess.preprocess_image`'d;
            ``(N, K, S, S, C)``, every candidate (:func:`~edgeav.preprocess.image_candidates`),
            for a spec that reads each image as several (``crop="digit"``): the first is the
            training input (:mod:`edgeav.candidates`).
        image_labels: ``(N,)`` int64 class indices into :attr:`Dataset.classes`.
        audio_features: ``(M, D)`` float32, :func:`edgeav.features.extract` of each clip.
        audio_labels: ``(M,)`` int64.
        image_paths, audio_paths: the source file of each row.
        nothing: per modality, the inputs of the split's ``none`` folder (images or audio inputs
            that show or say nothing), shaped like ``images`` / ``audio_features``; empty arrays
            when there is none. Through a front-end, each ``none`` clip is there twice: centred
            in silence in the window (as every clip), then repeated to fill the window, which
            is how a microphone hears a sound that goes on (room noise); see
            :func:`_looped_inputs`.
    """

    name: str
    images: np.ndarray
    image_labels: np.ndarray
    audio_features: np.ndarray
    audio_labels: np.ndarray
    image_paths: list[Path]
    audio_paths: list[Path]
    nothing: dict[str, np.ndarray] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = {"image": int(len(self.image_labels)), "audio": int(len(self.audio_labels))}
        for m, arr in self.nothing.items():
            if len(arr):
                out[f"{m}_nothing"] = int(len(arr))
        return out


@dataclass
class Dataset:
    """A loaded data set: ``classes``, ``splits`` (by name, train/val/test/... order).

    ``ds["train"]`` is ``ds.splits["train"]``. ``split_note`` says how splits were made when the
    folder did not have them (``None`` otherwise); ``skipped`` lists files ignored for their
    extension.
    """

    root: Path
    classes: list[str]
    splits: dict[str, Split]
    image_spec: ImageSpec
    feature_config: Any
    split_note: str | None = None
    skipped: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Split:
        try:
            return self.splits[name]
        except KeyError:
            raise EdgeAVError(
                f"data set {self.root} has no split {name!r} (has {', '.join(self.splits)})"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.splits

    def counts(self) -> dict[str, dict[str, int]]:
        return {name: split.counts() for name, split in self.splits.items()}


def _labelled(files: dict[str, list[Path]], class_index: dict[str, int]) -> list[tuple[Path, int]]:
    """``(path, class index)`` of every file, the ``none`` folder's as index -1."""
    return [(p, class_index.get(c, -1)) for c in sorted(files) for p in files[c]]


def progress_bar(enabled: bool = True):
    """A rich progress bar on stderr (disabled: a no-op context)."""
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


def load_dataset(
    path: str | os.PathLike[str],
    image_spec: ImageSpec,
    feature_config: FeatureConfig,
    splits: Iterable[str] | None = None,
    progress: bool = True,
    frontend: Any = None,
    cache_dir: Path | None = None,
) -> Dataset:
    """Decode a data set folder: images through ``image_spec``, audio through ``feature_config``.

    Args:
        path: the data set folder (layout in this module's docstring).
        image_spec: how each image becomes the image model's input.
        feature_config: the audio feature configuration (:class:`edgeav.features.FeatureConfig`).
        splits: names of the splits to load (default: all that exist). Asking for a split that
            does not exist raises :class:`EdgeAVError`.
        progress: show a progress bar on stderr.
        frontend: an :class:`edgeav.runtime.frontend.FrontEnd`: each clip, resampled and fitted
            to its window (centred), becomes that front-end's output instead of
            :func:`edgeav.features.extract`'s vector.
        cache_dir: keep each split's image inputs and front-end outputs there, keyed by the
            files (names, sizes, times) and what turns them into inputs (the image spec and the
            preprocessing code; the front-end), so a second load does not compute them again.

    Returns:
        A :class:`Dataset`; class indices follow the sorted class folder names.
    """
    import time  # noqa: PLC0415

    index = scan_dataset(path)
    wanted = list(index.splits) if splits is None else list(splits)
    missing = [s for s in wanted if s not in index.splits]
    if missing:
        raise EdgeAVError(
            f"data set {index.root} has no split {missing[0]!r} (has {', '.join(index.splits)})"
        )
    class_index = {c: i for i, c in enumerate(index.classes)}
    jobs = {
        name: {m: _labelled(index.splits[name].files[m], class_index) for m in MODALITIES}
        for name in wanted
    }
    seconds = {"image": 0.0, "audio": 0.0}
    loaded: dict[str, Split] = {}
    with progress_bar(progress) as bar:
        for name in wanted:
            img_items, aud_items = jobs[name]["image"], jobs[name]["audio"]
            t0 = time.perf_counter()
            task = bar.add_task(f"{name}: images", total=len(img_items))
            img_paths = [p for p, _ in img_items]
            images = _through_cache(
                _image_cache_file(cache_dir, img_paths, image_spec),
                len(img_paths),
                functools.partial(bar.advance, task),
                functools.partial(_image_inputs, img_paths, image_spec),
            )
            t1 = time.perf_counter()
            task = bar.add_task(f"{name}: audio inputs", total=len(aud_items))
            paths = [p for p, _ in aud_items]
            feats = _through_cache(
                _cache_file(cache_dir, paths, frontend),
                len(paths),
                functools.partial(bar.advance, task),
                functools.partial(_feature_inputs, paths, feature_config)
                if frontend is None
                else functools.partial(_frontend_inputs, paths, frontend),
            )
            nothing_paths = [p for p, lab in aud_items if lab < 0]
            looped = (
                _through_cache(
                    _cache_file(cache_dir, nothing_paths, frontend, "looped"),
                    len(nothing_paths),
                    lambda _done: None,
                    functools.partial(_looped_inputs, nothing_paths, frontend),
                )
                if frontend is not None and nothing_paths
                else feats[:0]
            )
            t2 = time.perf_counter()
            seconds["image"] += t1 - t0
            seconds["audio"] += t2 - t1
            img_labels = np.array([lab for _, lab in img_items], dtype=np.int64)
            aud_labels = np.array([lab for _, lab in aud_items], dtype=np.int64)
            img_keep, aud_keep = img_labels >= 0, aud_labels >= 0
            loaded[name] = Split(
                name=name,
                images=images[img_keep],
                image_labels=img_labels[img_keep],
                audio_features=feats[aud_keep],
                audio_labels=aud_labels[aud_keep],
                image_paths=[p for p, lab in img_items if lab >= 0],
                audio_paths=[p for p, lab in aud_items if lab >= 0],
                nothing={
                    "image": images[~img_keep],
                    "audio": np.concatenate([feats[~aud_keep], looped]),
                },
            )
    return Dataset(
        root=index.root,
        classes=index.classes,
        splits=loaded,
        image_spec=image_spec,
        feature_config=feature_config,
        split_note=index.split_note,
        skipped=index.skipped,
        seconds=seconds,
    )


#: The image spec of a worker process (:func:`_image_inputs`).
_worker_spec: ImageSpec | None = None


def _use_image_spec(spec: ImageSpec) -> None:
    global _worker_spec
    _worker_spec = spec


def image_input_shape(spec: ImageSpec) -> tuple[int, ...]:
    """The shape of one image's inputs as loaded: ``spec.shape``, or ``(k, *spec.shape)`` when
    the spec reads each image as ``k`` candidates (:mod:`edgeav.candidates`)."""
    from edgeav.preprocess import candidate_count  # noqa: PLC0415

    k = candidate_count(spec)
    return spec.shape if k == 1 else (k, *spec.shape)


def _image_rows(paths: list[Path]) -> np.ndarray:
    """Each image decoded and prepared by the worker's image spec (every candidate)."""
    from edgeav.preprocess import image_candidates  # noqa: PLC0415

    spec = _worker_spec
    shape = image_input_shape(spec)
    out = np.empty((len(paths), *shape), dtype=np.float32)
    for i, p in enumerate(paths):
        raw = read_image(p)
        try:
            out[i] = image_candidates(raw, spec, source_order="bgr").reshape(shape)
        except EdgeAVError as exc:
            raise EdgeAVError(f"cannot use image {p}: {exc}") from exc
    return out


def _image_inputs(paths: list[Path], spec: ImageSpec, advance: Any) -> np.ndarray:
    """:func:`_image_rows` of every image, spread over the cores (:mod:`edgeav.parallel`)."""
    from edgeav.parallel import map_rows  # noqa: PLC0415

    if not paths:
        return np.empty((0, *image_input_shape(spec)), dtype=np.float32)
    return map_rows(
        _image_rows, list(paths), initializer=_use_image_spec, initargs=(spec,), advance=advance
    )


#: The front-end of a worker process (:func:`_frontend_inputs`), built once per worker.
_worker_frontend: Any = None


def use_frontend(spec: Any, config: Any, models: dict[str, bytes]) -> None:
    """Build this process's front-end (a worker's initializer; one interpreter thread)."""
    from edgeav.runtime.frontend import FrontEnd  # noqa: PLC0415

    global _worker_frontend
    _worker_frontend = FrontEnd(spec, config, models, threads=1)


def worker_frontend() -> Any:
    """The front-end :func:`use_frontend` built in this process."""
    return _worker_frontend


def _window_rows(frontend: Any, paths: list[Path], fit: Any) -> np.ndarray:
    """The front-end's output for each clip (resampled), made one window long by
    ``fit(samples, n)``."""
    from edgeav.features import prepare_audio  # noqa: PLC0415

    out = np.empty((len(paths), *frontend.shape), dtype=np.float32)
    for i, p in enumerate(paths):
        y, sr = read_audio(p)
        try:
            x = prepare_audio(y, frontend.config, sr=sr)
            out[i] = frontend(np.asarray(fit(x, frontend.window), dtype=np.float32))
        except (EdgeAVError, ValueError) as exc:
            raise EdgeAVError(f"cannot compute the audio input of {p}: {exc}") from exc
    return out


def _frontend_rows(paths: list[Path]) -> np.ndarray:
    """The front-end's output for each clip (resampled, fitted to the window, centred)."""
    from edgeav.runtime.frontend import fit_window  # noqa: PLC0415

    return _window_rows(_worker_frontend, paths, fit_window)


def _looped_inputs(paths: list[Path], frontend: Any, advance: Any) -> np.ndarray:
    """The front-end's output for each clip repeated (from its start) to fill the window (a few
    hundred ``none`` clips: in this process). A ``none`` clip is background that goes on;
    centred in digital silence, as the data set's 1 s clips are, it looks like nothing a live
    microphone gives, and a model taught only that can be sure of a digit in the room noise of a
    live window."""
    out = _window_rows(frontend, list(paths), np.resize)
    advance(len(paths))
    return out


def _frontend_inputs(paths: list[Path], frontend: Any, advance: Any) -> np.ndarray:
    """:func:`_frontend_rows` of every clip, spread over the cores (:mod:`edgeav.parallel`)."""
    from edgeav.parallel import map_rows  # noqa: PLC0415

    if not paths:
        return np.empty((0, *frontend.shape), dtype=np.float32)
    recipe = (frontend.spec, frontend.config, frontend.model_bytes)
    return map_rows(
        _frontend_rows, list(paths), initializer=use_frontend, initargs=recipe, advance=advance
    )


def _cache_file(
    cache_dir: Path | None, paths: list[Path], frontend: Any, what: str = "audio"
) -> Path | None:
    """Where a split's front-end outputs (``what``: of the clips, ``"audio"``, or of the clips
    repeated to fill the window, ``"looped"``) are cached (None: no cache, or no front-end)."""
    if cache_dir is None or frontend is None:
        return None
    h = hashlib.sha256(frontend.fingerprint().encode())
    add_files(h, paths)
    return Path(cache_dir) / f"{what}-{h.hexdigest()[:32]}.npy"


def _through_cache(path: Path | None, count: int, advance: Any, compute: Any) -> np.ndarray:
    """What ``path`` holds (``count`` items: ``advance(count)``), else ``compute(advance)``,
    then kept at ``path`` if given."""
    if path is not None and path.is_file():
        advance(count)
        return np.load(path)
    arr = compute(advance)
    if path is not None:
        _save_cache(path, arr)
    return arr


def _feature_inputs(paths: list[Path], config: FeatureConfig, advance: Any) -> np.ndarray:
    """The seed's feature vector (:func:`edgeav.features.extract`) of each clip."""
    from edgeav.features import extract  # noqa: PLC0415

    feats = np.empty((len(paths), config.dim), dtype=np.float32)
    for i, p in enumerate(paths):
        y, sr = read_audio(p)
        try:
            feats[i] = extract(y, config, sr=sr)
        except (EdgeAVError, ValueError) as exc:
            raise EdgeAVError(f"cannot compute the audio input of {p}: {exc}") from exc
        advance()
    return feats


def _image_cache_file(cache_dir: Path | None, paths: list[Path], spec: ImageSpec) -> Path | None:
    """Where a split's image inputs are cached (None: no cache, or no images): keyed by the
    files, the spec, and the code and library versions that prepare them."""
    if cache_dir is None or not paths:
        return None
    import cv2  # noqa: PLC0415

    from edgeav import locate, preprocess  # noqa: PLC0415

    h = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode())
    for module in (preprocess, locate):
        h.update(Path(module.__file__).read_bytes())
    h.update(f"{cv2.__version__}\0{np.__version__}\0".encode())
    add_files(h, paths)
    return Path(cache_dir) / f"image-{h.hexdigest()[:32]}.npy"


def add_files(h: Any, paths: Iterable[Path]) -> None:
    """Add each file's resolved path (its bytes: any name the file system allows), size and
    modification time to the hash ``h`` (the key of a cache of what was computed from them)."""
    for p in paths:
        st = p.stat()
        h.update(os.fsencode(p.resolve()) + f"\0{st.st_size}\0{st.st_mtime_ns}\0".encode())


def _save_cache(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` to ``path`` through a temporary name (a cache is never half-written)."""
    import contextlib  # noqa: PLC0415

    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.part")
        with open(tmp, "wb") as fh:
            np.save(fh, arr)
        os.replace(tmp, path)


def paired_indices(
    image_labels: np.ndarray, audio_labels: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Pair every image with an audio clip of the same class, deterministically.

    Within each class the clips are shuffled with ``seed`` and dealt out in turn (cycling when a
    class has more images than clips), so every clip is used about equally often. Images whose
    class has no clip are left out.

    Returns:
        ``(image_idx, audio_idx)``, int64 arrays of equal length, ordered by image index, with
        ``image_labels[image_idx] == audio_labels[audio_idx]``.
    """
    image_labels = np.asarray(image_labels).reshape(-1)
    audio_labels = np.asarray(audio_labels).reshape(-1)
    rng = np.random.default_rng(seed)
    img_out: list[np.ndarray] = []
    aud_out: list[np.ndarray] = []
    for cls in np.unique(image_labels):
        imgs = np.flatnonzero(image_labels == cls)
        clips = np.flatnonzero(audio_labels == cls)
        if clips.size == 0:
            continue
        clips = rng.permutation(clips)
        img_out.append(imgs)
        aud_out.append(clips[np.arange(imgs.size) % clips.size])
    if not img_out:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    img_idx = np.concatenate(img_out)
    aud_idx = np.concatenate(aud_out)
    order = np.argsort(img_idx, kind="stable")
    return img_idx[order].astype(np.int64), aud_idx[order].astype(np.int64)
