"""The audio encoder: a dense network over the time-averaged feature vector.

The seed's audio classifier works on MFCC, chroma, mel and spectral-contrast coefficients averaged
over the time windows (187 values with :class:`edgeav.features.FeatureConfig`'s defaults) and
tunes the dropouts. The model takes the *raw* feature vector: a ``Normalization`` layer inside the
model standardises it, so the runtime feeds ``edgeav.features.extract`` output unchanged::

    features (input_dim,) -> Normalization ("standardize")
      -> [Dense -> BatchNorm -> ReLU -> Dropout] per hidden width ("dense_1", "bn_1", ...)
      -> Dense(embedding_dim, name="projection") -> UnitNormalization(name="embedding")
      -> Dense(classes, softmax, name="head")

tf_keras is imported inside the builder.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeav.errors import EdgeAVError


def build_audio_encoder(
    input_dim: int = 187,
    classes: int = 10,
    hidden: Sequence[int] = (256, 128),
    embedding_dim: int = 64,
    dropout: float = 0.3,
    mean=None,
    variance=None,
    name: str = "audio_mlp",
):
    """Build the audio encoder + softmax head.

    Args:
      input_dim: length of the feature vector.
      classes: number of classes of the softmax ``head``.
      hidden: widths of the hidden ``Dense`` layers (each followed by batch norm, ReLU, dropout).
      embedding_dim: width of the L2-normalised ``embedding``.
      dropout: dropout rate after every hidden layer ("Tune the Dropouts"); 0 disables it.
      mean, variance: per-feature statistics for the ``standardize`` layer, shape
        ``(input_dim,)``. Without them the layer starts as the identity (mean 0, variance 1) and
        must be adapted to the training features before training:
        ``model.get_layer("standardize").adapt(train_features)``.
      name: the model's name.

    Returns:
      A tf_keras ``Model`` ``(input_dim,) float32 -> softmax probabilities`` with layers
      ``standardize``, ``embedding`` and ``head``.
    """
    from edgeav.tf import keras as _keras  # noqa: PLC0415

    keras = _keras()
    input_dim, classes, embedding_dim = int(input_dim), int(classes), int(embedding_dim)
    if input_dim < 1 or embedding_dim < 1 or any(int(h) < 1 for h in hidden):
        raise EdgeAVError(
            f"audio encoder sizes must be positive: input_dim={input_dim}, hidden={tuple(hidden)}, "
            f"embedding_dim={embedding_dim}"
        )
    if classes < 2:
        raise EdgeAVError(f"classes must be at least 2, got {classes}")
    if not 0.0 <= float(dropout) < 1.0:
        raise EdgeAVError(f"dropout must be in [0, 1), got {dropout}")
    if (mean is None) != (variance is None):
        raise EdgeAVError("give both mean and variance for the audio encoder, or neither")

    inputs = keras.layers.Input(shape=(input_dim,), name="features")
    if mean is None:
        norm = keras.layers.Normalization(axis=-1, name="standardize")
    else:
        mean = _stat(mean, input_dim, "mean")
        variance = _stat(variance, input_dim, "variance")
        if np.any(variance < 0):
            raise EdgeAVError("the audio encoder's feature variance has negative values")
        norm = keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="standardize")
    x = norm(inputs)
    for i, units in enumerate(hidden, start=1):
        x = keras.layers.Dense(int(units), name=f"dense_{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn_{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu_{i}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(float(dropout), name=f"dropout_{i}")(x)
    x = keras.layers.Dense(embedding_dim, name="projection")(x)
    x = keras.layers.UnitNormalization(name="embedding")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def _stat(values, input_dim: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float32).reshape(-1)
    if arr.shape != (input_dim,):
        raise EdgeAVError(
            f"audio encoder {what} has {arr.size} values, expected input_dim={input_dim}"
        )
    if not np.all(np.isfinite(arr)):
        raise EdgeAVError(f"audio encoder {what} has NaN or infinite values")
    return arr
