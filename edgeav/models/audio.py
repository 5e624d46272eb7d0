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
    x = _dense_layers(keras, norm(inputs), hidden, dropout)
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


def _standardize(keras, mean, variance, dim: int):
    """The input's ``Normalization`` layer over its last axis (identity until adapted)."""
    if mean is None:
        return keras.layers.Normalization(axis=-1, name="standardize")
    mean, variance = _stat(mean, dim, "mean"), _stat(variance, dim, "variance")
    return keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="standardize")


def _dense_layers(keras, x, hidden, dropout: float, bn: str = "bn", relu: str = "relu"):
    """``[Dense -> BatchNorm -> ReLU -> Dropout]`` per hidden width (``dense_i``, ``{bn}_i``,
    ``{relu}_i``, ``dropout_i``): the MLP's layers."""
    for i, units in enumerate(hidden, start=1):
        x = keras.layers.Dense(int(units), name=f"dense_{i}")(x)
        x = keras.layers.BatchNormalization(name=f"{bn}_{i}")(x)
        x = keras.layers.Activation("relu", name=f"{relu}_{i}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(float(dropout), name=f"dropout_{i}")(x)
    return x


def _separable_convs(keras, x, filters: int):
    """Two ``SeparableConv1D(filters, 3) -> BatchNorm -> ReLU`` over time (``sepconv_i``,
    ``bn_i``, ``relu_i``), then the maximum over time (``pool``): the embedding head's layers."""
    for i in (1, 2):
        x = keras.layers.SeparableConv1D(
            int(filters), 3, padding="same", use_bias=False, name=f"sepconv_{i}"
        )(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn_{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu_{i}")(x)
    return keras.layers.GlobalMaxPooling1D(name="pool")(x)


def _top(keras, x, classes: int, embedding_dim: int, dropout: float):
    """Dropout, the L2-normalised ``embedding`` and the softmax ``head`` (as the MLP's)."""
    if dropout > 0:
        x = keras.layers.Dropout(float(dropout), name="dropout_top")(x)
    x = keras.layers.Dense(int(embedding_dim), name="projection")(x)
    x = keras.layers.UnitNormalization(name="embedding")(x)
    return keras.layers.Dense(int(classes), activation="softmax", name="head")(x)


def build_embedding_head(
    input_shape: Sequence[int] = (9, 96),
    classes: int = 10,
    filters: int = 64,
    embedding_dim: int = 64,
    dropout: float = 0.3,
    mean=None,
    variance=None,
    name: str = "audio_embed",
):
    """A small head over a sequence of speech embeddings (``audio-embed``).

    The frozen speech-embedding front-end (:mod:`edgeav.runtime.frontend`) gives one 96-value
    vector every 80 ms; the head standardises them, runs two depthwise-separable 1-D
    convolutions over time (a word spans several vectors) and max-pools over time (the word may
    be anywhere in the window)::

        (steps, 96) -> Normalization ("standardize")
          -> [SeparableConv1D(filters, 3) -> BatchNorm -> ReLU] x 2 ("sepconv_1", "sepconv_2")
          -> GlobalMaxPooling1D -> Dropout -> Dense -> UnitNormalization ("embedding")
          -> Dense(classes, softmax, name="head")

    Args:
      input_shape: ``(steps, dim)`` of the embedding sequence.
      classes, embedding_dim, dropout, mean, variance, name: as :func:`build_audio_encoder`
        (``mean``/``variance`` per embedding value, shape ``(dim,)``).
    """
    from edgeav.tf import keras as _keras  # noqa: PLC0415

    keras = _keras()
    steps, dim = (int(d) for d in input_shape)
    inputs = keras.layers.Input(shape=(steps, dim), name="embeddings")
    x = _separable_convs(keras, _standardize(keras, mean, variance, dim)(inputs), filters)
    return keras.Model(inputs, _top(keras, x, classes, embedding_dim, dropout), name=name)


def build_hybrid_head(
    input_dim: int = 9 * 96 + 561,
    feature_dim: int = 561,
    embedding_size: int = 96,
    classes: int = 10,
    filters: int = 64,
    hidden: Sequence[int] = (256, 128),
    embedding_dim: int = 64,
    dropout: float = 0.3,
    mean=None,
    variance=None,
    name: str = "audio_hybrid",
):
    """One head over the speech embeddings and the window's spectral statistics (``audio-hybrid``).

    The input is :mod:`edgeav.runtime.frontend`'s ``"embedding+features"`` vector: the embedding
    sequence row by row, then ``feature_dim`` MFCC/chroma/mel/contrast statistics. It is
    standardised as a whole first (so int8 conversion keeps the normalisation in float), then
    split: the embeddings go through :func:`build_embedding_head`'s two separable 1-D
    convolutions and max over time, the statistics through :func:`build_audio_encoder`'s dense
    layers, and the two are joined before the embedding::

        (input_dim,) -> Normalization ("standardize") -> Reshape (input_dim, 1)
          -> Cropping1D -> Reshape (steps, embedding_size)
             -> [SeparableConv1D(filters, 3) -> BatchNorm -> ReLU] x 2 -> GlobalMaxPooling1D
          -> Cropping1D -> Flatten (feature_dim)
             -> [Dense -> BatchNorm -> ReLU -> Dropout] per hidden width
          -> Concatenate -> Dropout -> Dense -> UnitNormalization ("embedding")
          -> Dense(classes, softmax, name="head")

    Args:
      input_dim: the vector's length, ``steps * embedding_size + feature_dim``.
      feature_dim: the spectral statistics at its end.
      embedding_size: values per speech embedding.
      mean, variance: per value of the input, shape ``(input_dim,)``.
      classes, filters, hidden, embedding_dim, dropout, name: as :func:`build_embedding_head`
        and :func:`build_audio_encoder`.
    """
    from edgeav.tf import keras as _keras  # noqa: PLC0415

    keras = _keras()
    input_dim, feature_dim, embedding_size = int(input_dim), int(feature_dim), int(embedding_size)
    sequence = input_dim - feature_dim
    if feature_dim < 1 or sequence < embedding_size or sequence % embedding_size:
        raise EdgeAVError(
            f"the hybrid audio input of {input_dim} values does not hold whole embeddings of "
            f"{embedding_size} and {feature_dim} features"
        )
    inputs = keras.layers.Input(shape=(input_dim,), name="embeddings_features")
    x = _standardize(keras, mean, variance, input_dim)(inputs)
    x = keras.layers.Reshape((input_dim, 1), name="as_column")(x)
    a = keras.layers.Cropping1D((0, feature_dim), name="embedding_part")(x)
    a = keras.layers.Reshape((sequence // embedding_size, embedding_size), name="sequence")(a)
    a = _separable_convs(keras, a, filters)
    b = keras.layers.Cropping1D((sequence, 0), name="feature_part")(x)
    b = keras.layers.Flatten(name="features")(b)
    b = _dense_layers(keras, b, hidden, dropout, bn="bn_dense", relu="relu_dense")
    x = keras.layers.Concatenate(name="join")([a, b])
    return keras.Model(inputs, _top(keras, x, classes, embedding_dim, dropout), name=name)


def build_dscnn(
    input_shape: Sequence[int] = (151, 40, 1),
    classes: int = 10,
    filters: int = 32,
    blocks: int = 4,
    embedding_dim: int = 64,
    dropout: float = 0.3,
    name: str = "audio_dscnn",
):
    """A depthwise-separable CNN over the window's log-mel frames (``audio-dscnn``), the design
    of MLPerf Tiny's keyword-spotting DS-CNN (Zhang et al., "Hello Edge", 2017)::

        (frames, mels, 1) -> Conv2D(filters, 10x4, stride 2) -> BatchNorm -> ReLU ("conv_1")
          -> [DepthwiseConv2D 3x3 -> BN -> ReLU -> Conv2D 1x1 -> BN -> ReLU] x blocks
             ("dw_i", "pw_i")
          -> GlobalAveragePooling2D -> Dropout -> Dense -> UnitNormalization ("embedding")
          -> Dense(classes, softmax, name="head")

    Args:
      input_shape: ``(frames, n_mels, 1)`` of :mod:`edgeav.runtime.frontend`'s ``"log-mel"``.
      filters, blocks: the width and the number of depthwise-separable blocks.
      classes, embedding_dim, dropout, name: as :func:`build_audio_encoder`.
    """
    from edgeav.tf import keras as _keras  # noqa: PLC0415

    keras = _keras()
    inputs = keras.layers.Input(shape=tuple(int(d) for d in input_shape), name="log_mel")
    x = keras.layers.Conv2D(
        int(filters), (10, 4), strides=2, padding="same", use_bias=False, name="conv_1"
    )(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn_conv_1")(x)
    x = keras.layers.Activation("relu", name="relu_conv_1")(x)
    for i in range(1, int(blocks) + 1):
        x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw_{i}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn_dw_{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu_dw_{i}")(x)
        x = keras.layers.Conv2D(int(filters), 1, use_bias=False, name=f"pw_{i}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn_pw_{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu_pw_{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, _top(keras, x, classes, embedding_dim, dropout), name=name)
