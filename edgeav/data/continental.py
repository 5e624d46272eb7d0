"""Continental forms of MNIST's "1" and "7", as extra training handwriting.

MNIST's writers wrote a "1" as a bare stroke and a "7" without a bar. Much of the world writes a
"1" with a long up-stroke (a flag) and sometimes a foot, and crosses its "7" - so that the two
are not confused. :func:`continental_form` adds those strokes to an MNIST digit's ink with a pen
as thick as the digit's own, then lays it out like MNIST again. av-digits shows one of each training
"1" and "7"'s three scenes in this form (``continental-<row>-<scene>.jpg``); val and test keep
MNIST as it is, and the test-unseen sources are never used to shape it.
"""

from __future__ import annotations

import numpy as np

#: The source's name, as av-digits' dataset.json and file names give it.
SOURCE = "continental"
#: The digits that have a continental form.
DIGITS = (1, 7)
#: "1": the flag's length (fraction of the digit's height) and its angle below the horizontal
#: (degrees), and the chance of a foot and its width (fraction of the height).
FLAG_LENGTH = (0.3, 0.55)
FLAG_ANGLE = (20.0, 55.0)
FOOT_CHANCE = 0.3
FOOT_WIDTH = (0.35, 0.6)
#: "7": the bar's width (fraction of the digit's height), its height on the stem (fraction from
#: the top) and its tilt (degrees).
BAR_WIDTH = (0.3, 0.5)
BAR_HEIGHT = (0.45, 0.65)
BAR_TILT = 10.0


def _pen(ink: np.ndarray) -> int:
    """The digit's stroke width in pixels: its ink area over the larger of its height and width
    (a stroke's area is about its length times its width)."""
    on = ink > 127
    length = max(int(on.any(axis=1).sum()), int(on.any(axis=0).sum()), 1)
    return int(np.clip(round(on.sum() / length), 1, 4))


def continental_form(ink: np.ndarray, digit: int, rng: np.random.Generator) -> np.ndarray:
    """``ink`` (28x28 uint8, light strokes on black, an MNIST ``digit``) with a continental
    "1"'s flag (and sometimes foot) or a "7"'s bar; other digits and empty inks come back as
    they are."""
    import cv2  # noqa: PLC0415

    from edgeav.data.handwriting import ink_image  # noqa: PLC0415

    on = np.argwhere(ink > 127)
    if digit not in DIGITS or not len(on):
        return ink
    top, bottom = int(on[:, 0].min()), int(on[:, 0].max())
    height = max(bottom - top, 1)
    # drawn at 4x, so the strokes are as smooth as the digit's
    big = cv2.resize(ink, (112, 112), interpolation=cv2.INTER_LINEAR)
    pen = 4 * _pen(ink)

    def row_centre(row: int) -> float:
        cols = np.flatnonzero(ink[row] > 127)
        return float(cols.mean()) if len(cols) else float(on[:, 1].mean())

    def line(a: tuple[float, float], b: tuple[float, float]) -> None:
        pa = (round(4 * a[0]), round(4 * a[1]))
        pb = (round(4 * b[0]), round(4 * b[1]))
        cv2.line(big, pa, pb, 255, pen, cv2.LINE_AA)

    if digit == 1:
        x0 = row_centre(top)
        length = rng.uniform(*FLAG_LENGTH) * height
        angle = np.deg2rad(rng.uniform(*FLAG_ANGLE))
        line((x0, top), (x0 - length * np.cos(angle), top + length * np.sin(angle)))
        if rng.random() < FOOT_CHANCE:
            half = rng.uniform(*FOOT_WIDTH) * height / 2
            xb = row_centre(bottom)
            line((xb - half, bottom), (xb + half, bottom))
    else:
        row = top + int(round(rng.uniform(*BAR_HEIGHT) * height))
        x = row_centre(row)  # row <= bottom: BAR_HEIGHT ends below 1
        half = rng.uniform(*BAR_WIDTH) * height / 2
        dy = half * np.tan(np.deg2rad(rng.uniform(-BAR_TILT, BAR_TILT)))
        line((x - half, row + dy), (x + half, row - dy))
    return ink_image(big.astype(np.float32) / 255.0)
