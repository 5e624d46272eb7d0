"""Late fusion: the log-linear rule, absent modalities, and weights fit on held-out data."""

from __future__ import annotations

import numpy as np
import pytest

from edgeav.errors import EdgeAVError
from edgeav.fusion import FusionWeights, fit_weights, fuse


def test_log_linear_rule_matches_the_formula():
    pi = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    pa = np.array([[0.3, 0.6, 0.1], [0.2, 0.5, 0.3]])
    w = FusionWeights(image=1.5, audio=0.5)
    fused, used = fuse({"image": pi, "audio": pa}, w)
    z = 1.5 * np.log(pi + 1e-7) + 0.5 * np.log(pa + 1e-7)
    want = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert used == ["image", "audio"]
    assert fused.dtype == np.float32 and fused.shape == (2, 3)
    np.testing.assert_allclose(fused, want, rtol=1e-5)
    np.testing.assert_allclose(fused.sum(axis=1), 1.0, rtol=1e-5)


def test_weights_decide_a_disagreement():
    pi = np.array([0.8, 0.2])
    pa = np.array([0.1, 0.9])
    by_image, _ = fuse({"image": pi, "audio": pa}, FusionWeights(image=2.0, audio=0.5))
    by_audio, _ = fuse({"image": pi, "audio": pa}, FusionWeights(image=0.5, audio=2.0))
    assert int(np.argmax(by_image)) == 0
    assert int(np.argmax(by_audio)) == 1


@pytest.mark.parametrize("absent", ["image", "audio"])
def test_absent_modality_lets_the_other_decide_alone(absent):
    present = "audio" if absent == "image" else "image"
    p = np.array([0.2, 0.5, 0.3])
    for probs in ({present: p, absent: None}, {present: p}):
        fused, used = fuse(probs, FusionWeights(image=0.3, audio=1.7))
        assert used == [present]
        np.testing.assert_allclose(fused, p, rtol=1e-6)


def test_nothing_to_fuse_and_bad_input_are_errors():
    with pytest.raises(EdgeAVError, match="nothing to fuse"):
        fuse({"image": None, "audio": None}, FusionWeights())
    with pytest.raises(EdgeAVError, match="differ in shape"):
        fuse({"image": np.ones(3) / 3, "audio": np.ones(4) / 4}, FusionWeights())
    with pytest.raises(EdgeAVError, match="NaN"):
        fuse({"image": np.array([np.nan, 1.0])}, FusionWeights())
    with pytest.raises(EdgeAVError, match="unknown modality"):
        fuse({"video": np.ones(2)}, FusionWeights())


def test_weights_round_trip_and_validation():
    w = FusionWeights(image=0.4, audio=1.2)
    assert FusionWeights.from_dict(w.to_dict()) == w
    with pytest.raises(EdgeAVError):
        FusionWeights(image=-1.0, audio=1.0)
    with pytest.raises(EdgeAVError):
        FusionWeights(image=0.0, audio=0.0)
    with pytest.raises(EdgeAVError, match="unknown fusion rule"):
        FusionWeights.from_dict({"rule": "max", "image": 1.0, "audio": 1.0})
    with pytest.raises(EdgeAVError, match="lack audio"):
        FusionWeights.from_dict({"image": 1.0})


def _constructed_case(seed: int = 0, n: int = 400, classes: int = 5):
    """Image right 90 % of the time and confident; audio right 60 % and barely confident."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)

    def probs(accuracy: float, peak: float) -> np.ndarray:
        guess = np.where(
            rng.random(n) < accuracy, y, (y + rng.integers(1, classes, size=n)) % classes
        )
        p = np.full((n, classes), (1 - peak) / (classes - 1))
        p[np.arange(n), guess] = peak
        return p

    return probs(0.9, 0.6), probs(0.6, 0.9), y


def test_fit_picks_the_better_weighting():
    pi, pa, y = _constructed_case()
    w = fit_weights(pi, pa, y)

    def accuracy(weights: FusionWeights) -> float:
        fused, _ = fuse({"image": pi, "audio": pa}, weights)
        return float(np.mean(fused.argmax(axis=1) == y))

    # The audio model is over-confident: equal weights let it overrule the image too often.
    assert accuracy(w) > accuracy(FusionWeights(1.0, 1.0))
    assert accuracy(w) >= float(np.mean(pi.argmax(axis=1) == y))
    assert w.image > w.audio
    # Held-out data from the same distribution keeps the advantage.
    pi2, pa2, y2 = _constructed_case(seed=1)
    fused, _ = fuse({"image": pi2, "audio": pa2}, w)
    equal, _ = fuse({"image": pi2, "audio": pa2}, FusionWeights(1.0, 1.0))
    assert np.mean(fused.argmax(1) == y2) > np.mean(equal.argmax(1) == y2)


def test_fit_breaks_accuracy_ties_by_log_likelihood():
    # Both models always right: every weighting has accuracy 1; the sharpest fusion wins.
    y = np.array([0, 1, 2, 0, 1, 2])
    p = np.full((6, 3), 0.2)
    p[np.arange(6), y] = 0.6
    w = fit_weights(p, p, y, grid=(0.0, 0.5, 1.0))
    assert (w.image, w.audio) == (1.0, 1.0)


def test_fit_rejects_mismatched_input():
    with pytest.raises(EdgeAVError):
        fit_weights(np.ones((3, 2)) / 2, np.ones((4, 2)) / 2, np.zeros(3, dtype=int))
    with pytest.raises(EdgeAVError):
        fit_weights(np.ones((3, 2)) / 2, np.ones((3, 2)) / 2, np.array([0, 1, 2]))
