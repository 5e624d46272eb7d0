"""Handwritten digits from sources no MNIST-based split uses (av-digits' ``test-unseen``), laid
out like MNIST (:func:`ink_image`, which av-digits' printed training digits use too).

:func:`unseen_digits` mixes:

- UCI optdigits (E. Alpaydin, C. Kaynak, 1998; CC BY 4.0), the copy inside scikit-learn
  (``sklearn/datasets/data/digits.csv.gz``, what ``sklearn.datasets.load_digits`` reads): 1,797
  digits of the UCI test set, written by 13 people of the 43 who filled the forms (none of them
  MNIST's writers), 8x8 blocks of 16 levels, upscaled smoothly here;
- digits drawn with the Hershey script and cursive vector fonts (A. V. Hershey, U.S. National
  Bureau of Standards; public domain, the data format by James Hurt, Cognition Inc.) from the
  PyPI package Hershey-Fonts (MIT), with random thickness, slant, rotation and jitter. (OpenCV's
  ``FONT_HERSHEY_SCRIPT_*`` are not used: OpenCV 5 draws them with a sans-serif font.)
"""

from __future__ import annotations

import functools
import gzip

import numpy as np

from edgeav.data.packaged import package_file
from edgeav.errors import EdgeAVError

#: Where scikit-learn keeps UCI optdigits (64 pixels 0..16 and the label per row).
OPTDIGITS = ("datasets", "data", "digits.csv.gz")
#: Hershey fonts used for unseen digits (names in the Hershey-Fonts package).
HERSHEY_FONTS = ("scripts", "scriptc", "cursive")
#: Share of :func:`unseen_digits` drawn with a Hershey font (the rest: UCI optdigits).
HERSHEY_FRACTION = 0.3
#: Names of the handwriting sources, as :func:`unseen_digits` reports them.
SOURCE_UCI = "uci-optdigits"
SOURCE_HERSHEY = "hershey-script"


def ink_image(coverage: np.ndarray) -> np.ndarray:
    """Ink coverage 0..1 of any size as a 28x28 uint8 image laid out like MNIST (light strokes on
    black): :func:`edgeav.locate.mnist_layout`, the layout the device gives a found digit."""
    from edgeav.locate import mnist_layout  # noqa: PLC0415

    return np.round(mnist_layout(coverage, 28) * 255.0).astype(np.uint8)


@functools.cache
def _optdigits() -> tuple[np.ndarray, np.ndarray]:
    path = package_file("sklearn", *OPTDIGITS)
    if path is None:
        raise EdgeAVError(
            "UCI optdigits come from the PyPI package scikit-learn, which is not installed "
            "(pip install 'edgeav[train]' or pip install scikit-learn)"
        )
    try:
        with gzip.open(path, "rb") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        raise EdgeAVError(f"cannot read UCI optdigits from {path}: {exc}") from exc
    if table.shape[1] != 65 or table[:, :64].min() < 0 or table[:, :64].max() > 16:
        raise EdgeAVError(f"{path} is not 8x8 digits of 0..16 and a label per row")
    pixels, labels = table[:, :64].reshape(-1, 8, 8).astype(np.uint8), table[:, 64]
    pixels.flags.writeable = labels.flags.writeable = False
    return pixels, labels


def load_optdigits() -> tuple[np.ndarray, np.ndarray]:
    """UCI optdigits as scikit-learn ships them: ``(uint8 (1797, 8, 8) 0..16, labels (1797,))``."""
    pixels, labels = _optdigits()
    return pixels.copy(), labels.copy()


@functools.cache
def _hershey_glyphs(font: str) -> tuple[tuple[np.ndarray, ...], ...]:
    """The strokes of the digits 0..9 in a Hershey font: per digit, float (n, 2) polylines."""
    try:
        from HersheyFonts import HersheyFonts  # noqa: PLC0415
    except ImportError as exc:
        raise EdgeAVError(
            "the Hershey fonts come from the PyPI package Hershey-Fonts, which is not installed "
            "(pip install 'edgeav[train]' or pip install Hershey-Fonts)"
        ) from exc
    hf = HersheyFonts()
    hf.load_default_font(font)
    digits = []
    for d in range(10):
        strokes = tuple(np.array(s, dtype=np.float64) for s in hf.strokes_for_text(str(d)))
        digits.append(tuple(s for s in strokes if len(s) >= 2))
    return tuple(digits)


