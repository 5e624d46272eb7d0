"""Camera frames of a handwritten digit on a sheet of paper: what the device's camera sees.

:func:`compose_scene` draws a digit, given as an ink-coverage image (light strokes on dark, e.g.
an MNIST 28x28 digit), in dark ink on a sheet of paper of varying tint and texture, puts the
sheet at a random position, size, rotation and perspective in front of a background (a random
crop of a real photograph, synthetic clutter, or both), then lights, blurs, adds sensor noise and
compresses the frame as a camera would. Every size is a fraction of the frame, so a frame renders
alike at any resolution; av-digits writes them at :data:`SCENE_SIZE`. ``ink=None`` gives a frame
with nothing to read (background only, or a blank sheet); ``degraded=True`` the same scene made
harder (low light, strong blur and noise, a block over part of the digit, a stray stroke).

Backgrounds (:func:`backgrounds`) are photographs that ship inside installed packages, read as
files from the package folders (nothing is downloaded, the packages are not imported):

- scikit-learn ``sklearn/datasets/images/``: ``china.jpg`` and ``flower.jpg`` (what
  ``sklearn.datasets.load_sample_images()`` returns), CC BY 2.0, by Flickr users danielbuechele and
  vultilion (their ``README.txt``);
- scikit-image ``skimage/data/`` (the images its wheel carries, not those ``skimage.data`` fetches
  with pooch): astronaut (NASA, public domain), coffee (Rachel Michetti, CC0), chelsea and camera
  (Stefan van der Walt and Lav Varshney, CC0), rocket (SpaceX, public domain), brick and gravel
  (CC0Textures, CC0), grass (linolafett on DeviantArt, CC0): the notes of ``skimage.data``'s
  functions. scikit-image is optional: without it the scikit-learn photographs alone are used.

Digits from other hands, for ``test-unseen``, are in :mod:`edgeav.data.handwriting`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from edgeav.data.packaged import package_file
from edgeav.errors import EdgeAVError

#: Frame size (width, height) av-digits writes.
SCENE_SIZE = (320, 240)

#: Sheet height as a fraction of the frame height (drawn uniformly; shrunk towards the low end
#: only when a large sheet leaves no room for the whole digit in view).
SHEET_HEIGHT = (0.33, 0.9)
#: Sheet width / height.
SHEET_ASPECT = (0.75, 1.4)
#: Height of the digit's box as a fraction of the sheet's height; its width at most this share of
#: the sheet's width.
DIGIT_HEIGHT = (0.55, 0.8)
DIGIT_MAX_WIDTH = 0.85
#: Stroke thickness: the level (0..1) at which the smooth upscaled ink is cut, and an erosion (< 0)
#: or a dilation (> 0) by this fraction of the digit's height.
STROKE_LEVEL = (0.25, 0.55)
STROKE_RADIUS = (-0.035, 0.02)
#: Rotation of the sheet (degrees, +-) and the random shift of each corner (fraction of a side).
ROTATION_DEG = 20.0
CORNER_JITTER = 0.07
#: Space kept between the digit's box and the frame's edge (fraction of the frame height).
DIGIT_MARGIN = 0.02
#: Ink colours (BGR) and their shares: black, ballpoint blue, pencil grey.
INKS = {"black": ((28, 26, 30), 0.5), "blue": ((125, 45, 25), 0.35), "pencil": ((95, 92, 90), 0.15)}
#: Paper tints (BGR) and their shares.
PAPERS = {
    "white": ((238, 240, 240), 0.4),
    "cream": ((212, 234, 244), 0.25),
    "grey": ((200, 204, 206), 0.15),
    "yellow": ((165, 236, 248), 0.2),
}
#: Shares of the background kinds: a photograph, synthetic clutter, a photograph with clutter.
BACKGROUND_KINDS = {"photo": 0.45, "clutter": 0.25, "mix": 0.3}
#: Share of frames without a digit that show a blank sheet (the rest: background only).
EMPTY_SHEET_FRACTION = 0.3
#: JPEG quality of the camera (uniform), and of a degraded frame.
JPEG_QUALITY = (40, 95)
DEGRADED_JPEG_QUALITY = (25, 60)
#: Sensor noise (standard deviation, 0..255 units), normal and degraded.
NOISE_SIGMA = (1.0, 5.0)
DEGRADED_NOISE_SIGMA = (8.0, 18.0)
#: Exposure gain, normal and degraded (low light).
EXPOSURE = (0.7, 1.25)
DEGRADED_EXPOSURE = (0.3, 0.55)
#: Chances of a Gaussian defocus or a motion blur in a normal frame (a degraded one always has one).
DEFOCUS_PROBABILITY = 0.3
MOTION_PROBABILITY = 0.1

#: Photographs inside packages: (name, distribution, top-level package, path inside it, licence).
PHOTOS = (
    ("china", "scikit-learn", "sklearn", "datasets/images/china.jpg", "CC BY 2.0, danielbuechele"),
    ("flower", "scikit-learn", "sklearn", "datasets/images/flower.jpg", "CC BY 2.0, vultilion"),
    ("astronaut", "scikit-image", "skimage", "data/astronaut.png", "public domain, NASA"),
    ("coffee", "scikit-image", "skimage", "data/coffee.png", "CC0, Rachel Michetti"),
    ("chelsea", "scikit-image", "skimage", "data/chelsea.png", "CC0, Stefan van der Walt"),
    ("rocket", "scikit-image", "skimage", "data/rocket.jpg", "public domain, SpaceX"),
    ("camera", "scikit-image", "skimage", "data/camera.png", "CC0, Lav Varshney"),
    ("brick", "scikit-image", "skimage", "data/brick.png", "CC0, CC0Textures"),
    ("gravel", "scikit-image", "skimage", "data/gravel.png", "CC0, CC0Textures"),
    ("grass", "scikit-image", "skimage", "data/grass.png", "CC0, linolafett"),
)


@dataclass(frozen=True)
class Scene:
    """One rendered frame and where things are in it (pixel coordinates, x right, y down)."""

    #: BGR uint8, shape (h, w, 3): ``jpeg`` decoded.
    image: np.ndarray
    #: The camera's JPEG file contents.
    jpeg: bytes
    #: The sheet's corners (top-left, top-right, bottom-right, bottom-left), float (4, 2); None
    #: when there is no sheet.
    sheet: np.ndarray | None
    #: The corners of the digit's box on the sheet, same order; None when there is no digit.
    digit: np.ndarray | None
    #: Ink coverage 0..1, float32 (h, w); None when there is no digit.
    ink: np.ndarray | None


# --- backgrounds --------------------------------------------------------------------------------


@functools.cache
def _photos() -> tuple[tuple[str, str, str, np.ndarray], ...]:
    import cv2  # noqa: PLC0415

    found = []
    for name, distribution, package, rel, licence in PHOTOS:
        path = package_file(package, *rel.split("/"))
        if path is None:
            continue
        img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise EdgeAVError(f"cannot decode the background photograph {path}")
        img.flags.writeable = False
        found.append((name, distribution, licence, img))
    if not found:
        raise EdgeAVError(
            "the camera scenes' backgrounds are photographs inside scikit-learn, which is not "
            "installed (pip install 'edgeav[train]' or pip install scikit-learn)"
        )
    return tuple(found)


def backgrounds() -> list[np.ndarray]:
    """The background photographs, BGR uint8 (read-only), in :data:`PHOTOS` order."""
    return [img for *_, img in _photos()]


def background_sources() -> list[dict[str, str]]:
    """Name, package (with version) and licence of each photograph :func:`backgrounds` returns."""
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    out = []
    for name, distribution, licence, _ in _photos():
        try:
            package = f"{distribution} {version(distribution)}"
        except PackageNotFoundError:
            package = distribution
        out.append({"name": name, "package": package, "licence": licence})
    return out


# --- the scene ----------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, table: dict) -> str:
    names = list(table)
    weights = np.array([v[1] if isinstance(v, tuple) else v for v in table.values()], float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def _bgr(a: np.ndarray) -> np.ndarray:
    """(h, w) float32 to (h, w, 3): per-pixel factors as contiguous 3-channel arrays (much faster
    than broadcasting over a last axis of 3)."""
    import cv2  # noqa: PLC0415

    return cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)


def _soften(img: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur; above sigma 2 OpenCV's stack blur (about the same, at a constant cost)."""
    import cv2  # noqa: PLC0415

    if sigma <= 2.0:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    k = 2 * math.ceil(2 * sigma) + 1
    return cv2.stackBlur(img, (k, k))


