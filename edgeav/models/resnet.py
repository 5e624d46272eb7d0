"""ResNet50 (v1, bottleneck blocks) with optional depthwise-separable convolutions.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016
(https://arxiv.org/abs/1512.03385); the depthwise-separable swap follows Chollet, "Xception",
CVPR 2017 (https://arxiv.org/abs/1610.02357). The graph and the layer names are those of
``keras.applications.ResNet50`` (``conv1_conv``, ``conv2_block1_1_conv`` ... ``conv5_block3_out``),
so ``model.summary()`` reads like the paper's table; the top is edgeav's
(:mod:`edgeav.models.blocks`): pooling, an L2-normalised ``embedding`` and a softmax ``head``.

tf_keras is imported inside the builders, never at module import time.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgeav.errors import EdgeAVError
from edgeav.models.blocks import check_image_args, classifier_top, conv, scale_filters

#: Bottleneck filters of the four stages (conv2..conv5); each block outputs 4x as many channels.
STAGE_FILTERS = (64, 128, 256, 512)
#: Blocks per stage of ResNet50.
RESNET50_BLOCKS = (3, 4, 6, 3)
_BN_EPSILON = 1.001e-5


def ResNet(
    *,
    input_shape: Sequence[int] = (224, 224, 3),
    classes: int = 1000,
    pooling: str = "avg",
    separable: bool = True,
    width: float = 1.0,
    blocks: Sequence[int] = RESNET50_BLOCKS,
    embedding_dim: int | None = None,
    bn_momentum: float = 0.99,
    stem_depth_multiplier: int = 1,
    name: str | None = None,
):
    """Build a (separable) ResNet with bottleneck blocks, truncated by width and/or depth.

    Args:
      input_shape: ``(size, size, channels)``, any square from 32x32 up, any number of channels.
      classes: number of classes of the softmax ``head``.
      pooling: ``"avg"`` (global average pooling, ``avg_pool``) or ``"max"`` (``max_pool``).
      separable: replace every ``Conv2D`` (the 7x7 stem, the 1x1 and 3x3 convolutions and the
        1x1 projection shortcuts) by a ``SeparableConv2D``; ``False`` is the plain ResNet.
      width: kernel multiplier: every stage's filter count (and the stem's 64) is multiplied by
        it and rounded to a multiple of 8 ("fewer kernels").
      blocks: bottleneck blocks per stage, starting at ``conv2``; a shorter sequence drops the
        last stages ("fewer layers"), e.g. ``(3, 4)`` stops after ``conv3`` with 512 channels.
      embedding_dim: ``None`` normalises the pooled features directly (no parameters added);
        an integer inserts ``Dense(embedding_dim, name="projection")`` before the normalisation.
      bn_momentum: momentum of every batch norm's moving statistics. Keras's 0.99 needs a few
        thousand steps to settle; the small variants use 0.9 so a short run on a small data set
        does not evaluate with statistics still near their initial values.
      stem_depth_multiplier: spatial filters per input channel in a separable 7x7 stem. The
        seed's rows keep 1; on a grey input that is one spatial filter for the whole network,
        so the small variant reading camera frames uses more (as MobileNet's full first conv).
      name: the model's name (default ``"resnet"`` + depth, with ``"_sep"`` when separable).

    Returns:
      A tf_keras ``Model`` ``images -> softmax probabilities`` with layers ``embedding`` and
      ``head``.
    """
    from edgeav.tf import keras as _keras  # noqa: PLC0415

    keras = _keras()
    check_image_args(input_shape, classes, pooling, width)
    blocks = tuple(int(b) for b in blocks)
    if not 1 <= len(blocks) <= len(STAGE_FILTERS) or min(blocks) < 1:
        raise EdgeAVError(
            f"blocks must give 1 to {len(STAGE_FILTERS)} stages of at least one block, got {blocks}"
        )
    if name is None:
        depth = 2 + 3 * sum(blocks)
        name = f"resnet{depth}" + ("_sep" if separable else "")

    inputs = keras.layers.Input(shape=tuple(int(v) for v in input_shape), name="image")
    x = keras.layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(inputs)
    x = conv(
        keras, x, scale_filters(64, width), 7, strides=2, padding="valid", separable=separable,
        depth_multiplier=stem_depth_multiplier, name="conv1_conv",
    )  # fmt: skip
    x = _batch_norm(keras, bn_momentum, name="conv1_bn")(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    for stage, (filters, count) in enumerate(
        zip(STAGE_FILTERS[: len(blocks)], blocks, strict=True), start=2
    ):
        x = _stack(
            keras,
            x,
            scale_filters(filters, width),
            count,
            stride=1 if stage == 2 else 2,
            separable=separable,
            bn_momentum=bn_momentum,
            name=f"conv{stage}",
        )
    outputs = classifier_top(
        keras, x, classes=classes, pooling=pooling, embedding_dim=embedding_dim
    )
    return keras.Model(inputs, outputs, name=name)


def ResNet50Sep(**kwargs):
    """ResNet50 with every ``Conv2D`` replaced by ``SeparableConv2D``; see :func:`ResNet`."""
    kwargs.setdefault("separable", True)
    kwargs.setdefault("blocks", RESNET50_BLOCKS)
    return ResNet(**kwargs)


def ResNet50(**kwargs):
    """The plain ResNet50 (``Conv2D``) with edgeav's top; see :func:`ResNet`."""
    kwargs.setdefault("separable", False)
    kwargs.setdefault("blocks", RESNET50_BLOCKS)
    return ResNet(**kwargs)


def _stack(
    keras,
    x,
    filters: int,
    blocks: int,
    *,
    stride: int,
    separable: bool,
    bn_momentum: float,
    name: str,
):
    """One stage: a block with a projection shortcut, then ``blocks - 1`` identity blocks."""
    x = _bottleneck(
        keras,
        x,
        filters,
        stride=stride,
        shortcut=True,
        separable=separable,
        bn_momentum=bn_momentum,
        name=f"{name}_block1",
    )
    for i in range(2, blocks + 1):
        x = _bottleneck(
            keras, x, filters, stride=1, shortcut=False, separable=separable,
            bn_momentum=bn_momentum, name=f"{name}_block{i}",
        )  # fmt: skip
    return x


def _bottleneck(
    keras,
    x,
    filters: int,
    *,
    stride: int,
    shortcut: bool,
    separable: bool,
    bn_momentum: float,
    name: str,
):
    """1x1 -> 3x3 -> 1x1 (x4 channels) with batch norm, plus the (projection) shortcut."""

    def bn(layer_name):
        return _batch_norm(keras, bn_momentum, name=layer_name)

    if shortcut:
        skip = conv(
            keras, x, 4 * filters, 1, strides=stride, separable=separable, name=f"{name}_0_conv"
        )
        skip = bn(f"{name}_0_bn")(skip)
    else:
        skip = x
    x = conv(keras, x, filters, 1, strides=stride, separable=separable, name=f"{name}_1_conv")
    x = bn(f"{name}_1_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = conv(keras, x, filters, 3, padding="same", separable=separable, name=f"{name}_2_conv")
    x = bn(f"{name}_2_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = conv(keras, x, 4 * filters, 1, separable=separable, name=f"{name}_3_conv")
    x = bn(f"{name}_3_bn")(x)
    x = keras.layers.Add(name=f"{name}_add")([skip, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def _batch_norm(keras, momentum: float, name: str):
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=_BN_EPSILON, name=name)
