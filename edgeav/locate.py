"""Find a handwritten digit on a sheet of paper in a camera frame, and lay it out like MNIST.

A digit held up to a camera is a small part of the frame, anywhere in it, in any light. A model
that reads the whole frame must learn where to look from the data; one that reads the digit cut
out and normalised sees every writer's digit at the same size and place, as MNIST's digits are
(LeCun et al.: the box scaled to 20x20, the centre of mass at the centre of 28x28). This module
does the cutting out, with classical image processing (OpenCV and NumPy only, a few milliseconds
on a Pi), the same way in training and on the device (``ImageSpec(crop="digit")``):

1. The frame is shrunk to :data:`WORK_HEIGHT` rows, grey. The paper's brightness under each pixel
   is estimated by a morphological closing with a disc wider than a pen stroke (dark strokes
   vanish, the paper and its shading stay); *darkness* is how much darker than that a pixel is,
   relative to it, so the light falling on the sheet does not matter.
2. Dark blobs (hysteresis: a core darker than :data:`SEED`, grown to :data:`GROW`) are kept when
   they are ink on paper: they do not touch the frame's edge, and the ring around them is bright
   and lit smoothly (:data:`RING_UNIFORM` of it within :data:`RING_TOLERANCE` of a plane fitted to
   its brightness, so a lamp's gradient across a big digit still counts), as paper is and as the
   edges and textures of objects in a room are not.
3. The best blob (the most contrast, even surround, size and bright paper) is the digit's main
   stroke; other kept blobs close to it on the same sheet (the paper between them equally bright)
   are the rest of the digit (a 5's flag, a broken stroke).
4. The digit's ink (darkness scaled by its own strongest strokes, only within the kept blobs) is
   laid out like MNIST: light strokes on black, the box scaled to fit 20/28 of the output, the
   centre of mass at its centre.

A frame without a digit gives an all-black layout; the image model is trained to be unsure on it
(outlier exposure), so the runtime leaves the image out, as for any unsure modality.

Faint ink (pencil, a dim sheet) is missed by thresholds that keep a room's textures out, and
partly found by lower ones. :func:`find_digits` therefore searches at each of :data:`LEVELS`
(the darkness thresholds scaled down), from one shrunk frame; the image model reads every
layout and keeps its most confident reading (:mod:`edgeav.candidates`), being unsure on what is
not a digit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Rows of the grey frame the search works on (columns keep the frame's aspect ratio).
WORK_HEIGHT = 120
#: Diameter in working pixels of the disc that closes over pen strokes to estimate the paper.
PAPER_KERNEL = 31
#: Hysteresis on darkness (fraction darker than the paper): a blob needs a core darker than
#: SEED, and is grown over pixels darker than GROW.
SEED = 0.25
GROW = 0.12
#: A blob's mean darkness must be at least this (faint smudges and shadows are not ink).
MIN_CONTRAST = 0.2
#: Paper around a blob: RING_UNIFORM of the ring within RING_TOLERANCE of a plane fitted to the
#: ring's brightness, and that plane's median at least RING_BRIGHT of the frame's brightest (99th
#: percentile) grey.
RING_UNIFORM = 0.8
RING_TOLERANCE = 0.1
RING_BRIGHT = 0.35
#: Width in working pixels of the ring examined around a blob.
RING_WIDTH = 3
#: Blobs smaller than this (working pixels) or shorter than MIN_HEIGHT rows are noise.
MIN_AREA = 6
MIN_HEIGHT = 5
#: Another kept blob joins the digit when it is within MERGE_DISTANCE of the digit's size, at
#: least MERGE_AREA of the main blob's area, and on the same paper (its ring's median and the
#: paper between them within SAME_PAPER of the main blob's ring median).
MERGE_DISTANCE = 0.5
MERGE_AREA = 0.05
SAME_PAPER = 0.08
#: Fraction of the layout's side the digit's box is scaled to fit (MNIST: 20 of 28 pixels).
BOX_FRACTION = 20.0 / 28.0
#: The searches :func:`find_digits` makes, as factors on SEED, GROW and MIN_CONTRAST: as set,
#: then for fainter ink (pencil, a dim sheet) that the first misses or finds only part of.
LEVELS = (1.0, 0.72)


@dataclass(frozen=True)
class Found:
    """A digit found in a frame.

    Attributes:
        box: ``(x0, y0, x1, y1)`` in the frame's pixels (x1, y1 exclusive).
        ink: the digit's ink in the box, float32 0..1 (light strokes on black), in working
            pixels (the box's size times ``WORK_HEIGHT / frame height``).
    """

    box: tuple[float, float, float, float]
    ink: np.ndarray


def _grey(image: np.ndarray) -> np.ndarray:
    import cv2  # noqa: PLC0415

    if image.ndim == 3:
        return cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_BGR2GRAY)
    return image


def find_digit(image: np.ndarray) -> Found | None:
    """The handwritten digit in a camera frame (BGR or grey uint8), or None when there is none.

    See the module's docstring for how; the frame may be any size.
    """
    return _search(_Frame.of(image), LEVELS[0])


def find_digits(image: np.ndarray) -> list[Found | None]:
    """One search per :data:`LEVELS` (the first is :func:`find_digit`'s), each the digit it
    found or None. The darker searches miss faint ink; the fainter ones take in more of what is
    not ink. Which is the digit is for the image model to judge (:mod:`edgeav.candidates`)."""
    frame = _Frame.of(image)
    return [_search(frame, level) for level in LEVELS]


@dataclass(frozen=True)
class _Frame:
    """A frame shrunk to the working size, grey, with its paper brightness and darkness, and
    its brightest grey (99th percentile): what every search of the frame reads."""

    small: np.ndarray
    paper: np.ndarray
    dark: np.ndarray
    scale: float
    brightest: float

    @classmethod
    def of(cls, image: np.ndarray) -> _Frame:
        import cv2  # noqa: PLC0415

        grey = _grey(image)
        h, w = grey.shape
        scale = WORK_HEIGHT / h
        ww = max(1, round(w * scale))
        small = cv2.resize(grey, (ww, WORK_HEIGHT), interpolation=cv2.INTER_AREA)
        small = small.astype(np.float32)
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (PAPER_KERNEL, PAPER_KERNEL))
        paper = cv2.GaussianBlur(cv2.morphologyEx(small, cv2.MORPH_CLOSE, disc), (0, 0), 2)
        dark = (paper - small) / np.maximum(paper, 1.0)
        return cls(small, paper, dark, scale, float(np.percentile(small, 99)))


def _search(frame: _Frame, level: float) -> Found | None:
    """The search of the module's docstring, its darkness thresholds scaled by ``level``."""
    import cv2  # noqa: PLC0415

    small, paper, dark, scale, brightest = (
        frame.small, frame.paper, frame.dark, frame.scale, frame.brightest
    )  # fmt: skip
    ww = small.shape[1]
    weak = (dark > GROW * level).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(weak, connectivity=8)
    if n <= 1:
        return None
    peak = np.zeros(n, np.float32)
    np.maximum.at(peak, labels.ravel(), dark.ravel())
    ring_kernel = np.ones((3, 3), np.uint8)
    kept = []  # (score, x, y, w, h, paper median, area, label)
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if area < MIN_AREA or bh < MIN_HEIGHT or peak[i] < SEED * level:
            continue
        if x == 0 or y == 0 or x + bw >= ww or y + bh >= WORK_HEIGHT:
            continue
        pad = RING_WIDTH + 1
        y0, y1 = max(y - pad, 0), min(y + bh + pad, WORK_HEIGHT)
        x0, x1 = max(x - pad, 0), min(x + bw + pad, ww)
        blob = (labels[y0:y1, x0:x1] == i).astype(np.uint8)
        ring = (cv2.dilate(blob, ring_kernel, iterations=RING_WIDTH) > 0) & (
            weak[y0:y1, x0:x1] == 0
        )
        ry, rx = np.nonzero(ring)
        if ry.size < 10:
            continue
        around = small[y0:y1, x0:x1][ry, rx]
        # Paper under smooth light: brightness a plane over the ring, not a step or texture.
        basis = np.stack([np.ones_like(rx), rx, ry], axis=1).astype(np.float32)
        coef = np.linalg.lstsq(basis, around, rcond=None)[0]
        light = np.maximum(basis @ coef, 1.0)
        median = float(np.median(light))
        uniform = float(np.mean(np.abs(around - light) < RING_TOLERANCE * light))
        contrast = float(dark[y0:y1, x0:x1][blob > 0].mean())
        if (
            uniform < RING_UNIFORM
            or median < RING_BRIGHT * brightest
            or contrast < MIN_CONTRAST * level
        ):
            continue
        score = uniform * contrast * np.sqrt(area) * (median / max(brightest, 1.0)) ** 2
        kept.append((score, x, y, bw, bh, median, area, i))
    if not kept:
        return None
    kept.sort(key=lambda k: -k[0])
    _, x, y, bw, bh, median, area, main = kept[0]
    x0, y0, x1, y1 = x, y, x + bw, y + bh
    members = [main]
    size = max(bw, bh)
    centre = np.array([x + bw / 2, y + bh / 2])
    steps = np.linspace(0.0, 1.0, 12)[:, None]
    for _, ox, oy, obw, obh, omedian, oarea, label in kept[1:]:
        gap = max(ox - x1, x0 - (ox + obw), oy - y1, y0 - (oy + obh), 0)
        if gap >= MERGE_DISTANCE * size or oarea < MERGE_AREA * area:
            continue
        if abs(omedian - median) > SAME_PAPER * median:
            continue
        path = centre * (1 - steps) + np.array([ox + obw / 2, oy + obh / 2]) * steps
        between = paper[path[:, 1].astype(int), path[:, 0].astype(int)]
        if np.any(np.abs(between - median) > SAME_PAPER * median):
            continue
        members.append(label)
        x0, y0, x1, y1 = min(x0, ox), min(y0, oy), max(x1, ox + obw), max(y1, oy + obh)
    mask = np.isin(labels[y0:y1, x0:x1], members)
    ink = np.where(mask, dark[y0:y1, x0:x1], 0.0).astype(np.float32)
    strong = float(np.percentile(ink[mask], 90))
    ink = np.clip(ink / max(0.8 * strong, 1e-3), 0.0, 1.0)
    box = (x0 / scale, y0 / scale, x1 / scale, y1 / scale)
    return Found(box=box, ink=ink)


def mnist_layout(ink: np.ndarray, size: int) -> np.ndarray:
    """Ink coverage (float 0..1, light on black, any size) laid out like MNIST in ``size`` x
    ``size``: the box of the strokes scaled to fit :data:`BOX_FRACTION` of the side, the centre of
    mass at the centre. float32 0..1; all zeros when ``ink`` has no stroke."""
    import cv2  # noqa: PLC0415

    out = np.zeros((size, size), np.float32)
    rows = np.flatnonzero(ink.max(axis=1) > 0.05) if ink.size else np.array([])
    cols = np.flatnonzero(ink.max(axis=0) > 0.05) if ink.size else np.array([])
    if rows.size == 0 or cols.size == 0:
        return out
    crop = np.ascontiguousarray(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], np.float32)
    fit = BOX_FRACTION * size / max(crop.shape)
    ch, cw = (max(1, round(n * fit)) for n in crop.shape)
    interp = cv2.INTER_AREA if fit < 1 else cv2.INTER_LINEAR
    small = np.clip(cv2.resize(crop, (cw, ch), interpolation=interp), 0.0, 1.0)
    total = float(small.sum()) or 1.0
    cy = float((small.sum(axis=1) * np.arange(ch)).sum()) / total
    cx = float((small.sum(axis=0) * np.arange(cw)).sum()) / total
    top = int(np.clip(round((size - 1) / 2 - cy), 0, size - ch))
    left = int(np.clip(round((size - 1) / 2 - cx), 0, size - cw))
    out[top : top + ch, left : left + cw] = small
    return out


def digit_layout(image: np.ndarray, size: int) -> np.ndarray:
    """The digit of a camera frame laid out like MNIST (:func:`mnist_layout`), float32 0..255
    (light strokes on black), ``(size, size)``; all zeros when no digit is found."""
    return _layout(find_digit(image), size)


def digit_layouts(image: np.ndarray, size: int) -> np.ndarray:
    """:func:`digit_layout` of each of :func:`find_digits`' searches: float32 0..255,
    ``(len(LEVELS), size, size)``; the first is :func:`digit_layout`'s."""
    return np.stack([_layout(found, size) for found in find_digits(image)])


def _layout(found: Found | None, size: int) -> np.ndarray:
    if found is None:
        return np.zeros((size, size), np.float32)
    return mnist_layout(found.ink, size) * np.float32(255.0)