@functools.cache
def _grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel centres as coordinates across the frame: x -1..1 (1, w), y (h, 1) in the same units,
    and the squared distance from the centre (h, w); float32, read-only."""
    x = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    y = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None] * np.float32(h / w)
    r2 = x * x + y * y
    for a in (x, y, r2):
        a.flags.writeable = False
    return x, y, r2


def _smooth_noise(rng: np.random.Generator, w: int, h: int, cells: int = 4) -> np.ndarray:
    """Low-frequency noise, float32 (h, w), about -1..1."""
    import cv2  # noqa: PLC0415

    coarse = rng.uniform(-1.0, 1.0, size=(cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def _photo(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A random crop of a random photograph, flipped, zoomed and sometimes recoloured (uint8)."""
    import cv2  # noqa: PLC0415

    photos = backgrounds()
    img = photos[int(rng.integers(len(photos)))]
    ph, pw = img.shape[:2]
    ch = min(ph, pw * h / w) * rng.uniform(0.3, 1.0)
    cw = ch * w / h
    y0, x0 = rng.uniform(0, ph - ch), rng.uniform(0, pw - cw)
    crop = img[int(y0) : int(y0 + ch), int(x0) : int(x0 + cw)]
    out = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
    flip = rng.random()
    if flip < 0.5:
        out = cv2.flip(out, 1)
    elif flip < 0.6:
        out = cv2.flip(out, 0)
    if rng.random() < 0.3:  # colour shift: per-channel gains, partly washed out
        gains = rng.uniform(0.7, 1.3, size=3)
        grey = rng.uniform(0.0, 0.6)
        m = np.diag(gains * (1 - grey)) + grey * gains / 3
        out = cv2.transform(out, m.astype(np.float32))
    return out


