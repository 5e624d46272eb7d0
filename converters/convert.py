"""``edgeav convert``'s work: run -> (prune) -> quantise (and with ``--qat`` also
quantisation-aware fine-tuning, :mod:`edgeav.converters.qat`) -> validate in LiteRT -> bundle.

:func:`convert_models` does the work on in-memory Keras models and arrays (tests and fixtures
use it directly); :func:`convert_run` loads a training run and its data set's train and test
splits and calls it. Nothing is written unless every converted model passed validation (or the
user allowed the drop).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edgeav.candidates import first
from edgeav.converters.finetune import Recipe
from edgeav.converters.quantize import (
    MODES,
    convert_keras,
    leading_normalization,
    representative_indices,
    without_softmax,
)
from edgeav.converters.validate import (
    Comparison,
    check_drops,
    compare,
    fused_probs,
    keras_predict,
    tflite_predict,
)
from edgeav.errors import EdgeAVError

if TYPE_CHECKING:
    from edgeav.features import FeatureConfig
    from edgeav.fusion import FusionWeights
    from edgeav.preprocess import ImageSpec

MODALITIES = ("image", "audio")


class Progress(Protocol):
    def stage(self, description: str) -> None:
        """A new stage starts (advances the bar by one)."""

    def note(self, description: str) -> None:
        """Update the current stage's description."""


class _NoProgress:
    def stage(self, description: str) -> None:
        pass

    def note(self, description: str) -> None:
        pass


class BarProgress:
    """:class:`Progress` on a task of a rich progress bar: each stage after the first advances
    it by one (the task's total is :meth:`ConvertOptions.stages`), a note renames it."""

    def __init__(self, bar: Any, task: Any) -> None:
        self.bar, self.task, self.started = bar, task, False

    def stage(self, description: str) -> None:
        if self.started:
            self.bar.advance(self.task)
        self.started = True
        self.bar.update(self.task, description=description)

    def note(self, description: str) -> None:
        self.bar.update(self.task, description=description)


#: Fine-tuning epochs while pruning: fewer lose accuracy (av-digits' image model pruned to 0.5
#: and quantised to int8 lost a point in LiteRT after 3 epochs, about 0.3 after 10).
PRUNE_EPOCHS = 10


@dataclass
class ConvertOptions:
    """What ``edgeav convert`` was asked for."""

    quantize: str = "int8"
    prune: float | None = None
    structured: str | None = None
    calibration_samples: int = 200
    max_drop: float | None = None  # None: 1 point, 2 with pruning
    allow_drop: bool = False
    prune_epochs: int = PRUNE_EPOCHS
    #: Unstructured --prune: blocks of this many consecutive input channels (1: element-wise).
    prune_block: int = 1
    #: Batch of the fine-tuning (pruning, QAT): ``edgeav train``'s.
    batch_size: int = 64
    #: int8: keep a leading Normalization layer (the audio encoder's) and the input in float32.
    float_normalization: bool = True
    seed: int = 0
    #: Quantisation-aware fine-tuning (tfmot) before the int8 conversion; post-training int8 is
    #: converted and measured too, side by side, and the QAT models go into the bundle.
    qat: bool = False
    qat_epochs: int = 3
    qat_learning_rate: float = 1e-4
    #: tf.distribute strategy of the fine-tuning (pruning, QAT): see :mod:`edgeav.distribute`.
    strategy: str = "one"

    @property
    def pruning(self) -> bool:
        return self.prune is not None or self.structured is not None

    def stages(self, modalities: int = 2) -> int:
        """How many ``Progress.stage`` calls :func:`convert_models` makes (for a progress bar)."""
        # Keras predictions, [prune], convert, validate, [QAT fine-tuning, convert, validate]
        per_model = 3 + int(self.pruning) + 3 * int(self.qat)
        return modalities * per_model + int(modalities == 2) + 1  # + fused + write

    @property
    def drop_limit(self) -> float:
        if self.max_drop is not None:
            return float(self.max_drop)
        return 2.0 if self.pruning else 1.0

    def check(self) -> None:
        if self.quantize not in MODES:
            raise EdgeAVError(
                f"--quantize must be one of {', '.join(MODES)}, got {self.quantize!r}"
            )
        if self.prune is not None and not 0.0 < self.prune < 1.0:
            raise EdgeAVError(f"--prune must be a fraction between 0 and 1, got {self.prune}")
        if self.structured not in (None, "2:4"):
            raise EdgeAVError(f"--structured must be 2:4, got {self.structured!r}")
        if self.structured and self.prune not in (None, 0.5):
            raise EdgeAVError(
                f"--structured 2:4 is 50% sparsity by construction; it cannot reach --prune {self.prune}"
            )
        if self.calibration_samples < 1:
            raise EdgeAVError(
                f"--calibration-samples must be positive, got {self.calibration_samples}"
            )
        if self.max_drop is not None and not 0.0 <= self.max_drop <= 100.0:
            raise EdgeAVError(f"--max-drop must be between 0 and 100 points, got {self.max_drop}")
        if self.prune_epochs < 1:
            raise EdgeAVError(f"--prune-epochs must be at least 1, got {self.prune_epochs}")
        if int(self.prune_block) != self.prune_block or self.prune_block < 1:
            raise EdgeAVError(f"--prune-block must be at least 1, got {self.prune_block}")
        if self.qat and self.quantize != "int8":
            raise EdgeAVError(
                f"--qat fine-tunes for full int8; it cannot be combined with --quantize {self.quantize}"
            )
        if self.qat_epochs < 1:
            raise EdgeAVError(f"--qat-epochs must be at least 1, got {self.qat_epochs}")
        from edgeav.distribute import STRATEGIES  # noqa: PLC0415

        if self.strategy not in STRATEGIES:
            raise EdgeAVError(
                f"unknown --strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}"
            )


