"""Two-step training of the image and audio classifiers and their fusion (``edgeav train``).

For each modality (the seed's recipe):

1. **cross-entropy**: encoder + softmax head (Adam);
2. **triplet**: the encoder is fine-tuned with the semi-hard triplet loss
   (:mod:`edgeav.triplet`) on its L2-normalised ``embedding`` layer, then the ``head`` is refit on
   the frozen embeddings with cross-entropy.

The image model is a zoo variant (:func:`edgeav.models.registry.build_variant`, default
``resnet-sep-tiny``; its input by the data's style, :data:`IMAGE_INPUTS`: for camera frames the
digit found on its sheet and laid out like MNIST, 32x32 grey) trained on augmented images each
epoch (:func:`edgeav.augment.image_augmenter`: digit layouts turned, slanted, bent and given
other pen widths, whole images shifted; a fraction with cutout and Gaussian noise). The audio model is the zoo's ``audio-mlp`` over
:func:`edgeav.features.extract` vectors (mean, standard deviation and maximum over frames),
its ``Normalization`` layer set to the training features' statistics; extra training vectors
are computed beforehand from the training clips with random speed, background noise and gain
(both augmentations: :mod:`edgeav.augment`).

After each step both models are evaluated on ``val``, ``test`` and ``test-noisy`` (when present),
alone and fused (:mod:`edgeav.fusion`, weights fit on ``val``; images and clips paired by class
with :func:`edgeav.data.loader.paired_indices`). The run folder is written atomically by
:func:`edgeav.run_folder.write_run`.

TensorFlow is imported inside functions only (:mod:`edgeav.tf`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.augment import Augment, augmented_audio_features, augmented_epochs, image_augmenter
from edgeav.calibration import (
    KEEP_CORRECT,
    USED_SETS,
    Calibration,
    expected_calibration_error,
    fit_temperature,
    fit_threshold,
    fuse_rows,
    fuse_tempered,
    scale,
    used_key,
)
from edgeav.candidates import first, judged
from edgeav.errors import EdgeAVError
from edgeav.fusion import FusionWeights, fit_weights
from edgeav.parallel import in_background
from edgeav.preprocess import ImageSpec

DEFAULT_IMAGE_MODEL = "resnet-sep-tiny"
#: The audio models (:data:`edgeav.models.registry.AUDIO_INPUTS`), the default first.
AUDIO_MODELS = ("audio-hybrid", "audio-embed", "audio-dscnn", "audio-mlp")
EVAL_SPLITS = ("val", "test", "test-noisy", "test-unseen")
#: The window of the audio models that read a sequence (a word is 0.3-0.9 s; a window that
#: holds one whole wherever it starts in a live stream of overlapping windows).
SEQUENCE_WINDOW_SECONDS = 1.5
#: Their level normalisation (:func:`edgeav.runtime.frontend.normalize_level`).
TARGET_DBFS = -20.0
#: Per audio model: cross-entropy epochs and augmented copies of each training clip. The MLP
#: reads cheap feature vectors; the sequence models' inputs cost more to compute and to learn
#: from, and each augmented copy is also a new placement of the word in the window.
AUDIO_DEFAULTS = {
    "audio-mlp": {"audio_epochs": 40, "audio_augment": 3},
    "audio-embed": {"audio_epochs": 30, "audio_augment": 2},
    "audio-hybrid": {"audio_epochs": 30, "audio_augment": 2},
    "audio-dscnn": {"audio_epochs": 15, "audio_augment": 2},
}
STEPS = ("step1", "step2")
#: Priority (Unix nice) of the worker processes that augment the audio while the image model
#: trains: the training's own threads come first.
BACKGROUND_NICENESS = 10
#: A modality's minimum confidence (below it, it is left out of the fusion) lets through at most
#: ``1 - MIN_CONFIDENCE_QUANTILE`` of its val nothing-inputs, and turns away at most
#: ``1 - MIN_CONFIDENCE_KEEP`` of the val examples it reads correctly.
MIN_CONFIDENCE_QUANTILE = 0.90
MIN_CONFIDENCE_KEEP = 0.97
#: The image model's input by the data set's image style (``dataset.json``'s ``style``; a folder
#: without one counts as ``mnist``). In camera scenes the digit is found on its sheet and laid out
#: like MNIST, grey, 32x32 (:mod:`edgeav.locate`): every writer's digit then arrives at the same
#: size and place, which reads other people's handwriting far better than the whole frame does
#: (and costs a thirtieth of a 96x96 frame's work). MNIST-framed digits are centred and fill the
#: crop, and the default variant reads them best at 48x48.
IMAGE_INPUTS = {
    "camera": {"size": 32, "channels": 1, "crop": "digit"},
    "mnist": {"size": 48, "channels": 3, "crop": "center"},
}
#: Step-1 image epochs by style.
IMAGE_EPOCHS = {"camera": 25, "mnist": 15}


@dataclass
class TrainConfig:
    """Everything ``edgeav train`` can set (the CLI's defaults are these)."""

    image_model: str = DEFAULT_IMAGE_MODEL
    audio_model: str = AUDIO_MODELS[0]
    input_size: int | None = None  # None: by the data's style (IMAGE_INPUTS)
    channels: int | None = None
    epochs: int | None = None  # step 1, image (None: by the data's style, IMAGE_EPOCHS)
    audio_epochs: int | None = None  # step 1, audio (default per model: AUDIO_DEFAULTS)
    triplet_epochs: int = 3  # step 2, image
    # step 2, audio: on av-digits it has never raised the audio-embed head's val accuracy (the
    # step-1 model is kept), so a few epochs to find out, as the image's
    audio_triplet_epochs: int = 3
    head_epochs: int = 20  # step 2, head refit on frozen embeddings (both modalities)
    batch_size: int = 64
    triplet_batch_size: int = 128
    margin: float = 0.5
    learning_rate: float = 3e-3  # step 1, image (cosine decay to 5 %)
    audio_learning_rate: float = 1e-3  # step 1, audio
    triplet_learning_rate: float = 1e-4
    head_learning_rate: float = 3e-3
    shift: int = 3  # random image shift in pixels (each direction)
    degrade: float = 0.4  # fraction of training images given cutout + noise each epoch
    audio_augment: int | None = None  # augmented copies of each training clip (AUDIO_DEFAULTS)
    # Statistics of the audio features over frames. mean+std+max (561 values) generalises to
    # unseen voices better than the seed's mean alone (187 values; README, measured results).
    feature_statistics: tuple[str, ...] = ("mean", "std", "max")
    audio_hidden: tuple[int, ...] = (256, 128)
    audio_embedding_dim: int = 64
    audio_dropout: float = 0.3
    seed: int = 0
    #: tf.distribute strategy (:mod:`edgeav.distribute`); batch sizes above are per replica.
    strategy: str = "auto"
    #: A run folder whose trained audio model (of the same ``audio_model``) is reused as it is,
    #: not trained again; only the image model is trained and the fusion refit. ``edgeav
    #: compare`` trains one audio model this way for every image variant.
    audio_from: str | None = None

    def __post_init__(self) -> None:
        defaults = AUDIO_DEFAULTS.get(self.audio_model, AUDIO_DEFAULTS["audio-mlp"])
        if self.audio_epochs is None:
            self.audio_epochs = defaults["audio_epochs"]
        if self.audio_augment is None:
            self.audio_augment = defaults["audio_augment"]

    def check(self) -> None:
        positive = {
            "epochs": 1 if self.epochs is None else self.epochs,
            "audio_epochs": self.audio_epochs,
            "batch_size": self.batch_size,
            "triplet_batch_size": self.triplet_batch_size,
        }
        for name, value in positive.items():
            if value < 1:
                raise EdgeAVError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        for name in (
            "triplet_epochs",
            "audio_triplet_epochs",
            "head_epochs",
            "shift",
            "audio_augment",
        ):
            if getattr(self, name) < 0:
                raise EdgeAVError(
                    f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}"
                )
        if not 0.0 <= self.degrade <= 1.0:
            raise EdgeAVError(f"degrade must be between 0 and 1, got {self.degrade}")
        if not self.margin > 0:
            raise EdgeAVError(f"--margin must be positive, got {self.margin}")
        if self.input_size is not None and self.input_size < 32:
            raise EdgeAVError(f"--input-size must be at least 32, got {self.input_size}")
        if self.audio_model not in AUDIO_MODELS:
            raise EdgeAVError(
                f"unknown audio model {self.audio_model!r}; choose one of {', '.join(AUDIO_MODELS)}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["audio_hidden"] = list(self.audio_hidden)
        d["feature_statistics"] = list(self.feature_statistics)
        return d


# --- progress -----------------------------------------------------------------------------------


class _Progress:
    """A rich progress display on stderr: one bar per training phase, reset every epoch."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console  # noqa: PLC0415
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.enabled = enabled
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not enabled,
        )

    def __enter__(self) -> _Progress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def log(self, message: str) -> None:
        if self.enabled:
            self.progress.console.print(message, highlight=False)

    def phase(self, keras, name: str, epochs: int, steps: int) -> _Phase:
        """A bar for one training phase of ``epochs`` epochs of ``steps`` batches."""
        task = self.progress.add_task(name, total=steps, info="")
        return _Phase(self, keras, name, task, epochs, steps)


class _Phase:
    def __init__(self, bar: _Progress, keras, name: str, task, epochs: int, steps: int) -> None:
        self.bar, self.keras, self.name, self.task = bar, keras, name, task
        self.epochs, self.steps = epochs, steps

    def callback(self, first_epoch: int = 0):
        """A Keras callback that drives the bar; ``first_epoch`` for one-epoch ``fit`` calls."""
        phase = self

        class _Callback(self.keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                phase.bar.progress.reset(
                    phase.task,
                    total=phase.steps,
                    description=f"{phase.name} {first_epoch + epoch + 1}/{phase.epochs}",
                    info="",
                )

            def on_train_batch_end(self, batch, logs=None):
                phase.bar.progress.update(phase.task, completed=batch + 1, info=_fmt(logs))

            def on_epoch_end(self, epoch, logs=None):
                if not phase.bar.console.is_terminal:  # no live bars: one line per epoch
                    done = first_epoch + epoch + 1
                    phase.bar.log(f"{phase.name} {done}/{phase.epochs}: {_fmt(logs)}")
                if first_epoch + epoch + 1 == phase.epochs:
                    phase.bar.progress.update(phase.task, info=_fmt(logs))
                    phase.bar.progress.stop_task(phase.task)

        return _Callback()


def _fmt(logs: dict[str, float] | None) -> str:
    return "  ".join(f"{k} {v:.3f}" for k, v in (logs or {}).items())


# --- training -----------------------------------------------------------------------------------


@dataclass
class _Modality:
    name: str
    model: Any
    x_train: np.ndarray
    y_train: np.ndarray
    x_eval: dict[str, np.ndarray]  # split -> inputs
    y_eval: dict[str, np.ndarray]
    epochs: int
    triplet_epochs: int
    augment: Augment | None = None
    #: Training inputs that show or say nothing (the data set's ``none`` folder): trained
    #: towards the uniform distribution, so the model is unsure on them (outlier exposure,
    #: Hendrycks et al. 2019). ``nothing_eval``: the same per evaluation split.
    x_nothing: np.ndarray | None = None
    nothing_eval: dict[str, np.ndarray] = field(default_factory=dict)

    def fit_arrays(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        """``(x, targets, loss)``: class labels alone (sparse cross-entropy), or with the
        nothing-inputs appended and every target a distribution (theirs uniform)."""
        from edgeav.converters.finetune import Recipe  # noqa: PLC0415

        x, targets = Recipe(self.x_nothing).arrays(x, y, int(self.model.output_shape[-1]))
        sparse = targets.ndim == 1
        return (
            x,
            targets,
            "sparse_categorical_crossentropy" if sparse else "categorical_crossentropy",
        )


def _found_digits(
    images: np.ndarray, labels: np.ndarray, spec: ImageSpec
) -> tuple[np.ndarray, np.ndarray]:
    """The training inputs (each image's first candidate, :mod:`edgeav.candidates`) in which a
    digit was found (``crop="digit"``: an all-black layout means none was; taught as that digit
    it would contradict the nothing-inputs), or all."""
    images = first(images)
    if spec.crop != "digit" or not len(images):
        return images, labels
    found = images.reshape(len(images), -1).max(axis=1) > spec.offset
    return images[found], labels[found]


def _steps(n: int, batch: int) -> int:
    return max(1, -(-n // batch))


def _fit_classifier(keras, mod: _Modality, cfg: TrainConfig, bar: _Progress, rng) -> None:
    """Step 1: encoder + head with cross-entropy (Adam, cosine learning-rate decay)."""
    model = mod.model
    x_all, targets, loss = mod.fit_arrays(mod.x_train, mod.y_train)
    n = len(targets)
    total_steps = _steps(n, cfg.batch_size) * mod.epochs
    rate = cfg.learning_rate if mod.name == "image" else cfg.audio_learning_rate
    schedule = keras.optimizers.schedules.CosineDecay(rate, total_steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=["accuracy"])
    phase = f"{mod.name}: cross-entropy"
    bar_phase = bar.phase(keras, phase, mod.epochs, _steps(n, cfg.batch_size))
    if mod.augment is None:
        model.fit(
            x_all,
            targets,
            batch_size=cfg.batch_size,
            epochs=mod.epochs,
            shuffle=True,
            verbose=0,
            callbacks=[bar_phase.callback()],
        )
        return
    for epoch, x in enumerate(augmented_epochs(mod.augment, x_all, rng, mod.epochs)):
        cb = bar_phase.callback(first_epoch=epoch)
        model.fit(x, targets, batch_size=cfg.batch_size, epochs=1, verbose=0, callbacks=[cb])


def _fit_triplet(keras, mod: _Modality, cfg: TrainConfig, bar: _Progress, rng) -> None:
    """Step 2: fine-tune the encoder with the triplet loss, then refit the head."""
    from edgeav.triplet import make_triplet_loss  # noqa: PLC0415

    model = mod.model
    embedding = model.get_layer("embedding")
    head = model.get_layer("head")
    encoder = keras.Model(model.inputs, embedding.output, name=f"{mod.name}_encoder")
    n = len(mod.y_train)
    if mod.triplet_epochs > 0:
        encoder.compile(
            optimizer=keras.optimizers.Adam(cfg.triplet_learning_rate),
            loss=make_triplet_loss(cfg.margin),
        )
        steps = _steps(n, cfg.triplet_batch_size)
        bar_phase = bar.phase(keras, f"{mod.name}: triplet", mod.triplet_epochs, steps)
        for epoch in range(mod.triplet_epochs):
            cb = bar_phase.callback(first_epoch=epoch)
            x = mod.augment(mod.x_train, rng) if mod.augment else mod.x_train
            # Shuffle here so every batch mixes classes (the loss mines within a batch).
            order = rng.permutation(n)
            encoder.fit(
                x[order],
                mod.y_train[order],
                batch_size=cfg.triplet_batch_size,
                epochs=1,
                shuffle=False,
                verbose=0,
                callbacks=[cb],
            )
    if cfg.head_epochs > 0:
        x = mod.x_train
        if mod.augment is not None:
            x = np.concatenate([x, mod.augment(mod.x_train, rng)])
        y = np.concatenate([mod.y_train] * (len(x) // n))
        x, y, loss = mod.fit_arrays(x, y)
        emb = encoder.predict(x, batch_size=256, verbose=0)
        inp = keras.Input(shape=emb.shape[1:], name=f"{mod.name}_embedding_in")
        head_model = keras.Model(inp, head(inp), name=f"{mod.name}_head")
        head_model.compile(
            optimizer=keras.optimizers.Adam(cfg.head_learning_rate), loss=loss, metrics=["accuracy"]
        )
        steps = _steps(len(y), cfg.batch_size)
        cb = bar.phase(keras, f"{mod.name}: head refit", cfg.head_epochs, steps).callback()
        head_model.fit(
            emb, y, batch_size=cfg.batch_size, epochs=cfg.head_epochs, verbose=0, callbacks=[cb]
        )


def _keep_step2(
    trained: tuple[_Modality, ...],
    step1_weights: dict[str, list[np.ndarray]],
    results: dict[str, Any],
    log: Callable[[str], None],
) -> dict[str, bool]:
    """Model selection on val: a modality whose val accuracy step 2 lowered gets its step-1
    weights back (the triplet step does not help every encoder on every data set). Returns
    ``{modality: step 2 kept}``."""
    kept = {}
    val1, val2 = results["step1"]["accuracy"]["val"], results["step2"]["accuracy"]["val"]
    for mod in trained:
        kept[mod.name] = not val2[mod.name] < val1[mod.name]
        if not kept[mod.name]:
            mod.model.set_weights(step1_weights[mod.name])
            log(
                f"{mod.name}: step 2 lowered val accuracy ({100 * val1[mod.name]:.1f} -> "
                f"{100 * val2[mod.name]:.1f}); the step-1 model is kept"
            )
    return kept


def _predict(model, x: np.ndarray) -> np.ndarray:
    """The model's probabilities; for images read as several candidates, the most confident
    candidate's (:mod:`edgeav.candidates`), as the runtime reads them."""
    return judged(lambda batch: model.predict(batch, batch_size=256, verbose=0), x)


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=1) == labels)) if len(labels) else float("nan")