def _clutter(rng: np.random.Generator, w: int, h: int, base: np.ndarray | None) -> np.ndarray:
    """Rectangles, lines and ellipses of muted colours over a gradient (or over ``base``)."""
    import cv2  # noqa: PLC0415

    def colour() -> tuple[float, ...]:
        c = rng.uniform(10, 245, size=3)
        return tuple(float(v) for v in c + (c.mean() - c) * rng.uniform(0.2, 0.8))

    if base is None:
        x, y, _ = _grid(w, h)
        a = rng.uniform(0, 2 * np.pi)
        t = np.clip(0.5 + 0.5 * (math.cos(a) * x + math.sin(a) * y), 0.0, 1.0)
        c0, c1 = np.float32(colour()), np.float32(colour())
        out = (_bgr(t) * (c1 - c0) + c0).astype(np.uint8)
        n = int(rng.integers(4, 13))
    else:
        out = base.copy()
        n = int(rng.integers(1, 5))
    unit = h / 240.0
    for _ in range(n):
        c = colour()
        p = [int(v) for v in rng.uniform(-0.2, 1.2, size=4) * [w, h, w, h]]
        kind = rng.random()
        if kind < 0.4:
            cv2.rectangle(out, (p[0], p[1]), (p[2], p[3]), c, -1)
        elif kind < 0.7:
            thickness = max(1, int(rng.uniform(2, 12) * unit))
            cv2.line(out, (p[0], p[1]), (p[2], p[3]), c, thickness, cv2.LINE_AA)
        else:
            axes = (int(rng.uniform(10, 90) * unit), int(rng.uniform(10, 90) * unit))
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(out, (p[0], p[1]), axes, angle, 0, 360, c, -1, cv2.LINE_AA)
    if rng.random() < 0.5:
        out = _soften(out, rng.uniform(0.5, 2.0) * unit)
    return out


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A photograph, clutter or both (:data:`BACKGROUND_KINDS`), sometimes out of focus (uint8)."""

    kind = _pick(rng, BACKGROUND_KINDS)
    if kind == "clutter":
        bg = _clutter(rng, w, h, None)
    else:
        bg = _photo(rng, w, h)
        if kind == "mix":
            bg = _clutter(rng, w, h, bg)
    if rng.random() < 0.3:  # the camera focused on the sheet: the background is soft
        bg = _soften(bg, rng.uniform(1.0, 3.0) * h / 240.0)
    return bg


def _ink_alpha(
    ink: np.ndarray, box_h: float, max_w: float, level: float, radius: float
) -> np.ndarray:
    """The digit's ink cropped to its box, scaled to ``box_h`` px high (at most ``max_w`` px
    wide): float32 coverage 0..1. The stroke thickness: a soft threshold at ``level`` (0..1) of the
    smooth upscaled coverage, then an erosion (``radius`` < 0) or a dilation by ``|radius|`` times
    the box's height."""
    import cv2  # noqa: PLC0415

    cov = ink.astype(np.float32) / max(float(ink.max()), 1.0)
    rows = np.flatnonzero(cov.max(axis=1) > 0.1)
    cols = np.flatnonzero(cov.max(axis=0) > 0.1)
    if rows.size == 0:
        raise EdgeAVError("the digit's ink image is empty")
    crop = cov[max(rows[0] - 1, 0) : rows[-1] + 2, max(cols[0] - 1, 0) : cols[-1] + 2]
    crop = cv2.GaussianBlur(crop, (0, 0), 0.6)  # no pixel steps in the upscaled strokes
    scale = min(box_h / crop.shape[0], max_w / crop.shape[1])
    dw, dh = max(2, round(crop.shape[1] * scale)), max(2, round(crop.shape[0] * scale))
    up = cv2.resize(crop, (dw, dh), interpolation=cv2.INTER_CUBIC)
    alpha = np.clip((up - np.float32(level)) * 5.0 + 0.5, 0.0, 1.0)
    r = int(round(abs(radius) * dh))
    if r >= 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        alpha = (cv2.erode if radius < 0 else cv2.dilate)(alpha, kernel)
    return alpha


