"""Build of edgeav's one C extension, ``edgeav._features`` (everything else is pyproject.toml).

The extension is optional: without a C compiler (or with ``EDGEAV_NO_EXTENSIONS=1``) edgeav
installs and works the same, computing audio features with NumPy only (``edgeav.features``
chooses at import; ``EDGEAV_FEATURES=numpy`` forces NumPy at run time).
"""

import os
import sys

from setuptools import Extension, setup

extensions = []
if os.environ.get("EDGEAV_NO_EXTENSIONS", "") in ("", "0"):
    flags = [] if sys.platform == "win32" else ["-O3", "-ffp-contract=off", "-fno-math-errno"]
    extensions.append(
        Extension(
            "edgeav._features",
            sources=["edgeav/_features.c"],
            extra_compile_args=flags,
            optional=True,  # a failed build warns and leaves the NumPy path
        )
    )

setup(ext_modules=extensions)
