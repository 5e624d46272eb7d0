"""Triplet loss with online semi-hard negative mining (TensorFlow), for step 2 of training.

For every anchor-positive pair ``(a, p)`` in a batch (same label, ``a != p``) the negative is
chosen online, as in FaceNet (Schroff et al., 2015) and ``tfa.losses.TripletSemiHardLoss``:

* semi-hard: the closest negative that is still *farther* from the anchor than the positive,
  ``n = argmin { d(a, n) : label(n) != label(a), d(a, n) > d(a, p) }``;
* if no such negative exists, the farthest negative of the anchor, ``max_n d(a, n)``.

The loss is ``mean over pairs of max(0, margin + d(a, p) - d(a, n))``, with ``d`` the Euclidean
distance (or its square). Anchors with no negative in the batch contribute nothing; a batch with no
positive pair gives 0.

TensorFlow is imported inside the functions (see :mod:`edgeav.tf`).
"""

from __future__ import annotations

from typing import Any


def _tf():
    from edgeav.tf import tf  # noqa: PLC0415

    return tf()


def pairwise_distances(embeddings: Any, *, squared: bool = False) -> Any:
    """``(B, D)`` embeddings -> ``(B, B)`` Euclidean (or squared) distances, safe to differentiate."""
    return _pairwise_distances(_tf(), embeddings, squared)


def _pairwise_distances(tf, embeddings: Any, squared: bool) -> Any:
    e = tf.convert_to_tensor(embeddings)
    sq = tf.reduce_sum(tf.square(e), axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * tf.matmul(e, e, transpose_b=True)
    d2 = tf.maximum(d2, 0.0)
    # Exact zeros on the diagonal (rounding can leave tiny positives there).
    d2 = d2 * (1.0 - tf.eye(tf.shape(e)[0], dtype=d2.dtype))
    if squared:
        return d2
    # max() before sqrt keeps the gradient finite where the distance is zero.
    return tf.sqrt(tf.maximum(d2, 1e-12)) * tf.cast(d2 > 0.0, d2.dtype)


def triplet_semihard_loss(
    labels: Any, embeddings: Any, *, margin: float = 0.5, squared: bool = False
) -> Any:
    """Semi-hard triplet loss of one batch (a scalar tensor).

    Args:
        labels: ``(B,)`` or ``(B, 1)`` integer class labels.
        embeddings: ``(B, D)`` embeddings (edgeav feeds the L2-normalised ``embedding`` layer).
        margin: the margin between positive and negative distances.
        squared: use squared Euclidean distances.
    """
    return _triplet_semihard_loss(_tf(), labels, embeddings, margin, squared)


def _triplet_semihard_loss(tf, labels: Any, embeddings: Any, margin: float, squared: bool) -> Any:
    embeddings = tf.cast(tf.convert_to_tensor(embeddings), tf.float32)
    labels = tf.reshape(tf.convert_to_tensor(labels), [-1])
    dist = _pairwise_distances(tf, embeddings, squared)
    batch = tf.shape(labels)[0]

    same = tf.equal(labels[:, None], labels[None, :])
    negative = tf.logical_not(same)  # [a, n]
    positive = tf.logical_and(same, tf.logical_not(tf.eye(batch, dtype=tf.bool)))  # [a, p]

    d_ap = dist[:, :, None]  # [a, p, 1]
    d_an = dist[:, None, :]  # [a, 1, n]
    # [a, p, n]: n is a negative of a and farther from a than p is.
    outside = tf.logical_and(negative[:, None, :], d_an > d_ap)
    big = tf.reduce_max(dist) + 1.0
    semi_hard = tf.reduce_min(
        tf.where(outside, tf.broadcast_to(d_an, tf.shape(outside)), big), axis=2
    )
    has_outside = tf.reduce_any(outside, axis=2)
    hardest_fallback = tf.reduce_max(tf.where(negative, dist, tf.zeros_like(dist)), axis=1)  # [a]
    d_neg = tf.where(has_outside, semi_hard, hardest_fallback[:, None])  # [a, p]

    has_negative = tf.reduce_any(negative, axis=1)  # [a]
    pairs = tf.cast(tf.logical_and(positive, has_negative[:, None]), tf.float32)
    losses = tf.maximum(margin + dist - d_neg, 0.0) * pairs
    count = tf.reduce_sum(pairs)
    return tf.math.divide_no_nan(tf.reduce_sum(losses), count)


def make_triplet_loss(margin: float = 0.5, *, squared: bool = False):
    """A Keras-compatible ``loss(y_true, y_pred)`` wrapping :func:`triplet_semihard_loss`.

    TensorFlow is resolved here, once, so nothing but TensorFlow ops runs inside the traced loss.
    """
    tf = _tf()

    def triplet_loss(y_true: Any, y_pred: Any) -> Any:
        return _triplet_semihard_loss(tf, y_true, y_pred, margin, squared)

    return triplet_loss
