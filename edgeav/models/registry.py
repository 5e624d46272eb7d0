"""Named model variants: the seed's six image classifiers, small ones for 32x32 inputs, the audio MLP.

The seed's table gives parameter counts only. Each seed row here is a width/depth configuration of
:func:`edgeav.models.resnet.ResNet` or :func:`edgeav.models.inception_resnet.InceptionResNet`
whose count, built with ``classes=49`` at the seed's input size (224 for ResNet, 299 for
Inception-ResNet), is within 2 % of the seed's figure; plain Inception-ResNet is Keras's
InceptionResNetV2 and matches exactly. Parameter counts do not depend on the input size, MACs do.

``params`` is the total count (``model.count_params()``: batch norm's moving mean and variance
included), the one that gives the seed's plain Inception-ResNet figure. Two other seed figures
are *trainable* counts: ResNet50 and Inception-ResNet-v2 with every Conv2D swapped for
SeparableConv2D have exactly 13,618,884 and 40,606,444 trainable parameters (49 classes), their
totals are 0.39 % and 0.15 % higher. The truncated rows (2, 3, 6) match no natural width/depth
configuration exactly under either count; the ones below are within 1 %.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeav.errors import EdgeAVError

FAMILIES = ("resnet", "inception_resnet", "audio")


@dataclass(frozen=True)
class Variant:
    """One named model: which builder, with which arguments, and the seed's figure if any.

    ``kwargs`` are the builder's keyword arguments other than ``input_shape``/``classes``
    (``input_dim``/``classes`` for the audio family). ``default_input_size`` is the square image
    size, or the feature-vector length for the audio family.
    """

    name: str
    family: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    default_input_size: int = 224
    seed_params: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r} for variant {self.name!r}")
        object.__setattr__(self, "kwargs", dict(self.kwargs))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (tuples in ``kwargs`` become lists when dumped)."""
        return {
            "name": self.name,
            "family": self.family,
            "kwargs": dict(self.kwargs),
            "default_input_size": self.default_input_size,
            "seed_params": self.seed_params,
            "description": self.description,
        }

    @property
    def modality(self) -> str:
        """``"audio"`` for the audio family, ``"image"`` otherwise."""
        return "audio" if self.family == "audio" else "image"


def _variants(*variants: Variant) -> dict[str, Variant]:
    return {v.name: v for v in variants}


#: Every variant by its stable name, seed rows first.
VARIANTS: dict[str, Variant] = _variants(
    Variant(
        "resnet50-sep",
        "resnet",
        {"separable": True},
        224,
        13_618_884,
        "ResNet50, every Conv2D replaced by SeparableConv2D (seed row 1)",
    ),
    Variant(
        "resnet50-sep-narrow",
        "resnet",
        {"separable": True, "width": 0.79},
        224,
        8_539_972,
        "separable ResNet50 with fewer kernels: width 0.79 (seed row 2)",
    ),
    Variant(
        "resnet50-sep-shallow",
        "resnet",
        {"separable": True, "blocks": (2, 1, 1)},
        224,
        1_387_204,
        "separable ResNet with fewer layers: 2+1+1 blocks, stages conv2-conv4 (seed row 3)",
    ),
    Variant(
        "inception-resnet",
        "inception_resnet",
        {"separable": False},
        299,
        54_412_049,
        "Inception-ResNet-v2 as keras.applications builds it (seed row 4)",
    ),
    Variant(
        "inception-resnet-sep",
        "inception_resnet",
        {"separable": True},
        299,
        40_606_444,
        "Inception-ResNet-v2, every Conv2D replaced by SeparableConv2D (seed row 5)",
    ),
    Variant(
        "inception-resnet-sep-small",
        "inception_resnet",
        {"separable": True, "blocks": (2, 6, 1)},
        299,
        11_894_476,
        "separable Inception-ResNet-v2 truncated to 2+6+1 A/B/C blocks (seed row 6)",
    ),
    Variant(
        "resnet-sep-tiny",
        "resnet",
        {
            "separable": True,
            "width": 0.5,
            "blocks": (1, 1, 1),
            "bn_momentum": 0.9,
            "stem_depth_multiplier": 8,
        },
        32,
        None,
        "small separable ResNet: width 0.5, 1+1+1 blocks, 8 stem filters per input channel",
    ),
    Variant(
        "inception-resnet-sep-tiny",
        "inception_resnet",
        {"separable": True, "width": 0.2, "blocks": (1, 1, 1), "bn_momentum": 0.9},
        32,
        None,
        "small separable Inception-ResNet for 32x32 inputs: width 0.2, 1+1+1 blocks",
    ),
    Variant(
        "audio-mlp",
        "audio",
        {"hidden": (256, 128), "embedding_dim": 64, "dropout": 0.3},
        187,
        None,
        "audio encoder: standardise, Dense 256-128 with dropout 0.3, 64-d embedding",
    ),
    Variant(
        "audio-embed",
        "audio",
        {"filters": 64, "embedding_dim": 64, "dropout": 0.3},
        9,
        None,
        "head over 1.5 s of speech embeddings (9x96): 2 separable 1-D convs, max over time",
    ),
    Variant(
        "audio-hybrid",
        "audio",
        {"filters": 64, "hidden": (256, 128), "embedding_dim": 64, "dropout": 0.3},
        9 * 96 + 561,
        None,
        "head over 1.5 s of speech embeddings (9x96) and the window's 561 spectral statistics: "
        "2 separable 1-D convs, max over time, next to Dense 256-128",
    ),
    Variant(
        "audio-dscnn",
        "audio",
        {"filters": 32, "blocks": 4, "embedding_dim": 64, "dropout": 0.3},
        151,
        None,
        "DS-CNN over 1.5 s of log-mel frames (151x40): conv 10x4, 4 separable blocks of 32",
    ),
)

