"""The last few seconds of mono audio: written by a capture thread, read by the loop."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError
from edgeav.features.audio import to_float_mono


class RingBuffer:
    """The last ``seconds`` of mono audio at ``sample_rate``, as float32. Thread-safe.

    :meth:`write` accepts what a microphone callback gets: 1-D or ``(frames, channels)``, float
    or integer PCM (channels averaged, integers scaled as :func:`edgeav.features.prepare_audio`
    does). Bad arguments raise :class:`~edgeav.errors.EdgeAVError`.
    """

    def __init__(self, seconds: float, sample_rate: int) -> None:
        if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
            raise EdgeAVError(f"ring buffer: sample_rate={sample_rate!r} must be a positive int")
        capacity = int(round(float(seconds) * sample_rate))
        if not (math.isfinite(float(seconds)) and capacity > 0):
            raise EdgeAVError(f"ring buffer: seconds={seconds!r} must hold at least one sample")
        self.sample_rate = int(sample_rate)
        self.capacity = capacity
        self._buf = np.zeros(capacity, dtype=np.float32)
        self._pos = 0  # next write index
        self._total = 0
        self._lock = threading.Lock()

    @property
    def total_written(self) -> int:
        """Samples written since creation (or :meth:`clear`), including overwritten ones."""
        return self._total

    def __len__(self) -> int:
        """Samples available to :meth:`latest` (at most ``capacity``)."""
        return min(self._total, self.capacity)

    def write(self, samples: Any) -> None:
        """Append samples; when more than ``capacity`` arrive, only the newest are kept."""
        x = to_float_mono(samples).astype(np.float32)
        n = x.size
        with self._lock:
            self._total += n
            if n >= self.capacity:
                self._buf[:] = x[-self.capacity :]
                self._pos = 0
                return
            end = self._pos + n
            if end <= self.capacity:
                self._buf[self._pos : end] = x
            else:
                first = self.capacity - self._pos
                self._buf[self._pos :] = x[:first]
                self._buf[: n - first] = x[first:]
            self._pos = end % self.capacity

    def latest(self, n_samples: int | None = None) -> np.ndarray:
        """The newest ``n_samples`` (default: all available), oldest first, as a float32 copy.

        Fewer come back while fewer have been written; ``n_samples > capacity`` is an error.
        """
        if n_samples is None:
            n_samples = self.capacity
        if not isinstance(n_samples, (int, np.integer)) or not 0 <= n_samples <= self.capacity:
            raise EdgeAVError(
                f"ring buffer: latest({n_samples!r}) must ask for 0..{self.capacity} samples"
            )
        with self._lock:
            n = min(int(n_samples), self._total, self.capacity)
            start = self._pos - n
            if start >= 0:
                return self._buf[start : self._pos].copy()
            return np.concatenate([self._buf[start:], self._buf[: self._pos]])

    def clear(self) -> None:
        """Forget everything written."""
        with self._lock:
            self._buf[:] = 0
            self._pos = 0
            self._total = 0