def _evaluate(
    image: _Modality, audio: _Modality, seed: int
) -> tuple[FusionWeights, Calibration, dict[str, Any]]:
    """Calibrate and fuse on val; accuracy and calibration error per split.

    On the validation split (voices and writers never heard or seen in training): each
    modality's temperature, then the fusion weights on the tempered probabilities, then the
    thresholds (:func:`_thresholds`). Every split is then scored as the runtime decides: tempered
    probabilities, an unsure modality left out per example, log-linear fusion.
    """
    from edgeav.data.loader import paired_indices  # noqa: PLC0415

    mods = {m.name: m for m in (image, audio)}
    raw = {m.name: {s: _predict(m.model, x) for s, x in m.x_eval.items()} for m in mods.values()}
    temperature = {
        name: fit_temperature(raw[name]["val"], m.y_eval["val"]) for name, m in mods.items()
    }
    tempered = {
        name: {s: scale(p, temperature[name]) for s, p in raw[name].items()} for name in mods
    }

    def pairs(split: str, probs=tempered):
        ii, ai = paired_indices(image.y_eval[split], audio.y_eval[split], seed=seed)
        return probs["image"][split][ii], probs["audio"][split][ai], image.y_eval[split][ii]

    pi, pa, y = pairs("val")
    weights = fit_weights(pi, pa, y)
    nothing = {
        name: {
            s: scale(_predict(m.model, x), temperature[name])
            for s, x in m.nothing_eval.items()
            if x is not None and len(x)
        }
        for name, m in mods.items()
    }
    singles = {name: (tempered[name]["val"], m.y_eval["val"]) for name, m in mods.items()}
    calibration = _thresholds(
        temperature, weights, (pi, pa, y), singles, {n: v.get("val") for n, v in nothing.items()}
    )
    out: dict[str, Any] = {
        "fusion": weights.to_dict(),
        "calibration": calibration.to_dict(),
        "accuracy": {},
        "ece": {},
        "nothing_named": {},
    }
    for split in image.x_eval:
        pi, pa, y = pairs(split)
        fused = fuse_rows(pi, pa, weights, calibration)
        out["accuracy"][split] = {
            "image": _accuracy(tempered["image"][split], image.y_eval[split]),
            "audio": _accuracy(tempered["audio"][split], audio.y_eval[split]),
            "fused": _accuracy(fused, y),
            "pairs": int(len(y)),
        }
        out["ece"][split] = {
            name: {
                "before": round(expected_calibration_error(raw[name][split], m.y_eval[split]), 4),
                "after": round(
                    expected_calibration_error(tempered[name][split], m.y_eval[split]), 4
                ),
            }
            for name, m in mods.items()
        }
        named = _nothing_named(
            nothing["image"].get(split), nothing["audio"].get(split), weights, calibration
        )
        if named is not None:
            out["nothing_named"][split] = named
    return weights, calibration, out