def optdigit_ink(pixels: np.ndarray) -> np.ndarray:
    """One UCI optdigit (8x8, 0..16) as a 28x28 uint8 ink image laid out like MNIST.

    The 8x8 block counts are upscaled smoothly (bicubic to 32x32, the size of the bitmaps they
    were counted from) and their contrast stretched so strokes have MNIST's solid cores.
    """
    import cv2  # noqa: PLC0415

    big = cv2.resize(pixels.astype(np.float32) / 16.0, (32, 32), interpolation=cv2.INTER_CUBIC)
    big = cv2.GaussianBlur(big, (0, 0), 0.8)
    return ink_image(np.clip((big - 0.3) / 0.4, 0.0, 1.0))


def hershey_ink(digit: int, rng: np.random.Generator) -> np.ndarray:
    """A digit drawn with a random Hershey script/cursive font as a 28x28 uint8 ink image.

    Random pen thickness, slant (mostly to the right), rotation, width and a smooth random
    distortion of the strokes, so no two are the same.
    """
    import cv2  # noqa: PLC0415

    font = HERSHEY_FONTS[int(rng.integers(len(HERSHEY_FONTS)))]
    strokes = _hershey_glyphs(font)[digit]
    pts = np.concatenate(strokes)
    centre = (pts.min(axis=0) + pts.max(axis=0)) / 2
    scale = 72.0 / float(np.ptp(pts, axis=0).max())
    slant = rng.uniform(-0.1, 0.4)
    angle = np.deg2rad(rng.uniform(-10.0, 10.0))
    squeeze = rng.uniform(0.75, 1.15)
    c, s = np.cos(angle), np.sin(angle)
    affine = np.array([[c, -s], [s, c]]) @ np.array([[squeeze, -slant], [0.0, 1.0]]) * scale
    field = rng.normal(0.0, rng.uniform(1.5, 4.0), size=(2, 4, 4)).astype(np.float32)
    warp = [cv2.resize(f, (128, 128), interpolation=cv2.INTER_CUBIC) for f in field]
    thickness = int(rng.integers(5, 12))
    canvas = np.zeros((128, 128), np.uint8)
    for stroke in strokes:
        # densify so the distortion bends the strokes instead of moving their few corners
        n = max(2, int(np.linalg.norm(np.diff(stroke, axis=0), axis=1).sum() * scale / 3))
        t = np.linspace(0.0, len(stroke) - 1, n)
        dense = np.stack([np.interp(t, np.arange(len(stroke)), stroke[:, k]) for k in (0, 1)], 1)
        xy = (dense - centre) @ affine.T + 64.0
        ij = np.clip(xy.round().astype(int), 0, 127)
        xy += np.stack([warp[0][ij[:, 1], ij[:, 0]], warp[1][ij[:, 1], ij[:, 0]]], 1)
        pts16 = np.round(xy * 16).astype(np.int32)  # 4 fractional bits
        cv2.polylines(canvas, [pts16], False, 255, thickness, cv2.LINE_AA, 4)
    return ink_image(canvas.astype(np.float32) / 255.0)


def unseen_digits(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Handwritten digits from sources no MNIST-based split uses: ``(inks, labels, sources)``.

    ``inks`` uint8 (10 * per_class, 28, 28) laid out like MNIST (light strokes on dark), ordered by
    digit; ``labels`` int64; ``sources`` per image :data:`SOURCE_UCI` or :data:`SOURCE_HERSHEY`.
    Of each digit, :data:`HERSHEY_FRACTION` (rounded) are Hershey-font digits and the rest
    different UCI optdigits (all of them, and more Hershey digits, when a digit has fewer than that;
    about 180 per digit). Deterministic for ``seed``.
    """
    if per_class < 1:
        raise EdgeAVError(f"need at least 1 digit per class, got {per_class}")
    pixels, labels = _optdigits()
    inks, out_labels, sources = [], [], []
    for digit in range(10):
        rng = np.random.default_rng([seed, digit, 0x0C7D161])
        rows = np.flatnonzero(labels == digit)
        n_uci = min(per_class - round(HERSHEY_FRACTION * per_class), rows.size)
        for row in rows[rng.permutation(rows.size)[:n_uci]]:
            inks.append(optdigit_ink(pixels[row]))
            sources.append(SOURCE_UCI)
        for _ in range(per_class - n_uci):
            inks.append(hershey_ink(digit, rng))
            sources.append(SOURCE_HERSHEY)
        out_labels.extend([digit] * per_class)
    return np.stack(inks), np.array(out_labels, dtype=np.int64), sources
