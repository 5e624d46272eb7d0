"""Audio sources at the model's sample rate: a microphone (:class:`Microphone`) or a file
(:class:`AudioFile`).

- :class:`Microphone`: a sounddevice ``InputStream`` whose callback writes into a
  :class:`~edgeav.runtime.ringbuffer.RingBuffer`. The device is chosen by index or by part of its
  name. If it cannot capture at the model's rate it captures at one it supports and the callback
  resamples (soxr, streaming). Overflows reported by PortAudio are counted, never fatal; a stream
  that dies is reopened with backoff. sounddevice (and so PortAudio) is imported only when a
  microphone is opened: without the system library the error names the Debian package.
- :class:`AudioFile`: a WAV/FLAC file on its own clock: ``window(t, n)`` is exactly the file's
  ``n`` samples ending at stream time ``t`` (decoded and resampled incrementally, the newest few
  seconds kept).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError
from edgeav.runtime.ringbuffer import RingBuffer
from edgeav.runtime.sources import AudioSource, Window

#: Rates tried, in order, when a device supports neither the model's rate nor its own default.
COMMON_RATES = (48000, 44100, 32000, 22050, 16000, 11025, 8000)
#: Seconds of audio a source keeps (at least two windows).
MIN_BUFFER_SECONDS = 2.0

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


def _check_rate(sample_rate: Any) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1000:
        raise EdgeAVError(f"sample rate must be an integer >= 1000 Hz, got {sample_rate!r}")
    return sample_rate


def _mono(block: np.ndarray) -> np.ndarray:
    block = np.asarray(block, dtype=np.float32)
    if block.ndim == 2:
        block = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
    return block


class _Resampler:
    """Streaming resampler (soxr) to the model's rate; a no-op when the rates match."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._stream = None
        if in_rate != out_rate:
            try:
                import soxr  # noqa: PLC0415
            except ImportError as exc:
                raise EdgeAVError(
                    f"resampling {in_rate} Hz to {out_rate} Hz needs soxr; "
                    "install the runtime extra: pip install 'edgeav[runtime]'"
                ) from exc
            self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32")

    def __call__(self, mono: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return mono
        return self._stream.resample_chunk(np.ascontiguousarray(mono, dtype=np.float32), last=last)


def resolve_input_device(
    devices: Sequence[dict[str, Any]], device: int | str | None, default: int | None
) -> int:
    """Choose an input device from ``sounddevice.query_devices()``.

    ``device`` is an index, a case-insensitive part of the device name (an exact name wins over
    partial matches; several partial matches are an error listing them), or None for ``default``.
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


class Microphone(AudioSource):
    """Live capture from an input device at ``sample_rate``.

    Args:
        device: index, part of the name, or None for the system's default input.
        sample_rate: the model's rate.
        seconds: audio kept (at least :data:`MIN_BUFFER_SECONDS`).
        blocksize: frames per callback (0: PortAudio chooses).
        log: called with one-line messages (rate fallback, reopening).
    """

    live = True

    def __init__(
        self,
        device: int | str | None = None,
        *,
        sample_rate: int = 16000,
        seconds: float = MIN_BUFFER_SECONDS,
        blocksize: int = 0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.sample_rate = _check_rate(sample_rate)
        self.device_spec = device
        self.blocksize = blocksize
        self._log = log or (lambda message: None)
        self._buffer = RingBuffer(max(seconds, MIN_BUFFER_SECONDS), self.sample_rate)
        self._lock = threading.Lock()
        self._sd: Any = None
        self._stream: Any = None
        self._resample: _Resampler | None = None
        self._closed = False
        self._next_reopen = 0.0
        self._backoff = 0.5
        self.last_write: float | None = None
        self.device_index: int | None = None
        self.device_name = ""
        self.capture_rate = sample_rate
        self.reopens = 0

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"microphone {self.device_name or self.device_spec or 'default'}"

    def open(self) -> Microphone:
        if self._stream is not None:
            return self
        sd = self._sd = import_sounddevice()
        try:
            devices = list(sd.query_devices())
            default = sd.default.device[0] if sd.default.device is not None else None
        except Exception as exc:  # noqa: BLE001 - PortAudio errors
            raise EdgeAVError(f"cannot list audio devices: {exc}") from exc
        index = resolve_input_device(devices, self.device_spec, default)
        self.device_index, self.device_name = index, str(devices[index]["name"])

        def supported(rate: int) -> bool:
            try:
                sd.check_input_settings(device=index, samplerate=rate, channels=1, dtype="float32")
            except Exception:  # noqa: BLE001
                return False
            return True

        default_rate = devices[index].get("default_samplerate")
        self.capture_rate = choose_rate(supported, self.sample_rate, default_rate)
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
        except Exception as exc:  # noqa: BLE001 - PortAudio errors
            self._stream = None
            raise EdgeAVError(f"cannot start {self.label}: {exc}") from exc

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
        samples = self._resample(_mono(indata))
        if samples.size:
            with self._lock:
                self._buffer.write(samples)
                self.last_write = time.monotonic()

    def _reopen_if_stopped(self) -> None:
        """Reopen a stream that stopped (device unplugged, server restarted), with backoff."""
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
            except Exception:  # noqa: BLE001
                pass
            self._stream = None
        self.reopens += 1
        try:
            self._start_stream()
        except EdgeAVError as exc:
            self._log(f"{exc}; retrying in {self._backoff:.1f} s")
            self._next_reopen = now + self._backoff
            self._backoff = min(self._backoff * 2, 8.0)

    def window(self, t_us: int, n: int) -> Window | None:
        """The newest ``n`` samples; once at least half of them have arrived, the start of a
        window that is not yet full is zeros."""
        self._reopen_if_stopped()
        with self._lock:
            written = self._buffer.total_written
            if 2 * written < n:
                return None
            samples = self._buffer.latest(min(n, written))
            received = self.last_write
        if samples.size < n:
            samples = np.concatenate([np.zeros(n - samples.size, np.float32), samples])
        end = written / self.sample_rate
        return Window(samples, end - n / self.sample_rate, end, received)

    def close(self) -> None:
        self._closed = True
        if self._stream is not None:
            try:
                self._stream.stop(ignore_errors=True)
                self._stream.close(ignore_errors=True)
            except Exception:  # noqa: BLE001
                pass
            self._stream = None

    def stats(self) -> dict[str, Any]:
        return {
            "source": self.device_name or str(self.device_spec),
            "kind": "microphone",
            "capture_rate": self.capture_rate,
            "samples": self._buffer.total_written,
            "overflows": self.overflows,
            "reopens": self.reopens,
        }


class AudioFile(AudioSource):
    """A WAV/FLAC file (anything libsndfile reads) on its own clock.

    Args:
        path: the file.
        sample_rate: the model's rate; other file rates are resampled while reading.
        seconds: audio kept (at least :data:`MIN_BUFFER_SECONDS`; a window must fit).
        loop: start again at the end instead of ending.
    """

    BLOCK = 4096

    def __init__(
        self,
        path: str | Path,
        *,
        sample_rate: int = 16000,
        seconds: float = MIN_BUFFER_SECONDS,
        loop: bool = False,
    ) -> None:
        self.sample_rate = _check_rate(sample_rate)
        self.path = Path(path)
        self.label = f"audio file {self.path}"
        self.loop = loop
        self._buffer = RingBuffer(max(seconds, MIN_BUFFER_SECONDS), self.sample_rate)
        self._file: Any = None
        self._resample: _Resampler | None = None
        self._eof = False
        self.file_rate = 0
        self.file_frames = 0
        self.loops = 0

    def open(self) -> AudioFile:
        if self._file is not None:
            return self
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
            f = soundfile.SoundFile(str(self.path))
        except (RuntimeError, TypeError, ValueError) as exc:
            reason = str(exc).split(":")[-1].strip() or "unknown format"
            raise EdgeAVError(f"cannot read audio file {self.path}: {reason}") from exc
        self.file_rate, self.file_frames = int(f.samplerate), int(f.frames)
        if self.file_frames <= 0:
            f.close()
            raise EdgeAVError(f"audio file {self.path} contains no samples")
        if self.file_rate < 1000:
            f.close()
            raise EdgeAVError(
                f"audio file {self.path} has an unusable sample rate {self.file_rate} Hz"
            )
        self._file = f
        self._resample = _Resampler(self.file_rate, self.sample_rate)
        return self

    @property
    def duration(self) -> float:
        """Length of one pass of the file in seconds."""
        return self.file_frames / self.file_rate if self.file_rate else 0.0

    def _read_block(self, frames: int) -> None:
        """Decode up to ``frames`` file frames into the buffer (looping, or marking the end)."""
        try:
            block = self._file.read(frames, dtype="float32", always_2d=True)
        except (RuntimeError, ValueError) as exc:
            raise EdgeAVError(f"cannot read audio file {self.path}: {exc}") from exc
        if len(block) == 0:
            if self.loop:
                self._file.seek(0)
                self.loops += 1
                return
            self._buffer.write(self._resample(np.zeros(0, np.float32), last=True))
            self._eof = True
            return
        mono = _mono(block)
        if not np.all(np.isfinite(mono)):
            raise EdgeAVError(f"audio file {self.path} contains NaN or infinite samples")
        self._buffer.write(self._resample(mono))

    def window(self, t_us: int, n: int) -> Window | None:
        """The file's ``n`` samples ending at ``t_us`` (None before ``n`` samples, and None with
        :attr:`ended` set once ``t_us`` is past the end of a file that does not loop)."""
        self.open()
        needed = t_us * self.sample_rate // 1_000_000
        if n > self._buffer.capacity:
            raise EdgeAVError(f"{self.label}: a window of {n} samples does not fit its buffer")
        while self._buffer.total_written < needed and not self._eof:
            missing = needed - self._buffer.total_written
            want = missing  # resampling: a little more, the resampler holds a few samples back
            if self.file_rate != self.sample_rate:
                want = -(-missing * self.file_rate // self.sample_rate) + 64
            self._read_block(max(1, min(self.BLOCK, want)))
        written = self._buffer.total_written
        if written + self.sample_rate // 100 < needed:  # 10 ms slack for the resampler
            self.ended = True
            return None
        end = min(needed, written)
        if end < n:
            return None
        extra = written - end  # read past t (resampler blocks): not part of this window
        samples = self._buffer.latest(n + extra)[:n] if extra else self._buffer.latest(n)
        return Window(samples, (end - n) / self.sample_rate, end / self.sample_rate)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def stats(self) -> dict[str, Any]:
        return {
            "source": str(self.path),
            "kind": "file",
            "file_rate": self.file_rate,
            "samples": self._buffer.total_written,
            "loops": self.loops,
        }
