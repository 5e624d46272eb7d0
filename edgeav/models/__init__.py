"""The model zoo (tf_keras, imported inside the builders, never at package import time).

- :mod:`edgeav.models.resnet`: ``ResNet`` / ``ResNet50Sep`` / ``ResNet50``, separable or plain,
  truncated by width and depth.
- :mod:`edgeav.models.inception_resnet`: ``InceptionResNet`` / ``InceptionResNetV2Sep``.
- :mod:`edgeav.models.audio`: ``build_audio_encoder``, the dense network over audio features.
- :mod:`edgeav.models.registry`: ``VARIANTS`` by stable name and ``build_variant``.
- :mod:`edgeav.models.macs`: ``count_macs`` and ``count_params``.

Every image and audio model maps its input to softmax probabilities through two named layers:
``embedding`` (L2-normalised, ``UnitNormalization``) and ``head`` (``Dense(classes, softmax)``).
"""
