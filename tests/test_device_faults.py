"""Device faults in the runtime: the run keeps going where it can.

- A camera that stops delivering after N frames (its reads fail, or raise as a crashing driver
  does) and comes back: the pipeline goes on audio-only, flags the image as stale in the records,
  reopens the device with backoff and uses the frames again when they return.
- A microphone whose stream reports overflows and then dies: the overflows are counted, the
  stream is reopened, and the run does not stop.

The stand-ins wrap real things: the camera is a real ``cv2.VideoCapture`` of a real video whose
reads fail for a while; the microphone is edgeav's real :class:`Microphone` (device choice, rate
fallback, resampling, callback, reopen) fed by a stand-in for PortAudio that plays a real WAV
through the real callback, so the test needs no audio input device.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

FPS = 20
SR = 16000


def _video(path: Path, frames: int = 40) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), FPS, (32, 32))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((32, 32, 3), (i * 6) % 256, np.uint8))
    writer.release()
    return path


def _wav(path: Path, seconds: float, sr: int = SR) -> Path:
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 700 * t)).astype(np.float32), sr)
    return path


class Outage:
    """Read calls ``start .. start + length - 1`` fail (``mode`` "false" or "raise"), counted
    across reopens; ``opens`` counts the device openings."""

    def __init__(self, start: int, length: int, mode: str) -> None:
        self.start, self.length, self.mode = start, length, mode
        self.reads = 0
        self.opens = 0

    def fault(self) -> str | None:
        n, self.reads = self.reads, self.reads + 1
        return self.mode if self.start <= n < self.start + self.length else None


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["false", "raise"])
def test_camera_outage_after_n_frames_run_goes_on_audio_only_then_uses_frames_again(
    mode, tiny_bundle, tmp_path, looping_capture
):
    from edgeav.runtime.audio import AudioFile
    from edgeav.runtime.camera import LiveCamera
    from edgeav.runtime.pipeline import RunOptions, open_pipeline

    video = _video(tmp_path / "cam.mkv")
    wav = _wav(tmp_path / "mic.wav", 2.0)
    outage = Outage(start=30, length=12, mode=mode)  # after 1.5 s of frames
    messages: list[str] = []

    def open_device(source):
        outage.opens += 1
        return looping_capture(video, FPS, fault=outage.fault)

    cam = LiveCamera(
        0,  # a device: it is reopened when it stops delivering (a file would just end)
        opener=open_device,
        backoff_start=0.1,
        backoff_max=0.2,
        log=messages.append,
    )
    audio = AudioFile(wav, sample_rate=SR, loop=True)
    options = RunOptions(rate=10, stale_after=0.3, duration=4.5)
    with open_pipeline(tiny_bundle, options, frames=cam, audio=audio) as pipe:
        records = [p.to_dict() for p in pipe.run()]

    assert outage.reads >= outage.start + outage.length  # the outage happened in full
    ts = [r["t"] for r in records]
    both = [r["t"] for r in records if r["used"] == ["image", "audio"]]
    stale = [r for r in records if r["flags"].get("image") == "stale"]
    assert both and stale, [(r["t"], r["used"], r["flags"]) for r in records]
    # while the camera is down: audio alone decides, and the record says why
    for r in stale:
        assert "image" not in r["used"] and "image" not in r["present"]
        assert r["probs"]["image"] is None
    audio_only = [r for r in stale if r["used"] == ["audio"] and r["label"] is not None]
    assert len(audio_only) >= 0.8 * len(stale)  # (a starved machine may also stale the audio)
    first_down, last_down = stale[0]["t"], stale[-1]["t"]
    assert min(both) < first_down  # frames before the outage...
    assert max(both) > last_down  # ...and used again after it
    # no tick was lost to the fault: the run went on at its rate
    assert len(records) >= 0.5 * (4.5 - 1.0) * 10 and ts == sorted(ts)
    summary = pipe.summary()
    assert summary["end"] == "duration"
    assert summary["modalities"]["image"]["stale"] == len(stale)
    assert summary["modalities"]["audio"]["used"] >= 0.8 * len(records)
    assert summary["camera"]["reopens"] >= 1 and summary["camera"]["read_failures"] >= 3
    assert outage.opens >= 2  # reopened the device
    assert any("reopening" in m for m in messages) and any("frames again" in m for m in messages)
    assert cam.state == "closed"


# --- microphone -----------------------------------------------------------------------------------


class FakePortAudio:
    """Stands in for the ``sounddevice`` module: one 48 kHz input device that plays a real WAV.

    The stream calls the real :meth:`Microphone._callback` from a thread in blocks of
    ``block`` frames, in real time; every ``overflow_every``-th block carries PortAudio's
    ``input_overflow`` status; the first stream dies (``active`` turns False) after
    ``die_after`` blocks, as an unplugged device's does.
    """

    def __init__(self, samples: np.ndarray, *, block=2400, overflow_every=4, die_after=30):
        self.samples, self.block = samples, block
        self.overflow_every, self.die_after = overflow_every, die_after
        self.default = SimpleNamespace(device=[0, -1])
        self.streams: list[FakeStream] = []
        self.overflows_sent = 0

    def query_devices(self):
        return [
            {
                "name": "USB mic (fake PortAudio)",
                "max_input_channels": 1,
                "default_samplerate": 48000.0,
            }
        ]

    def check_input_settings(self, device, samplerate, channels, dtype):
        if samplerate != 48000:
            raise ValueError(f"invalid sample rate {samplerate}")

    def InputStream(self, **kwargs):  # noqa: N802 - mirrors sounddevice
        stream = FakeStream(self, **kwargs)
        self.streams.append(stream)
        return stream


class FakeStream:
    def __init__(self, pa: FakePortAudio, *, samplerate, callback, **kwargs):
        assert samplerate == 48000
        self.pa, self.callback = pa, callback
        self.active = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.first = not pa.streams

    def start(self):
        self.active = True
        self._thread.start()

    def _run(self):
        pa, pos, k = self.pa, 0, 0
        while not self._stop.is_set():
            if self.first and k >= pa.die_after:
                self.active = False  # the device went away
                return
            block = pa.samples[pos : pos + pa.block]
            if len(block) < pa.block:
                pos = 0
                continue
            pos += pa.block
            k += 1
            overflow = k % pa.overflow_every == 0
            pa.overflows_sent += overflow
            status = SimpleNamespace(input_overflow=overflow)
            self.callback(block[:, None].copy(), len(block), None, status if overflow else None)
            self._stop.wait(pa.block / 48000)

    def stop(self, ignore_errors=True):
        self._stop.set()
        self.active = False
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def close(self, ignore_errors=True):
        self.stop()


@pytest.mark.slow
def test_microphone_overflows_are_counted_and_a_dead_stream_is_reopened(
    tiny_bundle, tmp_path, monkeypatch
):
    import soundfile as sf

    from edgeav.runtime import audio
    from edgeav.runtime.audio import Microphone
    from edgeav.runtime.pipeline import RunOptions, open_pipeline

    y, sr = sf.read(_wav(tmp_path / "mic48k.wav", 3.0, sr=48000), dtype="float32")
    pa = FakePortAudio(y)
    monkeypatch.setattr(audio, "import_sounddevice", lambda: pa)
    messages: list[str] = []
    mic = Microphone(None, sample_rate=SR, log=messages.append)
    options = RunOptions(rate=10, duration=3.0, stale_after=0.3)
    with open_pipeline(tiny_bundle, options, audio=mic) as pipe:
        records = [p.to_dict() for p in pipe.run()]

    summary = pipe.summary()
    assert summary["end"] == "duration"  # neither overflows nor the dead stream stopped it
    assert len(records) >= 15
    assert pa.overflows_sent >= 3
    assert summary["audio_overflows"] == mic.overflows == pa.overflows_sent
    assert mic.capture_rate == 48000 and any("resampling" in m for m in messages)
    assert len(pa.streams) >= 2 and mic.reopens >= 1  # the dead stream was reopened
    assert any("reopening" in m for m in messages)
    used = [r for r in records if r["used"] == ["audio"]]
    assert len(used) >= 0.7 * len(records)
    assert any(r["used"] == ["audio"] for r in records[-5:])  # audio again after the reopen
    assert all(not s.active for s in pa.streams)  # closed at the end
