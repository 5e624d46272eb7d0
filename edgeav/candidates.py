"""An image read several ways, and the image model's most confident reading kept.

The digit finder searches a camera frame at more than one darkness (:func:`edgeav.locate.
find_digits`): the darker search keeps a room's textures out but misses faint ink; the fainter
one finds pencil and dim sheets but sometimes takes in a shadow or a stray line. Each search
gives a layout, a *candidate* input (:func:`edgeav.preprocess.image_candidates`). The image model
reads every candidate and the reading it is surest of (the highest top probability, before
calibration) is the image's: the model is trained to be unsure on what is not a digit (the
``none`` frames), so it judges which search found one. This is how a frame is read everywhere a
model's accuracy is reported (``edgeav train``, ``convert``, ``compare``) and on the device;
training fits the model on the first candidate (:func:`first`).

Image inputs with candidates are 5-D, ``(n, k, h, w, c)``; 4-D inputs are one candidate each.
NumPy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def first(x: np.ndarray | None) -> np.ndarray | None:
    """Each image's first candidate (the training input): ``(n, h, w, c)``; None stays None."""
    return x[:, 0] if x is not None and x.ndim == 5 else x


def pick(probs: np.ndarray) -> np.ndarray:
    """``(n, k, classes)`` probabilities -> ``(n, classes)``: each row's most confident
    candidate (the first of equals)."""
    probs = np.asarray(probs)
    best = probs.max(axis=2).argmax(axis=1)
    return probs[np.arange(len(probs)), best]


def judged(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """``predict`` (4-D inputs -> probabilities) of ``x``; for 5-D ``x`` one call on every
    candidate, then :func:`pick`."""
    if x.ndim != 5:
        return np.asarray(predict(x))
    n, k = x.shape[:2]
    probs = np.asarray(predict(x.reshape(n * k, *x.shape[2:])))
    return pick(probs.reshape(n, k, -1))
