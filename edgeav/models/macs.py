"""Multiply-accumulate (MAC) and parameter counts of a built tf_keras model.

MACs are counted per output element of the layers that do the arithmetic, biases and batch norm
left out (the usual convention, and the seed's):

- ``Conv2D``: ``H_out * W_out * filters * kh * kw * C_in / groups``;
- ``DepthwiseConv2D``: ``H_out * W_out * C_in * depth_multiplier * kh * kw``;
- ``SeparableConv2D``: its depthwise part as above plus the pointwise part
  ``H_out * W_out * C_in * depth_multiplier * filters``;
- ``Dense``: ``units * inputs`` for every position of the input (``Dense`` on a sequence counts
  once per step).

Nested models are walked recursively; a layer called several times is counted once per call.

The seed's example (a 5x5 convolution of 256 filters on 12x12x3, valid padding, 8x8x256 out):
``Conv2D`` 256*3*5*5*8*8 = 1,228,800; ``SeparableConv2D`` 3*5*5*8*8 = 4,800 (depthwise) plus
256*1*1*3*8*8 = 49,152 (pointwise) = 53,952. The seed writes the sum as 49,152 ("a reduction by a
factor of 25"): that is the pointwise term alone; the full reduction is 22.8x.
"""

from __future__ import annotations

from math import prod

from edgeav.errors import EdgeAVError


def count_params(model) -> int:
    """All parameters of ``model``: trainable and non-trainable (batch-norm statistics included),
    as ``model.count_params()`` and the seed's table count them."""
    return int(model.count_params())


def count_trainable_params(model) -> int:
    """Trainable parameters only (batch norm's moving mean and variance left out)."""
    return int(sum(int(prod(w.shape)) for w in model.trainable_weights))


def count_macs(model) -> int:
    """Total multiply-accumulates of one forward pass of ``model`` on a single example."""
    return sum(sum(layer_macs(layer).values()) for layer in _leaf_layers(model))


def layer_macs(layer) -> dict[str, int]:
    """MACs of one layer, split by part (``{"conv": n}``, ``{"depthwise": n, "pointwise": m}``…).

    Layers without multiply-accumulates (pooling, batch norm, activations…) give ``{}``.
    Summed over every call of the layer.
    """
    from edgeav.tf import keras as _keras  # noqa: PLC0415

    layers = _keras().layers
    # SeparableConv2D and DepthwiseConv2D are subclasses of Conv2D's base: test them first.
    if isinstance(layer, layers.SeparableConv2D):
        kind = "separable"
    elif isinstance(layer, layers.DepthwiseConv2D):
        kind = "depthwise"
    elif isinstance(layer, layers.Conv2D):
        kind = "conv"
    elif isinstance(layer, layers.Dense):
        kind = "dense"
    else:
        return {}
    totals: dict[str, int] = {}
    for in_shape, out_shape in _call_shapes(layer):
        for part, macs in _macs(layer, kind, in_shape, out_shape).items():
            totals[part] = totals.get(part, 0) + macs
    return totals


def _macs(layer, kind: str, in_shape, out_shape) -> dict[str, int]:
    if kind == "dense":
        return {"dense": prod(out_shape[1:]) * int(in_shape[-1])}
    channels_last = getattr(layer, "data_format", "channels_last") == "channels_last"
    c_in = int(in_shape[-1] if channels_last else in_shape[1])
    spatial = prod(out_shape[1:-1] if channels_last else out_shape[2:])
    kernel = prod(layer.kernel_size)
    if kind == "conv":
        groups = int(getattr(layer, "groups", 1) or 1)
        return {"conv": spatial * layer.filters * kernel * c_in // groups}
    depthwise = spatial * c_in * int(layer.depth_multiplier) * kernel
    if kind == "depthwise":
        return {"depthwise": depthwise}
    pointwise = spatial * c_in * int(layer.depth_multiplier) * layer.filters
    return {"depthwise": depthwise, "pointwise": pointwise}


def _call_shapes(layer):
    """``(input_shape, output_shape)`` of every call of ``layer``, batch dimension first."""
    nodes = getattr(layer, "inbound_nodes", None) or getattr(layer, "_inbound_nodes", [])
    shapes = []
    for index in range(len(nodes)):
        in_shape = tuple(layer.get_input_shape_at(index))
        out_shape = tuple(layer.get_output_shape_at(index))
        if any(d is None for d in in_shape[1:] + out_shape[1:]):
            raise EdgeAVError(
                f"cannot count MACs of layer {layer.name!r}: its shape {in_shape} -> {out_shape} "
                "is not fully known; build the model with a fixed input size"
            )
        shapes.append((in_shape, out_shape))
    return shapes


def _leaf_layers(model):
    """Layers of ``model`` with nested models expanded (a nested model once per call)."""
    for layer in model.layers:
        sublayers = getattr(layer, "layers", None)
        if sublayers is not None and hasattr(layer, "inputs"):
            calls = max(1, len(getattr(layer, "inbound_nodes", [])))
            for _ in range(calls):
                yield from _leaf_layers(layer)
        else:
            yield layer
