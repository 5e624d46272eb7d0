"""Audio sources at the model's sample rate: a microphone (:class:`Microphone`) or a file
(:class:`AudioFile`).

- :class:`Microphone`: a sounddevice ``InputStream`` whose callback writes into a
  :class:`~edgeav.runtime.ringbuffer.RingBuffer`. The device is chosen by index or by part of its
  name. If it cannot capture at the model's rate it captures at one it supports and the callback
  resamples (soxr, streaming). Overflows reported by PortAudio are counted, never fatal; a stream
  that dies (device unplugged, sound server restarted) is reopened with backoff, reinitialising
  PortAudio when the old device list no longer works, and said in one line. sounddevice (and so
  PortAudio) is imported only when a microphone is opened: without the system library the error
  names the Debian package. PortAudio and ALSA write their own diagnostics to stderr (on import,
  on opening a stream, from the audio thread when a stream dies): edgeav keeps those lines out of
  its output and reports failures in its own words.
- :class:`AudioFile`: a WAV/FLAC file on its own clock: ``window(t, n)`` is exactly the file's
  ``n`` samples ending at stream time ``t`` (decoded and resampled incrementally, the newest few
  seconds kept).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError
from edgeav.native_stderr import captured_native_stderr, showing_native_output
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
#: Seconds between attempts to reopen a stopped stream: doubling from the first to the last.
REOPEN_BACKOFF = (0.5, 8.0)
#: A stream still not reopened after this many seconds is reported (once) with the reason.
REOPEN_REPORT_AFTER = 10.0
#: Lines that PortAudio and ALSA write to stderr themselves ("ALSA lib pulse.c:242:(pulse_connect)
#: PulseAudio: Unable to connect: ...", "Expression '...' failed in 'src/hostapi/alsa/...'") and
#: the JACK client library's, which PortAudio's ALSA probe can load.
NATIVE_CHATTER = re.compile(
    r"^(ALSA lib |Expression '.*' failed in '|PaAlsa|PortAudio|Cannot connect to server|"
    r"jack server|JackShm)"
)


def import_sounddevice() -> Any:
    """Import sounddevice, turning a missing PortAudio into a one-line :class:`EdgeAVError`.

    The import initialises PortAudio, which probes every ALSA device and lets ALSA (and JACK)
    print what they could not open; that output is captured and dropped.
    """
    try:
        with captured_native_stderr():
            import sounddevice  # noqa: PLC0415
    except OSError as exc:  # sounddevice raises OSError when libportaudio is not found
        raise EdgeAVError(PORTAUDIO_MISSING) from exc
    except ImportError as exc:
        raise EdgeAVError(
            "sounddevice is not installed; install the runtime extra: pip install 'edgeav[runtime]'"
        ) from exc
    return sounddevice


def _native_reason(lines: list[str]) -> str:
    """The most telling of PortAudio's/ALSA's captured lines ("PulseAudio: Unable to connect:
    Connection refused"), without ALSA's source-location prefix; "" if there is none."""
    for line in lines:
        if line.startswith("ALSA lib "):
            return re.sub(r"^ALSA lib [^ ]*\) ", "", line).strip()
    return ""


def _native_call(what: str, fn: Callable[[], Any]) -> Any:
    """``fn()`` with the native stderr captured; a failure becomes one :class:`EdgeAVError`:
    ``what``, the exception and ALSA's reason."""
    error: Exception
    with captured_native_stderr() as native:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - PortAudio errors
            error = exc
    reason = _native_reason(native)  # filled in when the capture ended
    raise EdgeAVError(f"{what}: {error}" + (f" ({reason})" if reason else "")) from error


class _ChatterFilter:
    """Keeps PortAudio's and ALSA's own stderr lines out of the process's stderr while a
    microphone is open.

    PortAudio's audio thread prints its diagnostics when a stream dies (a server restarted, a
    device unplugged), at a moment no caller can wrap in :func:`captured_native_stderr`. While
    active, file descriptor 2 is a pipe; a thread passes every line on to the real stderr at once
    except those matching :data:`NATIVE_CHATTER`, of which it keeps the newest few. A partial
    line is passed on after 0.1 s without its end; under ``edgeav --debug`` every line is passed
    on. Process-wide and reference-counted: the first
    :meth:`acquire` installs it, the last :meth:`release` restores fd 2. Without a usable fd 2 it
    does nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.dropped: deque[str] = deque(maxlen=20)

    def acquire(self) -> None:
        with self._lock:
            self._users += 1
            if self._users > 1:
                return
            try:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                read_end, write_end = os.pipe()
                out = os.dup(2)
                self._saved = os.dup(2)
                os.dup2(write_end, 2)
                os.close(write_end)
            except (OSError, ValueError):
                self._saved = None
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._pump, args=(read_end, out), name="edgeav-stderr-filter", daemon=True
            )
            self._thread.start()

    def release(self) -> None:
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users or self._saved is None:
                return
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(self._saved, 2)  # the pipe's write end closes: the thread drains and ends
            os.close(self._saved)
            self._saved = None
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=2.0)
                self._thread = None

    def _pass_on(self, out: int, data: bytes) -> None:
        line = data.decode("utf-8", "replace")
        if NATIVE_CHATTER.match(line):
            self.dropped.append(line.rstrip())
            if not showing_native_output():  # edgeav --debug shows them
                return
        with contextlib.suppress(OSError):
            os.write(out, data)

    def _pump(self, read_end: int, out: int) -> None:
        pending = b""
        try:
            while True:
                try:
                    ready = select.select([read_end], [], [], 0.1)[0]
                except (OSError, ValueError):  # no waiting with a timeout: plain blocking reads
                    ready = [read_end]
                if ready:
                    chunk = os.read(read_end, 65536)
                    if not chunk:
                        break
                    *lines, pending = (pending + chunk).split(b"\n")
                    for line in lines:
                        self._pass_on(out, line + b"\n")
                elif pending and not NATIVE_CHATTER.match(pending.decode("utf-8", "replace")):
                    self._pass_on(out, pending)
                    pending = b""
                elif self._stop.is_set():
                    break
            if pending:
                self._pass_on(out, pending)
        finally:
            os.close(read_end)
            os.close(out)


_chatter = _ChatterFilter()


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
        log: called with one-line messages (rate fallback, a stream that stopped).
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
        self._filtering = False
        self._stopped_at: float | None = None  # when the current outage was noticed
        self._reported = False  # the current outage's reason has been logged
        self._outage_reason = ""
        self._next_reopen = 0.0
        self._backoff = REOPEN_BACKOFF[0]
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
        self._sd = import_sounddevice()
        self._choose_device()
        if self.capture_rate != self.sample_rate:
            self._log(
                f"{self.label}: capturing at {self.capture_rate} Hz, resampling to "
                f"{self.sample_rate} Hz"
            )
        if not self._filtering:
            _chatter.acquire()
            self._filtering = True
        try:
            self._start_stream()
        except EdgeAVError:
            self.close()
            raise
        return self

    def _choose_device(self, *, again: bool = False) -> None:
        """Resolve the device (index, name) and the capture rate from PortAudio's device list.

        ``again`` (after PortAudio was reinitialised): the system's default input must exist
        (while a sound server is down there is none; the first device listed would be the wrong
        one) and a device of the name used before wins.
        """
        sd = self._sd
        devices, default = _native_call(
            "cannot list audio devices",
            lambda: (
                list(sd.query_devices()),
                sd.default.device[0] if sd.default.device is not None else None,
            ),
        )
        spec = self.device_spec
        if again and spec is None:
            if default is None or default < 0:
                raise EdgeAVError(f"{self.label}: no default input device")
            names = [str(d["name"]) for d in devices]
            if self.device_name in names:
                spec = names.index(self.device_name)
        index = resolve_input_device(devices, spec, default)
        self.device_index, self.device_name = index, str(devices[index]["name"])

        def supported(rate: int) -> bool:
            try:
                sd.check_input_settings(device=index, samplerate=rate, channels=1, dtype="float32")
            except Exception:  # noqa: BLE001
                return False
            return True

        with captured_native_stderr():  # probing rates opens the device
            rate = choose_rate(
                supported, self.sample_rate, devices[index].get("default_samplerate")
            )
        self.capture_rate = rate

    def _start_stream(self) -> None:
        self._resample = _Resampler(self.capture_rate, self.sample_rate)

        def start() -> Any:
            stream = self._sd.InputStream(
                device=self.device_index,
                samplerate=self.capture_rate,
                channels=1,
                dtype="float32",
                blocksize=self.blocksize,
                callback=self._callback,
            )
            try:
                stream.start()
            except Exception:
                with contextlib.suppress(Exception):
                    stream.close(ignore_errors=True)
                raise
            return stream

        self._stream = _native_call(f"cannot start {self.label}", start)

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with captured_native_stderr(), contextlib.suppress(Exception):
                stream.stop(ignore_errors=True)
                stream.close(ignore_errors=True)

    def _reinitialize(self) -> None:
        """Restart PortAudio so that it lists the devices again (after a sound server restart or
        a device plugged in again, the old list can name devices that no longer open), then
        resolve the device again."""
        terminate = getattr(self._sd, "_terminate", None)
        initialize = getattr(self._sd, "_initialize", None)
        if terminate is None or initialize is None:
            return
        _native_call("cannot restart PortAudio", lambda: (terminate(), initialize()))
        self._choose_device(again=True)

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
        samples = self._resample(_mono(indata))
        if samples.size:
            with self._lock:
                self._buffer.write(samples)
                self.last_write = time.monotonic()

    def _reopen_if_stopped(self) -> None:
        """Reopen a stream that stopped (device unplugged, server restarted), with backoff.

        One line says that the stream stopped; attempts are silent until it has been down for
        :data:`REOPEN_REPORT_AFTER` seconds, when one more line gives the reason. Each attempt
        tries the same device, then PortAudio reinitialised and the device resolved again.
        """
        if self._closed or self._sd is None:
            return
        if self._stream is not None and self._stream.active:
            return
        now = time.monotonic()
        if self._stopped_at is None:
            self._stopped_at, self._reported, self._outage_reason = now, False, ""
            self._backoff, self._next_reopen = REOPEN_BACKOFF[0], now
            self._log(f"{self.label}: the stream stopped; reopening")
            self._close_stream()
        if now < self._next_reopen:
            return
        try:
            self._start_stream()
        except EdgeAVError as exc:
            # the first failure of an outage, on the device list it began with, says most
            self._outage_reason = self._outage_reason or str(exc)
            try:
                self._reinitialize()
                self._start_stream()
            except EdgeAVError:
                self._next_reopen = now + self._backoff
                self._backoff = min(self._backoff * 2, REOPEN_BACKOFF[1])
                if not self._reported and now - self._stopped_at >= REOPEN_REPORT_AFTER:
                    self._reported = True
                    self._log(
                        f"{self._outage_reason}; still retrying every "
                        f"{REOPEN_BACKOFF[1]:g} s at most"
                    )
                return
        self.reopens += 1
        self._stopped_at = None

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
        self._close_stream()
        if self._filtering:
            self._filtering = False
            _chatter.release()

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
