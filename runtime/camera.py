"""Camera frames from a device index, a video file or a stream URL, newest frame only.

Two ways to read, one class:

- **live** (:meth:`Camera.start` + :meth:`Camera.latest`): a background thread reads as fast as
  the source delivers and keeps only the newest frame, so a slow consumer never sees a stale
  buffered frame. A video file is replayed at its own frame rate. When a device or stream stops
  delivering, the thread retries and reopens it with exponential backoff; the frame it last had
  grows stale, which the pipeline reports. A file ends, or loops with ``loop=True``.
- **file clock** (:meth:`Camera.frame_at`, ``--no-realtime``): no wall clock. The frame returned
  for stream time ``t`` is the one on screen just before ``t`` -- the newest frame whose
  timestamp is earlier than ``t`` -- which is what the live reader would hold at that instant.
  Timestamps come from the file (``CAP_PROP_POS_MSEC``, or frame index / fps when the container
  gives none) and are compared in integer microseconds, so the answer is exact and
  deterministic. A decoder thread reads ahead, in order, into a small bounded queue, so decoding
  overlaps the caller's work on another core instead of running inline before every tick (it
  took 4 ms of each 1 s tick of a 10 fps file here, and left the features 30 % slower after it).

Frames are OpenCV BGR ``uint8`` arrays; :func:`edgeav.preprocess.preprocess_image` (colour
order, crop, resize, normalisation from the bundle's manifest) turns them into model input.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError
from edgeav.runtime.affinity import helper_thread

#: Seconds between reopen attempts of a failing device/stream: start, doubling up to the cap.
BACKOFF_START = 0.5
BACKOFF_MAX = 8.0
#: Consecutive failed reads after which a device or stream is closed and reopened.
FAILURES_BEFORE_REOPEN = 3
#: A replayed file frame is published this long after its timestamp, so that a tick due at the
#: same instant still takes the previous frame, as on the file clock.
REPLAY_LAG = 0.002


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


@dataclass(frozen=True)
class Frame:
    """One camera frame.

    Attributes:
        image: BGR ``uint8`` array ``(H, W, 3)`` (or ``(H, W)`` for grayscale sources).
        t: the frame's time in seconds: the file's timestamp (plus the length of earlier loops)
            for a video file, seconds since the camera was opened for a device or stream.
        index: frame number since the camera was opened (continues across loops and reopens).
        received: ``time.monotonic()`` when the frame was read.
    """

    image: np.ndarray
    t: float
    index: int
    received: float


def parse_source(source: int | str) -> tuple[str, int | str]:
    """Classify a ``--camera`` value: ``("device", 0)``, ``("url", "rtsp://..")``, ``("file", path)``."""
    if isinstance(source, int) and not isinstance(source, bool):
        if source < 0:
            raise EdgeAVError(f"camera index must be >= 0, got {source}")
        return "device", source
    text = str(source).strip()
    if not text:
        raise EdgeAVError("camera source is empty; give a device index, a video file or a URL")
    if text.isdigit():
        return "device", int(text)
    if "://" in text:
        return "url", text
    return "file", text


Opener = Callable[[int | str], Any]


def _default_opener(source: int | str) -> Any:
    cv2 = import_cv2()
    cap = cv2.VideoCapture(source)
    if isinstance(source, int) and cap.isOpened():
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue would add latency
    return cap


def _yield_to_tick() -> None:
    """Lower the calling thread's scheduling priority (Linux threads have their own nice value):
    a reader that works ahead should not take a core from the tick; nor should it run on the
    CPUs pinned for the tick (:mod:`edgeav.runtime.affinity`). Best effort."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass
    helper_thread()


