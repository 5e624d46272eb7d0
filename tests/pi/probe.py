"""Run under the emulated aarch64 Python (and on the host for comparison) by tests/test_pi.py.

    probe.py OUT.json [MODEL.tflite INPUTS.npy OUTPUTS.npy]

Imports the ``runtime`` extra's libraries, asks each for its version and native library, and,
given a model, runs every row of ``INPUTS.npy`` through ``ai_edge_litert`` directly (raw tensor
values in, raw tensor values out: no edgeav code) and saves the outputs. Writes what it found as
JSON to ``OUT.json``.
"""

from __future__ import annotations

import json
import platform
import sys


def main(argv: list[str]) -> int:
    out_json = argv[0]
    import ctypes.util

    import cv2
    import numpy as np
    import sounddevice
    import soundfile
    import soxr
    from ai_edge_litert import interpreter as litert

    info = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cv2": cv2.__version__,
        "soundfile": soundfile.__version__,
        "libsndfile": soundfile.__libsndfile_version__,
        "soxr": soxr.__version__,
        "sounddevice": sounddevice.__version__,
        "portaudio": sounddevice.get_portaudio_version()[1],
        "find_library_portaudio": ctypes.util.find_library("portaudio"),
        # Not in the sysroot (soundfile brings its own): must not be answered from the host's.
        "find_library_sndfile": ctypes.util.find_library("sndfile"),
        "find_library_from": ctypes.util.find_library.__module__,
        "litert_file": litert.__file__,
    }
    if len(argv) > 1:
        model, inputs, outputs = argv[1:4]
        x = np.load(inputs)
        results = {}
        for threads in (1, 4):
            it = litert.Interpreter(model_path=model, num_threads=threads)
            it.allocate_tensors()
            (inp,) = it.get_input_details()
            (out,) = it.get_output_details()
            rows = []
            for row in x:
                it.set_tensor(inp["index"], row[None].astype(inp["dtype"]))
                it.invoke()
                rows.append(it.get_tensor(out["index"])[0].copy())
            results[threads] = np.stack(rows)
        np.save(outputs, results[1])
        info["threads_agree"] = bool(np.array_equal(results[1], results[4]))
    heavy = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "librosa", "keras")
    info["heavy_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
    with open(out_json, "w") as fh:
        json.dump(info, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
