"""Audio into a ring buffer at the model's sample rate: a microphone, or a WAV/FLAC file.

- :class:`Microphone`: a sounddevice ``InputStream`` whose callback writes into an
  :class:`edgeav.features.RingBuffer`. The device is chosen by index or by a substring of its
  name. If it cannot capture at the model's rate, it captures at a rate it supports and the
  callback resamples (soxr, streaming). Overflows reported by PortAudio are counted, never fatal;
  a stream that dies is reopened with backoff by :meth:`Microphone.poll`. sounddevice (and so
  PortAudio) is imported only here, only when a microphone is opened: without the system library
  the error names the Debian package ``libportaudio2``.
- :class:`AudioFile`: a WAV/FLAC file (soundfile) replayed in real time by a background thread,
  or advanced on the file's own clock with :meth:`AudioFile.advance_to` (``--no-realtime``), so
  the audio window at stream time ``t`` is exactly the file's samples ``[t - window, t)``.

Both expose the same small interface the pipeline uses: :meth:`window`, ``total_written``,
``last_write``, ``overflows``, ``ended``, :meth:`stats`, :meth:`close`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError
from edgeav.runtime.affinity import helper_thread

#: Rates tried, in order, when a device supports neither the model's rate nor its own default.
COMMON_RATES = (48000, 44100, 32000, 22050, 16000, 11025, 8000)

PORTAUDIO_MISSING = (
    "the microphone needs the PortAudio library, which is not installed "
    "(Debian/Raspberry Pi OS: sudo apt install libportaudio2); --audio-file works without it"
)


def import_sounddevice() -> Any:
    """Import sounddevice, turning a missing PortAudio into a one-line :class:`EdgeAVError`."""
    try:
        import sounddevice  # noqa: PLC0415
    except OSError as exc:  # sounddevice raises OSError when libportaudio is not found
        raise EdgeAVError(PORTAUDIO_MISSING) from exc
    except ImportError as exc:
        raise EdgeAVError(
            "sounddevice is not installed; install the runtime extra: pip install 'edgeav[runtime]'"
        ) from exc
    return sounddevice


def _ring(seconds: float, sample_rate: int) -> Any:
    from edgeav.features import RingBuffer  # noqa: PLC0415

    return RingBuffer(seconds, sample_rate)


def _to_mono(block: np.ndarray) -> np.ndarray:
    block = np.asarray(block, dtype=np.float32)
    if block.ndim == 2:
        block = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
    return block


class _Resampler:
    """Streaming resampler (soxr) to the model's rate; a no-op when the rates match."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        self._stream = None
        if self.in_rate != self.out_rate:
            try:
                import soxr  # noqa: PLC0415
            except ImportError as exc:
                raise EdgeAVError(
                    f"resampling {self.in_rate} Hz to {self.out_rate} Hz needs soxr; "
                    "install the runtime extra: pip install 'edgeav[runtime]'"
                ) from exc
            self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32")

    def __call__(self, mono: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return mono
        return self._stream.resample_chunk(np.ascontiguousarray(mono, dtype=np.float32), last=last)


class _Buffered:
    """The part both sources share: a locked ring buffer at the model's rate, and counters."""

    def __init__(self, sample_rate: int, seconds: float) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1000:
            raise EdgeAVError(f"sample rate must be an integer >= 1000 Hz, got {sample_rate!r}")
        self.sample_rate = sample_rate
        self.seconds = float(seconds)
        self._lock = threading.Lock()
        self._buffer = _ring(self.seconds, sample_rate)
        self.total_written = 0
        self.last_write: float | None = None
        self.overflows = 0
        self.ended = False
        self._clock_end: int | None = None  # file clock: samples up to this index are "now"

    def _write(self, samples: np.ndarray) -> None:
        if samples.size == 0:
            return
        with self._lock:
            self._buffer.write(samples)
            self.total_written += int(samples.size)
            self.last_write = time.monotonic()

    def window(self, n_samples: int, *, min_fill: float = 1.0) -> np.ndarray | None:
        """The newest ``n_samples`` (float32, model rate), or None while too few were written.

        With ``min_fill < 1`` a window that is at least that full is returned zero-padded at the
        start (a live stream's first tick, when the last capture block has not arrived yet).
        On a file clock the window ends at the clock's position even if a little more was read.
        """
        with self._lock:
            end = self.total_written
            if self._clock_end is not None:
                end = min(end, self._clock_end)
            if end < n_samples:
                if end < max(1, int(np.ceil(min_fill * n_samples))):
                    return None
                out = np.zeros(n_samples, np.float32)
                out[n_samples - end :] = self._buffer.latest(self.total_written)[:end]
                return out
            extra = self.total_written - end
            if extra == 0:
                return np.array(self._buffer.latest(n_samples), dtype=np.float32, copy=True)
            return np.array(self._buffer.latest(n_samples + extra)[:n_samples], dtype=np.float32)


def resolve_input_device(
    devices: Sequence[dict[str, Any]], device: int | str | None, default: int | None
) -> int:
    """Choose an input device from ``sounddevice.query_devices()``.

    ``device`` is an index, a case-insensitive substring of the device name (an exact name wins
    over substrings; several substring matches are an error listing them), or None for
    ``default``.
    """
    inputs = [(i, d) for i, d in enumerate(devices) if int(d.get("max_input_channels", 0)) > 0]
    names = ", ".join(f"{i}: {d['name']}" for i, d in inputs) or "none"
    if device is None or (isinstance(device, str) and not device.strip()):
        if default is None or default < 0 or default >= len(devices):
            if not inputs:
                raise EdgeAVError("no audio input device found (no microphone attached?)")
            return inputs[0][0]
        return int(default)
    if isinstance(device, str) and device.strip().lstrip("-").isdigit():
        device = int(device.strip())
    if isinstance(device, int):
        if not 0 <= device < len(devices):
            raise EdgeAVError(
                f"audio device index {device} does not exist (input devices: {names})"
            )
        if int(devices[device].get("max_input_channels", 0)) < 1:
            raise EdgeAVError(
                f"audio device {device} ({devices[device]['name']}) has no input channels "
                f"(input devices: {names})"
            )
        return device
    wanted = device.strip().lower()
    exact = [i for i, d in inputs if str(d["name"]).lower() == wanted]
    if exact:
        return exact[0]
    matches = [i for i, d in inputs if wanted in str(d["name"]).lower()]
    if not matches:
        raise EdgeAVError(f"no audio input device matches {device!r} (input devices: {names})")
    if len(matches) > 1:
        listed = ", ".join(f"{i}: {devices[i]['name']}" for i in matches)
        raise EdgeAVError(f"audio device {device!r} is ambiguous: {listed}")
    return matches[0]


def choose_rate(supported: Callable[[int], bool], wanted: int, device_default: float | None) -> int:
    """The capture rate: ``wanted`` if the device takes it, else its default, else a common one."""
    candidates = [wanted]
    if device_default:
        candidates.append(int(round(device_default)))
    candidates += [r for r in COMMON_RATES if r not in candidates]
    for rate in candidates:
        if supported(rate):
            return rate
    raise EdgeAVError(f"the audio device supports none of the rates {candidates}")


class Microphone(_Buffered):
    """Live capture from an input device into a ring buffer at ``sample_rate``.

    Args:
        device: index, name substring, or None for the system default input.
        sample_rate: the model's rate (the feature config's).
        seconds: ring buffer length.
        blocksize: frames per callback (0: PortAudio chooses).
        log: called with one-line messages (rate fallback, reopening).
    """

    def __init__(
        self,
        device: int | str | None = None,
        *,
        sample_rate: int = 16000,
        seconds: float = 4.0,
        blocksize: int = 0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(sample_rate, seconds)
        self.device_spec = device
        self.blocksize = blocksize
        self._log = log or (lambda message: None)
        self._sd: Any = None
        self._stream: Any = None
        self._resample: _Resampler | None = None
        self.device_index: int | None = None
        self.device_name = ""
        self.capture_rate = sample_rate
        self.reopens = 0
        self._closed = False
        self._next_reopen = 0.0
        self._backoff = 0.5

    @property
    def label(self) -> str:
        return f"microphone {self.device_name or self.device_spec or 'default'}"

    def open(self) -> Microphone:
        sd = self._sd = import_sounddevice()
        try:
            devices = list(sd.query_devices())
            default = sd.default.device[0] if sd.default.device is not None else None
        except Exception as exc:  # PortAudio errors
            raise EdgeAVError(f"cannot list audio devices: {exc}") from exc
        index = resolve_input_device(devices, self.device_spec, default)
        info = devices[index]
        self.device_index, self.device_name = index, str(info["name"])

        def supported(rate: int) -> bool:
            try:
                sd.check_input_settings(device=index, samplerate=rate, channels=1, dtype="float32")
            except Exception:
                return False
            return True

        self.capture_rate = choose_rate(supported, self.sample_rate, info.get("default_samplerate"))
        if self.capture_rate != self.sample_rate:
            self._log(
                f"{self.label}: capturing at {self.capture_rate} Hz, resampling to "
                f"{self.sample_rate} Hz"
            )
        self._start_stream()
        return self

    def _start_stream(self) -> None:
        self._resample = _Resampler(self.capture_rate, self.sample_rate)
        try:
            self._stream = self._sd.InputStream(
                device=self.device_index,
                samplerate=self.capture_rate,
                channels=1,
                dtype="float32",
                blocksize=self.blocksize,
                callback=self._callback,
            )
            self._stream.start()
        except Exception as exc:
            self._stream = None
            raise EdgeAVError(f"cannot start {self.label}: {exc}") from exc

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
        self._write(self._resample(_to_mono(indata)))

    def poll(self) -> None:
        """Reopen a stream that stopped (device unplugged, PortAudio error), with backoff."""
        if self._closed or self._sd is None:
            return
        if self._stream is not None and self._stream.active:
            self._backoff = 0.5
            return
        now = time.monotonic()
        if now < self._next_reopen:
            return
        self._log(f"{self.label}: stream stopped; reopening")
        if self._stream is not None:
            try:
                self._stream.close(ignore_errors=True)
            except Exception:
                pass
            self._stream = None
        self.reopens += 1
        try:
            self._start_stream()
        except EdgeAVError as exc:
            self._log(f"{exc}; retrying in {self._backoff:.1f} s")
            self._next_reopen = now + self._backoff
            self._backoff = min(self._backoff * 2, 8.0)

    def close(self) -> None:
        self._closed = True
        if self._stream is not None:
            try:
                self._stream.stop(ignore_errors=True)
                self._stream.close(ignore_errors=True)
            except Exception:
                pass
            self._stream = None

    def stats(self) -> dict[str, Any]:
        return {
            "source": self.device_name or str(self.device_spec),
            "kind": "microphone",
            "capture_rate": self.capture_rate,
            "samples": self.total_written,
            "overflows": self.overflows,
            "reopens": self.reopens,
        }


class AudioFile(_Buffered):
    """A WAV/FLAC file as an audio source, on the wall clock or on the file's own clock.

    Args:
        path: the file (anything libsndfile reads: WAV, FLAC, OGG...).
        sample_rate: the model's rate; other file rates are resampled while reading.
        seconds: ring buffer length.
        loop: start again at the end instead of ending.
        log: called with one-line messages.
    """

    BLOCK = 4096

    def __init__(
        self,
        path: str | Path,
        *,
        sample_rate: int = 16000,
        seconds: float = 4.0,
        loop: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(sample_rate, seconds)
        self.path = Path(path)
        self.loop = loop
        self._log = log or (lambda message: None)
        self._file: Any = None
        self._resample: _Resampler | None = None
        self._eof = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.file_rate = 0
        self.file_frames = 0
        self.loops = 0
        #: The error that ended a real-time replay (the pipeline raises it on its next tick).
        self.error: EdgeAVError | None = None

    @property
    def label(self) -> str:
        return f"audio file {self.path}"

    def open(self) -> AudioFile:
        try:
            import soundfile  # noqa: PLC0415
        except (ImportError, OSError) as exc:
            raise EdgeAVError(
                "soundfile (libsndfile) is not available; install the runtime extra: "
                "pip install 'edgeav[runtime]'"
            ) from exc
        if not self.path.exists():
            raise EdgeAVError(f"audio file {self.path} does not exist")
        if not self.path.is_file():
            raise EdgeAVError(f"audio file {self.path} is not a file")
        try:
            self._file = soundfile.SoundFile(str(self.path))
        except (RuntimeError, TypeError, ValueError) as exc:
            reason = str(exc).split(":")[-1].strip() or "unknown format"
            raise EdgeAVError(f"cannot read audio file {self.path}: {reason}") from exc
        self.file_rate = int(self._file.samplerate)
        self.file_frames = int(self._file.frames)
        if self.file_frames <= 0:
            self._file.close()
            raise EdgeAVError(f"audio file {self.path} contains no samples")
        if self.file_rate < 1000:
            self._file.close()
            raise EdgeAVError(
                f"audio file {self.path} has an unusable sample rate {self.file_rate} Hz"
            )
        self._resample = _Resampler(self.file_rate, self.sample_rate)
        return self

    @property
    def duration(self) -> float:
        """Length of one pass of the file in seconds."""
        return self.file_frames / self.file_rate if self.file_rate else 0.0

    def _read_block(self, frames: int) -> bool:
        """Read up to ``frames`` file frames into the ring buffer; False at the (final) end."""
        try:
            block = self._file.read(frames, dtype="float32", always_2d=True)
        except (RuntimeError, ValueError) as exc:
            raise EdgeAVError(f"cannot read audio file {self.path}: {exc}") from exc
        if len(block) == 0:
            if self.loop and self.file_frames > 0:
                self._file.seek(0)
                self.loops += 1
                return True
            self._write(self._resample(np.zeros(0, np.float32), last=True))
            self._eof = True
            return False
        mono = _to_mono(block)
        if not np.all(np.isfinite(mono)):
            raise EdgeAVError(f"audio file {self.path} contains NaN or infinite samples")
        self._write(self._resample(mono))
        return True

    def advance_to(self, t: float | int, *, microseconds: bool = False) -> bool:
        """Feed the ring buffer with the file's samples up to stream time ``t``.

        Returns False (and sets :attr:`ended`) once ``t`` is past the end of a file that does not
        loop. Stream time ``t`` is in seconds, or in microseconds when ``microseconds`` is set.
        """
        if self._file is None:
            self.open()
        t_us = int(t) if microseconds else int(round(float(t) * 1e6))
        needed = t_us * self.sample_rate // 1_000_000
        self._clock_end = needed
        while self.total_written < needed and not self._eof:
            missing = needed - self.total_written
            if self.file_rate == self.sample_rate:
                want = missing
            else:  # a little more: the resampler holds back a few samples (its filter delay)
                want = -(-missing * self.file_rate // self.sample_rate) + 64
            self._read_block(max(1, min(self.BLOCK, want)))
        if self.total_written + self.sample_rate // 100 < needed:  # 10 ms slack for resampling
            self.ended = True
            return False
        return True

    def start(self, origin: float | None = None) -> AudioFile:
        """Replay the file in real time in a background thread, its time 0 at ``origin``."""
        if self._file is None:
            self.open()
        if self._thread is None:
            self._origin = time.monotonic() if origin is None else origin
            self._thread = threading.Thread(
                target=self._run, name=f"edgeav-{self.label}", daemon=True
            )
            self._thread.start()
        return self

    def _run(self) -> None:
        helper_thread()  # off the CPUs pinned for the tick
        start = self._origin
        try:
            while not self._stop.is_set():
                elapsed_us = max(0, int((time.monotonic() - start) * 1e6))
                if not self.advance_to(elapsed_us, microseconds=True):
                    self._log(f"{self.label}: end of file")
                    return
                self._stop.wait(0.01)
        except EdgeAVError as exc:
            self.error = exc
            self.ended = True

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def stats(self) -> dict[str, Any]:
        return {
            "source": str(self.path),
            "kind": "file",
            "file_rate": self.file_rate,
            "samples": self.total_written,
            "loops": self.loops,
            "overflows": self.overflows,
        }
