"""``edgeav compare``: the seed's comparison table on your own data, and a variant for a budget.

For each image variant (and each audio model, when several are asked for) on one data set, with
one seed:

1. **train** with :func:`edgeav.train.train`. Each audio model is trained once, with the first
   image variant; the other variants reuse it as it is (``TrainConfig.audio_from``) and train
   only their image model and fusion, so the variants differ only in the image network.
2. **convert** with :func:`edgeav.converters.convert.convert_models` (``edgeav convert``'s
   code path; int8 by default), keeping every bundle even where it lost more accuracy than
   convert's limit allows (the row's ``over_limit`` says so).
3. **evaluate in LiteRT**: image and fused accuracy of the converted models on ``test`` and, when
   the data has it, ``test-unseen``, fused as the runtime fuses (the run's calibration and
   weights, images and clips paired by class).
4. **time** the bundle with :func:`edgeav.benchmarks.bundle_bench.bench_bundle` (what ``edgeav
   bench model.edgeav`` measures): p50 of the image model's invoke and of a whole pipeline tick
   (audio front-end, image preprocessing, both models, fusion) at ``threads``.

The budget (``budget_ms``) is on the **pipeline tick's p50**: measured here, or read from
``edgeav bench BUNDLE --json`` files measured on the device (:func:`device_latencies`). The
chosen variant is the one with the best fused accuracy on ``test`` among those that fit
(:func:`choose`). :func:`rejudge` judges a finished comparison again without training.

Every run folder and bundle is kept under the output folder::

    OUT/runs/<variant>/        the training run (``edgeav convert`` reads it)
    OUT/bundles/<variant>.edgeav
    OUT/compare.json           what :func:`compare` returns: the rows, the choice
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError

#: Identifies the JSON document ``edgeav compare --json`` prints and writes.
JSON_FORMAT = "edgeav-compare/1"

#: ``--fast``: 32x32 images, few epochs, no triplet step, one augmented copy of each clip.
FAST = {
    "input_size": 32,
    "epochs": 3,
    "audio_epochs": 8,
    "triplet_epochs": 0,
    "audio_triplet_epochs": 0,
    "head_epochs": 0,
    "audio_augment": 1,
}

#: The splits evaluated, when the data set has them.
SPLITS = ("test", "test-unseen")


@dataclass
class CompareConfig:
    """What ``edgeav compare`` was asked for."""

    image_models: tuple[str, ...]
    audio_models: tuple[str, ...] = ("audio-hybrid",)
    quantize: str = "int8"
    fast: bool = False
    seed: int = 0
    #: Step-1 image epochs and triplet epochs of both models (None: train's default or FAST's).
    epochs: int | None = None
    triplet_epochs: int | None = None
    threads: int = 1
    #: Timed pipeline ticks and model invokes per variant (after ``warmup`` untimed ones).
    runs: int = 50
    warmup: int = 5
    calibration_samples: int = 200
    budget_ms: float | None = None
    #: ``edgeav bench BUNDLE --json`` files measured on the device (see device_latencies).
    latency_from: tuple[Path, ...] = ()
    #: Training overrides for tests and experiments (TrainConfig field -> value).
    train_overrides: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Every option, before any training: names, numbers, the latency files."""
        from edgeav.converters.quantize import MODES  # noqa: PLC0415
        from edgeav.models.registry import VARIANTS  # noqa: PLC0415
        from edgeav.train import AUDIO_MODELS  # noqa: PLC0415

        images = [n for n, v in VARIANTS.items() if v.modality == "image"]
        if not self.image_models:
            raise EdgeAVError("--image-models is empty: name at least one (see `edgeav zoo`)")
        for name in self.image_models:
            if name not in images:
                raise EdgeAVError(
                    f"unknown image model {name!r}; choose from {', '.join(images)} "
                    f"(see `edgeav zoo`)"
                )
        if not self.audio_models:
            raise EdgeAVError("--audio-models is empty")
        for name in self.audio_models:
            if name not in AUDIO_MODELS:
                raise EdgeAVError(
                    f"unknown audio model {name!r}; choose from {', '.join(AUDIO_MODELS)}"
                )
        for what, names in (("image", self.image_models), ("audio", self.audio_models)):
            if len(set(names)) != len(names):
                raise EdgeAVError(f"--{what}-models names a model twice: {','.join(names)}")
        if self.quantize not in MODES:
            raise EdgeAVError(f"--quant must be one of {', '.join(MODES)}, got {self.quantize!r}")
        if self.threads < 1:
            raise EdgeAVError(f"--threads must be at least 1, got {self.threads}")
        if self.runs < 1:
            raise EdgeAVError(f"--runs must be at least 1, got {self.runs}")
        for name in ("epochs", "triplet_epochs"):
            value = getattr(self, name)
            if value is not None and value < (1 if name == "epochs" else 0):
                raise EdgeAVError(f"--{name.replace('_', '-')} is out of range: {value}")
        check_budget(self.budget_ms, self.latency_from)
        if self.latency_from:
            device_latencies(self.latency_from, self.variant_names(), self.threads)

    def variants(self) -> list[tuple[str, str, str]]:
        """``(name, image model, audio model)`` of every variant, in training order: the first
        image model with each audio model first (those train the audio models)."""
        several = len(self.audio_models) > 1
        out = []
        for audio in self.audio_models:
            for image in self.image_models:
                out.append((f"{image}+{audio}" if several else image, image, audio))
        return out

    def variant_names(self) -> list[str]:
        return [name for name, _, _ in self.variants()]

    def train_config(self, image: str, audio: str, audio_from: Path | None):
        """The :class:`edgeav.train.TrainConfig` of one variant."""
        from edgeav.train import TrainConfig  # noqa: PLC0415

        cfg = TrainConfig(image_model=image, audio_model=audio, seed=self.seed, strategy="one")
        settings = dict(FAST) if self.fast else {}
        if self.epochs is not None:
            settings["epochs"] = self.epochs
        if self.triplet_epochs is not None:
            settings["triplet_epochs"] = settings["audio_triplet_epochs"] = self.triplet_epochs
        settings.update(self.train_overrides)
        for key, value in settings.items():
            setattr(cfg, key, value)
        cfg.audio_from = None if audio_from is None else str(audio_from)
        cfg.check()
        return cfg


