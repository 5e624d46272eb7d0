"""The one place where TensorFlow and Keras 2 (tf_keras) are imported.

tensorflow-model-optimization 0.8 works only with Keras 2, so ``TF_USE_LEGACY_KERAS=1`` must be
set before TensorFlow is first imported. Every module that needs TensorFlow or Keras calls
:func:`tf` / :func:`keras` inside the function that needs it, never at module import time.

TensorFlow writes absl and CUDA lines to file descriptor 2 while it loads ("All log messages
before absl::InitializeLog() is called...", "Could not find cuda drivers..."), before
``TF_CPP_MIN_LOG_LEVEL`` takes effect; the imports run inside
:func:`~edgeav.native_stderr.captured_native_stderr`, so a success prints nothing and a failure
is one line (the native text too under ``edgeav --debug``).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from edgeav.errors import EdgeAVError
from edgeav.native_stderr import captured_native_stderr

#: What to install when a module is missing.
TRAIN_EXTRA = "install the training extra: pip install 'edgeav[train]'"


def _prepare_env() -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _import_quietly(name: str) -> ModuleType:
    """Import ``name`` (after :func:`_prepare_env`) with its native stderr captured; a module
    that is missing or fails to load is one :class:`EdgeAVError`."""
    _prepare_env()
    import sys  # noqa: PLC0415

    if name in sys.modules:
        return sys.modules[name]
    try:
        with captured_native_stderr():
            return importlib.import_module(name)
    except ImportError as exc:
        raise EdgeAVError(f"cannot import {name} ({exc}); {TRAIN_EXTRA}") from exc


def tf() -> ModuleType:
    """Return the ``tensorflow`` module, configured for Keras 2."""
    return _import_quietly("tensorflow")


def keras() -> ModuleType:
    """Return ``tf_keras`` (Keras 2), the Keras that tfmot and edgeav's builders use."""
    tf()  # TensorFlow first: its native chatter is captured here
    return _import_quietly("tf_keras")


def tfmot() -> ModuleType:
    """Return ``tensorflow_model_optimization`` (imported after Keras 2 is configured)."""
    keras()
    return _import_quietly("tensorflow_model_optimization")
