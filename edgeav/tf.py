"""The one place where TensorFlow and Keras 2 (tf_keras) are imported.

tensorflow-model-optimization 0.8 works only with Keras 2, so ``TF_USE_LEGACY_KERAS=1`` must be
set before TensorFlow is first imported. Every module that needs TensorFlow or Keras calls
:func:`tf` / :func:`keras` inside the function that needs it, never at module import time.
"""

from __future__ import annotations

import os
from types import ModuleType


def _prepare_env() -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def tf() -> ModuleType:
    """Return the ``tensorflow`` module, configured for Keras 2."""
    _prepare_env()
    import tensorflow  # noqa: PLC0415

    return tensorflow


def keras() -> ModuleType:
    """Return ``tf_keras`` (Keras 2), the Keras that tfmot and edgeav's builders use."""
    _prepare_env()
    try:
        import tf_keras  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the install
        from edgeav.errors import EdgeAVError

        raise EdgeAVError(
            "tf_keras is not installed; install the training extra: pip install 'edgeav[train]'"
        ) from exc
    return tf_keras


def tfmot() -> ModuleType:
    """Return ``tensorflow_model_optimization`` (imported after Keras 2 is configured)."""
    _prepare_env()
    import tensorflow_model_optimization  # noqa: PLC0415

    return tensorflow_model_optimization
