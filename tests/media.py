"""Real stand-ins for the runtime's inputs: videos written with OpenCV, WAVs written with
soundfile, and a three-class stream a tiny model can tell apart exactly -- frame brightness
(dark / mid / bright) and tone pitch (300 / 1000 / 3000 Hz) -- so every tick's label is known.

Imported by the tests as ``media`` (``tests/`` is on pytest's ``pythonpath``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ["dark", "mid", "bright"]
LEVELS = [0.1, 0.5, 0.9]  # frame brightness per class
TONES = [300.0, 1000.0, 3000.0]  # Hz per class
SR = 16000
FPS = 10
SEQUENCE = [0, 1, 2, 2, 0, 1, 0, 2]  # class shown / heard in each second of the test stream


def write_video(path: Path, values: list[int], fps: float = FPS, size: int = 16) -> Path:
    """A lossless video (FFV1) whose frame ``i`` is uniformly grey ``values[i]``."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (size, size))
    assert writer.isOpened()
    for v in values:
        writer.write(np.full((size, size, 3), int(v), np.uint8))
    writer.release()
    return path


def tone(cls: int, seconds: float = 1.0, sr: int = SR, amp: float = 0.3, phase: float = 0.0):
    """The tone of class ``cls``, float32."""
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * TONES[cls] * t + phase)).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    import soundfile as sf

    sf.write(path, samples, sr, subtype=subtype)
    return path


def write_stream(folder: Path, sequence: list[int], *, silent: tuple[int, ...] = ()):
    """Video + WAV: second ``k`` shows class ``sequence[k]`` and plays its tone (or silence)."""
    values = [int(LEVELS[c] * 255) for c in sequence for _ in range(FPS)]
    video = write_video(folder / "stream.mkv", values)
    audio = np.concatenate(
        [np.zeros(SR, np.float32) if k in silent else tone(c) for k, c in enumerate(sequence)]
    )
    return video, write_wav(folder / "stream.wav", audio)
