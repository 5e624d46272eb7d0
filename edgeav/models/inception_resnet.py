"""Inception-ResNet-v2 with optional depthwise-separable convolutions.

Reference: Szegedy et al., "Inception-v4, Inception-ResNet and the Impact of Residual Connections
on Learning", AAAI 2017 (https://arxiv.org/abs/1602.07261). With ``separable=False``, full width
and full depth the graph is that of ``keras.applications.InceptionResNetV2`` (same layers, filter
counts and parameters; with 49 classes and average pooling: 54,412,049 parameters). Two changes
that do not touch the parameter count:

- the residual scaling ``x + scale * r`` is a built-in ``Rescaling`` layer plus ``Add`` instead of
  Keras's custom ``CustomScaleLayer``, so saved models load without edgeav's code;
- ``padding`` of the stem and the two reduction blocks is ``"valid"`` (Keras) for inputs of 75x75
  and up and ``"same"`` below, which keeps the feature maps at least 1x1 down to 32x32.

Layer names follow TF-slim / Keras (``mixed_5b``, ``block35_1`` ... ``block8_10``, ``conv_7b``);
the top is edgeav's (:mod:`edgeav.models.blocks`). tf_keras is imported inside the builder.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgeav.errors import EdgeAVError
from edgeav.models.blocks import check_image_args, classifier_top, conv, scale_filters

#: Inception-ResNet-A (block35), -B (block17) and -C (block8) repeats of Inception-ResNet-v2.
INCEPTION_RESNET_V2_BLOCKS = (10, 20, 10)
#: Residual scale per block type, as in the paper and Keras.
_SCALES = {"block35": 0.17, "block17": 0.1, "block8": 0.2}
#: Smallest input at which Keras's ``"valid"`` padding still leaves a 1x1 feature map.
_MIN_VALID_SIZE = 75


def InceptionResNet(
    *,
    input_shape: Sequence[int] = (299, 299, 3),
    classes: int = 1000,
    pooling: str = "avg",
    separable: bool = False,
    width: float = 1.0,
    blocks: Sequence[int] = INCEPTION_RESNET_V2_BLOCKS,
    padding: str | None = None,
    embedding_dim: int | None = None,
    bn_momentum: float = 0.99,
    name: str | None = None,
):
    """Build a (separable) Inception-ResNet-v2, truncated by width and/or depth.

    Args:
      input_shape: ``(size, size, channels)``, any square from 32x32 up, any number of channels.
      classes: number of classes of the softmax ``head``.
      pooling: ``"avg"`` (global average pooling, ``avg_pool``) or ``"max"`` (``max_pool``).
      separable: replace every ``Conv2D`` (stem, branches, the 1x1 "up" projections and
        ``conv_7b``) by a ``SeparableConv2D``; ``False`` is Keras's InceptionResNetV2.
      width: kernel multiplier for every convolution (rounded to a multiple of 8): "fewer kernels".
      blocks: repeats of the A (block35), B (block17) and C (block8) blocks; a shorter sequence
        drops the later stages and their reduction blocks, e.g. ``(5,)`` stops after 5 A blocks.
        A stage may have 0 blocks (only its reduction block). The last C block is linear with
        scale 1.0, as in Keras.
      padding: padding of the stem and reduction convolutions; ``None`` picks ``"valid"`` (Keras)
        for inputs of at least 75x75 and ``"same"`` for smaller ones.
      embedding_dim: ``None`` normalises the pooled features directly (no parameters added);
        an integer inserts ``Dense(embedding_dim, name="projection")`` before the normalisation.
      bn_momentum: momentum of every batch norm's moving statistics (see
        :func:`edgeav.models.resnet.ResNet`; the small variants use 0.9).
      name: the model's name (default ``"inception_resnet_v2"``, ``"_sep"`` when separable).

    Returns:
      A tf_keras ``Model`` ``images -> softmax probabilities`` with layers ``embedding`` and
      ``head``.
    """
    from edgeav.tf import keras as _keras  # noqa: PLC0415

    keras = _keras()
    size, _, _ = check_image_args(input_shape, classes, pooling, width)
    blocks = tuple(int(b) for b in blocks)
    if not 1 <= len(blocks) <= 3 or min(blocks) < 0:
        raise EdgeAVError(f"blocks must give 1 to 3 non-negative block counts, got {blocks}")
    if padding is None:
        padding = "valid" if size >= _MIN_VALID_SIZE else "same"
    if padding not in ("valid", "same"):
        raise EdgeAVError(f"padding must be 'valid' or 'same', got {padding!r}")
    if padding == "valid" and size < _MIN_VALID_SIZE:
        raise EdgeAVError(
            f"padding='valid' needs inputs of at least {_MIN_VALID_SIZE}x{_MIN_VALID_SIZE}, "
            f"got {size}x{size}; use padding='same'"
        )
    name = name or ("inception_resnet_v2" + ("_sep" if separable else ""))

    def f(filters: int) -> int:
        return scale_filters(filters, width)

    def cbn(x, filters, kernel, **kw):
        return _conv_bn(
            keras, x, f(filters), kernel, separable=separable, bn_momentum=bn_momentum, **kw
        )

    inputs = keras.layers.Input(shape=tuple(int(v) for v in input_shape), name="image")
    # Stem: 35 x 35 x 192 at 299x299.
    x = cbn(inputs, 32, 3, strides=2, padding=padding, name="conv2d_1a")
    x = cbn(x, 32, 3, padding=padding, name="conv2d_2a")
    x = cbn(x, 64, 3, name="conv2d_2b")
    x = keras.layers.MaxPooling2D(3, strides=2, padding=padding, name="maxpool_3a")(x)
    x = cbn(x, 80, 1, padding=padding, name="conv2d_3b")
    x = cbn(x, 192, 3, padding=padding, name="conv2d_4a")
    x = keras.layers.MaxPooling2D(3, strides=2, padding=padding, name="maxpool_5a")(x)

    # Mixed 5b (Inception-A): 35 x 35 x 320.
    b0 = cbn(x, 96, 1, name="mixed_5b_b0_1x1")
    b1 = cbn(x, 48, 1, name="mixed_5b_b1_1x1")
    b1 = cbn(b1, 64, 5, name="mixed_5b_b1_5x5")
    b2 = cbn(x, 64, 1, name="mixed_5b_b2_1x1")
    b2 = cbn(b2, 96, 3, name="mixed_5b_b2_3x3a")
    b2 = cbn(b2, 96, 3, name="mixed_5b_b2_3x3b")
    bp = keras.layers.AveragePooling2D(3, strides=1, padding="same", name="mixed_5b_pool")(x)
    bp = cbn(bp, 64, 1, name="mixed_5b_b3_1x1")
    x = keras.layers.Concatenate(name="mixed_5b")([b0, b1, b2, bp])
    for idx in range(1, blocks[0] + 1):
        x = _inception_resnet_block(keras, x, "block35", idx, cbn, separable)

    if len(blocks) > 1:
        # Mixed 6a (Reduction-A): 17 x 17 x 1088.
        b0 = cbn(x, 384, 3, strides=2, padding=padding, name="mixed_6a_b0_3x3")
        b1 = cbn(x, 256, 1, name="mixed_6a_b1_1x1")
        b1 = cbn(b1, 256, 3, name="mixed_6a_b1_3x3a")
        b1 = cbn(b1, 384, 3, strides=2, padding=padding, name="mixed_6a_b1_3x3b")
        bp = keras.layers.MaxPooling2D(3, strides=2, padding=padding, name="mixed_6a_pool")(x)
        x = keras.layers.Concatenate(name="mixed_6a")([b0, b1, bp])
        for idx in range(1, blocks[1] + 1):
            x = _inception_resnet_block(keras, x, "block17", idx, cbn, separable)

    if len(blocks) > 2:
        # Mixed 7a (Reduction-B): 8 x 8 x 2080.
        b0 = cbn(x, 256, 1, name="mixed_7a_b0_1x1")
        b0 = cbn(b0, 384, 3, strides=2, padding=padding, name="mixed_7a_b0_3x3")
        b1 = cbn(x, 256, 1, name="mixed_7a_b1_1x1")
        b1 = cbn(b1, 288, 3, strides=2, padding=padding, name="mixed_7a_b1_3x3")
        b2 = cbn(x, 256, 1, name="mixed_7a_b2_1x1")
        b2 = cbn(b2, 288, 3, name="mixed_7a_b2_3x3a")
        b2 = cbn(b2, 320, 3, strides=2, padding=padding, name="mixed_7a_b2_3x3b")
        bp = keras.layers.MaxPooling2D(3, strides=2, padding=padding, name="mixed_7a_pool")(x)
        x = keras.layers.Concatenate(name="mixed_7a")([b0, b1, b2, bp])
        for idx in range(1, blocks[2] + 1):
            last = idx == blocks[2]
            x = _inception_resnet_block(
                keras, x, "block8", idx, cbn, separable,
                scale=1.0 if last else None, activation=None if last else "relu",
            )  # fmt: skip

    # Final convolution block: 8 x 8 x 1536.
    x = cbn(x, 1536, 1, name="conv_7b")
    outputs = classifier_top(
        keras, x, classes=classes, pooling=pooling, embedding_dim=embedding_dim
    )
    return keras.Model(inputs, outputs, name=name)


def InceptionResNetV2Sep(**kwargs):
    """Inception-ResNet-v2 with every ``Conv2D`` replaced by ``SeparableConv2D``."""
    kwargs.setdefault("separable", True)
    return InceptionResNet(**kwargs)


def _conv_bn(
    keras,
    x,
    filters: int,
    kernel_size,
    *,
    strides=1,
    padding: str = "same",
    activation: str | None = "relu",
    use_bias: bool = False,
    separable: bool,
    bn_momentum: float = 0.99,
    name: str,
):
    """Convolution + batch norm (no scale, as Keras) + activation: ``name``, ``_bn``, ``_ac``."""
    x = conv(
        keras, x, filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias,
        separable=separable, name=name,
    )  # fmt: skip
    if not use_bias:
        x = keras.layers.BatchNormalization(momentum=bn_momentum, scale=False, name=f"{name}_bn")(x)
    if activation is not None:
        x = keras.layers.Activation(activation, name=f"{name}_ac")(x)
    return x


def _inception_resnet_block(
    keras, x, block_type: str, block_idx: int, cbn, separable: bool, *, scale=None,
    activation="relu",
):  # fmt: skip
    """One Inception-ResNet-A/B/C block: branches, 1x1 "up" projection, ``x + scale * up``."""
    block = f"{block_type}_{block_idx}"
    if block_type == "block35":
        b0 = cbn(x, 32, 1, name=f"{block}_b0_1x1")
        b1 = cbn(x, 32, 1, name=f"{block}_b1_1x1")
        b1 = cbn(b1, 32, 3, name=f"{block}_b1_3x3")
        b2 = cbn(x, 32, 1, name=f"{block}_b2_1x1")
        b2 = cbn(b2, 48, 3, name=f"{block}_b2_3x3a")
        b2 = cbn(b2, 64, 3, name=f"{block}_b2_3x3b")
        branches = [b0, b1, b2]
    elif block_type == "block17":
        b0 = cbn(x, 192, 1, name=f"{block}_b0_1x1")
        b1 = cbn(x, 128, 1, name=f"{block}_b1_1x1")
        b1 = cbn(b1, 160, (1, 7), name=f"{block}_b1_1x7")
        b1 = cbn(b1, 192, (7, 1), name=f"{block}_b1_7x1")
        branches = [b0, b1]
    else:  # block8
        b0 = cbn(x, 192, 1, name=f"{block}_b0_1x1")
        b1 = cbn(x, 192, 1, name=f"{block}_b1_1x1")
        b1 = cbn(b1, 224, (1, 3), name=f"{block}_b1_1x3")
        b1 = cbn(b1, 256, (3, 1), name=f"{block}_b1_3x1")
        branches = [b0, b1]
    mixed = keras.layers.Concatenate(name=f"{block}_mixed")(branches)
    up = conv(
        keras, mixed, x.shape[-1], 1, use_bias=True, separable=separable, name=f"{block}_conv"
    )
    scale = _SCALES[block_type] if scale is None else scale
    up = keras.layers.Rescaling(scale, name=f"{block}_scale")(up)
    x = keras.layers.Add(name=f"{block}_add")([x, up])
    if activation is not None:
        x = keras.layers.Activation(activation, name=f"{block}_ac")(x)
    return x
