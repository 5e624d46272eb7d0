"""Frame sources: a live camera or stream (:class:`LiveCamera`) and a video file (:class:`VideoFile`).

- :class:`LiveCamera` (a device index or a stream URL): a background thread reads as fast as the
  source delivers and keeps only the newest frame, so a slow tick never sees a stale buffered
  frame. When the source stops delivering, the thread closes it and reopens it with exponential
  backoff; the last frame grows stale meanwhile, which the pipeline reports. A device index is
  opened through OpenCV's V4L2 backend (USB webcams).
- The Raspberry Pi camera module (CSI, libcamera) does not deliver frames through V4L2 in
  OpenCV: :func:`open_frame_source` gives a ``--camera 0`` to Picamera2
  (:class:`edgeav.runtime.picamera.PiCamera`, the same reader thread) when Picamera2 is
  importable and libcamera lists that camera, and says which one it chose when it opens.
- :class:`VideoFile`: no thread and no wall clock. ``frame_at(t)`` decodes forward to the frame
  on screen just before stream time ``t`` -- the newest frame whose timestamp is earlier than
  ``t``. Timestamps come from the container (``CAP_PROP_POS_MSEC``, or frame index / fps when it
  has none) in integer microseconds, so the answer is exact and deterministic. A looping file
  continues its clock across loops.

Frames are OpenCV BGR ``uint8`` arrays; :func:`edgeav.preprocess.preprocess_image` turns them
into model input. OpenCV is imported when a source is opened.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError
from edgeav.runtime.sources import Frame, FrameSource

#: Seconds between reopen attempts of a failing device/stream: start, doubling up to the cap.
BACKOFF_START = 0.5
BACKOFF_MAX = 8.0
#: Consecutive failed reads after which a device or stream is closed and reopened.
FAILURES_BEFORE_REOPEN = 3


def import_cv2() -> Any:
    """Import OpenCV with its native logging limited to errors (no WARN lines on stderr)."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    os.environ.setdefault("OPENCV_VIDEOIO_DEBUG", "0")
    try:
        import cv2  # noqa: PLC0415
    except ImportError as exc:
        raise EdgeAVError(
            "OpenCV is not installed; install the runtime extra: pip install 'edgeav[runtime]'"
        ) from exc
    return cv2


def parse_camera_size(text: str | None) -> tuple[int, int] | None:
    """``"640x480"`` -> ``(640, 480)`` (``--camera-size``); None stays None."""
    if text is None:
        return None
    parts = str(text).lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise EdgeAVError(f"camera size must be WIDTHxHEIGHT, such as 640x480; got {text!r}")
    width, height = (int(p) for p in parts)
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise EdgeAVError(f"camera size must be 16..8192 pixels each way, got {text!r}")
    return width, height


def check_camera_fps(fps: float | None) -> float | None:
    """A ``--camera-fps`` value: None, or a frame rate in (0, 240]."""
    if fps is None:
        return None
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 240:
        raise EdgeAVError(f"camera frame rate must be in (0, 240] frames a second, got {fps!r}")
    return float(fps)


def open_frame_source(
    source: int | str,
    *,
    loop: bool = False,
    log: Callable[[str], None] | None = None,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
) -> FrameSource:
    """The frame source a ``--camera`` value names, not opened yet.

    - ``0`` or ``"0"`` (a device index): the Raspberry Pi camera module through Picamera2 when
      Picamera2 is importable and libcamera lists a camera of that number that is not a USB
      camera; else the V4L2 device through OpenCV (a USB webcam).
    - ``"picam"`` or ``"picam:1"``: libcamera's camera 0 (or 1) through Picamera2, or an error
      saying how to install it.
    - a URL (``rtsp://``, ``http://``): a stream through OpenCV; anything else: a video file.

    ``size`` (width, height) and ``fps`` are asked of a live camera (a camera may round them);
    a file or stream keeps its own.
    """
    fps = check_camera_fps(fps)
    if isinstance(source, int) and not isinstance(source, bool):
        text = str(source)
    else:
        text = str(source).strip()
    if not text:
        raise EdgeAVError("camera source is empty; give a device index, a video file or a URL")
    if text.lstrip("-").isdigit():
        if int(text) < 0:
            raise EdgeAVError(f"camera index must be >= 0, got {text}")
        from edgeav.runtime.picamera import choose_device  # noqa: PLC0415

        return choose_device(int(text), size=size, fps=fps, log=log)
    if text.lower() == "picam" or text.lower().startswith("picam:"):
        from edgeav.runtime.picamera import open_picamera  # noqa: PLC0415

        return open_picamera(text, size=size, fps=fps, log=log)
    if "://" in text:
        return LiveCamera(text, log=log)
    return VideoFile(text, loop=loop)


Opener = Callable[[int | str], Any]


def opencv_opener(
    source: int | str, size: tuple[int, int] | None = None, fps: float | None = None
) -> Any:
    """``cv2.VideoCapture(source)``; for a device, a one-frame driver queue and the asked size
    and frame rate (the driver picks the nearest it has)."""
    cv2 = import_cv2()
    cap = cv2.VideoCapture(source)
    if isinstance(source, int) and cap.isOpened():
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue would add latency
        if size is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        if fps is not None:
            cap.set(cv2.CAP_PROP_FPS, fps)
    return cap


