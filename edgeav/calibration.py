"""Calibration and the decision rule: temperature scaling, calibration error, thresholds.

A classifier's softmax says how sure it is, but a network trained with cross-entropy is usually
surer than it is right, and by a different amount for each modality. Fusing two such
distributions, or asking "is this confident enough to name a digit?", needs probabilities that
mean what they say. Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks",
2017) divides each modality's logits by one number ``T`` chosen on held-out data to minimise the
negative log-likelihood; it never changes a modality's argmax.

:class:`Calibration` travels in the bundle (section ``calibration``) and holds, fitted on the
validation split (voices and writers never seen in training):

- ``temperature``: per modality;
- ``min_confidence``: per modality, below which that modality is left out of the fusion
  ("unsure") -- a frame with nothing in view, a window of noise;
- ``threshold``: per set of modalities a decision was made with (:data:`USED_SETS`), the
  confidence below which it names no label ("uncertain"). The sets differ in what can fool them:
  the image model reads a straight line or a brick on a plain surface as a confident "1", while
  room noise rarely makes the audio model sure of a word. One threshold for every set is fixed by
  the easiest fooled, and a voice heard with no digit in view then has to reach it.

NumPy only; the runtime imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError

MODALITIES = ("image", "audio")
#: The sets of modalities a decision can be made with, as :func:`used_key` names them.
USED_SETS = ("image", "audio", "image+audio")

#: Temperatures searched (log-spaced); the fitted one is refined between neighbours.
_T_RANGE = (0.05, 20.0)

#: Default quantile of the validation "nothing" inputs (empty frames, noise windows) a fitted
#: threshold must reach: at most 1 % of them pass it. Val holds few of them (one class's worth),
#: so a looser target let through several times as many on frames and noise it never saw.
NOTHING_QUANTILE = 0.99

#: A fitted threshold never turns away more than ``1 - KEEP_CORRECT`` of the correct decisions
#: it applies to; short of that, keeping the nothing-inputs out comes first. The image model reads
#: some empty frames as surely as the digits it gets right: its threshold then turns away up to
#: this share of its correct reads rather than let those frames name a digit.
KEEP_CORRECT = 0.8


def log_probs(p: np.ndarray) -> np.ndarray:
    """Natural log of probabilities, floored so a hard zero stays finite."""
    return np.log(np.clip(np.asarray(p, dtype=np.float64), 1e-12, None))


def scale(p: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities ``p`` (``(C,)`` or ``(N, C)``) re-tempered: ``softmax(log p / T)``.

    ``log p`` equals the logits up to a constant per row, so this is temperature scaling of the
    logits, usable on a model that outputs probabilities.
    """
    z = log_probs(p) / float(temperature)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _nll(z: np.ndarray, y: np.ndarray, temperature: float) -> float:
    s = z / temperature
    s = s - s.max(axis=1, keepdims=True)
    log_p = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    return float(-np.mean(log_p[np.arange(len(y)), y]))