def _decided(
    cases: list[dict[str, np.ndarray]], weights: FusionWeights, calibration: Calibration
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each case (modality -> tempered probabilities) decided as the runtime decides a tick:
    the set of modalities used (:func:`~edgeav.calibration.used_key`; "" when every one was
    unsure), the decision's confidence (0 when unsure) and its class."""
    keys, conf, label = [], [], []
    for case in cases:
        fused, used, _ = fuse_tempered(case, calibration, weights)
        keys.append(used_key(used))
        conf.append(float(fused.max()) if used else 0.0)
        label.append(int(fused.argmax()))
    return np.asarray(keys, dtype=object), np.asarray(conf), np.asarray(label)


def _nothing_cases(
    ni: np.ndarray | None, na: np.ndarray | None, weights: FusionWeights, calibration: Calibration
) -> tuple[np.ndarray, np.ndarray]:
    """(used set, confidence) of each of val's nothing-cases, decided as the runtime decides:
    empty frames in silence, noise with no camera, and empty frames with noise."""
    cases: list[dict[str, np.ndarray]] = []
    if ni is not None:
        cases += [{"image": p} for p in ni]
    if na is not None:
        cases += [{"audio": p} for p in na]
    if ni is not None and na is not None:
        cases += [{"image": p, "audio": na[k % len(na)]} for k, p in enumerate(ni)]
    keys, conf, _ = _decided(cases, weights, calibration)
    return keys, conf


def _thresholds(
    temperature: dict[str, float],
    weights: FusionWeights,
    val: tuple[np.ndarray, np.ndarray, np.ndarray],
    singles: dict[str, tuple[np.ndarray, np.ndarray]],
    nothing: dict[str, np.ndarray | None],
) -> Calibration:
    """Per-modality minimum confidences, then a decision threshold per set of modalities, from
    val.

    Each modality's minimum lets through at most 10 % of its nothing-inputs and turns away at
    most 3 % of the examples it classifies correctly. Then every decision is taken as the
    runtime takes it -- the pairs ``val`` (image, audio, label) with both modalities, and each
    modality's examples alone (``singles``: modality -> probabilities, labels), as with no
    camera or in silence -- and grouped by the modalities it used. A group's threshold lets
    through at most 1 % of the nothing-cases (:func:`_nothing_cases`) decided with the same
    modalities (:data:`~edgeav.calibration.NOTHING_QUANTILE`) unless that turns away more than
    ``1 - KEEP_CORRECT`` of the group's correct decisions
    (:data:`~edgeav.calibration.KEEP_CORRECT`). A modality alone that no nothing-case reached
    names whatever it decides (threshold 0: its minimum confidence already keeps its nothing-inputs
    out); both together, when no nothing-case reached them, take the lower of the two single
    thresholds (two modalities that agree need no more confidence than either alone).
    """
    pi, pa, y = val
    minimum = {}
    for name, p in (("image", pi), ("audio", pa)):
        correct = p.max(axis=1)[p.argmax(axis=1) == y]
        none = nothing.get(name)
        minimum[name] = (
            fit_threshold(
                none.max(axis=1),
                correct,
                quantile=MIN_CONFIDENCE_QUANTILE,
                keep=MIN_CONFIDENCE_KEEP,
            )
            if none is not None
            else 0.0
        )
    cal = Calibration(temperature=temperature, min_confidence=minimum)
    cases = [{"image": pi[k], "audio": pa[k]} for k in range(len(y))]
    labels = [y]
    for name, (p, labelled) in singles.items():
        cases += [{name: row} for row in p]
        labels.append(labelled)
    keys, conf, label = _decided(cases, weights, cal)
    right = label == np.concatenate(labels)
    none_keys, none_conf = _nothing_cases(nothing.get("image"), nothing.get("audio"), weights, cal)
    threshold = {
        key: fit_threshold(
            none_conf[none_keys == key], conf[right & (keys == key)], keep=KEEP_CORRECT
        )
        for key in USED_SETS
    }
    if not np.any(none_keys == "image+audio"):
        threshold["image+audio"] = min(threshold["image"], threshold["audio"])
    return Calibration(temperature=temperature, min_confidence=minimum, threshold=threshold)


def _nothing_named(
    ni: np.ndarray | None, na: np.ndarray | None, weights: FusionWeights, calibration: Calibration
) -> float | None:
    """Share of a split's nothing-cases (:func:`_nothing_cases`) that would still name a label
    (None: it has none)."""
    if ni is None and na is None:
        return None
    keys, conf = _nothing_cases(ni, na, weights, calibration)
    named = [bool(k) and c >= calibration.threshold[k] for k, c in zip(keys, conf, strict=True)]
    return round(float(np.mean(named)), 4)


def _build_audio_model(classes: int, cfg: TrainConfig, train_x: np.ndarray):
    """The zoo's audio model for ``cfg.audio_model``, its ``standardize`` layer (if it has one)
    set to the training inputs' statistics (over their last axis; ``audio-hybrid``: see
    :func:`_hybrid_stats`)."""
    from edgeav.models.registry import build_variant  # noqa: PLC0415

    shape = tuple(train_x.shape[1:])
    common = {"classes": classes, "embedding_dim": cfg.audio_embedding_dim}
    common["dropout"] = cfg.audio_dropout
    if cfg.audio_model == "audio-dscnn":
        return build_variant("audio-dscnn", input_shape=shape, **common)
    flat = train_x.reshape(-1, shape[-1])
    stats = {"mean": flat.mean(axis=0), "variance": flat.var(axis=0)}
    if cfg.audio_model == "audio-embed":
        return build_variant("audio-embed", input_shape=shape, **common, **stats)
    if cfg.audio_model == "audio-hybrid":
        feature_dim = _feature_config(cfg).dim
        return build_variant(
            "audio-hybrid",
            input_size=shape[0],
            feature_dim=feature_dim,
            hidden=tuple(cfg.audio_hidden),
            **common,
            **_hybrid_stats(train_x, feature_dim),
        )
    return build_variant(
        "audio-mlp", input_size=shape[0], hidden=tuple(cfg.audio_hidden), **common, **stats
    )


def _feature_config(cfg: TrainConfig, **window: Any):
    """The spectral statistics' :class:`~edgeav.features.FeatureConfig` (``cfg``'s statistics)."""
    from edgeav.features import FeatureConfig  # noqa: PLC0415

    try:
        return FeatureConfig(statistics=tuple(cfg.feature_statistics), **window)
    except ValueError as exc:
        raise EdgeAVError(f"bad feature statistics {cfg.feature_statistics!r}: {exc}") from exc


def _hybrid_stats(train_x: np.ndarray, feature_dim: int) -> dict[str, np.ndarray]:
    """``audio-hybrid``'s standardisation: each of the 96 embedding values over every step of
    every window (the same for every step, so a word is read alike wherever it lies), each
    spectral statistic over the windows."""
    from edgeav.runtime.frontend import EMBEDDING_DIM  # noqa: PLC0415

    sequence = train_x.shape[1] - feature_dim
    emb = train_x[:, :sequence].reshape(-1, EMBEDDING_DIM)
    steps = sequence // EMBEDDING_DIM
    feats = train_x[:, sequence:]
    return {
        "mean": np.concatenate([np.tile(emb.mean(axis=0), steps), feats.mean(axis=0)]),
        "variance": np.concatenate([np.tile(emb.var(axis=0), steps), feats.var(axis=0)]),
    }


def audio_setup(cfg: TrainConfig) -> tuple[Any, Any, dict[str, bytes] | None]:
    """What the audio model of ``cfg`` reads: its :class:`~edgeav.runtime.frontend.AudioInput`,
    the feature config (window and rate) and, for ``audio-embed`` and ``audio-hybrid``, the
    front-end's models."""
    from edgeav.features import FeatureConfig  # noqa: PLC0415
    from edgeav.models.registry import AUDIO_INPUTS  # noqa: PLC0415
    from edgeav.runtime.frontend import EMBEDDING_KINDS, AudioInput  # noqa: PLC0415

    kind = AUDIO_INPUTS[cfg.audio_model]
    if kind == "features":  # the seed's recipe, unchanged: 1 s windows, no level normalisation
        return AudioInput(), _feature_config(cfg), None
    if kind == "embedding+features":
        config = _feature_config(cfg, window_seconds=SEQUENCE_WINDOW_SECONDS)
    else:
        config = FeatureConfig(window_seconds=SEQUENCE_WINDOW_SECONDS)
    models = None
    if kind in EMBEDDING_KINDS:
        from edgeav.speech_embedding import load_models  # noqa: PLC0415

        models = load_models()
    return AudioInput(kind=kind, target_dbfs=TARGET_DBFS), config, models


def _augmented_rows(items: list[tuple[Path, int, int, int]]) -> np.ndarray:
    """Front-end inputs of ``copies`` augmented versions of each ``(path, index, copies,
    seed)`` clip, in that order; each copy's randomness from ``(seed, index, copy)`` alone."""
    from edgeav.augment import augment_speech  # noqa: PLC0415
    from edgeav.data.loader import read_audio, worker_frontend  # noqa: PLC0415
    from edgeav.features import prepare_audio  # noqa: PLC0415

    frontend = worker_frontend()
    rate = frontend.config.sample_rate
    rows = []
    for path, i, copies, seed in items:
        y, sr = read_audio(path)
        clip = prepare_audio(y, frontend.config, sr=sr).astype(np.float32)
        for k in range(copies):
            rng = np.random.default_rng([seed, 104729, i, k])
            rows.append(frontend(augment_speech(clip, rate, rng, n=frontend.window)))
    return np.stack(rows).astype(np.float32, copy=False)


def augmented_frontend_inputs(
    paths: list[Path],
    labels: np.ndarray,
    frontend: Any,
    copies: int,
    seed: int,
    cache: Path | None,
    *,
    niceness: int = 0,
    stop: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Front-end inputs of ``copies`` augmented versions of each training clip, the word cut out
    of its silence and placed at a random offset in the window (:func:`edgeav.augment.
    augment_speech`), cached like the clips' own inputs. ``niceness`` and ``stop``: see
    :func:`edgeav.parallel.map_rows`."""
    import hashlib  # noqa: PLC0415

    from edgeav.augment import AUGMENT_VERSION  # noqa: PLC0415
    from edgeav.data.loader import add_files  # noqa: PLC0415
    from edgeav.fileio import write_bytes_atomic  # noqa: PLC0415

    out_labels = np.repeat(np.asarray(labels), copies)
    key = hashlib.sha256(f"{frontend.fingerprint()} {seed} {copies} {AUGMENT_VERSION}".encode())
    add_files(key, paths)
    cached = None if cache is None else cache / f"augmented-{key.hexdigest()[:32]}.npy"
    if cached is not None and cached.is_file():
        return np.load(cached), out_labels
    from edgeav.data.loader import use_frontend  # noqa: PLC0415
    from edgeav.parallel import map_rows  # noqa: PLC0415

    items = [(path, i, copies, seed) for i, path in enumerate(paths)]
    recipe = (frontend.spec, frontend.config, frontend.model_bytes)
    if items:
        x = map_rows(
            _augmented_rows,
            items,
            initializer=use_frontend,
            initargs=recipe,
            niceness=niceness,
            stop=stop,
        )
    else:
        x = np.empty((0, *frontend.shape), dtype=np.float32)
    if cached is not None:
        import io  # noqa: PLC0415

        buf = io.BytesIO()
        np.save(buf, x)
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(cached, buf.getvalue())
    return x, out_labels


def data_style(data_dir: Path) -> str:
    """The image style of a data set: ``dataset.json``'s ``style``, else ``"mnist"``."""
    import json  # noqa: PLC0415

    try:
        meta = json.loads((Path(data_dir) / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "mnist"
    style = meta.get("style") if isinstance(meta, dict) else None
    return style if style in IMAGE_INPUTS else "mnist"


def image_spec_for(data_dir: Path, cfg: TrainConfig) -> ImageSpec:
    """The image input for ``data_dir``: :data:`IMAGE_INPUTS` by its style, with ``cfg``'s
    ``input_size`` and ``channels`` where given."""
    spec = dict(IMAGE_INPUTS[data_style(data_dir)])
    if cfg.input_size is not None:
        spec["size"] = cfg.input_size
    if cfg.channels is not None:
        spec["channels"] = cfg.channels
    return ImageSpec(**spec)


def train(
    data_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train both modalities in two steps, fit the fusion, write the run folder ``out``.

    With ``config.audio_from`` the audio model of that run is reused as it is (not trained
    again) and only the image model is trained. Returns the metrics (also written to
    ``out/metrics.json``).
    """
    from edgeav.data.loader import load_dataset  # noqa: PLC0415
    from edgeav.fileio import atomic_dir, cache_dir  # noqa: PLC0415
    from edgeav.run_folder import write_run  # noqa: PLC0415

    cfg = config or TrainConfig()
    cfg.check()
    data_path = Path(data_dir)
    if not data_path.exists():
        raise EdgeAVError(f"data folder {data_path} does not exist")
    if not data_path.is_dir():
        raise EdgeAVError(f"data folder {data_path} is not a folder")
    out = Path(out)
    if out.exists() and not overwrite:
        raise EdgeAVError(f"{out} already exists; choose another --out or remove it")

    from edgeav.models.registry import VARIANTS, build_variant  # noqa: PLC0415

    images = [name for name, v in VARIANTS.items() if v.modality == "image"]
    if cfg.image_model not in images:
        raise EdgeAVError(
            f"unknown image model {cfg.image_model!r}; choose one of {', '.join(images)} "
            f"(see `edgeav zoo`)"
        )

    from edgeav.distribute import resolve  # noqa: PLC0415

    dist = resolve(cfg.strategy)  # before TensorFlow's first operation (multi-worker needs it)
    # fit() takes global batches: the configured (per-replica) batch on every replica.
    fit_cfg = replace(
        cfg,
        batch_size=dist.global_batch(cfg.batch_size),
        triplet_batch_size=dist.global_batch(cfg.triplet_batch_size),
    )
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    image_spec = image_spec_for(data_path, cfg)
    if cfg.epochs is None:
        cfg.epochs = IMAGE_EPOCHS[data_style(data_path)]
    audio_input, feature_config, frontend_models = audio_setup(cfg)
    frontend = None
    if audio_input.kind != "features":
        from edgeav.runtime.frontend import FrontEnd  # noqa: PLC0415

        frontend = FrontEnd(audio_input, feature_config, frontend_models)
    inputs_cache = cache_dir("inputs")
    reused = _reused_audio_run(cfg)
    with (
        dist.output(out) as target,  # multi-worker: the chief writes `out`, others a temp dir
        _Progress(progress) as bar,
        atomic_dir(target, overwrite=overwrite) as tmp,
        dist.scope(),
        contextlib.ExitStack() as background,
    ):
        ds = load_dataset(
            data_path,
            image_spec,
            feature_config,
            progress=progress,
            frontend=frontend,
            cache_dir=inputs_cache,
        )
        if ds.split_note:
            bar.log(f"note: {ds.split_note}")
        eval_splits = [s for s in EVAL_SPLITS if s in ds]
        timings["load"] = time.perf_counter() - t_start

        train_split = ds["train"]
        if reused is not None and list(reused.classes) != list(ds.classes):
            raise EdgeAVError(
                f"the classes of run {reused.path} differ from data set {data_path}'s; its "
                f"audio model cannot be reused"
            )
        augmenting = None
        if reused is None and cfg.audio_augment and frontend is not None:
            # the front-end inputs of the augmented clips, computed while the image model trains
            bar.log(
                f"audio: {cfg.audio_augment} augmented copies of each of the "
                f"{len(train_split.audio_paths)} training clips, prepared while the image "
                f"model trains"
            )
            augmenting = background.enter_context(
                in_background(
                    augmented_frontend_inputs,
                    train_split.audio_paths,
                    train_split.audio_labels,
                    frontend,
                    cfg.audio_augment,
                    cfg.seed,
                    inputs_cache,
                    niceness=BACKGROUND_NICENESS,
                )
            )

        from edgeav.tf import keras as _keras  # noqa: PLC0415

        keras = _keras()
        keras.utils.set_random_seed(cfg.seed)  # Python, NumPy and TensorFlow
        rng = np.random.default_rng(cfg.seed)
        classes = ds.classes

        image_model = build_variant(
            cfg.image_model,
            classes=len(classes),
            input_size=image_spec.size,
            channels=image_spec.channels,
        )
        image_x, image_y = _found_digits(train_split.images, train_split.image_labels, image_spec)
        if len(image_x) < len(train_split.images):
            bar.log(
                f"image: no digit found in {len(train_split.images) - len(image_x)} of "
                f"{len(train_split.images)} training frames; those are left out of training"
            )
        image = _Modality(
            "image",
            image_model,
            image_x,
            image_y,
            {s: ds[s].images for s in eval_splits},
            {s: ds[s].image_labels for s in eval_splits},
            cfg.epochs,
            cfg.triplet_epochs,
            augment=(
                image_augmenter(image_spec, shift=cfg.shift, degrade=cfg.degrade)
                if cfg.shift or cfg.degrade
                else None
            ),
            x_nothing=first(train_split.nothing.get("image")),
            nothing_eval={s: ds[s].nothing.get("image") for s in eval_splits},
        )
        t0 = time.perf_counter()
        _fit_classifier(keras, image, fit_cfg, bar, rng)
        timings["image_step1"] = time.perf_counter() - t0

        # what is left of the audio augmentation once the image model has trained
        t0 = time.perf_counter()
        shape = train_split.audio_features.shape[1:]
        aug_x, aug_y = np.zeros((0, *shape), np.float32), np.zeros(0, np.int64)
        if augmenting is not None:
            aug_x, aug_y = augmenting.result()
        elif reused is None and cfg.audio_augment:
            aug_x, aug_y = augmented_audio_features(
                train_split.audio_paths,
                train_split.audio_labels,
                feature_config,
                cfg.audio_augment,
                cfg.seed,
            )
        timings["audio_augment"] = time.perf_counter() - t0
        audio_train_x = np.concatenate([train_split.audio_features, aug_x])
        audio_train_y = np.concatenate([train_split.audio_labels, aug_y])
        if reused is not None:
            audio_model = reused.load_audio_model()
        else:
            # its initialisation from the seed alone, not from what the image's training drew
            keras.utils.set_random_seed(cfg.seed)
            audio_model = _build_audio_model(len(classes), cfg, audio_train_x)
        audio = _Modality(
            "audio",
            audio_model,
            audio_train_x,
            audio_train_y,
            {s: ds[s].audio_features for s in eval_splits},
            {s: ds[s].audio_labels for s in eval_splits},
            cfg.audio_epochs,
            cfg.audio_triplet_epochs,
            x_nothing=train_split.nothing.get("audio"),
            nothing_eval={s: ds[s].nothing.get("audio") for s in eval_splits},
        )

        results: dict[str, Any] = {}
        trained = (image,) if reused is not None else (image, audio)
        if reused is None:
            t0 = time.perf_counter()
            _fit_classifier(keras, audio, fit_cfg, bar, rng)
            timings["audio_step1"] = time.perf_counter() - t0
        _, _, results["step1"] = _evaluate(image, audio, cfg.seed)
        bar.log(_summary("after step 1", results["step1"]))
        step1_weights = {mod.name: mod.model.get_weights() for mod in trained}
        for mod in trained:
            t0 = time.perf_counter()
            _fit_triplet(keras, mod, fit_cfg, bar, rng)
            timings[f"{mod.name}_step2"] = time.perf_counter() - t0
        fusion, calibration, results["step2"] = _evaluate(image, audio, cfg.seed)
        bar.log(_summary("after step 2", results["step2"]))
        kept = _keep_step2(trained, step1_weights, results, bar.log)
        if not all(kept.values()):
            fusion, calibration, results["step2"] = _evaluate(image, audio, cfg.seed)
            bar.log(_summary("with the kept models", results["step2"]))

        for mod in (image, audio):
            mod.model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        timings["total"] = time.perf_counter() - t_start
        from edgeav.models.macs import count_params  # noqa: PLC0415

        metrics = {
            **results,
            "classes": classes,
            "counts": ds.counts(),
            "audio_augmented": int(len(aug_y)),
            "params": {"image": count_params(image_model), "audio": count_params(audio_model)},
            "audio_model": cfg.audio_model,
            "config": cfg.to_dict(),
            "step2_kept": kept,
            "seconds": {k: round(v, 2) for k, v in timings.items()},
            "split_note": ds.split_note,
            "distribution": dist.to_dict(),
        }
        write_run(
            tmp,
            models={"image": image_model, "audio": audio_model},
            classes=classes,
            data_dir=data_path,
            image_spec=image_spec,
            feature_config=feature_config,
            image_variant=cfg.image_model,
            fusion=fusion,
            accuracy={s: results[s]["accuracy"] for s in STEPS},
            metrics=metrics,
            audio_variant=cfg.audio_model,
            audio_input=audio_input,
            frontend_models=frontend_models,
            calibration=calibration,
            distribution=dist.to_dict(),
        )
    metrics["run_dir"] = str(out) if dist.chief else None
    return metrics


def _reused_audio_run(cfg: TrainConfig):
    """The run of ``cfg.audio_from`` (None without one), checked to hold ``cfg.audio_model``."""
    if cfg.audio_from is None:
        return None
    from edgeav.run_folder import read_run  # noqa: PLC0415

    run = read_run(cfg.audio_from)
    if run.audio_variant != cfg.audio_model:
        raise EdgeAVError(
            f"run {run.path} has audio model {run.audio_variant}, not {cfg.audio_model}; its "
            f"audio model cannot be reused"
        )
    return run


def _summary(title: str, result: dict[str, Any]) -> str:
    parts = []
    for split, acc in result["accuracy"].items():
        vals = ", ".join(f"{m} {100 * acc[m]:.1f}" for m in ("image", "audio", "fused"))
        parts.append(f"{split}: {vals}")
    return f"{title}: " + "; ".join(parts)