def _paper(rng: np.random.Generator, sw: int, sh: int) -> np.ndarray:
    """A blank sheet: tint, low-frequency shading and fine grain, float32 (sh, sw, 3)."""
    tint = np.float32(PAPERS[_pick(rng, PAPERS)][0]) + rng.uniform(-8, 8, size=3).astype(np.float32)
    shading = 1.0 + np.float32(rng.uniform(0.02, 0.08)) * _smooth_noise(rng, sw, sh)
    grain = np.frombuffer(rng.bytes(sh * sw), np.int8).reshape(sh, sw).astype(np.float32)
    grain *= np.float32(rng.uniform(1.0, 4.0) * math.sqrt(3) / 128)  # uniform, std 1..4
    return _bgr(shading) * tint + _bgr(grain)


def _corners(sw: int, sh: int, jitter: np.ndarray, angle: float) -> np.ndarray:
    """A ``sw`` x ``sh`` sheet's corners centred on the origin, each moved by ``jitter`` (fractions
    of the sides, (4, 2)) and turned by ``angle`` (radians): float32 (4, 2)."""
    rect = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]) + jitter
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return ((rect * [sw, sh]) @ rot.T).astype(np.float32)


@dataclass
class _Sheet:
    """A sheet placed in the frame: its size, where it goes and the digit's ink on it."""

    sw: int
    sh: int
    homography: np.ndarray  # sheet pixels -> frame pixels
    corners: np.ndarray  # (4, 2) in the frame
    box: np.ndarray  # the digit's box (a blank sheet: its middle) on the sheet, (4, 2)
    alpha: np.ndarray | None  # the digit's ink coverage, the box's size
    origin: tuple[int, int]  # top-left pixel of ``alpha`` on the sheet