@dataclass
class SplitArrays:
    """One split's inputs and labels per modality (None where a modality is absent)."""

    images: np.ndarray | None
    image_labels: np.ndarray | None
    audio: np.ndarray | None
    audio_labels: np.ndarray | None
    #: Per modality, the split's inputs that show or say nothing (the data set's ``none``).
    nothing: dict[str, np.ndarray] = field(default_factory=dict)

    def get(self, modality: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        if modality == "image":
            return self.images, self.image_labels
        return self.audio, self.audio_labels


@dataclass
class ModelResult:
    modality: str
    tflite: bytes
    params: int
    comparison: Comparison
    keras_pruned_accuracy: float | None = None
    sparsity: dict[str, Any] | None = None
    tflite_zero_fraction: float = 0.0
    seconds: float = 0.0
    output: str = "probabilities"  # the .tflite's output: "logits" when the softmax was removed
    #: Median single-thread LiteRT invoke time on this machine (measured with --qat only).
    latency_ms: float | None = None

    @property
    def size(self) -> int:
        return len(self.tflite)

    @property
    def gzip_size(self) -> int:
        return len(gzip.compress(self.tflite, compresslevel=9, mtime=0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "size_bytes": self.size,
            "gzip_bytes": self.gzip_size,
            "params": self.params,
            "output": self.output,
            "keras_accuracy": self.comparison.keras_accuracy,
            "keras_pruned_accuracy": self.keras_pruned_accuracy,
            "tflite_accuracy": self.comparison.tflite_accuracy,
            "agreement": self.comparison.agreement,
            "drop_points": round(self.comparison.drop, 3),
            "samples": self.comparison.samples,
            "sparsity": self.sparsity,
            "tflite_zero_fraction": round(self.tflite_zero_fraction, 6),
            "seconds": round(self.seconds, 2),
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 4),
        }


@dataclass
class ConvertResult:
    out: Path
    quantization: str
    models: dict[str, ModelResult]
    fused: Comparison | None
    bundle_size: int
    max_drop: float
    over_limit: list[str] = field(default_factory=list)
    seconds: float = 0.0
    run_dir: Path | None = None
    #: With --qat: the post-training int8 models and fused comparison, measured the same way
    #: (``models`` and ``fused`` above are then the quantisation-aware ones, in the bundle).
    ptq: dict[str, ModelResult] | None = None
    ptq_fused: Comparison | None = None
    #: The tf.distribute strategy pruning/QAT fine-tuned under (``Distribution.to_dict()``).
    distribution: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        ptq = None
        if self.ptq is not None:
            ptq = {
                "models": {m: r.to_dict() for m, r in self.ptq.items()},
                "fused": None if self.ptq_fused is None else self.ptq_fused.to_dict(),
            }
        return {
            "bundle": str(self.out),
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "quantization": self.quantization,
            "bundle_bytes": self.bundle_size,
            "max_drop_points": self.max_drop,
            "over_limit": self.over_limit,
            "models": {m: r.to_dict() for m, r in self.models.items()},
            "fused": None if self.fused is None else self.fused.to_dict(),
            "seconds": round(self.seconds, 2),
            "qat": self.ptq is not None,
            "ptq": ptq,
            "distribution": self.distribution,
        }


def convert_models(
    models: dict[str, Any],
    *,
    classes: list[str],
    image_spec: ImageSpec,
    feature_config: FeatureConfig,
    fusion: FusionWeights,
    train: SplitArrays,
    test: SplitArrays,
    out: str | Path,
    options: ConvertOptions | None = None,
    progress: Progress | None = None,
    audio_input: Any = None,
    frontend_models: dict[str, bytes] | None = None,
    calibration: Any = None,
    distribution: Any = None,
    augment: dict[str, Any] | None = None,
) -> ConvertResult:
    """Convert, validate and bundle ``models`` (``{"image": keras_model, "audio": keras_model}``).

    Args:
        classes: the labels (index = model output index).
        image_spec, feature_config, fusion: :class:`~edgeav.preprocess.ImageSpec`,
            :class:`~edgeav.features.FeatureConfig`, :class:`~edgeav.fusion.FusionWeights`.
        train: training arrays (int8 calibration, pruning fine-tuning).
        test: test arrays (validation against Keras).
        out: the bundle to write (atomically, and only if validation passed).
        audio_input: what the audio model reads (:class:`edgeav.runtime.frontend.AudioInput`;
            default: the averaged features); ``frontend_models``: the speech-embedding
            front-end's ``.tflite`` bytes by role, carried into the bundle as they are.
        calibration: the run's :class:`~edgeav.calibration.Calibration` (default: neutral).
        distribution: the :class:`edgeav.distribute.Distribution` that pruning and QAT
            fine-tune under (default: TensorFlow's default strategy, one device).
        augment: per modality, the training run's augmentation (``augment(x, rng)``). Pruning's
            and QAT's fine-tuning follow the run's recipe: this every epoch, and
            ``train.nothing`` taught as the uniform distribution
            (:mod:`edgeav.converters.finetune`).
    """
    from edgeav import bundle as bundle_mod  # noqa: PLC0415
    from edgeav.data.loader import paired_indices  # noqa: PLC0415
    from edgeav.tflite_schema import describe  # noqa: PLC0415

    options = options or ConvertOptions()
    options.check()
    progress = progress or _NoProgress()
    t_start = time.perf_counter()
    present = [m for m in MODALITIES if models.get(m) is not None]
    if not present:
        raise EdgeAVError("nothing to convert: no image or audio model")

    results: dict[str, ModelResult] = {}
    keras_probs: dict[str, np.ndarray] = {}
    tflite_probs: dict[str, np.ndarray] = {}
    ptq: dict[str, ModelResult] = {}  # --qat: the post-training int8 models, for comparison
    ptq_probs: dict[str, np.ndarray] = {}
    for modality in present:
        t0 = time.perf_counter()
        model = models[modality]
        x_test, y_test = test.get(modality)
        x_train, y_train = train.get(modality)
        # fine-tuning and int8 calibration read each image's training input (its first
        # candidate); test is read as the runtime reads it (edgeav.candidates)
        x_train = first(x_train)
        if x_test is None or y_test is None or len(y_test) == 0:
            raise EdgeAVError(f"no {modality} test samples to validate the converted model on")
        progress.stage(f"{modality}: Keras predictions on test")
        keras_probs[modality] = keras_predict(model, x_test)
        to_convert, sparsity, pruned_acc = model, None, None
        recipe = Recipe(first(train.nothing.get(modality)), (augment or {}).get(modality))
        if options.pruning:
            if x_train is None or y_train is None or len(y_train) == 0:
                raise EdgeAVError(
                    f"no {modality} training samples to fine-tune the pruned model on"
                )
            from edgeav.converters.prune import prune_model  # noqa: PLC0415

            progress.stage(f"{modality}: pruning + fine-tuning")
            to_convert, report = prune_model(
                model,
                x_train,
                y_train,
                sparsity=options.prune if options.prune is not None else 0.5,
                structured=options.structured,
                epochs=options.prune_epochs,
                batch_size=options.batch_size,
                block=options.prune_block,
                seed=options.seed,
                distribution=distribution,
                on_epoch=lambda done, total, m=modality: progress.note(
                    f"{m}: pruning + fine-tuning (epoch {done}/{total})"
                ),
                recipe=recipe,
            )
            sparsity = report.to_dict()
            pruned_acc = float(np.mean(np.argmax(keras_predict(to_convert, x_test), 1) == y_test))
        rep = None
        if options.quantize == "int8":
            if x_train is None or y_train is None or len(y_train) == 0:
                raise EdgeAVError(
                    f"no {modality} training samples to calibrate the int8 model with"
                )
            idx = representative_indices(y_train, options.calibration_samples, seed=options.seed)
            rep = x_train[idx]
        progress.stage(f"{modality}: converting to TFLite ({options.quantize})")
        float_input = options.float_normalization and leading_normalization(to_convert)
        keras_model = to_convert
        to_convert, output = without_softmax(to_convert)
        tfl = convert_keras(to_convert, options.quantize, rep, float_input=float_input)
        progress.stage(f"{modality}: validating in LiteRT on {len(y_test)} test samples")
        tflite_probs[modality] = tflite_predict(tfl, x_test, output=output)
        results[modality] = _model_result(
            modality, tfl, model, keras_probs[modality], tflite_probs[modality], y_test, output
        )
        results[modality].keras_pruned_accuracy = pruned_acc
        results[modality].sparsity = sparsity
        results[modality].seconds = time.perf_counter() - t0
        if options.qat:
            from edgeav.converters.qat import qat_model  # noqa: PLC0415

            ptq[modality], ptq_probs[modality] = results[modality], tflite_probs[modality]
            progress.stage(f"{modality}: quantisation-aware fine-tuning")
            qat, output = qat_model(
                keras_model,
                x_train,
                y_train,
                epochs=options.qat_epochs,
                batch_size=options.batch_size,
                learning_rate=options.qat_learning_rate,
                prune_preserve=options.pruning,
                seed=options.seed,
                distribution=distribution,
                on_epoch=lambda done, total, m=modality: progress.note(
                    f"{m}: quantisation-aware fine-tuning (epoch {done}/{total})"
                ),
                recipe=recipe,
            )
            progress.stage(f"{modality}: converting the quantisation-aware model to int8")
            tfl = convert_keras(qat, "int8", rep, float_input=float_input)
            progress.stage(f"{modality}: validating it in LiteRT on {len(y_test)} test samples")
            tflite_probs[modality] = tflite_predict(tfl, x_test, output=output)
            results[modality] = _model_result(
                modality, tfl, model, keras_probs[modality], tflite_probs[modality], y_test, output
            )
            results[modality].keras_pruned_accuracy = pruned_acc
            results[modality].sparsity = sparsity
            for r in (ptq[modality], results[modality]):
                r.latency_ms = _latency_ms(r.tflite)
        results[modality].seconds = time.perf_counter() - t0

    fused = ptq_fused = None
    if len(present) == 2:
        progress.stage("fused: comparing on paired test samples")
        ii, ai = paired_indices(test.image_labels, test.audio_labels, seed=0)
        if len(ii):
            k = fused_probs(keras_probs["image"][ii], keras_probs["audio"][ai], fusion, calibration)
            t = fused_probs(
                tflite_probs["image"][ii], tflite_probs["audio"][ai], fusion, calibration
            )
            fused = compare(k, t, np.asarray(test.image_labels)[ii])
            if options.qat:
                p = fused_probs(ptq_probs["image"][ii], ptq_probs["audio"][ai], fusion, calibration)
                ptq_fused = compare(k, p, np.asarray(test.image_labels)[ii])

    checks = {m: r.comparison for m, r in results.items()}
    if fused is not None:
        checks["fused"] = fused
    over = check_drops(checks, options.drop_limit, options.allow_drop)

    progress.stage(f"writing {out}")
    entries = {}
    members = {}
    for modality, r in results.items():
        info = describe(r.tflite)
        name = f"{modality}.tflite"
        members[name] = r.tflite
        entries[modality] = bundle_mod.ModelEntry(
            file=name,
            input_shape=list(info.inputs[0].shape),
            input_dtype=info.inputs[0].dtype,
            output_shape=list(info.outputs[0].shape),
            output_dtype=info.outputs[0].dtype,
            params=r.params,
            output=r.output,
        )
    accuracy = bundle_mod.Accuracy(
        split="test",
        keras={name: round(c.keras_accuracy, 6) for name, c in checks.items()},
        tflite={name: round(c.tflite_accuracy, 6) for name, c in checks.items()},
        agreement={name: round(c.agreement, 6) for name, c in checks.items()},
        samples={name: c.samples for name, c in checks.items()},
        keras_pruned=(
            {m: r.keras_pruned_accuracy for m, r in results.items()} if options.pruning else {}
        ),
    )
    sparsity = None
    if options.pruning:
        sparsity = {
            "target": 0.5 if options.structured else options.prune,
            "structured": options.structured,
            **{m: r.sparsity for m, r in results.items()},
        }
    frontend = None
    if frontend_models and "audio" in entries:
        from edgeav.speech_embedding import ORIGIN  # noqa: PLC0415

        names = {role: f"frontend_{role}.tflite" for role in frontend_models}
        members.update({names[role]: data for role, data in frontend_models.items()})
        frontend = {"models": names, "origin": dict(ORIGIN)}
    manifest = bundle_mod.Manifest(
        classes=list(classes),
        image=entries.get("image"),
        audio=entries.get("audio"),
        image_spec=image_spec,
        feature_config=feature_config,
        fusion=fusion,
        quantization=options.quantize,
        sparsity=sparsity,
        accuracy=accuracy,
        **({"audio_input": audio_input} if audio_input is not None else {}),
        frontend=frontend,
        **({"calibration": calibration} if calibration is not None else {}),
    )
    path = bundle_mod.write_bundle(out, manifest, members)
    return ConvertResult(
        out=path,
        quantization=options.quantize,
        models=results,
        fused=fused,
        bundle_size=path.stat().st_size,
        max_drop=options.drop_limit,
        over_limit=over,
        seconds=time.perf_counter() - t_start,
        ptq=ptq if options.qat else None,
        ptq_fused=ptq_fused,
    )


def _model_result(
    modality: str,
    tfl: bytes,
    model,
    keras_probs: np.ndarray,
    tflite_probs: np.ndarray,
    y_test: np.ndarray,
    output: str,
) -> ModelResult:
    """A converted model checked against the Keras original (``model``) on test."""
    from edgeav.tflite_schema import describe  # noqa: PLC0415

    return ModelResult(
        modality=modality,
        tflite=tfl,
        params=int(model.count_params()),
        comparison=compare(keras_probs, tflite_probs, y_test),
        output=output,
        tflite_zero_fraction=describe(tfl).weight_sparsity,
    )


def _latency_ms(tfl: bytes) -> float:
    """Median single-thread invoke time of ``tfl`` on LiteRT here (at most about 2 s)."""
    from edgeav.benchmarks.timer import time_tflite  # noqa: PLC0415

    return float(time_tflite(tfl, runs=50, warmup=5, threads=1, max_seconds=2.0)["p50_ms"])


def locate_run(run_dir: str | Path | None, data_dir: str | Path | None = None):
    """Load the run (default: newest under ``runs/``) and find its data set: ``(run, data)``.

    Cheap (no TensorFlow), so the command fails fast on a wrong folder.
    """
    from edgeav.run_folder import newest_run, read_run  # noqa: PLC0415

    run_path = Path(run_dir) if run_dir is not None else newest_run()
    run = read_run(run_path)
    data = Path(data_dir) if data_dir is not None else run.data_dir
    if data is None or not data.is_dir():
        raise EdgeAVError(
            f"the data set of run {run_path} ({data}) is not there; pass --data DATA_DIR"
        )
    return run, data


def check_output(out: str | Path) -> Path:
    """Fail before any work if ``out`` cannot be written (missing folder, a folder itself)."""
    out = Path(out)
    if out.is_dir():
        raise EdgeAVError(f"cannot write bundle {out}: it is a folder")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise EdgeAVError(f"cannot write bundle {out}: folder {parent} does not exist")
    if out.exists() and not out.is_file():  # e.g. /dev/full: never renamed over
        raise EdgeAVError(f"cannot write bundle {out}: it exists and is not a regular file")
    if not os.access(parent, os.W_OK):
        raise EdgeAVError(f"cannot write bundle {out}: folder {parent} is not writable")
    return out


def _training_augment(run) -> dict[str, Any]:
    """The image augmentation ``edgeav train`` used for ``run`` (its recorded ``shift`` and
    ``degrade``), for pruning's fine-tuning; empty when the run did not augment images."""
    from edgeav.augment import image_augmenter  # noqa: PLC0415

    config = run.train_config()
    shift, degrade = int(config.get("shift") or 0), float(config.get("degrade") or 0.0)
    if not (shift or degrade):
        return {}
    return {"image": image_augmenter(run.image_spec, shift=shift, degrade=degrade)}


def convert_run(
    run_dir: str | Path | None,
    out: str | Path,
    options: ConvertOptions | None = None,
    progress: Progress | None = None,
    *,
    data_dir: str | Path | None = None,
    located=None,
) -> ConvertResult:
    """Convert the run in ``run_dir`` (default: the newest under ``runs/``) into ``out``.

    ``located`` is :func:`locate_run`'s result when the caller already has it.
    """
    from edgeav.data.loader import load_dataset  # noqa: PLC0415
    from edgeav.fileio import cache_dir  # noqa: PLC0415

    options = options or ConvertOptions()
    options.check()
    check_output(out)
    run, data = located if located is not None else locate_run(run_dir, data_dir)
    run_path = run.path
    distribution = None
    if options.pruning or options.qat:  # fine-tuning: under the strategy, resolved first
        from edgeav.distribute import resolve  # noqa: PLC0415

        distribution = resolve(options.strategy)
    needs_train = options.quantize == "int8" or options.pruning
    splits = ["train", "test"] if needs_train else ["test"]
    frontend = None if run.audio_input.kind == "features" else run.frontend()
    ds = load_dataset(
        data,
        run.image_spec,
        run.feature_config,
        splits=splits,
        progress=True,
        frontend=frontend,
        cache_dir=cache_dir("inputs"),
    )
    if list(ds.classes) != list(run.classes):
        raise EdgeAVError(
            f"the classes of data set {data} ({len(ds.classes)}) differ from run {run_path}'s"
        )

    def arrays(name: str) -> SplitArrays:
        if name not in ds:
            return SplitArrays(None, None, None, None)
        s = ds[name]
        return SplitArrays(
            s.images, s.image_labels, s.audio_features, s.audio_labels, nothing=dict(s.nothing)
        )

    models = {"image": run.load_image_model(), "audio": run.load_audio_model()}
    # Multi-worker: every worker converts, only the chief's bundle is kept.
    with contextlib.nullcontext(out) if distribution is None else distribution.output(out) as dest:
        result = convert_models(
            models,
            classes=run.classes,
            image_spec=run.image_spec,
            feature_config=run.feature_config,
            fusion=run.fusion,
            train=arrays("train"),
            test=arrays("test"),
            out=dest,
            options=options,
            progress=progress,
            audio_input=run.audio_input,
            frontend_models=run.frontend_models,
            calibration=run.calibration,
            distribution=distribution,
            augment=_training_augment(run),
        )
    result.run_dir = Path(run_path).resolve()
    result.distribution = None if distribution is None else distribution.to_dict()
    return result
