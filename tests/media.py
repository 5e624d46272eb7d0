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


#: The classes of :func:`write_bars_dataset`: vertical bars, horizontal bars, a diagonal.
BAR_CLASSES = ("a", "b", "c")


def write_bars_dataset(root: Path, splits: dict[str, int]) -> Path:
    """A data set folder of 3 classes, ``splits[name]`` examples per class in each split: 28x28
    PNG bars at random offsets (vertical, horizontal, diagonal) and 1 s WAV tones (300, 700,
    1100 Hz, pitch jittered, noisy)."""
    import cv2
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000.0
    for split, n in splits.items():
        for k, cls in enumerate(BAR_CLASSES):
            (root / split / "image" / cls).mkdir(parents=True)
            (root / split / "audio" / cls).mkdir(parents=True)
            for i in range(n):
                img = np.zeros((28, 28), np.uint8)
                o = int(rng.integers(4, 18))
                if k == 0:
                    img[:, o : o + 6] = 255
                elif k == 1:
                    img[o : o + 6, :] = 255
                else:
                    np.fill_diagonal(img, 255)
                    img = np.maximum(img, np.roll(img, 1, 1))
                img = np.clip(img + rng.integers(0, 60, img.shape), 0, 255).astype(np.uint8)
                assert cv2.imwrite(str(root / split / "image" / cls / f"{i}.png"), img)
                f = (300 + 400 * k) * rng.uniform(0.97, 1.03)
                clip = 0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.normal(size=t.size)
                path = root / split / "audio" / cls / f"{i}.wav"
                sf.write(path, clip.astype(np.float32), 16000, subtype="PCM_16")
    return root
