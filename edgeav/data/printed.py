"""Digits printed in the fonts that ship inside matplotlib, as extra training handwriting.

MNIST's 5,000 digits come from a few hundred writers of one era and country: every "1" a bare
stroke, every "7" without a bar. Digits in other typefaces (sans, serif, monospace, italic, bold;
a "1" with a flag and a foot, an open "4") teach the image model that the same digit has other
shapes, which is what other people's handwriting needs; on av-digits they raised test-unseen's
image accuracy by about 5 points. They are used in training only, never in an evaluation split,
and are not the test-unseen sources (UCI optdigits, Hershey script fonts).

Fonts (read as files from matplotlib's ``mpl-data/fonts/ttf``, rendered with Pillow; matplotlib
is in the train extra and depends on Pillow): DejaVu Sans, Sans Mono and Serif (Bitstream Vera
licence, free), STIX General (SIL Open Font License 1.1), Computer Modern cmr10, cmb10, cmss10,
cmtt10, cmti10 (BaKoMa fonts licence, free): the licences are in that folder. Each digit gets a
random slant, turn, width and pen weight, then the MNIST layout, like every other ink source.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from edgeav.errors import EdgeAVError

#: The font files (without ``.ttf``) in matplotlib's ``mpl-data/fonts/ttf``.
FONTS = (
    "DejaVuSans",
    "DejaVuSans-Bold",
    "DejaVuSans-Oblique",
    "DejaVuSans-BoldOblique",
    "DejaVuSansMono",
    "DejaVuSansMono-Bold",
    "DejaVuSansMono-Oblique",
    "DejaVuSansMono-BoldOblique",
    "DejaVuSerif",
    "DejaVuSerif-Bold",
    "DejaVuSerif-Italic",
    "DejaVuSerif-BoldItalic",
    "STIXGeneral",
    "STIXGeneralBol",
    "STIXGeneralItalic",
    "STIXGeneralBolIta",
    "cmr10",
    "cmb10",
    "cmss10",
    "cmtt10",
    "cmti10",
)
#: The source's name, as av-digits' dataset.json and file names give it.
SOURCE = "printed-fonts"
#: Render size (pixels of the font's em) and canvas side.
_EM = 96
_CANVAS = 160


@functools.cache
def font_files() -> tuple[Path, ...]:
    """The :data:`FONTS` found in the installed matplotlib (located without importing it)."""
    from edgeav.data.packaged import package_file  # noqa: PLC0415

    found = tuple(
        path
        for name in FONTS
        if (path := package_file("matplotlib", "mpl-data", "fonts", "ttf", f"{name}.ttf"))
    )
    if not found:
        raise EdgeAVError(
            "matplotlib's fonts are missing (needed for av-digits' printed training digits); "
            "install the train extra: pip install 'edgeav[train]'"
        )
    return found


def printed_ink(font: Path, digit: int, rng: np.random.Generator) -> np.ndarray:
    """``digit`` printed in ``font`` with a random slant (-0.3..0.3), turn (+-10 degrees), width
    (0.8..1.2) and pen weight (thinner by one pixel to bolder by four, at a 96-pixel em): a 28x28
    uint8 ink image laid out like MNIST."""
    import cv2  # noqa: PLC0415
    from PIL import Image, ImageDraw, ImageFont  # noqa: PLC0415

    from edgeav.data.handwriting import ink_image  # noqa: PLC0415

    canvas = Image.new("L", (_CANVAS, _CANVAS), 0)
    ImageDraw.Draw(canvas).text(
        (_CANVAS * 0.2, _CANVAS * 0.06),
        str(digit),
        fill=255,
        font=ImageFont.truetype(str(font), _EM),
    )
    ink = np.asarray(canvas, np.float32) / 255.0
    angle = np.deg2rad(rng.uniform(-10.0, 10.0))
    slant, width = rng.uniform(-0.3, 0.3), rng.uniform(0.8, 1.2)
    c, s = np.cos(angle), np.sin(angle)
    m = np.array([[c, -s], [s, c]]) @ np.array([[width, slant], [0.0, 1.0]])
    centre = np.full(2, _CANVAS / 2)
    affine = np.hstack([m, (centre - m @ centre)[:, None]]).astype(np.float32)
    ink = cv2.warpAffine(ink, affine, (_CANVAS, _CANVAS), flags=cv2.INTER_LINEAR)
    weight = int(rng.integers(-1, 5))
    if weight:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(weight) + 1,) * 2)
        changed = (cv2.dilate if weight > 0 else cv2.erode)(ink, kernel)
        if changed.max() > 0.5:  # a hairline font thinned away stays as it was
            ink = changed
    return ink_image(ink)


def printed_digits(per_digit: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``per_digit`` printed digits of each class, the fonts taken in turn: ``(inks, labels,
    fonts)``, inks uint8 (10 * per_digit, 28, 28) ordered by digit, fonts the file stems.
    Deterministic for ``seed`` and the installed fonts."""
    fonts = font_files()
    inks, labels, names = [], [], []
    for digit in range(10):
        rng = np.random.default_rng([seed, digit, 0x9F1A7])
        for k in range(per_digit):
            font = fonts[k % len(fonts)]
            inks.append(printed_ink(font, digit, rng))
            labels.append(digit)
            names.append(font.stem)
    if not inks:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64), []
    return np.stack(inks), np.array(labels, dtype=np.int64), names
