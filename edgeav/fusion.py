"""Late fusion of the image and audio classifiers' probabilities (NumPy only; the runtime uses it).

The rule is weighted log-linear pooling::

    fused = softmax(w_image * log(p_image + eps) + w_audio * log(p_audio + eps))

A modality that is absent (camera down, silence) is left out, so the other one decides alone and
:func:`fuse` says which modalities were used. The weights are chosen on the validation split by
:func:`fit_weights`: a grid search that maximises accuracy and breaks ties by log-likelihood (which
also sets the overall sharpness of the fused distribution).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError

#: The modalities, in the order the fused output reports them.
MODALITIES = ("image", "audio")

#: Added to probabilities before the logarithm so a hard zero never yields ``-inf``.
EPS = 1e-7

#: Default grid for :func:`fit_weights` (each weight; the pair (0, 0) is skipped).
DEFAULT_GRID = tuple(round(0.1 * i, 1) for i in range(21))  # 0.0, 0.1, ..., 2.0


@dataclass(frozen=True)
class FusionWeights:
    """Weights of the log-linear fusion rule (non-negative, not both zero)."""

    image: float = 1.0
    audio: float = 1.0

    def __post_init__(self) -> None:
        for name in MODALITIES:
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not np.isfinite(value)
                or value < 0
            ):
                raise EdgeAVError(
                    f"fusion weight {name!r} must be a finite number >= 0, got {value!r}"
                )
        if self.image == 0 and self.audio == 0:
            raise EdgeAVError("fusion weights must not both be zero")

    def to_dict(self) -> dict[str, Any]:
        return {"rule": "log-linear", "image": float(self.image), "audio": float(self.audio)}

    @classmethod
    def from_dict(cls, data: Any) -> FusionWeights:
        if not isinstance(data, dict):
            raise EdgeAVError(f"fusion weights must be an object, got {type(data).__name__}")
        rule = data.get("rule", "log-linear")
        if rule != "log-linear":
            raise EdgeAVError(f"unknown fusion rule {rule!r}; expected 'log-linear'")
        unknown = set(data) - {"rule", *MODALITIES}
        if unknown:
            raise EdgeAVError(f"unknown fusion field(s): {', '.join(sorted(unknown))}")
        missing = [m for m in MODALITIES if m not in data]
        if missing:
            raise EdgeAVError(f"fusion weights lack {', '.join(missing)}")
        return cls(image=data["image"], audio=data["audio"])


def _as_probs(name: str, p: Any) -> np.ndarray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[-1] < 1:
        raise EdgeAVError(f"{name} probabilities must have shape (C,) or (N, C), got {arr.shape}")
    if arr.size == 0:
        return arr
    lo, hi = np.minimum.reduce(arr, axis=None), np.maximum.reduce(arr, axis=None)
    if not (np.isfinite(lo) and np.isfinite(hi)):  # NaN reaches both; inf one of them
        raise EdgeAVError(f"{name} probabilities contain NaN or infinite values")
    if lo < 0:
        raise EdgeAVError(f"{name} probabilities contain negative values")
    return arr


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (in ``z``'s dtype)."""
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fuse(
    probs: dict[str, np.ndarray | None], weights: FusionWeights
) -> tuple[np.ndarray, list[str]]:
    """Fuse per-modality class probabilities.

    Args:
        probs: ``{"image": p or None, "audio": p or None}``; each ``p`` is ``(C,)`` or ``(N, C)``
            (rows need not sum exactly to one). ``None`` or a missing key means the modality is
            absent.
        weights: the :class:`FusionWeights`.

    Returns:
        ``(fused, used)``: float32 probabilities of the same shape as the inputs, and the
        modalities that took part (in :data:`MODALITIES` order). With a single modality present
        its own (renormalised) probabilities are returned unchanged, whatever its weight.

    Raises:
        EdgeAVError: if no modality is present, a name is unknown, or shapes disagree.
    """
    unknown = set(probs) - set(MODALITIES)
    if unknown:
        raise EdgeAVError(f"unknown modality {sorted(unknown)[0]!r}; expected image or audio")
    present = {m: _as_probs(m, probs[m]) for m in MODALITIES if probs.get(m) is not None}
    if not present:
        raise EdgeAVError("nothing to fuse: neither image nor audio probabilities are present")
    shapes = {p.shape for p in present.values()}
    if len(shapes) > 1:
        raise EdgeAVError(
            "image and audio probabilities differ in shape: "
            + ", ".join(f"{m} {p.shape}" for m, p in present.items())
        )
    used = list(present)
    if len(used) == 1:
        p = present[used[0]]
        total = p.sum(axis=-1, keepdims=True)
        fused = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / p.shape[-1])
        return fused.astype(np.float32), used
    z = sum(getattr(weights, m) * np.log(present[m] + EPS) for m in used)
    return softmax(z).astype(np.float32), used


def _scores(
    log_image: np.ndarray, log_audio: np.ndarray, y: np.ndarray, w_image: float, w_audio: float
) -> tuple[float, float]:
    z = w_image * log_image + w_audio * log_audio
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    accuracy = float(np.mean(np.argmax(z, axis=1) == y))
    log_likelihood = float(np.mean(log_p[rows, y]))
    return accuracy, log_likelihood


def fit_weights(
    p_image: np.ndarray,
    p_audio: np.ndarray,
    y: np.ndarray,
    *,
    grid: tuple[float, ...] = DEFAULT_GRID,
) -> FusionWeights:
    """Choose fusion weights on held-out data (the validation split).

    Every pair ``(w_image, w_audio)`` from ``grid`` x ``grid`` except ``(0, 0)`` is scored; the
    pair with the highest accuracy wins, ties broken by the higher mean log-likelihood of the
    true class, then by the smaller total weight (so the result is deterministic).

    Args:
        p_image, p_audio: ``(N, C)`` probabilities for the same N examples (paired by class).
        y: ``(N,)`` integer labels.
    """
    pi = _as_probs("image", p_image)
    pa = _as_probs("audio", p_audio)
    labels = np.asarray(y)
    if pi.ndim != 2 or pi.shape != pa.shape:
        raise EdgeAVError(
            f"fit_weights needs two (N, C) arrays of the same shape, got {pi.shape} and {pa.shape}"
        )
    if labels.shape != (pi.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise EdgeAVError(
            f"fit_weights needs {pi.shape[0]} integer labels, got shape {labels.shape}"
        )
    if pi.shape[0] == 0:
        raise EdgeAVError("fit_weights needs at least one example")
    if labels.min() < 0 or labels.max() >= pi.shape[1]:
        raise EdgeAVError(f"labels must lie in 0..{pi.shape[1] - 1}")
    log_i, log_a = np.log(pi + EPS), np.log(pa + EPS)
    best_key, best = None, None
    for wi in grid:
        for wa in grid:
            if wi == 0 and wa == 0:
                continue
            acc, ll = _scores(log_i, log_a, labels, wi, wa)
            key = (acc, ll, -(wi + wa))
            if best_key is None or key > best_key:
                best_key, best = key, (wi, wa)
    assert best is not None
    return FusionWeights(image=float(best[0]), audio=float(best[1]))
