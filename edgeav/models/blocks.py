"""Pieces shared by the image builders: the Conv2D/SeparableConv2D swap, width scaling, the top.

Every image builder in :mod:`edgeav.models` ends the same way::

    features -> GlobalAveragePooling2D ("avg_pool") or GlobalMaxPooling2D ("max_pool")
             [-> Dense(embedding_dim, name="projection")]          only if embedding_dim is set
             -> UnitNormalization(name="embedding")                L2-normalised, 0 parameters
             -> Dense(classes, softmax, name="head")

so the model's output is the softmax probabilities and ``model.get_layer("embedding").output`` is
the L2-normalised embedding the triplet loss trains. With ``embedding_dim=None`` (the seed
variants) the pooled features themselves are normalised, which adds no parameters: a builder's
parameter count is then exactly that of the same network with a plain ``Dense`` head on the pooled
features (keras.applications' ``include_top=False, pooling="avg"`` plus a Dense layer).

TensorFlow is never imported here at module level; every function takes the tf_keras module.
"""

from __future__ import annotations

from edgeav.errors import EdgeAVError

MIN_INPUT_SIZE = 32
POOLINGS = ("avg", "max")


def scale_filters(filters: int, width: float, divisor: int = 8) -> int:
    """``filters * width`` rounded to a multiple of ``divisor`` (never below ``divisor``).

    The rounding of MobileNet's ``_make_divisible``: never more than 10 % below the exact value.
    ``width == 1`` returns ``filters`` unchanged, so full-width networks keep the paper's counts.
    """
    if width == 1.0:
        return int(filters)
    exact = filters * width
    rounded = max(divisor, int(exact + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * exact:
        rounded += divisor
    return rounded


def check_image_args(input_shape, classes: int, pooling: str, width: float) -> tuple[int, int, int]:
    """Validate the arguments every image builder shares; return ``(size, size, channels)``."""
    try:
        height, width_px, channels = (int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise EdgeAVError(
            f"input_shape must be (size, size, channels), got {input_shape!r}"
        ) from None
    if height != width_px or height < MIN_INPUT_SIZE:
        raise EdgeAVError(
            f"input_shape {tuple(input_shape)} must be square and at least "
            f"{MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}"
        )
    if channels < 1:
        raise EdgeAVError(f"input_shape {tuple(input_shape)} needs at least one channel")
    if int(classes) < 2:
        raise EdgeAVError(f"classes must be at least 2, got {classes}")
    if pooling not in POOLINGS:
        raise EdgeAVError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    if not width > 0:
        raise EdgeAVError(f"width must be positive, got {width}")
    return height, width_px, channels


def conv(
    keras,
    x,
    filters: int,
    kernel_size,
    *,
    strides=1,
    padding: str = "same",
    use_bias: bool = True,
    separable: bool = False,
    depth_multiplier: int = 1,
    name: str | None = None,
):
    """A ``Conv2D``, or with ``separable=True`` the ``SeparableConv2D`` with the same arguments.

    Only the convolution itself is swapped; 1x1 convolutions are swapped too (a 1x1
    SeparableConv2D is a per-channel scale followed by the 1x1 convolution), which is what
    "every Conv2D replaced by SeparableConv2D" means. ``depth_multiplier`` (separable only):
    spatial filters per input channel -- on a one-channel (grey) input a separable stem with
    the default 1 sees the image through a single spatial filter.
    """
    if separable:
        return keras.layers.SeparableConv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=use_bias,
            depth_multiplier=depth_multiplier,
            name=name,
        )(x)
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias, name=name
    )(x)


def classifier_top(keras, x, *, classes: int, pooling: str, embedding_dim: int | None):
    """Pooling, optional projection, the L2-normalised ``embedding`` and the softmax ``head``."""
    if pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    else:
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    if embedding_dim is not None:
        x = keras.layers.Dense(int(embedding_dim), name="projection")(x)
    x = keras.layers.UnitNormalization(name="embedding")(x)
    return keras.layers.Dense(int(classes), activation="softmax", name="head")(x)
