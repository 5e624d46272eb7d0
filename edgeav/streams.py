"""Build a test stream from a data set split: a video of its images and a WAV of its clips.

Item ``k`` of the stream lasts ``item_seconds`` (one second by default; the bundle's audio window
for the demo): it shows one image (``fps`` identical frames a second) and plays an audio clip of
the same class from its start (zero-padded or cut to one second). ``edgeav run --camera VIDEO
--audio-file WAV --no-realtime --rate 1/item_seconds`` then makes one prediction per item, tick
``k`` at ``t = (k + 1) * item_seconds`` covering exactly item ``k`` -- the runtime's clock is built
so that tick sees that image and exactly that clip, when the audio window is one item long.

By default the stream holds every image of the split, each paired with a clip by
:func:`edgeav.data.loader.paired_indices` -- the same pairs the training and conversion reports
use for their fused accuracy -- in an order shuffled with ``seed``, so the stream's accuracy is
directly comparable to the bundle's. With ``seconds`` only the first ``seconds`` of that order are
used. The video is lossless (FFV1) for ``.mkv``/``.avi``; ``.mp4`` uses the lossy mp4v codec.

Used by the runtime's acceptance test, the benchmarks and the demo. Laptop side: reads the data set
folder with :mod:`edgeav.data.loader` (OpenCV, soundfile, soxr); never TensorFlow.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError

#: Codec per video file suffix (lossless where the container allows it).
CODECS = {".mkv": "FFV1", ".avi": "FFV1", ".mp4": "mp4v"}


@dataclass
class TestStream:
    """What :func:`make_test_stream` wrote: per second, the class and the source files."""

    video: Path
    wav: Path
    classes: list[str]
    labels: list[str]
    image_files: list[Path] = field(default_factory=list)
    audio_files: list[Path] = field(default_factory=list)
    fps: float = 10.0
    sample_rate: int = 16000
    item_seconds: float = 1.0

    @property
    def seconds(self) -> int:
        """The number of items (one prediction each)."""
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": str(self.video),
            "wav": str(self.wav),
            "classes": self.classes,
            "labels": self.labels,
            "image_files": [str(p) for p in self.image_files],
            "audio_files": [str(p) for p in self.audio_files],
            "fps": self.fps,
            "sample_rate": self.sample_rate,
            "item_seconds": self.item_seconds,
        }


def _tmp_name(path: Path) -> Path:
    # the same suffix: OpenCV and libsndfile choose the format from it
    return path.with_name(f".{path.stem}.{os.getpid()}.part{path.suffix}")


def make_test_stream(
    data_dir: str | os.PathLike[str],
    split: str,
    out_video: str | os.PathLike[str],
    out_wav: str | os.PathLike[str],
    seconds: int | None = None,
    seed: int = 0,
    *,
    fps: float = 10.0,
    labels_json: str | os.PathLike[str] | None = None,
    item_seconds: float = 1.0,
) -> TestStream:
    """Write ``out_video`` and ``out_wav`` from ``data_dir``'s ``split`` (see the module docstring).

    Args:
        data_dir: a data set folder (``DATA/<split>/{image,audio}/<class>/...``).
        split: e.g. ``"test"``.
        out_video: ``.mkv`` or ``.avi`` (lossless FFV1) or ``.mp4`` (mp4v).
        out_wav: the WAV to write (16-bit PCM at the clips' sample rate).
        seconds: stream length (default: every image of the split).
        seed: order of the seconds.
        fps: video frame rate (each image is shown for ``fps`` frames).
        labels_json: also write the per-item labels and source files there.
        item_seconds: how long each image is shown and each clip's slot lasts (>= 1; a whole
            number of frames at ``fps``).

    Returns:
        A :class:`TestStream` with the label of every second.

    Raises:
        EdgeAVError: missing split, no pairs, unreadable files, an unsupported video suffix.
    """

    from edgeav.data.loader import (  # noqa: PLC0415
        NOTHING,
        paired_indices,
        scan_dataset,
    )

    out_video, out_wav = Path(out_video), Path(out_wav)
    codec = CODECS.get(out_video.suffix.lower())
    if codec is None:
        raise EdgeAVError(
            f"video {out_video}: unsupported suffix {out_video.suffix!r}; use .mkv, .avi or .mp4"
        )
    if not (isinstance(fps, (int, float)) and 1 <= fps <= 120):
        raise EdgeAVError(f"fps must be in 1..120, got {fps!r}")
    if not (isinstance(item_seconds, (int, float)) and 1.0 <= item_seconds <= 10.0):
        raise EdgeAVError(f"item_seconds must be in 1..10, got {item_seconds!r}")
    index = scan_dataset(data_dir)
    if split not in index.splits:
        raise EdgeAVError(
            f"data set {index.root} has no split {split!r} (has {', '.join(index.splits)})"
        )
    class_index = {c: i for i, c in enumerate(index.classes)}
    files = index.splits[split].files
    images = [
        (p, class_index[c])
        for c in sorted(files["image"])
        if c != NOTHING
        for p in files["image"][c]
    ]
    clips = [
        (p, class_index[c])
        for c in sorted(files["audio"])
        if c != NOTHING
        for p in files["audio"][c]
    ]
    ii, ai = paired_indices(
        np.array([lab for _, lab in images]), np.array([lab for _, lab in clips]), seed=0
    )
    if ii.size == 0:
        raise EdgeAVError(f"split {split!r} of {index.root} has no image/audio pairs of one class")
    order = np.random.default_rng(seed).permutation(ii.size)
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
            raise EdgeAVError(f"seconds must be a positive integer, got {seconds!r}")
        if seconds > ii.size:
            raise EdgeAVError(
                f"split {split!r} has only {ii.size} pairs; asked for {seconds} seconds"
            )
        order = order[:seconds]
    pairs = [(images[ii[k]][0], clips[ai[k]][0]) for k in order]
    sample_rate = _write(pairs, out_video, out_wav, fps=fps, item_seconds=item_seconds)
    stream = TestStream(
        video=out_video,
        wav=out_wav,
        classes=list(index.classes),
        labels=[index.classes[images[ii[k]][1]] for k in order],
        image_files=[img for img, _ in pairs],
        audio_files=[clip for _, clip in pairs],
        fps=float(fps),
        sample_rate=int(sample_rate),
        item_seconds=float(item_seconds),
    )
    if labels_json is not None:
        from edgeav.fileio import write_text_atomic  # noqa: PLC0415

        write_text_atomic(labels_json, json.dumps(stream.to_dict(), indent=2))
    return stream


def make_nothing_stream(
    data_dir: str | os.PathLike[str],
    split: str,
    out_video: str | os.PathLike[str],
    out_wav: str | os.PathLike[str],
    seconds: int = 60,
    seed: int = 0,
    *,
    fps: float = 10.0,
) -> TestStream:
    """A stream of nothing: ``split``'s ``none`` frames (empty scenes) with its ``none`` clips
    (room noise; silence where the split has none), one a second, ``seconds`` long, shuffled
    with ``seed``. Every item's label is ``""``: a run on it should name no digit.

    Raises:
        EdgeAVError: no such split, or the split has no ``image/none`` folder.
    """
    from edgeav.data.loader import NOTHING, scan_dataset  # noqa: PLC0415

    out_video, out_wav = Path(out_video), Path(out_wav)
    if out_video.suffix.lower() not in CODECS:
        raise EdgeAVError(
            f"video {out_video}: unsupported suffix {out_video.suffix!r}; use .mkv, .avi or .mp4"
        )
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
        raise EdgeAVError(f"seconds must be a positive integer, got {seconds!r}")
    index = scan_dataset(data_dir)
    if split not in index.splits:
        raise EdgeAVError(
            f"data set {index.root} has no split {split!r} (has {', '.join(index.splits)})"
        )
    files = index.splits[split].files
    frames = files["image"].get(NOTHING, [])
    if not frames:
        raise EdgeAVError(f"split {split!r} of {index.root} has no {NOTHING} images")
    clips = files["audio"].get(NOTHING, [])
    rng = np.random.default_rng(seed)
    order_f = rng.permutation(len(frames))
    order_c = rng.permutation(len(clips)) if clips else []
    pairs = [
        (frames[order_f[k % len(frames)]], clips[order_c[k % len(clips)]] if clips else None)
        for k in range(seconds)
    ]
    rate = _write(pairs, out_video, out_wav, fps=fps, item_seconds=1.0)
    return TestStream(
        video=out_video,
        wav=out_wav,
        classes=list(index.classes),
        labels=[""] * seconds,
        image_files=[f for f, _ in pairs],
        audio_files=[c for _, c in pairs if c is not None],
        fps=float(fps),
        sample_rate=rate,
    )


def _write(
    pairs: list[tuple[Path, Path | None]],
    out_video: Path,
    out_wav: Path,
    *,
    fps: float,
    item_seconds: float,
    sample_rate: int | None = None,
) -> int:
    """Write the video and WAV of ``(image, clip)`` items (a clip None: silence); both files
    appear together or not at all. Returns the sample rate (the first clip's by default)."""
    import cv2  # noqa: PLC0415
    import soundfile as sf  # noqa: PLC0415

    from edgeav.data.loader import read_audio, read_image  # noqa: PLC0415

    codec = CODECS[out_video.suffix.lower()]
    if sample_rate is None:
        first = next((clip for _, clip in pairs if clip is not None), None)
        sample_rate = read_audio(first)[1] if first is not None else 16000
    frame_shape: tuple[int, int] | None = None
    per_item = int(round(fps * item_seconds))
    tmp_video, tmp_wav = _tmp_name(out_video), _tmp_name(out_wav)
    writer = None
    try:
        slot = int(round(item_seconds * sample_rate))
        audio = np.zeros(len(pairs) * slot, dtype=np.float32)
        for k, (img_path, clip_path) in enumerate(pairs):
            img = read_image(img_path)
            if img.dtype != np.uint8:
                img = img.astype(np.float32) / (257.0 if img.dtype == np.uint16 else 1.0)
                img = np.clip(img, 0, 255).astype(np.uint8)
            if img.ndim == 2:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            elif img.shape[2] == 4:
                img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
            if frame_shape is None:
                frame_shape = img.shape[:2]
                writer = cv2.VideoWriter(
                    str(tmp_video), cv2.VideoWriter_fourcc(*codec), float(fps),
                    (frame_shape[1], frame_shape[0]),
                )  # fmt: skip
                if not writer.isOpened():
                    raise EdgeAVError(f"cannot write video {out_video} with the {codec} codec")
            if img.shape[:2] != frame_shape:  # every frame must have the first one's size
                img = cv2.resize(
                    img, (frame_shape[1], frame_shape[0]), interpolation=cv2.INTER_AREA
                )
            for _ in range(per_item):
                writer.write(np.ascontiguousarray(img))
            if clip_path is None:
                continue
            y, sr = read_audio(clip_path)
            if y.ndim == 2:
                y = y.mean(axis=1)
            if sr != sample_rate:
                import soxr  # noqa: PLC0415

                y = soxr.resample(y, sr, sample_rate)
            y = y[:slot]
            audio[k * slot : k * slot + len(y)] = y
        writer.release()
        writer = None
        try:
            sf.write(str(tmp_wav), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")
        except (RuntimeError, OSError) as exc:
            raise EdgeAVError(f"cannot write audio {out_wav}: {exc}") from exc
        try:
            os.replace(tmp_video, out_video)
            os.replace(tmp_wav, out_wav)
        except OSError as exc:
            raise EdgeAVError(
                f"cannot write {out_video} / {out_wav}: {exc.strerror or exc}"
            ) from exc
    finally:
        if writer is not None:
            writer.release()
        for tmp in (tmp_video, tmp_wav):
            tmp.unlink(missing_ok=True)
    return int(sample_rate)