#: The audio models and the front-end kind each reads (:mod:`edgeav.runtime.frontend`).
AUDIO_INPUTS = {
    "audio-mlp": "features",
    "audio-embed": "speech-embedding",
    "audio-hybrid": "embedding+features",
    "audio-dscnn": "log-mel",
}


def get_variant(name: str) -> Variant:
    """The variant called ``name``; an unknown name is an :class:`EdgeAVError` listing the known."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise EdgeAVError(
            f"unknown model variant {name!r}; known variants: {', '.join(VARIANTS)}"
        ) from None


def build_variant(
    name: str,
    *,
    classes: int,
    input_size: int | None = None,
    channels: int = 3,
    with_embedding: bool = False,
    **overrides: Any,
):
    """Build the variant ``name`` as a tf_keras Model ``inputs -> softmax probabilities``.

    Args:
      name: a key of :data:`VARIANTS`.
      classes: number of classes of the softmax ``head``.
      input_size: square image size (default: the variant's own); for the audio family, the
        vector's length (``audio-mlp``, ``audio-hybrid``) or the number of time steps
        (``audio-embed``, ``audio-dscnn``); ``input_shape=`` overrides the whole input shape of
        the last two.
      channels: image channels (1 for greyscale, 3 for colour); ignored by the audio family.
      with_embedding: return a model with two outputs, ``[probs, embedding]``, instead of one.
        Either way the model has the layers ``embedding`` and ``head``.
      **overrides: builder arguments replacing the variant's (e.g. ``dropout=0.5``, or
        ``mean=``/``variance=`` for the audio encoder's ``standardize`` layer).
    """
    variant = get_variant(name)
    size = int(input_size if input_size is not None else variant.default_input_size)
    kwargs = {**variant.kwargs, **overrides}
    if variant.family == "audio":
        from edgeav.models import audio  # noqa: PLC0415

        if name == "audio-embed":
            kwargs.setdefault("input_shape", (size, 96))
            model = audio.build_embedding_head(classes=classes, **kwargs)
        elif name == "audio-hybrid":
            model = audio.build_hybrid_head(input_dim=size, classes=classes, **kwargs)
        elif name == "audio-dscnn":
            kwargs.setdefault("input_shape", (size, 40, 1))
            model = audio.build_dscnn(classes=classes, **kwargs)
        else:
            model = audio.build_audio_encoder(input_dim=size, classes=classes, **kwargs)
    else:
        if variant.family == "resnet":
            from edgeav.models.resnet import ResNet as builder  # noqa: PLC0415
        else:
            from edgeav.models.inception_resnet import InceptionResNet as builder  # noqa: PLC0415
        kwargs.setdefault("name", name.replace("-", "_"))
        model = builder(input_shape=(size, size, int(channels)), classes=classes, **kwargs)
    if with_embedding:
        from edgeav.tf import keras as _keras  # noqa: PLC0415

        keras = _keras()
        model = keras.Model(
            model.inputs, [model.output, model.get_layer("embedding").output], name=model.name
        )
    return model


def describe_variant(name: str, *, classes: int, input_size: int | None = None) -> dict:
    """Build ``name`` once and return its zoo row: name, input size, params (total and trainable),
    MACs, the seed's figure and the difference in %.

    Clears the Keras session afterwards, so describing every variant in turn does not pile up
    graphs.
    """
    from edgeav.models.macs import (  # noqa: PLC0415
        count_macs,
        count_params,
        count_trainable_params,
    )
    from edgeav.tf import keras as _keras  # noqa: PLC0415

    variant = get_variant(name)
    size = variant.default_input_size
    if input_size is not None and variant.family != "audio":
        size = int(input_size)
    model = build_variant(name, classes=classes, input_size=size)
    params, trainable, macs = count_params(model), count_trainable_params(model), count_macs(model)
    del model
    _keras().backend.clear_session()
    seed = variant.seed_params
    return {
        "name": name,
        "family": variant.family,
        "input_size": size,
        "classes": int(classes),
        "params": params,
        "trainable_params": trainable,
        "macs": macs,
        "seed_params": seed,
        "diff_pct": None if seed is None else round(100.0 * (params - seed) / seed, 3),
        "description": variant.description,
    }
