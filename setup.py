"""Build of edgeav's two small C extensions (everything else is pyproject.toml):
``edgeav._features``, the per-frame audio feature kernel, and ``edgeav._spin``, the runtime
worker's GIL-free spin-wait.

Both are optional: without a C compiler (or with ``EDGEAV_NO_EXTENSIONS=1``) edgeav installs
and works the same, computing audio features with NumPy only (``edgeav.features`` chooses at
import; ``EDGEAV_FEATURES=numpy`` forces NumPy at run time) and handing work between the
runtime's threads with blocking queues only.
"""

import os
import sys

from setuptools import Extension, setup

extensions = []
if os.environ.get("EDGEAV_NO_EXTENSIONS", "") in ("", "0"):
    flags = [] if sys.platform == "win32" else ["-O3", "-ffp-contract=off", "-fno-math-errno"]
    extensions += [
        Extension(
            "edgeav._features",
            sources=["edgeav/_features.c"],
            extra_compile_args=flags,
            optional=True,  # a failed build warns and leaves the NumPy path
        ),
        Extension(  # the runtime worker's GIL-free spin-wait (without it, it only blocks)
            "edgeav._spin",
            sources=["edgeav/_spin.c"],
            extra_compile_args=flags,
            optional=True,
        ),
    ]

setup(ext_modules=extensions)
