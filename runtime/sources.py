"""What the pipeline reads: a frame source and an audio source, behind one small interface each.

Two kinds of each, side by side:

- **files** (a video file, a WAV/FLAC file) run on their own clock: ``frame_at(t)`` is the frame
  on screen just before stream time ``t`` and ``window(t, n)`` the file's ``n`` samples ending at
  ``t``. The same calls give the same answers whether the loop sleeps between ticks (real time)
  or not (``--no-realtime``), so a run on files is deterministic.
- **live** sources (a camera, a stream URL, a microphone) are read in the background; ``t`` is
  ignored and the newest data comes back, stamped with the monotonic time it arrived so the
  pipeline can tell when it has gone stale.

Stream time is integer microseconds, so comparisons with file timestamps are exact.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One camera frame.

    Attributes:
        image: BGR ``uint8`` array ``(H, W, 3)`` (or ``(H, W)`` for grayscale sources).
        t: the frame's time in seconds: the file's timestamp (plus the length of earlier loops)
            for a video file, seconds since the source was opened for a camera or stream.
        index: frame number since the source was opened (continues across loops and reopens).
        received: ``time.monotonic()`` when a live frame arrived; None for file frames.
    """

    image: np.ndarray
    t: float
    index: int
    received: float | None = None


@dataclass(frozen=True)
class Window:
    """One audio window at the model's sample rate.

    Attributes:
        samples: float32 mono samples, oldest first.
        start, end: its time span in seconds on the source's clock (``end`` is the tick's ``t``
            for a file; seconds since the microphone opened for a live source).
        received: ``time.monotonic()`` of the newest live sample; None for a file.
    """

    samples: np.ndarray
    start: float
    end: float
    received: float | None = None


class FrameSource(ABC):
    """Frames from a camera, a stream or a video file."""

    #: One line naming the source, for messages ("camera 0", "video clip.mkv").
    label: str = "frames"
    #: True for cameras and streams (read in the background), False for files.
    live: bool = False
    #: Set once a file source that does not loop has no more frames.
    ended: bool = False
    #: Frames read but never returned by :meth:`frame_at` (a tick takes only the newest).
    frames_dropped: int = 0

    def open(self) -> FrameSource:
        """Open the source (a bad source fails here, in one line); returns ``self``."""
        return self

    @abstractmethod
    def frame_at(self, t_us: int) -> Frame | None:
        """The frame for stream time ``t_us``: None before the first, and None with
        :attr:`ended` set once a file is over."""

    def close(self) -> None:  # noqa: B027 - a source with nothing to release keeps this
        """Release the device or file (idempotent)."""

    def stats(self) -> dict[str, Any]:
        """Counters for the run's summary."""
        return {"source": self.label, "frames_dropped": self.frames_dropped}

    def __enter__(self) -> FrameSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


class AudioSource(ABC):
    """Audio from a microphone or a file, at the model's sample rate."""

    label: str = "audio"
    live: bool = False
    ended: bool = False
    #: Input overflows reported by the audio device (always 0 for files).
    overflows: int = 0
    sample_rate: int = 16000

    def open(self) -> AudioSource:
        return self

    @abstractmethod
    def window(self, t_us: int, n: int) -> Window | None:
        """``n`` samples ending at stream time ``t_us`` (the newest ``n`` for a live source); None
        while too few have arrived, and None with :attr:`ended` set once a file is over."""

    def close(self) -> None:  # noqa: B027 - a source with nothing to release keeps this
        """Release the device or file (idempotent)."""

    def stats(self) -> dict[str, Any]:
        return {"source": self.label, "overflows": self.overflows}

    def __enter__(self) -> AudioSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
