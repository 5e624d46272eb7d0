"""The semi-hard triplet loss against a brute-force NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

from edgeav.triplet import make_triplet_loss, pairwise_distances, triplet_semihard_loss


def _brute_force(labels: np.ndarray, emb: np.ndarray, margin: float, squared: bool) -> float:
    """Loop over every anchor-positive pair and pick the negative by the semi-hard rule."""
    n = len(labels)
    dist = np.sqrt(((emb[:, None, :] - emb[None, :, :]) ** 2).sum(-1))
    if squared:
        dist = dist**2
    total, pairs = 0.0, 0
    for a in range(n):
        negatives = [k for k in range(n) if labels[k] != labels[a]]
        if not negatives:
            continue
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                continue
            farther = [dist[a, k] for k in negatives if dist[a, k] > dist[a, p]]
            d_neg = min(farther) if farther else max(dist[a, k] for k in negatives)
            total += max(0.0, margin + dist[a, p] - d_neg)
            pairs += 1
    return total / pairs if pairs else 0.0


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_zero_when_every_negative_is_beyond_the_margin():
    # Two tight clusters far apart: d(a, p) <= 0.02, d(a, n) >= 3, margin 1.
    labels = np.array([0, 0, 0, 1, 1, 1])
    emb = np.array([[0, 0], [0.01, 0], [0, 0.01], [3, 3], [3.01, 3], [3, 3.01]], dtype=np.float32)
    assert float(triplet_semihard_loss(labels, emb, margin=1.0)) == 0.0
    assert _brute_force(labels, emb, 1.0, False) == 0.0


def test_positive_when_a_negative_is_inside_the_margin():
    labels = np.array([0, 0, 1, 1])
    emb = np.array([[0, 0], [1, 0], [0.5, 0.2], [1.5, 0.2]], dtype=np.float32)
    loss = float(triplet_semihard_loss(labels, emb, margin=0.5))
    assert loss > 0.0
    assert loss == pytest.approx(_brute_force(labels, emb, 0.5, False), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_equals_brute_force_on_random_batches(seed, squared):
    rng = np.random.default_rng(seed)
    batch = int(rng.integers(4, 17))
    labels = rng.integers(0, 4, size=batch)
    emb = _unit(rng.normal(size=(batch, 5)))
    margin = float(rng.uniform(0.1, 1.0))
    got = float(triplet_semihard_loss(labels, emb, margin=margin, squared=squared))
    want = _brute_force(labels, emb.astype(np.float64), margin, squared)
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_no_positive_pair_or_single_class_gives_zero():
    rng = np.random.default_rng(7)
    emb = _unit(rng.normal(size=(4, 3)))
    assert float(triplet_semihard_loss(np.array([0, 1, 2, 3]), emb)) == 0.0  # no positives
    assert float(triplet_semihard_loss(np.array([5, 5, 5, 5]), emb)) == 0.0  # no negatives


def test_gradient_is_finite_with_duplicate_embeddings():
    from edgeav.tf import tf as _tf

    tf = _tf()
    emb = tf.Variable(np.array([[1, 0], [1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32))
    labels = np.array([0, 0, 1, 1])
    loss_fn = make_triplet_loss(margin=0.5)
    with tf.GradientTape() as tape:
        loss = loss_fn(labels[:, None], emb)
    grad = tape.gradient(loss, emb).numpy()
    assert float(loss) > 0.0
    assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0


def test_pairwise_distances_match_numpy():
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(6, 4)).astype(np.float32)
    want = np.sqrt(((emb[:, None] - emb[None]) ** 2).sum(-1))
    np.testing.assert_allclose(pairwise_distances(emb).numpy(), want, atol=1e-4)
    np.testing.assert_allclose(pairwise_distances(emb, squared=True).numpy(), want**2, atol=1e-3)