def fit_temperature(p: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of labels ``y`` under ``p``.

    A grid over ``log T`` followed by a golden-section refinement between the best point's
    neighbours (the NLL is smooth and unimodal in ``log T`` in practice).
    """
    z = log_probs(p)
    y = np.asarray(y)
    if z.ndim != 2 or len(y) != len(z) or len(y) == 0:
        raise EdgeAVError(f"fit_temperature needs (N, C) probabilities and N labels, got {z.shape}")
    grid = np.geomspace(*_T_RANGE, 41)
    losses = [_nll(z, y, t) for t in grid]
    i = int(np.argmin(losses))
    lo, hi = np.log(grid[max(i - 1, 0)]), np.log(grid[min(i + 1, len(grid) - 1)])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(30):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if _nll(z, y, np.exp(a)) < _nll(z, y, np.exp(b)):
            hi = b
        else:
            lo = a
    return float(round(np.exp((lo + hi) / 2.0), 4))


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE: the bin-weighted gap between confidence and accuracy (equal-width bins of the top
    probability), in 0..1."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y)
    if len(y) == 0:
        return float("nan")
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += sel.mean() * abs(conf[sel].mean() - correct[sel].mean())
    return float(ece)


def fit_threshold(
    nothing_conf: np.ndarray,
    correct_conf: np.ndarray,
    *,
    quantile: float = NOTHING_QUANTILE,
    keep: float = 0.95,
) -> float:
    """A confidence threshold from held-out data.

    Args:
        nothing_conf: top probabilities on inputs that should name nothing (empty frames,
            noise, their fusion).
        correct_conf: top probabilities on inputs classified correctly.
        quantile: the threshold is at least this quantile of ``nothing_conf``, so at most
            ``1 - quantile`` of the nothing-inputs pass it...
        keep: ...unless that would reject more than ``1 - keep`` of the correct ones: the
            threshold never exceeds the ``1 - keep`` quantile of ``correct_conf``.

    Returns 0.0 (name everything) when there are no nothing-inputs.
    """
    nothing = np.asarray(nothing_conf, dtype=np.float64)
    if nothing.size == 0:
        return 0.0
    t = float(np.quantile(nothing, quantile))
    correct = np.asarray(correct_conf, dtype=np.float64)
    if correct.size:
        t = min(t, float(np.quantile(correct, 1.0 - keep)))
    return float(round(max(t, 0.0), 4))


def used_key(used: Any) -> str:
    """The :data:`USED_SETS` name of the modalities a decision used (``["audio"]`` -> ``"audio"``;
    image and audio, in either order -> ``"image+audio"``; none -> ``""``)."""
    return "+".join(m for m in MODALITIES if m in used)


def describe_thresholds(threshold: Any) -> str:
    """``"image 0.99, audio 0.87, image+audio 0.81"`` of a calibration's thresholds (a number,
    from an older bundle or run, prints as itself)."""
    if isinstance(threshold, dict):
        return ", ".join(f"{key} {float(threshold[key]):.2f}" for key in USED_SETS)
    return f"{float(threshold):.2f}"


def _number(value: Any, where: str, *, low: float, high: float, strict_low: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value > high or (value <= low if strict_low else value < low):
        bound = f"> {low}" if strict_low else f">= {low}"
        raise EdgeAVError(f"{where} must be a number {bound} and <= {high}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Calibration:
    """Per-modality temperatures and minimum confidences, and the decision thresholds (one per
    :data:`USED_SETS` entry).

    The defaults change nothing (temperature 1, no thresholds): what a bundle written before
    calibration existed reads as. A bundle written before the thresholds were per set holds one
    number, which reads as the threshold of every set.
    """

    temperature: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MODALITIES, 1.0))
    min_confidence: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MODALITIES, 0.0))
    threshold: dict[str, float] = field(default_factory=lambda: dict.fromkeys(USED_SETS, 0.0))

    def __post_init__(self) -> None:
        for name, table, low, strict in (
            ("temperature", self.temperature, 0.0, True),
            ("min_confidence", self.min_confidence, 0.0, False),
        ):
            if not isinstance(table, dict) or set(table) != set(MODALITIES):
                raise EdgeAVError(f"calibration.{name} must give image and audio, got {table!r}")
            for m, v in table.items():
                high = 1000.0 if name == "temperature" else 1.0
                _number(v, f"calibration.{name}.{m}", low=low, high=high, strict_low=strict)
        if not isinstance(self.threshold, dict) or set(self.threshold) != set(USED_SETS):
            raise EdgeAVError(
                f"calibration.threshold must give {', '.join(USED_SETS)}, got {self.threshold!r}"
            )
        for key, v in self.threshold.items():
            _number(v, f"calibration.threshold.{key}", low=0.0, high=1.0, strict_low=False)

    def threshold_for(self, used: Any) -> float:
        """The decision threshold of a decision made with the modalities ``used`` (not empty)."""
        return self.threshold[used_key(used)]

    def apply(self, modality: str, p: np.ndarray) -> np.ndarray:
        """``p`` with ``modality``'s temperature applied (unchanged at T = 1)."""
        t = self.temperature[modality]
        return np.asarray(p, dtype=np.float32) if t == 1.0 else scale(p, t)

    def to_dict(self) -> dict[str, Any]:
        return {
            "temperature": {m: float(self.temperature[m]) for m in MODALITIES},
            "min_confidence": {m: float(self.min_confidence[m]) for m in MODALITIES},
            "threshold": {key: float(self.threshold[key]) for key in USED_SETS},
        }

    @classmethod
    def from_dict(cls, data: Any) -> Calibration:
        if not isinstance(data, dict):
            raise EdgeAVError(f"calibration must be an object, got {type(data).__name__}")
        unknown = set(data) - {"temperature", "min_confidence", "threshold"}
        if unknown:
            raise EdgeAVError(f"unknown calibration field(s): {', '.join(sorted(unknown))}")
        default = cls()
        threshold = data.get("threshold", default.threshold)
        if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
            threshold = dict.fromkeys(USED_SETS, threshold)  # bundle format <= 5: one for all
        return cls(
            temperature=data.get("temperature", default.temperature),
            min_confidence=data.get("min_confidence", default.min_confidence),
            threshold=threshold,
        )


def gate(
    probs: dict[str, np.ndarray | None], calibration: Calibration
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The modalities sure enough to fuse, and ``{modality: "unsure"}`` for the others.

    ``probs`` holds one tick's tempered probabilities (``(C,)`` each, None when absent).
    """
    usable, flags = {}, {}
    for m, p in probs.items():
        if p is None:
            continue
        if float(np.max(p)) < calibration.min_confidence[m]:
            flags[m] = "unsure"
        else:
            usable[m] = p
    return usable, flags


def fuse_tempered(
    probs: dict[str, np.ndarray | None], calibration: Calibration, weights: Any
) -> tuple[np.ndarray | None, list[str], dict[str, str]]:
    """One decision's fusion, as the runtime makes it for a tick: ``(fused, used, unsure)``.

    ``probs`` holds already tempered ``(C,)`` probabilities (None: absent). The modalities below
    their minimum confidence are left out (``unsure``: modality -> ``"unsure"``) and the rest
    fused with ``weights`` (:func:`edgeav.fusion.fuse`). When every modality that ran is unsure,
    ``fused`` is the image's (else the audio's) alone and ``used`` is empty: shown, never named.
    """
    from edgeav.fusion import fuse  # noqa: PLC0415

    usable, unsure = gate(probs, calibration)
    if usable:
        fused, used = fuse(usable, weights)
        return fused, used, unsure
    if unsure:
        first = "image" if "image" in unsure else "audio"
        return fuse({first: probs[first]}, weights)[0], [], unsure
    return None, [], unsure


def fuse_rows(
    p_image: np.ndarray, p_audio: np.ndarray, weights: Any, calibration: Calibration
) -> np.ndarray:
    """Fused probabilities of paired, already tempered ``(N, C)`` rows, each decided as the
    runtime decides a tick (:func:`fuse_tempered`)."""
    out = np.empty(np.shape(p_image), dtype=np.float32)
    for k in range(len(p_image)):
        out[k] = fuse_tempered({"image": p_image[k], "audio": p_audio[k]}, calibration, weights)[0]
    return out
