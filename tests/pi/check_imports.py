"""Run edgeav's command line in-process, as ``python -m edgeav ARGS...`` does, and record imports.

    python check_imports.py OUT.json ARGS...

A finder placed first on ``sys.meta_path`` notes every attempt to import a heavy laptop-only
package (TensorFlow, tf_keras, tfmot, librosa, keras), even one that fails or is caught and
ignored; at exit (edgeav's ``main`` always ends in ``sys.exit``), ``OUT.json`` gets the attempts,
the heavy modules actually loaded, the top-level packages loaded and where edgeav came from.
Part of the test harness, not of edgeav.
"""

from __future__ import annotations

import atexit
import json
import sys

HEAVY = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "librosa", "keras")


class _Tripwire:
    """A meta-path finder that finds nothing and remembers who asked for what."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            self.attempts.append(name)
        return None


def main(argv: list[str]) -> None:
    out = argv[0]
    tripwire = _Tripwire()
    sys.meta_path.insert(0, tripwire)

    def dump() -> None:
        mods = sorted(sys.modules)
        data = {
            "attempted": sorted(set(tripwire.attempts)),
            "loaded_heavy": [m for m in mods if m.split(".")[0] in HEAVY],
            "top_level": sorted({m.split(".")[0] for m in mods if not m.startswith("_")}),
            "edgeav_file": getattr(sys.modules.get("edgeav"), "__file__", None),
        }
        with open(out, "w") as fh:
            json.dump(data, fh, indent=1)

    atexit.register(dump)
    from edgeav.cli import main as edgeav_main

    edgeav_main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
