"""A training run's folder: what ``edgeav train`` writes and ``edgeav convert`` reads.

::

    RUN/run.json       format, labels, data set folder, image spec, feature config, the two
                       model files, the image variant, fusion weights, accuracy per step, the
                       tf.distribute strategy and replica count trained with
    RUN/image.keras    the image classifier (input -> softmax probabilities)
    RUN/audio.keras    the audio classifier (raw feature vector -> softmax probabilities)
    RUN/metrics.json   everything training measured (accuracy per step and split, timings, ...)

:func:`write_run` writes one, :func:`read_run` reads and checks one, :func:`newest_run` finds the
most recent one under ``runs/`` and :func:`default_run_dir` names a new one. Nothing else opens
these files. TensorFlow is imported only to load or save the Keras models.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeav.calibration import Calibration
from edgeav.errors import EdgeAVError
from edgeav.fileio import write_bytes_atomic, write_text_atomic
from edgeav.fusion import FusionWeights
from edgeav.preprocess import ImageSpec
from edgeav.runtime.frontend import AudioInput, FrontEnd

if TYPE_CHECKING:
    from edgeav.features import FeatureConfig

RUN_FORMAT = "edgeav-run/1"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
#: The model file of each modality, as ``write_run`` names it.
MODEL_FILES = {"image": "image.keras", "audio": "audio.keras"}
#: The speech-embedding front-end's models in the run folder.
FRONTEND_FILE = "frontend_{role}.tflite"
#: Where ``edgeav train`` puts runs and ``edgeav convert`` looks for the newest one.
DEFAULT_BASE = "runs"


@dataclass(frozen=True)
class Run:
    """A training run folder, as :func:`read_run` reads it (what the converter needs)."""

    path: Path
    classes: list[str]
    data_dir: Path | None
    image_spec: ImageSpec
    feature_config: FeatureConfig
    image_model_path: Path
    audio_model_path: Path
    image_variant: str
    fusion: FusionWeights
    metrics: dict[str, Any] = field(default_factory=dict)
    audio_variant: str = "audio-mlp"
    audio_input: AudioInput = field(default_factory=AudioInput)
    #: The speech-embedding front-end's ``.tflite`` bytes by role (``audio-hybrid``,
    #: ``audio-embed``), or None.
    frontend_models: dict[str, bytes] | None = None
    calibration: Calibration = field(default_factory=Calibration)

    def frontend(self, threads: int | None = None) -> FrontEnd:
        """The audio front-end this run's audio model reads from."""
        return FrontEnd(self.audio_input, self.feature_config, self.frontend_models, threads)

    def train_config(self) -> dict[str, Any]:
        """The settings the run was trained with (``metrics.json``'s ``config``; empty if the
        file is missing or unreadable)."""
        try:
            config = json.loads((self.path / METRICS_FILE).read_text(encoding="utf-8"))["config"]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            return {}
        return config if isinstance(config, dict) else {}

    def load_image_model(self):
        """The image classifier (tf_keras Model, input -> softmax probabilities)."""
        return _load_keras(self.image_model_path)

    def load_audio_model(self):
        """The audio classifier (tf_keras Model, raw feature vector -> softmax probabilities)."""
        return _load_keras(self.audio_model_path)


def _load_keras(path: Path):
    from edgeav.tf import keras as _keras  # noqa: PLC0415

    keras = _keras()
    try:
        return keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EdgeAVError(f"cannot load Keras model {path}: {detail}") from exc