def check_budget(budget_ms: float | None, latency_from: Sequence[Path]) -> None:
    if budget_ms is not None and not budget_ms > 0:
        raise EdgeAVError(f"--budget-ms must be a positive number of ms, got {budget_ms}")
    if latency_from and budget_ms is None:
        raise EdgeAVError("--latency-from needs --budget-ms (it decides against the budget)")


# --- device latency -----------------------------------------------------------------------------


def device_latencies(
    paths: Sequence[Path], names: Sequence[str], threads: int
) -> dict[str, dict[str, Any]]:
    """Each variant's p50 latencies from ``edgeav bench BUNDLE --json`` files measured on the
    device: ``{variant: {"tick_ms", "image_ms", "file"}}``.

    A file belongs to the variant its bundle is named after (``bundles/<variant>.edgeav``, as
    this command writes them); its rows at ``threads`` are used: the ``fused`` row (a whole
    pipeline tick) and the ``image`` row. Every variant needs a file; a file that is missing,
    unreadable, not such a document, of another bundle or without rows at ``threads`` is a
    one-line :class:`EdgeAVError`.
    """
    from edgeav.benchmarks.report import JSON_FORMAT as BENCH_FORMAT  # noqa: PLC0415

    found: dict[str, dict[str, Any]] = {}
    for path in map(Path, paths):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise EdgeAVError(f"--latency-from {path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise EdgeAVError(f"--latency-from {path}: cannot read it ({reason})") from None
        except ValueError as exc:
            raise EdgeAVError(f"--latency-from {path}: not JSON ({exc})") from None
        if not (
            isinstance(doc, dict)
            and doc.get("format") == BENCH_FORMAT
            and doc.get("mode") == "bundle"
            and isinstance(doc.get("bundle"), str)
            and isinstance(doc.get("rows"), list)
        ):
            raise EdgeAVError(
                f"--latency-from {path}: not the output of `edgeav bench BUNDLE --json`"
            )
        name = Path(doc["bundle"]).stem
        if name not in names:
            raise EdgeAVError(
                f"--latency-from {path}: its bundle {Path(doc['bundle']).name} is none of the "
                f"variants ({', '.join(f'{n}.edgeav' for n in names)})"
            )
        rows = {
            r.get("model"): r
            for r in doc["rows"]
            if isinstance(r, dict) and r.get("threads") == threads
        }
        tick = _p50(rows.get("fused"))
        if tick is None:
            have = sorted({str(r.get("threads")) for r in doc["rows"] if isinstance(r, dict)})
            raise EdgeAVError(
                f"--latency-from {path}: no pipeline (fused) row at {threads} thread(s) "
                f"(it has threads {', '.join(have) or 'none'}; use --threads)"
            )
        found[name] = {"tick_ms": tick, "image_ms": _p50(rows.get("image")), "file": str(path)}
    missing = [n for n in names if n not in found]
    if missing:
        raise EdgeAVError(
            f"--latency-from has no file for {', '.join(missing)} (run `edgeav bench "
            f"{missing[0]}.edgeav --json` on the device for each variant)"
        )
    return found


def _p50(row: Any) -> float | None:
    value = row.get("p50_ms") if isinstance(row, dict) else None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


# --- the comparison -----------------------------------------------------------------------------


class _Console:
    """Section lines and the conversion bar on stderr (training shows its own bars)."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console  # noqa: PLC0415

        self.enabled = enabled
        self.console = Console(stderr=True)

    def section(self, text: str) -> None:
        if self.enabled:
            self.console.rule(text, align="left")

    def convert_bar(self, total: int):
        """A rich bar driven by :class:`edgeav.converters.convert.Progress` calls."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

        from edgeav.converters.convert import BarProgress  # noqa: PLC0415

        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not self.enabled,
        )
        task = bar.add_task("converting", total=total)
        return bar, task, BarProgress(bar, task)