def _place(ink: np.ndarray | None, rng: np.random.Generator, w: int, h: int) -> _Sheet:
    """Size, pose and position of the sheet, and the digit's place on it: the whole digit's box
    in view (the sheet shrunk towards :data:`SHEET_HEIGHT`'s low end until it fits), the sheet
    maybe partly out of the frame."""
    import cv2  # noqa: PLC0415

    frac = rng.uniform(*SHEET_HEIGHT)
    aspect = rng.uniform(*SHEET_ASPECT)
    box_frac = rng.uniform(*DIGIT_HEIGHT)
    offset = rng.uniform(-1.0, 1.0, size=2)
    jitter = rng.uniform(-CORNER_JITTER, CORNER_JITTER, size=(4, 2))
    angle = np.deg2rad(rng.uniform(-ROTATION_DEG, ROTATION_DEG))
    level, radius = rng.uniform(*STROKE_LEVEL), rng.uniform(*STROKE_RADIUS)
    margin = DIGIT_MARGIN * h
    while True:
        sh = max(8, int(round(frac * h)))
        sw = max(8, int(round(sh * aspect)))
        alpha = None
        if ink is not None:
            alpha = _ink_alpha(ink, box_frac * sh, DIGIT_MAX_WIDTH * sw, level, radius)
            ah, aw = alpha.shape
            x0 = int(round((sw - aw) / 2 * (1 + 0.8 * offset[0])))
            y0 = int(round((sh - ah) / 2 * (1 + 0.8 * offset[1])))
        else:
            aw, ah, x0, y0 = sw // 2, sh // 2, sw // 4, sh // 4
        box = np.array([[x0, y0], [x0 + aw, y0], [x0 + aw, y0 + ah], [x0, y0 + ah]], np.float32)
        src = np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]], np.float32)
        dst = _corners(sw, sh, jitter, angle)
        homography = cv2.getPerspectiveTransform(src, dst)
        inner = cv2.perspectiveTransform(box[None], homography)[0]
        lo = margin - inner.min(axis=0)
        hi = np.array([w, h]) - margin - inner.max(axis=0)
        if (lo <= hi).all() or frac <= SHEET_HEIGHT[0]:
            break
        frac = max(SHEET_HEIGHT[0], frac * 0.92)
    t = lo + rng.random(2) * np.maximum(hi - lo, 0)
    move = np.array([[1, 0, t[0]], [0, 1, t[1]], [0, 0, 1]])
    return _Sheet(sw, sh, move @ homography, dst + t.astype(np.float32), box, alpha, (x0, y0))


def _deface(rng: np.random.Generator, layer: np.ndarray, paper: np.ndarray, box: np.ndarray):
    """Degrade a sheet in place: a block over part of the digit and, half the time, a stray
    stroke across it (both on the sheet, so they move with it)."""
    import cv2  # noqa: PLC0415

    (x0, y0), (x1, y1) = box[0], box[2]
    bw, bh = x1 - x0, y1 - y0
    if rng.random() < 0.5:
        p = [int(v) for v in rng.uniform([x0, y0, x0, y0], [x1, y1, x1, y1])]
        thickness = max(2, int(rng.uniform(0.04, 0.09) * bh))
        cv2.line(layer, (p[0], p[1]), (p[2], p[3]), 1.0, thickness, cv2.LINE_AA)
    side = rng.uniform(0.3, 0.5, size=2) * [bw, bh]
    cx, cy = rng.uniform([x0 + 0.2 * bw, y0 + 0.2 * bh], [x1 - 0.2 * bw, y1 - 0.2 * bh])
    p0 = (int(cx - side[0] / 2), int(cy - side[1] / 2))
    p1 = (int(cx + side[0] / 2), int(cy + side[1] / 2))
    kind = rng.random()
    if kind < 0.5:  # something dark over the digit
        colour = rng.uniform(15, 70, size=3)
    elif kind < 0.8:  # a finger
        colour = np.array([95, 130, 185]) * rng.uniform(0.7, 1.15)
    else:  # a paper label stuck over it
        colour = rng.uniform(200, 250, size=3)
    cv2.rectangle(layer, p0, p1, 0.0, -1)
    cv2.rectangle(paper, p0, p1, tuple(float(c) for c in colour), -1)


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    import cv2  # noqa: PLC0415

    n = max(3, int(round(length)) | 1)
    k = np.zeros((n, n), np.float32)
    c, dx, dy = n // 2, np.cos(angle) * (n // 2), np.sin(angle) * (n // 2)
    cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
    return k / k.sum()