def _read(cap: Any) -> np.ndarray | None:
    """One frame from a capture, or None (a backend that raises is a failed read)."""
    try:
        ok, image = cap.read()
    except Exception:  # noqa: BLE001 - cv2.error from a crashing driver
        return None
    if not ok or image is None or getattr(image, "size", 0) == 0:
        return None
    return image


class LiveCamera(FrameSource):
    """A camera device or a stream URL, newest frame only, reopened when it fails.

    Args:
        source: device index or URL.
        opener: ``source -> capture`` (``isOpened/read/release`` like ``cv2.VideoCapture``);
            the default opens it with OpenCV, at ``size`` and ``fps`` if given.
        backoff_start, backoff_max: reopen delays (seconds) of a failing source.
        log: called with one-line messages (which backend opened a device, reopening, frames
            again).
        size, fps: asked of a device by the default opener.
        note: why this backend was chosen, added to the line that says which opened a device
            and to its error ("Picamera2 is not installed").
    """

    live = True
    #: The backend named in messages about a device index.
    backend = "V4L2 through OpenCV"

    def __init__(
        self,
        source: int | str,
        *,
        opener: Opener | None = None,
        backoff_start: float = BACKOFF_START,
        backoff_max: float = BACKOFF_MAX,
        log: Callable[[str], None] | None = None,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        note: str = "",
    ) -> None:
        self.source = source
        self.label = f"camera {source}" if isinstance(source, int) else f"stream {source}"
        self._opener = opener or (lambda src: opencv_opener(src, size, fps))
        self.size, self.fps, self.note = size, fps, note
        self.backoff_start, self.backoff_max = backoff_start, backoff_max
        self._log = log or (lambda message: None)
        self._cap: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._origin = time.monotonic()
        self._newest: Frame | None = None
        self._taken = True
        self._index = 0
        self.state = "closed"
        self.frames_read = self.frames_dropped = self.read_failures = self.reopens = 0

    def _open_capture(self) -> Any:
        try:
            cap = self._opener(self.source)
        except EdgeAVError:
            raise
        except Exception as exc:  # noqa: BLE001 - OpenCV raises cv2.error for some sources
            raise EdgeAVError(f"cannot open {self.label}: {exc}") from exc
        if cap is not None and cap.isOpened():
            return cap
        if cap is not None:
            cap.release()
        return None

    def open(self) -> LiveCamera:
        """Open the source, read its first frame and start the reader thread."""
        if self._thread is not None:
            return self
        cap = self._open_capture()
        note = f"; {self.note}" if self.note else ""
        if cap is None:
            if isinstance(self.source, int):
                raise EdgeAVError(
                    f"camera index {self.source} cannot be opened "
                    f"({self.backend}: no such camera, or it is busy{note})"
                )
            raise EdgeAVError(f"cannot open stream {self.source}")
        first = _read(cap)
        if first is None:
            cap.release()
            raise EdgeAVError(f"{self.label} opened but delivers no frames ({self.backend}{note})")
        self._cap, self._origin, self.state = cap, time.monotonic(), "open"
        self._publish(first)
        if isinstance(self.source, int):
            self._log(self.opened_line(first))
        self._thread = threading.Thread(target=self._run, name=f"edgeav-{self.label}", daemon=True)
        self._thread.start()
        return self

    def opened_line(self, first: np.ndarray) -> str:
        """The line that says which backend opened the device, and at what size."""
        height, width = first.shape[:2]
        fps = ""
        with contextlib.suppress(Exception):  # a capture without get() or CAP_PROP_FPS
            rate = float(self._cap.get(import_cv2().CAP_PROP_FPS))
            fps = f" at {rate:g} fps" if 0 < rate < 1000 else ""
        note = f" ({self.note})" if self.note else ""
        return f"{self.label}: {self.backend}{note}, {width}x{height}{fps}"

    def frame_at(self, t_us: int) -> Frame | None:
        """The newest frame (``t_us`` is ignored: a live camera has only now)."""
        with self._lock:
            if self._newest is not None:
                self._taken = True
            return self._newest

    def _publish(self, image: np.ndarray) -> None:
        now = time.monotonic()
        frame = Frame(image, now - self._origin, self._index, now)
        with self._lock:
            if not self._taken:
                self.frames_dropped += 1
            self._newest, self._taken = frame, False
        self._index += 1
        self.frames_read += 1

    def _run(self) -> None:
        failures, backoff = 0, self.backoff_start
        while not self._stop.is_set():
            image = _read(self._cap) if self._cap is not None else None
            if image is not None:
                if failures >= FAILURES_BEFORE_REOPEN:
                    self._log(f"{self.label}: frames again")
                failures, backoff, self.state = 0, self.backoff_start, "open"
                self._publish(image)
                continue
            failures += 1
            self.read_failures += 1
            if failures < FAILURES_BEFORE_REOPEN:
                self._stop.wait(0.02)
                continue
            # no frames: close, wait, reopen, with backoff
            self.state = "reopening"
            self._log(f"{self.label}: no frames; reopening in {backoff:.1f} s")
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, self.backoff_max)
            self.reopens += 1
            try:
                self._cap = self._open_capture()
            except EdgeAVError:
                self._cap = None

    @property
    def kind(self) -> str:
        """``"device"`` (V4L2), ``"url"``, or ``"libcamera"`` (Picamera2)."""
        return "device" if isinstance(self.source, int) else "url"

    def close(self) -> None:
        """Stop the reader and release the source (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            stuck = self._thread.is_alive()
            self._thread = None
            if stuck:
                # blocked in a read of a hung device: releasing the capture under it is unsafe
                # in OpenCV; the daemon thread ends with the process
                self._log(f"{self.label}: reader still blocked in a read; not waiting for it")
                self._cap = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self.state = "closed"

    def stats(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "kind": self.kind,
            "state": self.state,
            "frames_read": self.frames_read,
            "frames_dropped": self.frames_dropped,
            "read_failures": self.read_failures,
            "reopens": self.reopens,
        }


class VideoFile(FrameSource):
    """A video file on its own clock (see the module docstring).

    Args:
        path: any file OpenCV decodes.
        loop: start again at the end, the clock continuing, instead of ending.
    """

    def __init__(self, path: str | Path, *, loop: bool = False) -> None:
        self.path = Path(path)
        self.loop = loop
        self.label = f"video {self.path}"
        self._cap: Any = None
        self._frame_us = 0  # one frame's duration
        self._offset_us = 0  # length of the loops already played
        self._last_ts_us: int | None = None  # timestamp of the last frame read in this pass
        self._pending: tuple[np.ndarray, int] | None = None  # next frame, stream µs
        self._current: Frame | None = None
        self._taken = True
        self._end_us: int | None = None
        self._index = 0
        self.loops = 0
        self.frames_read = self.frames_dropped = 0

    def _open_capture(self) -> Any:
        cv2 = import_cv2()
        try:
            cap = cv2.VideoCapture(str(self.path))
        except Exception as exc:  # noqa: BLE001 - cv2.error
            raise EdgeAVError(f"cannot open {self.label}: {exc}") from exc
        if not cap.isOpened():
            cap.release()
            raise EdgeAVError(f"cannot read video {self.path}: not a video file OpenCV can decode")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._frame_us = int(round(1e6 / fps)) if 0 < fps < 10000 else 0
        return cap

    def open(self) -> VideoFile:
        """Open the file and decode its first frame."""
        if self._cap is not None:
            return self
        if not self.path.exists():
            raise EdgeAVError(f"video file {self.path} does not exist")
        if not self.path.is_file():
            raise EdgeAVError(f"video {self.path} is not a file")
        self._cap = self._open_capture()
        self._pending = self._next()
        if self._pending is None:
            self.close()
            raise EdgeAVError(f"cannot read a frame from video {self.path}")
        return self

    def _timestamp_us(self) -> int:
        pos = self._cap.get(import_cv2().CAP_PROP_POS_MSEC)
        ts = int(round(float(pos) * 1000.0)) if pos is not None and np.isfinite(pos) else -1
        prev = self._last_ts_us
        if prev is None:
            return max(ts, 0)
        return ts if ts > prev else prev + (self._frame_us or 1)  # no usable timestamps

    def _next(self) -> tuple[np.ndarray, int] | None:
        """The next decoded frame and its stream time (µs), looping if asked; None at the end."""
        image = _read(self._cap)
        if image is None and self.loop and self._last_ts_us is not None:
            self._offset_us += self._last_ts_us + max(self._frame_us, 1)
            self._last_ts_us = None
            self._cap.release()
            self._cap = self._open_capture()
            self.loops += 1
            image = _read(self._cap)
            if image is None:
                raise EdgeAVError(f"{self.label} yields no frames when looped")
        if image is None:
            return None
        self._last_ts_us = self._timestamp_us()
        self.frames_read += 1
        return image, self._offset_us + self._last_ts_us

    def frame_at(self, t_us: int) -> Frame | None:
        """The frame on screen just before ``t_us``; None before the first and after the end."""
        self.open()
        while self._pending is not None and self._pending[1] < t_us:
            if not self._taken:
                self.frames_dropped += 1
            image, stream_us = self._pending
            self._current = Frame(image, stream_us / 1e6, self._index)
            self._index += 1
            self._taken = False
            self._pending = self._next()
            if self._pending is None:  # the last frame stays on screen for one frame duration
                self._end_us = stream_us + max(self._frame_us, 1)
        if self._end_us is not None and t_us > self._end_us:
            self.ended = True
            return None
        self._taken = self._current is not None or self._taken
        return self._current

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def stats(self) -> dict[str, Any]:
        return {
            "source": str(self.path),
            "kind": "file",
            "frames_read": self.frames_read,
            "frames_dropped": self.frames_dropped,
            "loops": self.loops,
        }
