"""Data files inside installed packages, located without importing the packages (importing
scikit-learn or matplotlib would cost seconds and pull in much more than a file)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_file(package: str, *parts: str) -> Path | None:
    """A data file inside an installed package, located without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for location in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(location).joinpath(*parts)
        if path.is_file():
            return path
    return None