def compose_scene(
    ink: np.ndarray | None,
    rng: np.random.Generator,
    *,
    size: tuple[int, int] = SCENE_SIZE,
    degraded: bool = False,
    sheet: bool | None = None,
) -> Scene:
    """A camera frame of ``ink`` (a digit as light-on-dark coverage, uint8, any size) on paper.

    Args:
        ink: the digit; ``None`` for a frame with nothing to read: a blank sheet
            (:data:`EMPTY_SHEET_FRACTION` of the time) or background only.
        rng: all randomness comes from it (the same state gives the same bytes).
        size: (width, height) of the frame.
        degraded: the same scene (the same draws from ``rng``) made harder: low light, strong
            defocus or motion blur, strong noise, low JPEG quality, and on a digit's sheet a block
            over part of the digit and, half the time, a stray stroke across it.
        sheet: with ``ink=None``, a blank sheet (True) or none (False); default: random.

    Returns a :class:`Scene`: the frame (BGR uint8 (h, w, 3)), its JPEG bytes and the geometry.
    """
    import cv2  # noqa: PLC0415

    w, h = size
    unit = h / 240.0
    extra = np.random.default_rng(rng.integers(2**63))  # degradations only: same scene either way
    bg = _background(rng, w, h).astype(np.float32)
    has_sheet = ink is not None or (
        rng.random() < EMPTY_SHEET_FRACTION if sheet is None else bool(sheet)
    )
    front = None  # the warped sheet, premultiplied by its coverage
    weight = None  # what is left of the background: 1 - coverage, darkened by the sheet's shadow
    corners = digit = ink_frame = None
    if has_sheet:
        placed = _place(ink, rng, w, h)
        sw, sh = placed.sw, placed.sh
        paper = _paper(rng, sw, sh)
        ink_name = _pick(rng, INKS)
        colour = np.float32(INKS[ink_name][0]) + rng.uniform(-12, 12, size=3).astype(np.float32)
        strength = rng.uniform(0.55, 0.8) if ink_name == "pencil" else rng.uniform(0.85, 1.0)
        layer = np.zeros((sh, sw), np.float32)
        if placed.alpha is not None:
            x0, y0 = placed.origin
            ah, aw = placed.alpha.shape
            ah, aw = min(ah, sh - y0), min(aw, sw - x0)
            a = placed.alpha[:ah, :aw] * np.float32(strength)
            if ink_name == "pencil":  # graphite: light and grainy
                a *= rng.uniform(0.6, 1.0, size=(ah, aw)).astype(np.float32)
            layer[y0 : y0 + ah, x0 : x0 + aw] = a
            if degraded:
                _deface(extra, layer, paper, placed.box)
            digit = cv2.perspectiveTransform(placed.box[None], placed.homography)[0]
        paper += (colour - paper) * _bgr(layer)
        rgba = cv2.cvtColor(np.clip(paper, 0, 255).astype(np.uint8), cv2.COLOR_BGR2BGRA)
        warped = cv2.warpPerspective(rgba, placed.homography, (w, h), flags=cv2.INTER_LINEAR)
        front = cv2.cvtColor(warped, cv2.COLOR_BGRA2BGR).astype(np.float32)  # premultiplied
        weight = 1.0 - warped[..., 3].astype(np.float32) / 255.0
        if rng.random() < 0.6:  # the sheet's soft shadow on what is behind it
            shift = rng.uniform(-6, 6, size=2) * unit
            m = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
            moved = cv2.warpAffine(warped[..., 3], m, (w, h))
            shadow = _soften(moved, rng.uniform(2, 6) * unit)
            weight *= 1.0 - np.float32(rng.uniform(0.15, 0.45) / 255.0) * shadow
        corners = placed.corners
        if placed.alpha is not None:
            ink_frame = cv2.warpPerspective(
                layer, placed.homography, (w, h), flags=cv2.INTER_LINEAR
            )

    # the camera: light (a gradient and a vignette, exposure), defocus or motion blur sometimes,
    # white balance and contrast, sensor noise, JPEG; every draw made whether used or not
    x, y, r2 = _grid(w, h)
    a = rng.uniform(0, 2 * np.pi)
    light = 1.0 + np.float32(rng.uniform(0.0, 0.35)) * (math.cos(a) * x + math.sin(a) * y)
    light *= 1.0 - np.float32(rng.uniform(0.0, 0.45)) * r2
    exposure = rng.uniform(*EXPOSURE)
    balance = rng.uniform(0.85, 1.15, size=3)
    balance[1] = 1.0
    contrast = rng.uniform(0.75, 1.15)
    u = rng.random()
    blur = "defocus" if u < DEFOCUS_PROBABILITY else "motion" if u > 1 - MOTION_PROBABILITY else ""
    sigma = rng.uniform(0.5, 1.3) * unit
    motion = (rng.uniform(3.0, 7.0) * unit, rng.uniform(0, np.pi))
    noise = rng.uniform(*NOISE_SIGMA)
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    uniform = np.frombuffer(rng.bytes(2 * h * w * 3), np.int8).reshape(2, h, w, 3)
    if degraded:
        exposure = extra.uniform(*DEGRADED_EXPOSURE)
        blur = "defocus" if extra.random() < 0.6 else "motion"
        sigma = extra.uniform(1.3, 2.5) * unit
        motion = (extra.uniform(7.0, 13.0) * unit, motion[1])
        noise = extra.uniform(*DEGRADED_NOISE_SIGMA)
        quality = int(extra.integers(DEGRADED_JPEG_QUALITY[0], DEGRADED_JPEG_QUALITY[1] + 1))

    light *= np.float32(exposure)
    if front is None:
        frame = bg * _bgr(light)
    else:
        frame = (bg * _bgr(weight) + front) * _bgr(light)
    if blur == "defocus":
        frame = cv2.GaussianBlur(frame, (0, 0), sigma)
    elif blur == "motion":
        frame = cv2.filter2D(frame, -1, _motion_kernel(*motion))
    mean = np.array(cv2.mean(frame)[:3])
    affine = np.hstack([np.diag(balance * contrast), (balance * mean * (1 - contrast))[:, None]])
    frame = cv2.transform(frame, affine.astype(np.float32))
    # noise: the sum of two uniform draws (triangular, close to Gaussian), std ``noise``
    shot = cv2.add(uniform[0], uniform[1], dtype=cv2.CV_16S)
    scale = noise / (128 * np.sqrt(2 / 3))
    out = cv2.addWeighted(frame, 1.0, shot, scale, 0.0, dtype=cv2.CV_8U)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise EdgeAVError("cannot encode JPEG")
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return Scene(image=image, jpeg=buf.tobytes(), sheet=corners, digit=digit, ink=ink_frame)


def render_scene(
    ink: np.ndarray,
    rng: np.random.Generator,
    *,
    size: tuple[int, int] = SCENE_SIZE,
    degraded: bool = False,
) -> np.ndarray:
    """A camera frame of the digit ``ink`` on a sheet (BGR uint8 (h, w, 3)): see
    :func:`compose_scene`."""
    return compose_scene(ink, rng, size=size, degraded=degraded).image


def render_empty(
    rng: np.random.Generator,
    *,
    size: tuple[int, int] = SCENE_SIZE,
    degraded: bool = False,
) -> np.ndarray:
    """A camera frame with nothing to read: background only, or a blank sheet
    (:data:`EMPTY_SHEET_FRACTION`); the same light, blur, noise and JPEG as :func:`render_scene`."""
    return compose_scene(None, rng, size=size, degraded=degraded).image