def write_run(
    folder: Path,
    *,
    models: dict[str, Any],
    classes: list[str],
    data_dir: Path,
    image_spec: ImageSpec,
    feature_config: FeatureConfig,
    image_variant: str,
    fusion: FusionWeights,
    accuracy: dict[str, Any],
    metrics: dict[str, Any],
    audio_variant: str = "audio-mlp",
    audio_input: AudioInput | None = None,
    frontend_models: dict[str, bytes] | None = None,
    calibration: Calibration | None = None,
    distribution: dict[str, Any] | None = None,
) -> None:
    """Write a run into ``folder`` (empty; usually :func:`edgeav.fileio.atomic_dir`'s).

    Args:
        models: ``{"image": keras_model, "audio": keras_model}``, saved in the Keras format.
        data_dir: the data set trained on (stored absolute, so ``edgeav convert`` finds it).
        accuracy: accuracy per training step (run.json's ``metrics``).
        metrics: everything training measured (``metrics.json``).
        audio_variant, audio_input: the audio model's zoo name and what it reads.
        frontend_models: the speech-embedding front-end's models, kept as
            ``frontend_<role>.tflite`` beside the Keras models.
        calibration: temperatures and thresholds fitted on the validation split.
        distribution: the tf.distribute strategy trained under and its replica count
            (:meth:`edgeav.distribute.Distribution.to_dict`; default: one device).
    """
    for modality, name in MODEL_FILES.items():
        models[modality].save(str(folder / name))
    for role, data in (frontend_models or {}).items():
        write_bytes_atomic(folder / FRONTEND_FILE.format(role=role), data)
    run = {
        "format": RUN_FORMAT,
        "classes": list(classes),
        "data_dir": str(Path(data_dir).resolve()),
        "image_spec": image_spec.to_dict(),
        "feature_config": feature_config.to_dict(),
        "image_model": MODEL_FILES["image"],
        "audio_model": MODEL_FILES["audio"],
        "image_variant": image_variant,
        "fusion": fusion.to_dict(),
        "metrics": accuracy,
        "audio_variant": audio_variant,
        "audio_input": (audio_input or AudioInput()).to_dict(),
        "frontend": sorted(frontend_models or {}),
        "calibration": (calibration or Calibration()).to_dict(),
        "training": distribution or {"strategy": "one", "replicas": 1, "workers": 1},
    }
    write_text_atomic(folder / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    write_text_atomic(folder / RUN_FILE, json.dumps(run, indent=2) + "\n")


def read_run(run_dir: str | os.PathLike[str]) -> Run:
    """Read and check a run folder written by ``edgeav train`` (the models are not loaded).

    Raises:
        EdgeAVError: naming the folder or file that is missing or malformed.
    """
    from edgeav.features import FeatureConfig  # noqa: PLC0415

    root = Path(run_dir)
    if not root.is_dir():
        raise EdgeAVError(f"run folder {root} does not exist")
    meta_path = root / RUN_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EdgeAVError(f"{root} is not a training run: {meta_path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgeAVError(f"cannot read {meta_path}: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != RUN_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise EdgeAVError(f"{meta_path} is not an {RUN_FORMAT} file (format {found!r})")
    needed = ("classes", "image_spec", "feature_config", "image_model", "audio_model", "fusion")
    for key in needed:
        if key not in meta:
            raise EdgeAVError(f"{meta_path} lacks {key!r}")
    classes = meta["classes"]
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, str) and c for c in classes)
    ):
        raise EdgeAVError(f"{meta_path}: 'classes' must be a list of at least two names")
    paths = {}
    for key in ("image_model", "audio_model"):
        name = meta[key]
        if not isinstance(name, str) or not name or Path(name).name != name:
            raise EdgeAVError(f"{meta_path}: {key!r} must be a file name in the run folder")
        paths[key] = root / name
        if not paths[key].is_file():
            raise EdgeAVError(f"{paths[key]} is missing (named in {meta_path})")
    try:
        image_spec = ImageSpec.from_dict(meta["image_spec"])
        feature_config = FeatureConfig.from_dict(meta["feature_config"])
        fusion = FusionWeights.from_dict(meta["fusion"])
        audio_input = AudioInput.from_dict(meta.get("audio_input", {}))
        calibration = Calibration.from_dict(meta.get("calibration", {}))
    except (EdgeAVError, TypeError, ValueError) as exc:
        raise EdgeAVError(f"{meta_path}: {exc}") from exc
    frontend = None
    if meta.get("frontend"):
        frontend = {}
        for role in meta["frontend"]:
            path = root / FRONTEND_FILE.format(role=role)
            try:
                frontend[str(role)] = path.read_bytes()
            except OSError as exc:
                raise EdgeAVError(f"cannot read {path}: {exc.strerror or exc}") from exc
    data_dir = meta.get("data_dir")
    metrics = meta.get("metrics", {})
    return Run(
        path=root,
        classes=list(classes),
        data_dir=Path(data_dir) if isinstance(data_dir, str) else None,
        image_spec=image_spec,
        feature_config=feature_config,
        image_model_path=paths["image_model"],
        audio_model_path=paths["audio_model"],
        image_variant=str(meta.get("image_variant", "")),
        fusion=fusion,
        metrics=metrics if isinstance(metrics, dict) else {},
        audio_variant=str(meta.get("audio_variant", "audio-mlp")),
        audio_input=audio_input,
        frontend_models=frontend,
        calibration=calibration,
    )


def newest_run(base: str | os.PathLike[str] = DEFAULT_BASE) -> Path:
    """The most recently written run folder (one holding ``run.json``) under ``base``."""
    base = Path(base)
    if not base.is_dir():
        raise EdgeAVError(
            f"no run folder given and {base}/ does not exist; train first (edgeav train DATA) "
            "or pass the run folder"
        )
    runs = [p.parent for p in base.glob(f"*/{RUN_FILE}") if p.is_file()]
    if not runs:
        raise EdgeAVError(f"no training run (a folder with {RUN_FILE}) under {base}/")
    return max(runs, key=lambda p: ((p / RUN_FILE).stat().st_mtime, p.name))


def default_run_dir(base: str | os.PathLike[str] = DEFAULT_BASE) -> Path:
    """``runs/<UTC timestamp>``: a new run's folder where :func:`newest_run` looks."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path(base) / stamp