class Camera:
    """A frame source: device index, video file or stream URL (see the module docstring).

    Args:
        source: ``0`` / ``"0"`` (device index), a video file path, or a URL.
        loop: restart a video file at its end instead of ending.
        opener: ``source -> capture`` (an object with ``isOpened/read/get/release`` like
            ``cv2.VideoCapture``); the default opens it with OpenCV.
        backoff_start, backoff_max: reopen delays (seconds) of a failing device or stream.
        log: called with one-line messages (reopening, recovered, ended).

    Raises:
        EdgeAVError: from :meth:`open` when the source cannot be opened or yields no frame.
    """

    def __init__(
        self,
        source: int | str,
        *,
        loop: bool = False,
        opener: Opener | None = None,
        backoff_start: float = BACKOFF_START,
        backoff_max: float = BACKOFF_MAX,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.kind, self.source = parse_source(source)
        self.loop = loop
        self._opener = opener or _default_opener
        self.backoff_start = backoff_start
        self.backoff_max = backoff_max
        self._log = log or (lambda message: None)
        self._cap: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._origin = time.monotonic()
        self._replay_origin = self._origin
        # newest frame (live) / current and look-ahead frame (file clock)
        self._newest: Frame | None = None
        self._newest_used = True
        self._current: Frame | None = None
        self._pending: tuple[np.ndarray, int] | None = None
        self._current_used = True
        # file clock state, integer microseconds
        self._offset_us = 0  # length of the loops already played
        self._last_ts_us: int | None = None  # timestamp of the last frame read in this pass
        self._frame_us = 0  # duration of one frame
        self._end_us: int | None = None  # end of the stream (set at end of file, no loop)
        # file clock: the decoder thread's queue of (image, stream time µs) | None (end) | error
        self._ahead: queue.Queue | None = None
        self._decoder: threading.Thread | None = None
        self._decoder_stop = threading.Event()
        self._index = 0
        self.ended = False
        self.state = "closed"
        self.frames_read = 0
        self.frames_used = 0
        self.frames_dropped = 0
        self.read_failures = 0
        self.reopens = 0

    @property
    def label(self) -> str:
        if self.kind == "device":
            return f"camera {self.source}"
        return f"video {self.source}" if self.kind == "file" else f"stream {self.source}"

    @property
    def is_file(self) -> bool:
        return self.kind == "file"

    # --- opening ------------------------------------------------------------------------------

    def _open_capture(self) -> Any:
        try:
            cap = self._opener(self.source)
        except EdgeAVError:
            raise
        except Exception as exc:  # OpenCV raises cv2.error for some bad sources
            raise EdgeAVError(f"cannot open {self.label}: {exc}") from exc
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            return None
        return cap

    def open(self) -> Camera:
        """Open the source and read its first frame (so a bad source fails here, in one line)."""
        if self.kind == "file":
            path = Path(str(self.source))
            if not path.exists():
                raise EdgeAVError(f"video file {path} does not exist")
            if not path.is_file():
                raise EdgeAVError(f"video {path} is not a file")
        cap = self._open_capture()
        if cap is None:
            if self.kind == "device":
                raise EdgeAVError(
                    f"camera index {self.source} cannot be opened (no such camera, or it is busy)"
                )
            if self.kind == "url":
                raise EdgeAVError(f"cannot open stream {self.source}")
            raise EdgeAVError(
                f"cannot read video {self.source}: not a video file OpenCV can decode"
            )
        self._cap = cap
        fps = float(cap.get(_prop("CAP_PROP_FPS")) or 0.0)
        self._frame_us = int(round(1e6 / fps)) if 0 < fps < 10000 else 0
        first = self._read()
        if first is None:
            cap.release()
            self._cap = None
            if self.kind == "file":
                raise EdgeAVError(f"cannot read a frame from video {self.source}")
            raise EdgeAVError(f"{self.label} opened but delivers no frames")
        self._pending = first
        self.state = "open"
        return self

    def _read(self) -> tuple[np.ndarray, int] | None:
        """Read the next frame: ``(image, timestamp_us)`` (file time of this pass) or None."""
        try:
            ok, image = self._cap.read()
        except Exception:  # a crashing backend read is a failed read
            ok, image = False, None
        if not ok or image is None or getattr(image, "size", 0) == 0:
            return None
        ts_us = self._timestamp_us()
        self._last_ts_us = ts_us
        return image, ts_us

    def _timestamp_us(self) -> int:
        if self.kind != "file":
            return int((time.monotonic() - self._origin) * 1e6)
        pos = self._cap.get(_prop("CAP_PROP_POS_MSEC"))
        prev = self._last_ts_us
        ts = int(round(float(pos) * 1000.0)) if pos is not None and np.isfinite(pos) else -1
        if prev is None:
            return max(ts, 0)
        if ts <= prev:  # no usable container timestamps: frame index / fps
            ts = prev + (self._frame_us or 1)
        return ts

    def _reopen_file(self) -> bool:
        """Start the next loop of a video file; False if it cannot be reopened."""
        if self._last_ts_us is not None:
            self._offset_us += self._last_ts_us + max(self._frame_us, 1)
        self._last_ts_us = None
        if self._cap is not None:
            self._cap.release()
        self._cap = self._open_capture()
        return self._cap is not None

    def _make_frame(self, image: np.ndarray, ts_us: int) -> Frame:
        return self._make_frame_at(image, self._offset_us + ts_us)

    def _make_frame_at(self, image: np.ndarray, stream_us: int) -> Frame:
        frame = Frame(image, stream_us / 1e6, self._index, time.monotonic())
        self._index += 1
        self.frames_read += 1
        return frame

    # --- file clock: decoding ahead -------------------------------------------------------------

    #: Frames the decoder may hold ahead: at most this many bytes of them (and 2..32 frames).
    decode_ahead_bytes = 16 << 20

    def _decode_ahead(self, out: queue.Queue) -> None:
        """Decoder thread: the file's frames in order, as (image, stream µs), then None."""

        stop = self._decoder_stop
        _yield_to_tick()

        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            while not stop.is_set():
                nxt = self._read()
                if nxt is None and self.loop and self._reopen_file():
                    nxt = self._read()
                    if nxt is None:
                        raise EdgeAVError(f"video {self.source} yields no frames when looped")
                if nxt is None:
                    put(None)
                    return
                image, ts_us = nxt
                if not put((image, self._offset_us + ts_us)):
                    return
        except BaseException as exc:  # handed to the caller of frame_at
            put(exc)

    def _next_file_frame(self) -> tuple[np.ndarray, int] | None:
        """The next decoded frame (image, stream µs), or None at the end of the file."""
        if self._ahead is None:
            size = self._pending[0].nbytes if self._pending is not None else 1 << 20
            depth = max(2, min(32, self.decode_ahead_bytes // max(size, 1)))
            self._ahead = queue.Queue(maxsize=depth)
            self._decoder_stop = threading.Event()
            self._decoder = threading.Thread(
                target=self._decode_ahead,
                args=(self._ahead,),
                name=f"edgeav-{self.label}-decoder",
                daemon=True,
            )
            self._decoder.start()
        while True:
            try:
                item = self._ahead.get(timeout=0.5)
                break
            except queue.Empty:
                if not self._decoder.is_alive() and self._ahead.empty():
                    raise EdgeAVError(f"the decoder of {self.label} stopped") from None
        if isinstance(item, BaseException):
            raise item
        return item

    def _stop_decoder(self) -> None:
        if self._decoder is None:
            return
        self._decoder_stop.set()
        while True:  # unblock a put() at once
            try:
                self._ahead.get_nowait()
            except queue.Empty:
                break
        self._decoder.join(timeout=2.0)
        if self._decoder.is_alive():  # stuck inside a read: leave the capture to it
            self._log(f"{self.label}: decoder still busy in a read; not waiting for it")
            self._cap = None
        self._decoder = None
        self._ahead = None

    # --- file clock ---------------------------------------------------------------------------

    def frame_at(self, t: float | int, *, microseconds: bool = False) -> Frame | None:
        """The frame on screen just before stream time ``t`` (seconds, or µs if ``microseconds``).

        Returns None before the first frame, and None with :attr:`ended` set once ``t`` is past
        the end of a file that does not loop. Only for video files (``--no-realtime``).
        """
        if self.kind != "file":
            raise EdgeAVError(f"{self.label} is live; the file clock needs a video file")
        if self._cap is None and self._pending is None:
            self.open()
        t_us = int(t) if microseconds else int(round(float(t) * 1e6))
        while True:
            if self._pending is None and self._end_us is None:
                nxt = self._next_file_frame()
                if nxt is None:
                    last = self._current.t * 1e6 if self._current is not None else 0
                    self._end_us = int(round(last)) + max(self._frame_us, 1)
                else:
                    self._pending = nxt
            if self._pending is not None:
                image, stream_us = self._pending  # (the first frame, from open(): pass 0)
                if stream_us < t_us:
                    if self._current is not None and not self._current_used:
                        self.frames_dropped += 1
                    self._current = self._make_frame_at(image, stream_us)
                    self._current_used = False
                    self._pending = None
                    continue
            break
        if self._end_us is not None and t_us > self._end_us:
            self.ended = True
            self.state = "ended"
            return None
        if self._current is not None and not self._current_used:
            self._current_used = True
            self.frames_used += 1
        return self._current

    # --- live reader --------------------------------------------------------------------------

    def start(self, origin: float | None = None) -> Camera:
        """Start the background reader (opens the source first if needed).

        A video file is replayed so that its time 0 is at ``origin`` (``time.monotonic()``;
        default: now), which lets several sources share one clock.
        """
        if self._cap is None:
            self.open()
        if self._thread is None:
            self._replay_origin = time.monotonic() if origin is None else origin
            self._thread = threading.Thread(
                target=self._run, name=f"edgeav-{self.label}", daemon=True
            )
            self._thread.start()
        return self

    def latest(self) -> Frame | None:
        """The newest frame read so far (None before the first one)."""
        with self._lock:
            frame = self._newest
            if frame is not None and not self._newest_used:
                self._newest_used = True
                self.frames_used += 1
            return frame

    def _publish(self, frame: Frame) -> None:
        with self._lock:
            if self._newest is not None and not self._newest_used:
                self.frames_dropped += 1
            self._newest = frame
            self._newest_used = False

    def _run(self) -> None:
        helper_thread()  # off the CPUs pinned for the tick (its priority stays: live frames)
        start = self._replay_origin
        failures = 0
        backoff = self.backoff_start
        pending, self._pending = self._pending, None
        while not self._stop.is_set():
            if pending is None:
                pending = self._read()
            if pending is not None:
                image, ts_us = pending
                pending = None
                if failures >= FAILURES_BEFORE_REOPEN or self.state != "open":
                    self._log(f"{self.label}: frames again")
                failures, backoff = 0, self.backoff_start
                self.state = "open"
                frame = self._make_frame(image, ts_us)
                if self.kind == "file":  # replay at the file's own pace
                    # a frame is on screen from just after its timestamp (the file clock's rule)
                    delay = start + frame.t + REPLAY_LAG - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        break
                self._publish(frame)
                continue
            if self.kind == "file":
                if self.loop and self._reopen_file():
                    continue
                # the last frame stays on screen for one frame duration before the file ends
                last = self._newest.t if self._newest is not None else 0.0
                end = start + last + max(self._frame_us, 1) / 1e6 + REPLAY_LAG
                if self._stop.wait(max(0.0, end - time.monotonic())):
                    break
                self.ended = True
                self.state = "ended"
                self._log(f"{self.label}: end of file")
                break
            failures += 1
            self.read_failures += 1
            if failures < FAILURES_BEFORE_REOPEN:
                self._stop.wait(0.02)
                continue
            # a device or stream that stopped delivering: close, wait, reopen, with backoff
            self.state = "reopening"
            self._log(f"{self.label}: no frames; reopening in {backoff:.1f} s")
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, self.backoff_max)
            self._cap = self._open_capture()
            self.reopens += 1
            if self._cap is None:
                self._cap = _ClosedCapture()

    # --- end ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the reader and release the source (idempotent)."""
        self._stop.set()
        self._stop_decoder()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            if self._thread.is_alive():
                # stuck in a blocking read (a hung device): releasing the capture under it is
                # unsafe in OpenCV; the daemon thread ends with the process
                self._log(f"{self.label}: reader still blocked in a read; not waiting for it")
                self._thread = None
                self._cap = None
                self.state = "closed"
                return
            self._thread = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        if self.state != "ended":
            self.state = "closed"

    def stats(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "kind": self.kind,
            "state": self.state,
            "frames_read": self.frames_read,
            "frames_used": self.frames_used,
            "frames_dropped": self.frames_dropped,
            "read_failures": self.read_failures,
            "reopens": self.reopens,
        }

    def __enter__(self) -> Camera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ClosedCapture:
    """Stands in for a source that could not be reopened: every read fails (until next reopen)."""

    def isOpened(self) -> bool:  # noqa: N802 - mirrors cv2.VideoCapture
        return False

    def read(self) -> tuple[bool, None]:
        return False, None

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


def _prop(name: str) -> int:
    return getattr(import_cv2(), name)