def compare(
    data_dir: str | Path,
    out: str | Path,
    config: CompareConfig,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Train, convert, evaluate and time every variant of ``config`` on ``data_dir``; keep each
    run and bundle under ``out`` (which must not exist) and return the document ``--json``
    prints (also written to ``out/compare.json``): ``rows`` (one per variant), ``chosen`` (with
    a budget: the chosen variant's name, or None) and ``closest`` (the fastest, when none fits).
    """
    from edgeav.fileio import write_text_atomic  # noqa: PLC0415

    config.check()
    data = Path(data_dir)
    if not data.is_dir():
        raise EdgeAVError(f"data folder {data} does not exist or is not a folder")
    out = Path(out)
    if out.exists():
        raise EdgeAVError(f"{out} already exists; choose another --out or remove it")
    device = (
        device_latencies(config.latency_from, config.variant_names(), config.threads)
        if config.latency_from
        else None
    )
    show = _Console(progress)
    t_start = time.perf_counter()
    out.mkdir(parents=True)
    try:  # a comparison cut short leaves nothing behind (each run and bundle is atomic too)
        rows = _variant_rows(data, out, config, device, show, progress)
        doc = _document(data, out, config, rows, time.perf_counter() - t_start)
        write_text_atomic(out / "compare.json", json.dumps(doc, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return doc


def _variant_rows(
    data: Path,
    out: Path,
    config: CompareConfig,
    device: dict[str, dict[str, Any]] | None,
    show: _Console,
    progress: bool,
) -> list[dict[str, Any]]:
    """Train, convert, evaluate and time each variant in turn: one row each."""
    from edgeav.train import train  # noqa: PLC0415

    (out / "runs").mkdir()
    (out / "bundles").mkdir()
    audio_runs: dict[str, Path] = {}  # audio model -> the run that trained it
    arrays: dict[str, Any] = {}  # audio model -> its data set's splits
    audio_probs: dict[str, np.ndarray] = {}  # LiteRT audio predictions by model bytes + split
    rows = []
    variants = config.variants()
    for k, (name, image, audio) in enumerate(variants, 1):
        reuse = audio_runs.get(audio)
        note = f"reusing the audio model of {reuse.name}" if reuse else f"+ {audio}"
        show.section(f"[{k}/{len(variants)}] {name}: training ({note})")
        run_dir = out / "runs" / name
        t0 = time.perf_counter()
        metrics = train(data, run_dir, config.train_config(image, audio, reuse), progress=progress)
        train_s = time.perf_counter() - t0
        audio_runs.setdefault(audio, run_dir)
        show.section(f"[{k}/{len(variants)}] {name}: converting ({config.quantize})")
        row = _convert_and_evaluate(name, run_dir, out, config, arrays, audio_probs, show)
        row.update(
            image_model=image,
            audio_model=audio,
            audio_reused=reuse is not None,
            audio_params=metrics["params"]["audio"],
            train_seconds=round(train_s, 1),
        )
        if device is not None:
            row["device_image_p50_ms"] = device[name]["image_ms"]
            row["device_tick_p50_ms"] = device[name]["tick_ms"]
        row["budget_latency_ms"] = (
            row["device_tick_p50_ms"] if device is not None else row["tick_p50_ms"]
        )
        rows.append(row)
    return rows


def _convert_and_evaluate(
    name: str,
    run_dir: Path,
    out: Path,
    config: CompareConfig,
    arrays: dict[str, Any],
    audio_probs: dict[str, np.ndarray],
    show: _Console,
) -> dict[str, Any]:
    """Convert one run to ``OUT/bundles/<name>.edgeav``, score it in LiteRT, time it."""
    from edgeav.benchmarks.bundle_bench import bench_bundle  # noqa: PLC0415
    from edgeav.benchmarks.report import seed_metric  # noqa: PLC0415
    from edgeav.converters.convert import ConvertOptions, convert_models  # noqa: PLC0415
    from edgeav.models.macs import count_macs  # noqa: PLC0415
    from edgeav.run_folder import read_run  # noqa: PLC0415

    run = read_run(run_dir)
    if run.audio_variant not in arrays:
        arrays[run.audio_variant] = _load_splits(run)
    splits = arrays[run.audio_variant]
    models = {"image": run.load_image_model(), "audio": run.load_audio_model()}
    options = ConvertOptions(
        quantize=config.quantize,
        calibration_samples=config.calibration_samples,
        allow_drop=True,  # every variant is kept; the table shows what conversion cost
        seed=config.seed,
    )
    bundle = out / "bundles" / f"{name}.edgeav"
    bar, task, stages = show.convert_bar(options.stages())
    with bar:
        result = convert_models(
            models,
            classes=run.classes,
            image_spec=run.image_spec,
            feature_config=run.feature_config,
            fusion=run.fusion,
            train=splits["train"],
            test=splits["test"],
            out=bundle,
            options=options,
            progress=stages,
            audio_input=run.audio_input,
            frontend_models=run.frontend_models,
            calibration=run.calibration,
        )
        bar.update(task, completed=options.stages(), description=f"wrote {bundle}")
    image_r, audio_r = result.models["image"], result.models["audio"]
    params = image_r.params
    row: dict[str, Any] = {
        "variant": name,
        "params": params,
        "macs": count_macs(models["image"]),
        "image_bytes": image_r.size,
        "bundle_bytes": result.bundle_size,
        "over_limit": result.over_limit,
    }
    for split in SPLITS:
        if split not in splits:
            continue
        s = splits[split]
        acc = _litert_accuracy(run, image_r, audio_r, s, audio_probs, split)
        key = "unseen" if split == "test-unseen" else "test"
        row[f"{key}_image"] = acc["image"]
        row[f"{key}_audio"] = acc["audio"]
        row[f"{key}_fused"] = acc["fused"]
        row[f"{key}_metric"] = seed_metric(acc["fused"], params)
    show.section(f"timing {bundle.name} ({config.threads} thread(s))")
    bench = bench_bundle(
        bundle,
        runs=config.runs,
        warmup=config.warmup,
        threads=[config.threads],
        max_seconds=30.0,
        progress_console=show.console if show.enabled else None,
    )
    p50 = {r["model"]: r["p50_ms"] for r in bench["models"]}
    row["image_p50_ms"] = p50["image"]
    row["audio_p50_ms"] = p50["audio"]
    row["tick_p50_ms"] = p50["fused"]  # the pipeline tick (bundle_bench's fused row)
    row["run_dir"] = str(run_dir)
    row["bundle"] = str(bundle)
    return row


def _load_splits(run) -> dict[str, Any]:
    """The data set's train, test and (when present) test-unseen splits as the run reads them."""
    from edgeav.converters.convert import SplitArrays  # noqa: PLC0415
    from edgeav.data.loader import load_dataset, scan_dataset  # noqa: PLC0415
    from edgeav.fileio import cache_dir  # noqa: PLC0415

    data = run.data_dir
    present = scan_dataset(data).splits  # a folder without split folders: the loader splits it
    names = ["train", *(s for s in SPLITS if s in present)]
    ds = load_dataset(
        data,
        run.image_spec,
        run.feature_config,
        splits=names,
        progress=True,
        frontend=None if run.audio_input.kind == "features" else run.frontend(),
        cache_dir=cache_dir("inputs"),
    )
    return {
        s: SplitArrays(ds[s].images, ds[s].image_labels, ds[s].audio_features, ds[s].audio_labels)
        for s in names
    }


def _litert_accuracy(run, image_r, audio_r, s, audio_probs: dict, split: str) -> dict[str, float]:
    """Image, audio and fused accuracy of the converted models on one split, as the runtime
    decides (the run's calibration and fusion weights; images and clips paired by class)."""
    from edgeav.converters.validate import fused_probs, tflite_predict  # noqa: PLC0415
    from edgeav.data.loader import paired_indices  # noqa: PLC0415

    pi = tflite_predict(image_r.tflite, s.images, output=image_r.output)
    key = hashlib.sha256(audio_r.tflite).hexdigest() + split  # one audio model, many variants
    if key not in audio_probs:
        audio_probs[key] = tflite_predict(audio_r.tflite, s.audio, output=audio_r.output)
    pa = audio_probs[key]
    ii, ai = paired_indices(s.image_labels, s.audio_labels, seed=0)
    fused = fused_probs(pi[ii], pa[ai], run.fusion, run.calibration)

    def acc(p: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(np.argmax(p, axis=1) == np.asarray(y))) if len(y) else float("nan")

    return {
        "image": acc(pi, s.image_labels),
        "audio": acc(pa, s.audio_labels),
        "fused": acc(fused, np.asarray(s.image_labels)[ii]),
    }


def _document(
    data: Path, out: Path, config: CompareConfig, rows: list[dict], seconds: float
) -> dict[str, Any]:
    from edgeav.benchmarks.report import host_info  # noqa: PLC0415

    chosen, closest = choose(rows, config.budget_ms)
    return {
        "format": JSON_FORMAT,
        "host": host_info(),
        "data": str(data),
        "out": str(out),
        "quantization": config.quantize,
        "threads": config.threads,
        "fast": config.fast,
        "seed": config.seed,
        "latency": "device" if config.latency_from else "here",
        "budget_ms": config.budget_ms,
        "chosen": chosen,
        "closest": closest,
        "seconds": round(seconds, 1),
        "rows": rows,
    }


def rejudge(
    folder: str | Path,
    budget_ms: float | None,
    latency_from: Sequence[Path] = (),
    threads: int = 1,
) -> dict[str, Any]:
    """An earlier comparison (the ``--out`` folder of :func:`compare`) judged again, without
    training: against ``budget_ms``, on latencies measured here then or on the device now
    (``latency_from``, its rows at ``threads``). Its ``compare.json`` is left as it is."""
    folder = Path(folder)
    path = folder / "compare.json"
    check_budget(budget_ms, latency_from)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EdgeAVError(
            f"--results {folder}: no compare.json (not an `edgeav compare` folder)"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise EdgeAVError(f"--results {folder}: cannot read {path.name} ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != JSON_FORMAT or not doc.get("rows"):
        raise EdgeAVError(f"--results {folder}: {path.name} is not an `edgeav compare` result")
    rows = doc["rows"]
    names = [r["variant"] for r in rows]
    device = device_latencies(latency_from, names, threads) if latency_from else None
    for row in rows:  # paths from the folder as given now, wherever it was written from
        row["run_dir"] = str(folder / "runs" / row["variant"])
        row["bundle"] = str(folder / "bundles" / f"{row['variant']}.edgeav")
        if device is not None:
            row["device_image_p50_ms"] = device[row["variant"]]["image_ms"]
            row["device_tick_p50_ms"] = device[row["variant"]]["tick_ms"]
        else:  # judged here now: an earlier run's device figures no longer apply
            row.pop("device_image_p50_ms", None)
            row.pop("device_tick_p50_ms", None)
        row["budget_latency_ms"] = (
            row["device_tick_p50_ms"] if device is not None else row["tick_p50_ms"]
        )
    chosen, closest = choose(rows, budget_ms)
    doc.update(
        out=str(folder),
        latency="device" if device is not None else "here",
        budget_ms=budget_ms,
        chosen=chosen,
        closest=closest,
    )
    return doc


def choose(
    rows: Sequence[dict[str, Any]], budget_ms: float | None
) -> tuple[str | None, str | None]:
    """The variant for ``budget_ms`` and, when none fits, the closest: ``(chosen, closest)``.

    Chosen: the best fused accuracy on test among the rows whose ``budget_latency_ms`` (a
    pipeline tick's p50) is within the budget, the faster one on a tie. Closest (only when none
    fits): the fastest row, the one that misses the budget by least. Without a budget: (None,
    None).
    """
    if budget_ms is None or not rows:
        return None, None
    fits = [r for r in rows if r["budget_latency_ms"] <= budget_ms]
    if fits:
        best = max(fits, key=lambda r: (r["test_fused"], -r["budget_latency_ms"]))
        return best["variant"], None
    return None, min(rows, key=lambda r: r["budget_latency_ms"])["variant"]


# --- output -------------------------------------------------------------------------------------


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


#: The table's columns: heading, row key, format. Accuracy in %, sizes in KiB.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("variant", "variant", "s"),
    ("image test %", "test_image", "%"),
    ("combined test %", "test_fused", "%"),
    ("params", "params", "n"),
    ("metric", "test_metric", ".2f"),
    ("image unseen %", "unseen_image", "%"),
    ("combined unseen %", "unseen_fused", "%"),
    ("metric unseen", "unseen_metric", ".2f"),
    ("image KiB", "image_bytes", "k"),
    ("MACs", "macs", "n"),
    ("image p50 ms", "image_p50_ms", "ms"),
    ("tick p50 ms", "tick_p50_ms", "ms"),
    ("device tick p50 ms", "device_tick_p50_ms", "ms"),
)


def _columns(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [c for c in COLUMNS if any(r.get(c[1]) is not None for r in rows)]


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    from edgeav.benchmarks.report import count, ms  # noqa: PLC0415

    value = row.get(key)
    if value is None:
        return "-"
    if fmt == "%":
        return _pct(value)
    if fmt == "n":
        return count(value)
    if fmt == "k":
        return f"{value / 1024:.1f}"
    if fmt == "ms":
        return ms(value)
    return format(value, fmt)


def rich_table(doc: dict[str, Any]):
    """The seed's table for a person (chosen variant in bold)."""
    from rich.table import Table  # noqa: PLC0415

    cols = _columns(doc["rows"])
    table = Table(
        title=f"edgeav compare ({doc['quantization']}, {doc['threads']} thread(s)): LiteRT "
        f"accuracy, metric = combined % - 0.1 x image parameters in millions"
    )
    for i, (title, _, _) in enumerate(cols):
        table.add_column(title, justify="left" if i == 0 else "right")
    for row in doc["rows"]:
        style = "bold" if row["variant"] == doc.get("chosen") else None
        table.add_row(*(_cell(row, key, fmt) for _, key, fmt in cols), style=style)
    return table


def to_markdown(doc: dict[str, Any]) -> str:
    cols = _columns(doc["rows"])
    lines = [
        "| " + " | ".join(t for t, _, _ in cols) + " |",
        "|:---|" + "---:|" * (len(cols) - 1),
    ]
    for row in doc["rows"]:
        cells = [_cell(row, key, fmt) for _, key, fmt in cols]
        if row["variant"] == doc.get("chosen"):
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(doc: dict[str, Any]) -> str:
    """Every row, every key (lists joined with ';')."""
    from edgeav.benchmarks.report import to_csv as rows_to_csv  # noqa: PLC0415

    rows = [
        {k: ";".join(v) if isinstance(v, list) else v for k, v in r.items()} for r in doc["rows"]
    ]
    return rows_to_csv(rows)


def write_plot(doc: dict[str, Any], path: str | Path) -> Path:
    """Accuracy on test against p50 latency, each series with its Pareto front: combined
    accuracy against the pipeline tick, image accuracy against the image model's invoke."""
    from edgeav.benchmarks.report import write_tradeoff_plot  # noqa: PLC0415

    rows = doc["rows"]
    device = doc.get("latency") == "device"
    tick = "device_tick_p50_ms" if device else "tick_p50_ms"
    image = "device_image_p50_ms" if device else "image_p50_ms"
    where = "on the device" if device else "here"
    series = {
        f"combined vs pipeline tick ({where})": [
            (r["variant"], r[tick], 100 * r["test_fused"]) for r in rows
        ],
        f"image vs image model ({where})": [
            (r["variant"], r[image], 100 * r["test_image"]) for r in rows if r.get(image)
        ],
    }
    budget = doc.get("budget_ms")
    return write_tradeoff_plot(
        series,
        path,
        title=f"edgeav compare: accuracy on test against latency ({doc['quantization']}, "
        f"{doc['threads']} thread(s))",
        budget_ms=budget,
    )
