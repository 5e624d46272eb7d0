"""Check converted models against their Keras originals before anything is written.

Each ``.tflite`` model runs in the LiteRT interpreter (the one the device uses) on the test split;
its predictions are compared with the Keras model's: top-1 agreement and accuracy per modality
and for the fused prediction (``edgeav.fusion.fuse`` with the run's weights). A drop larger than
the allowed one fails the conversion, so no bundle is written from a model nobody checked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeav.calibration import Calibration, fuse_rows
from edgeav.errors import EdgeAVError
from edgeav.fusion import FusionWeights


class AccuracyDropError(EdgeAVError):
    """The converted model lost more accuracy than allowed."""


def load_tflite(model_bytes: bytes, num_threads: int | None = None, output: str = "probabilities"):
    """The runtime's LiteRT wrapper (shared quantise/dequantise handling with the device)."""
    from edgeav.runtime.interpreter import load_interpreter  # noqa: PLC0415

    return load_interpreter(
        model_bytes, num_threads=num_threads, name="converted model", output=output
    )


def tflite_predict(model_bytes: bytes, x: np.ndarray, output: str = "probabilities") -> np.ndarray:
    """Class probabilities ``(N, classes)`` for ``x`` ``(N, ...)``, one sample per invoke, as the
    runtime computes them (``output="logits"``: the softmax of the model's output; images read
    as several candidates, ``(N, K, ...)``: the most confident one's, :mod:`edgeav.candidates`)."""
    from edgeav.candidates import judged  # noqa: PLC0415

    model = load_tflite(model_bytes, output=output)
    x = np.asarray(x, dtype=np.float32)
    if not len(x):
        raise EdgeAVError("no test samples to validate the converted model on")

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.stack(
            [
                np.asarray(model.probabilities(batch[i : i + 1]), np.float32).reshape(-1)
                for i in range(len(batch))
            ]
        )

    return judged(predict, x)


def keras_predict(model, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """The Keras model's probabilities for ``x``, candidates judged as :func:`tflite_predict`."""
    from edgeav.candidates import judged  # noqa: PLC0415

    return np.asarray(
        judged(
            lambda b: model.predict(b, batch_size=batch_size, verbose=0),
            np.asarray(x, np.float32),
        ),
        np.float32,
    )


@dataclass(frozen=True)
class Comparison:
    """Keras vs. TFLite on one modality (or the fused prediction)."""

    samples: int
    keras_accuracy: float
    tflite_accuracy: float
    agreement: float

    @property
    def drop(self) -> float:
        """Accuracy lost by conversion, in percentage points (negative = gained)."""
        return 100.0 * (self.keras_accuracy - self.tflite_accuracy)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["drop_points"] = round(self.drop, 3)
        return out


def compare(keras_probs: np.ndarray, tflite_probs: np.ndarray, labels: np.ndarray) -> Comparison:
    k = np.argmax(keras_probs, axis=1)
    t = np.argmax(tflite_probs, axis=1)
    y = np.asarray(labels)
    if not (len(k) == len(t) == len(y)) or len(y) == 0:
        raise EdgeAVError(f"cannot compare predictions of lengths {len(k)}, {len(t)}, {len(y)}")
    return Comparison(
        samples=int(len(y)),
        keras_accuracy=float(np.mean(k == y)),
        tflite_accuracy=float(np.mean(t == y)),
        agreement=float(np.mean(k == t)),
    )


def fused_probs(
    p_image: np.ndarray,
    p_audio: np.ndarray,
    weights: FusionWeights,
    calibration: Calibration | None = None,
) -> np.ndarray:
    """Fused probabilities as the runtime makes them: the run's temperatures, an unsure
    modality left out, the run's weights (:func:`edgeav.calibration.fuse_rows`)."""
    cal = calibration or Calibration()
    fused = fuse_rows(cal.apply("image", p_image), cal.apply("audio", p_audio), weights, cal)
    return np.asarray(fused, dtype=np.float32)


def check_drops(results: dict[str, Comparison], max_drop: float, allow: bool) -> list[str]:
    """Messages for each result whose drop exceeds ``max_drop``; raise unless ``allow``."""
    over = [
        f"{name} accuracy fell {c.drop:.2f} points ({100 * c.keras_accuracy:.2f}% Keras -> "
        f"{100 * c.tflite_accuracy:.2f}% TFLite)"
        for name, c in results.items()
        if c.drop > max_drop + 1e-9
    ]
    if over and not allow:
        raise AccuracyDropError(
            f"conversion rejected, no bundle written: {'; '.join(over)}; the limit is "
            f"--max-drop {max_drop:g} (pass --allow-drop to write it anyway)"
        )
    return over
