"""Temperature scaling, calibration error, thresholds and the Calibration section."""

from __future__ import annotations

import numpy as np
import pytest

from edgeav.calibration import (
    KEEP_CORRECT,
    USED_SETS,
    Calibration,
    describe_thresholds,
    expected_calibration_error,
    fit_temperature,
    fit_threshold,
    gate,
    scale,
    used_key,
)
from edgeav.errors import EdgeAVError


def overconfident(n=4000, classes=10, true_t=3.0, seed=0):
    """Labels drawn from softmax(z / true_t), reported as softmax(z): overconfident by true_t."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 4.0, size=(n, classes))
    calibrated = scale(np.exp(z) / np.exp(z).sum(1, keepdims=True), true_t)
    y = np.array([rng.choice(classes, p=p / p.sum()) for p in calibrated.astype(np.float64)])
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True), y


def test_temperature_recovers_the_overconfidence_and_lowers_ece():
    p, y = overconfident()
    t = fit_temperature(p, y)
    assert t == pytest.approx(3.0, rel=0.12)
    before, after = expected_calibration_error(p, y), expected_calibration_error(scale(p, t), y)
    assert before > 0.15 and after < 0.05
    assert np.array_equal(scale(p, t).argmax(1), p.argmax(1))  # never changes the decision


def test_a_calibrated_model_keeps_temperature_near_one():
    p, y = overconfident(true_t=1.0, seed=1)
    assert fit_temperature(p, y) == pytest.approx(1.0, rel=0.12)


def test_threshold_lets_few_nothing_inputs_through_but_keeps_correct_ones():
    nothing = np.linspace(0.1, 0.5, 101)
    correct = np.linspace(0.6, 1.0, 101)
    t = fit_threshold(nothing, correct, quantile=0.97, keep=0.97)
    assert np.mean(nothing >= t) <= 0.04 and np.mean(correct >= t) == 1.0
    # overlapping: capped so that at most 3 % of the correct ones are rejected
    t = fit_threshold(np.full(50, 0.9), correct, quantile=0.97, keep=0.97)
    assert np.mean(correct < t) <= 0.03
    assert fit_threshold(np.array([]), correct) == 0.0


def test_gate_leaves_out_an_unsure_modality():
    cal = Calibration(min_confidence={"image": 0.5, "audio": 0.0})
    usable, flags = gate({"image": np.full(4, 0.25), "audio": np.array([0.7, 0.1, 0.1, 0.1])}, cal)
    assert list(usable) == ["audio"] and flags == {"image": "unsure"}
    usable, flags = gate({"image": None, "audio": np.full(4, 0.25)}, cal)
    assert list(usable) == ["audio"] and flags == {}


def test_calibration_round_trip_and_bad_values():
    cal = Calibration(
        temperature={"image": 1.5, "audio": 0.8},
        min_confidence={"image": 0.3, "audio": 0.2},
        threshold={"image": 0.9, "audio": 0.6, "image+audio": 0.7},
    )
    assert Calibration.from_dict(cal.to_dict()) == cal
    assert Calibration.from_dict({}) == Calibration()
    # bundle formats 4 and 5: one number, the threshold of every set of modalities
    old = Calibration.from_dict({"threshold": 0.6})
    assert old.threshold == dict.fromkeys(USED_SETS, 0.6)
    for bad, match in (
        ({"temperature": {"image": 0.0, "audio": 1.0}}, "temperature.image"),
        ({"temperature": {"image": 1.0}}, "must give image and audio"),
        ({"min_confidence": {"image": 1.5, "audio": 0}}, "min_confidence.image"),
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"threshold": {"image": 0.5}}, "must give image, audio, image\\+audio"),
        ({"threshold": {"image": 0.5, "audio": 2, "image+audio": 0.5}}, "threshold.audio"),
        ({"temperature": 3}, "must give image and audio"),
        ({"extra": 1}, "unknown calibration field"),
    ):
        with pytest.raises(EdgeAVError, match=match):
            Calibration.from_dict(bad)


def test_threshold_by_the_modalities_a_decision_used():
    cal = Calibration(threshold={"image": 0.9, "audio": 0.6, "image+audio": 0.7})
    assert used_key(["audio", "image"]) == used_key(("image", "audio")) == "image+audio"
    assert used_key([]) == ""
    assert cal.threshold_for(["audio"]) == 0.6
    assert cal.threshold_for(["image"]) == 0.9
    assert cal.threshold_for(["audio", "image"]) == 0.7
    assert describe_thresholds(cal.threshold) == "image 0.90, audio 0.60, image+audio 0.70"
    assert describe_thresholds(0.5) == "0.50"


def _rows(top: np.ndarray, labels: np.ndarray, classes: int = 10) -> np.ndarray:
    """Probability rows whose largest value is ``top`` at ``labels``, the rest shared evenly."""
    p = np.repeat(((1.0 - top) / (classes - 1))[:, None], classes, axis=1)
    p[np.arange(len(top)), labels] = top
    return p.astype(np.float32)


def test_trained_thresholds_per_set_of_modalities():
    """Empty frames the image model reads as surely as real digits, and noise the audio model
    is rarely sure of: each set of modalities gets the threshold its own nothing-cases ask for,
    so the voice alone is not held to the camera's."""
    from edgeav.fusion import FusionWeights
    from edgeav.train import _decided, _nothing_cases, _thresholds

    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 10, n)
    pi, pa = _rows(rng.uniform(0.9, 1.0, n), y), _rows(rng.uniform(0.8, 1.0, n), y)
    val = (pi, pa, y)
    singles = {"image": (pi, y), "audio": (pa, y)}
    # empty frames: a long tail read as surely as digits (lines, bricks); noise: mostly unsure
    nothing = {
        "image": _rows(rng.beta(1.5, 2.0, 200) * 0.9 + 0.1, rng.integers(0, 10, 200)),
        "audio": _rows(rng.beta(1.5, 6.0, 200) * 0.9 + 0.1, rng.integers(0, 10, 200)),
    }
    weights = FusionWeights(1.0, 1.0)
    cal = _thresholds({"image": 1.0, "audio": 1.0}, weights, val, singles, nothing)
    t = cal.threshold
    assert t["audio"] < t["image"] - 0.05, t
    keys, conf = _nothing_cases(nothing["image"], nothing["audio"], weights, cal)
    cases = [{"image": pi[k], "audio": pa[k]} for k in range(n)]
    cases += [{"image": p} for p in pi] + [{"audio": p} for p in pa]
    dk, dc, dl = _decided(cases, weights, cal)
    right = dl == np.concatenate([y, y, y])
    for key in USED_SETS:
        none, correct = conf[keys == key], dc[right & (dk == key)]
        passed, turned_away = np.mean(none >= t[key]), np.mean(correct < t[key])
        # at most 1 % (an interpolated quantile) of the set's own nothing-cases pass...
        if passed > 0.01 + 1 / len(none):
            # ...unless that would turn away more than 1 - KEEP_CORRECT of its correct decisions
            assert abs(turned_away - (1 - KEEP_CORRECT)) < 0.02, key
        assert turned_away <= 1 - KEEP_CORRECT + 0.01, key
    # the camera's threshold is held where its empty frames put it; the voice keeps nearly all
    assert np.mean(dc[right & (dk == "image")] < t["image"]) > 0.1
    assert np.mean(dc[right & (dk == "audio")] < t["audio"]) <= 0.03
    # each modality's minimum lets through at most 10 % of its own nothing-inputs
    for name in ("image", "audio"):
        assert np.mean(nothing[name].max(axis=1) >= cal.min_confidence[name]) <= 0.11


def test_both_modalities_without_nothing_cases_take_the_lower_single_threshold():
    """When no val nothing-case was decided with both modalities (here every empty frame the
    image model is sure of comes with noise the audio model is not), the two together need no
    more confidence than the laxer of the two alone, rather than none."""
    from edgeav.fusion import FusionWeights
    from edgeav.train import _thresholds

    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 300)
    pi, pa = _rows(rng.uniform(0.9, 1.0, 300), y), _rows(rng.uniform(0.8, 1.0, 300), y)
    rising = np.linspace(0.15, 0.95, 100)  # paired k with k: the sure frames meet unsure noise
    nothing = {
        "image": _rows(rising, rng.integers(0, 10, 100)),
        "audio": _rows(rising[::-1], rng.integers(0, 10, 100)),
    }
    singles = {"image": (pi, y), "audio": (pa, y)}
    cal = _thresholds(
        {"image": 1.0, "audio": 1.0}, FusionWeights(1.0, 1.0), (pi, pa, y), singles, nothing
    )
    t = cal.threshold
    assert 0.5 < min(t["image"], t["audio"])
    assert t["image+audio"] == min(t["image"], t["audio"])
