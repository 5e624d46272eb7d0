"""``edgeav demo``: the whole job in one process, on the built-in ``av-digits`` data.

The stages, each one a call into the part that owns it (the same code the commands run):

1. **data**: ``edgeav data av-digits DIR/data`` (:func:`edgeav.data.avdigits.generate_av_digits`),
   skipped when ``DIR/data`` already holds av-digits built with the same settings;
2. **train**: ``edgeav train DIR/data --out DIR/run`` (:func:`edgeav.train.train`: both models,
   cross-entropy then triplet loss, fusion weights fit on val);
3. **convert**: ``edgeav convert DIR/run -q int8 --out DIR/model.edgeav``
   (:func:`edgeav.converters.convert.convert_run`: full-integer, checked in LiteRT; not pruned,
   :attr:`DemoSettings.prune`);
4. **bench**: ``edgeav bench DIR/model.edgeav`` (each model alone and the pipeline stage by
   stage, :func:`edgeav.benchmarks.bundle_bench.bench_bundle`) and ``edgeav bench --quick`` (the
   small zoo variants, :func:`edgeav.benchmarks.zoo_sweep.sweep`), plotted to ``DIR/latency.png``;
5. **stream**: a test stream from the test split, ``DIR/stream/test.mkv`` + ``test.wav``
   (:func:`edgeav.streams.make_test_stream`: item ``k``, one audio window long, shows one image
   and plays one clip of the same class);
6. **run**: the runtime on that stream exactly as ``edgeav run --camera VIDEO --audio-file WAV
   --rate 1/ITEM --no-realtime`` runs it (:func:`edgeav.runtime.pipeline.open_pipeline`), scored
   against the stream's labels; the same on a test-unseen stream and on five minutes of nothing
   (:func:`edgeav.streams.make_nothing_stream`: empty scenes, room noise), where every named
   label is a false alarm. The three runs share the cores (:func:`run_streams`);
7. **report**: ``DIR/summary.json`` (every figure, machine-readable), ``DIR/report.md`` (the
   tables and the plot) and a summary on stdout (:mod:`edgeav.demo_report`).

Progress goes to stderr (rich); the summary to stdout. ``fast=True`` uses smaller settings (fewer
examples per class, fewer epochs, fewer timed runs) so the whole flow fits in a CI job.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeav.demo_report import ROWS, build_summary, print_summary, render_report
from edgeav.errors import EdgeAVError

#: The stages, in order (keys of ``summary["seconds"]``).
STAGES = ("data", "train", "convert", "bench", "stream", "run", "report")


@dataclass
class DemoSettings:
    """The knobs of one demo run (:func:`settings` gives the full and the ``--fast`` ones)."""

    fast: bool = False
    seed: int = 0
    # data (edgeav data av-digits --per-class)
    per_class: int = 300
    # train: overrides of edgeav.train.TrainConfig (empty: its defaults, as `edgeav train`)
    train: dict[str, Any] = field(default_factory=dict)
    # convert. Not pruned: on av-digits (two seeds) half the weights pruned cost 1.0 and 2.9
    # points of image accuracy on test-unseen's other writers, for a smaller gzip and no speed
    # (LiteRT runs the zeros); `edgeav convert --prune` is there for size.
    prune: float = 0.0
    quantize: str = "int8"
    # fine-tuning while pruning (None: edgeav convert's default, PRUNE_EPOCHS)
    prune_epochs: int | None = None
    calibration_samples: int = 200
    # bench (bundle): timed runs per model and pipeline ticks, 1 interpreter thread
    bench_runs: int = 50
    bench_warmup: int = 5
    bench_max_seconds: float = 20.0
    threads: int = 1
    # bench (zoo, as `edgeav bench --quick`)
    zoo_quants: tuple[str, ...] = ("float32", "float16", "dynamic", "int8")
    zoo_runs: int = 20
    zoo_warmup: int = 2
    zoo_max_seconds: float = 20.0
    # stream: seconds of test stream (None: every image of the test split)
    stream_seconds: int | None = None
    # seconds of the stream of nothing (empty scenes, room noise)
    nothing_seconds: int = 300
    # video frames a second of the streams: each item is a still image, so more frames would
    # only cost decoding (a whole number of frames per item: 3 of a 1.5 s item)
    stream_fps: float = 2.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["zoo_quants"] = list(self.zoo_quants)
        return d


def settings(fast: bool = False) -> DemoSettings:
    """The full demo's settings, or ``--fast``'s (smaller, so the whole flow fits in a CI job)."""
    if not fast:
        return DemoSettings()
    return DemoSettings(
        fast=True,
        per_class=30,
        train={
            "batch_size": 16,  # enough steps on 300 images for the image model to learn
            "epochs": 6,
            "audio_epochs": 15,
            "triplet_epochs": 1,
            "audio_triplet_epochs": 3,
            "head_epochs": 5,
            "audio_augment": 1,
        },
        calibration_samples=100,
        nothing_seconds=60,
        bench_runs=10,
        bench_warmup=2,
        bench_max_seconds=5.0,
        zoo_quants=("float32", "int8"),
        zoo_runs=10,
        zoo_warmup=2,
        zoo_max_seconds=5.0,
    )


# --- stage headers ------------------------------------------------------------------------------


class _Stages:
    """A header per stage (number, title, time since the start) and a closing line with its time."""

    def __init__(self, console: Any, total: int) -> None:
        self.console = console
        self.total = total
        self.index = 0
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @contextlib.contextmanager
    def stage(self, key: str, title: str) -> Iterator[None]:
        from rich.markup import escape  # noqa: PLC0415

        self.index += 1
        self.console.rule(
            f"[bold]\\[{self.index}/{self.total}] {escape(title)}[/]  "
            f"[dim]{_clock(self.elapsed())}[/]",
            align="left",
        )
        t0 = time.perf_counter()
        yield
        self.seconds[key] = round(time.perf_counter() - t0, 2)
        self.console.print(
            f"[green]done[/] {key} in {self.seconds[key]:.1f} s "
            f"[dim](total {_clock(self.elapsed())})[/]",
            highlight=False,
        )


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


def _progress(console: Any, transient: bool = False):
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )


# --- the stages ---------------------------------------------------------------------------------


def prepare_data(data_dir: Path, cfg: DemoSettings, log: Callable[[str], None]) -> dict[str, Any]:
    """Build av-digits into ``data_dir`` unless it already holds av-digits with ``cfg``'s settings.

    A ``data_dir`` that holds anything else is never touched (one-line error).
    """
    from edgeav.data.avdigits import FORMAT, generate_av_digits, split_sizes  # noqa: PLC0415

    wanted_clips = split_sizes(cfg.per_class)["audio"]["train"]
    force = False
    if data_dir.exists():
        if not data_dir.is_dir():
            raise EdgeAVError(f"{data_dir} exists and is not a folder; choose another --out")
        if any(data_dir.iterdir()):
            meta_path = data_dir / "dataset.json"
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                meta = None
            fmt = meta.get("format") if isinstance(meta, dict) else None
            if not (isinstance(fmt, str) and fmt.startswith(FORMAT.rsplit("/", 1)[0] + "/")):
                raise EdgeAVError(
                    f"{data_dir} exists and is not an av-digits data set (no valid "
                    f"{meta_path.name}); remove it or choose another --out"
                )
            same = (
                fmt == FORMAT
                and meta.get("style", "mnist") == "camera"
                and meta.get("per_class") == cfg.per_class
                and meta.get("seed") == cfg.seed
                and meta.get("clips_per_class") == wanted_clips
            )
            if same:
                log(
                    f"using the av-digits data set already in {data_dir} (--per-class {cfg.per_class})"
                )
                return {"reused": True, "counts": meta.get("counts", {}), "seconds": 0.0}
            log(
                f"{data_dir} holds av-digits built otherwise ({fmt}, style "
                f"{meta.get('style', 'mnist')}, --per-class {meta.get('per_class')}); rebuilding "
                f"it (camera style, --per-class {cfg.per_class})"
            )
            force = True
    result = generate_av_digits(
        data_dir, per_class=cfg.per_class, seed=cfg.seed, force=force, progress=True
    )
    return {"reused": False, "counts": result.counts, "seconds": round(result.seconds, 2)}


def train_models(data_dir: Path, run_dir: Path, cfg: DemoSettings) -> dict[str, Any]:
    """``edgeav train DATA --out RUN`` with the demo's settings; returns the metrics."""
    from edgeav.train import TrainConfig, train  # noqa: PLC0415

    train_cfg = TrainConfig(seed=cfg.seed)
    for key, value in cfg.train.items():
        setattr(train_cfg, key, value)
    metrics = train(data_dir, run_dir, train_cfg, overwrite=True, progress=True)
    return metrics


def convert_bundle(run_dir: Path, data_dir: Path, out: Path, cfg: DemoSettings, console: Any):
    """``edgeav convert RUN [--prune P] -q int8 --out OUT``; returns the ConvertResult.

    The demo never stops on a conversion that loses more accuracy than ``edgeav convert``
    allows (``--allow-drop``): the loss is shown in the summary as a warning instead.
    """
    from edgeav.converters.convert import (  # noqa: PLC0415
        BarProgress,
        ConvertOptions,
        convert_run,
        locate_run,
    )

    options = ConvertOptions(
        quantize=cfg.quantize,
        prune=cfg.prune or None,  # 0: not pruned
        calibration_samples=cfg.calibration_samples,
        allow_drop=True,
        seed=cfg.seed,
    )
    if cfg.prune_epochs is not None:
        options.prune_epochs = cfg.prune_epochs
    located = locate_run(run_dir, data_dir)
    stages = options.stages()
    with _progress(console) as bar:
        task = bar.add_task("converting", total=stages)
        result = convert_run(run_dir, out, options, BarProgress(bar, task), located=located)
        bar.update(task, completed=stages, description="converted")
    return result


def bench(bundle_path: Path, plot_path: Path, cfg: DemoSettings, console: Any) -> dict[str, Any]:
    """The bundle benchmark, the quick zoo sweep, and the latency plot (both on one figure)."""
    from edgeav.benchmarks import bundle_bench, report, zoo_sweep  # noqa: PLC0415

    console.print(
        f"timing {bundle_path.name}: each model, then the pipeline stage by stage", markup=False
    )
    result = bundle_bench.bench_bundle(
        bundle_path,
        runs=cfg.bench_runs,
        warmup=cfg.bench_warmup,
        threads=[cfg.threads],
        max_seconds=cfg.bench_max_seconds,
        progress_console=console,
    )
    model_rows = report.finish_rows(result["models"])
    stage_rows = result["stages"]

    models = zoo_sweep.quick_models()
    zoo_cfg = zoo_sweep.SweepConfig(
        models=tuple(models),
        quants=tuple(zoo_sweep.check_quants(cfg.zoo_quants)),
        threads=(cfg.threads,),
        runs=cfg.zoo_runs,
        warmup=cfg.zoo_warmup,
        max_seconds=cfg.zoo_max_seconds,
        cache_dir=zoo_sweep.default_cache_dir(),
    )
    console.print(
        f"zoo sweep (as edgeav bench --quick): {', '.join(models)} x "
        f"{', '.join(zoo_cfg.quants)}; converted models cached in {zoo_cfg.cache_dir}",
        markup=False,
    )
    with _progress(console, transient=True) as bar:
        task = bar.add_task("zoo: converting", total=zoo_sweep.steps(zoo_cfg))
        zoo_rows = report.finish_rows(
            zoo_sweep.sweep(
                zoo_cfg,
                on_step=lambda text, n: bar.update(task, advance=n, description=f"zoo: {text}"),
            )
        )
    # One figure: the zoo's variants and this bundle's two models (named after the bundle); not
    # its "fused" row, whose latency is a whole pipeline tick rather than one model.
    mine = [
        dict(r, model=f"{bundle_path.name} {r['model']}")
        for r in model_rows
        if r["model"] != "fused"
    ]
    report.write_plot(zoo_rows + mine, plot_path)
    console.print(f"wrote {plot_path}", markup=False)
    return {
        "models": model_rows,
        "stages": stage_rows,
        "ticks_per_second": result["ticks_per_second"],
        "zoo": zoo_rows,
        "zoo_classes": zoo_cfg.classes,
    }


def make_stream(
    data_dir: Path,
    stream_dir: Path,
    cfg: DemoSettings,
    item_seconds: float = 1.0,
    split: str = "test",
):
    """A split as a video and a WAV (:func:`edgeav.streams.make_test_stream`), one item per
    audio window of the bundle (``item_seconds``); ``split`` ``"nothing"``: the test split's
    empty scenes and room noise (:func:`edgeav.streams.make_nothing_stream`), one a second."""
    from edgeav.streams import make_nothing_stream, make_test_stream  # noqa: PLC0415

    stream_dir.mkdir(parents=True, exist_ok=True)
    video, wav = stream_dir / f"{split}.mkv", stream_dir / f"{split}.wav"
    if split == "nothing":
        return make_nothing_stream(
            data_dir,
            "test",
            video,
            wav,
            seconds=cfg.nothing_seconds,
            seed=cfg.seed,
            fps=cfg.stream_fps,
        )
    return make_test_stream(
        data_dir,
        split,
        video,
        wav,
        seconds=cfg.stream_seconds,
        seed=cfg.seed,
        labels_json=stream_dir / "labels.json" if split == "test" else None,
        item_seconds=item_seconds,
        fps=cfg.stream_fps,
    )


def other_streams(data_dir: Path) -> list[str]:
    """The demo's streams besides test: test-unseen, and "nothing" (empty scenes, room noise)
    when the data set has them."""
    from edgeav.data.loader import NOTHING  # noqa: PLC0415

    out = []
    if (data_dir / "test-unseen" / "image").is_dir():
        out.append("test-unseen")
    if (data_dir / "test" / "image" / NOTHING).is_dir():
        out.append("nothing")
    return out


def run_stream(
    bundle_path: Path,
    stream: Any,
    predictions: Path,
    log: Callable[[str], None],
    on_tick: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Run the runtime on the stream as ``edgeav run --camera VIDEO --audio-file WAV
    --no-realtime --json`` does, write its JSON lines to ``predictions`` and score them
    (``on_tick`` is called once per prediction).
    """
    import numpy as np  # noqa: PLC0415

    from edgeav.bundle import read_bundle  # noqa: PLC0415
    from edgeav.fileio import write_text_atomic  # noqa: PLC0415
    from edgeav.runtime.pipeline import RunOptions, open_pipeline  # noqa: PLC0415

    # one tick per item (each as long as the audio window); threads chosen by the backend
    bundle = read_bundle(bundle_path)
    rate = 1.0 / stream.item_seconds
    options = RunOptions(camera=str(stream.video), audio_file=stream.wav, realtime=False, rate=rate)
    records: list[dict[str, Any]] = []
    with open_pipeline(bundle, options, log=log) as pipe:
        log(
            f"run: {bundle_path} ({'+'.join(pipe.models)}) on {Path(stream.video).name}, "
            f"{pipe.backend}, default thread(s), {rate:g} Hz, files' own clock"
        )
        for prediction in pipe.run():
            records.append(prediction.to_dict())
            on_tick()
    summary = pipe.summary()
    lines = [json.dumps(r) for r in records] + [json.dumps({"summary": summary})]
    write_text_atomic(predictions, "\n".join(lines) + "\n")

    classes = list(bundle.classes)
    n = min(len(records), stream.seconds)
    # a tick every 1 / rate seconds of the files' clock, from the first whole audio window on
    window = bundle.feature_config.window_seconds if "audio" in pipe.models else 0.0
    length = stream.seconds * stream.item_seconds
    expected = math.floor(length * rate + 1e-6) - max(math.ceil(window * rate - 1e-6), 1) + 1
    if len(records) != expected:
        log(
            f"the run made {len(records)} predictions on {Path(stream.video).name} where "
            f"{expected} were expected ({length:g} s at {rate:g} Hz, audio window {window:g} s)"
        )
    correct = dict.fromkeys(ROWS, 0)
    counted = dict.fromkeys(ROWS, 0)
    named = named_right = 0
    for record, truth in zip(records[:n], stream.labels[:n], strict=True):
        for m in ROWS:
            probs = record["probs"].get(m)
            if probs is None or not truth:  # a stream of nothing has no right answer
                continue
            counted[m] += 1
            correct[m] += int(classes[int(np.argmax(probs))] == truth)
        if record["label"] is not None:
            named += 1
            named_right += int(record["label"] == truth)
    return {
        "seconds": stream.seconds,
        "ticks": len(records),
        "accuracy": {m: (correct[m] / counted[m] if counted[m] else None) for m in ROWS},
        "counted": counted,
        # at the bundle's decision threshold: the share of ticks that name a label, and how
        # many of those are right
        "named": named / n if n else None,
        "named_accuracy": named_right / named if named and any(stream.labels) else None,
        "summary": summary,
    }


@dataclass
class _StreamJob:
    """One stream to run: ``split``'s stream (made first unless ``stream`` is given), its
    predictions written to ``predictions``."""

    split: str
    bundle_path: Path
    data_dir: Path
    stream_dir: Path
    cfg: DemoSettings
    item_seconds: float
    predictions: Path
    stream: Any = None


#: In a stream worker: the channel to the parent (``(split, "tick" | "log" | "total", value)``)
#: and the parent's request to stop.
_worker_channel: Any = None
_worker_stop: Any = None


class _Stopped(Exception):
    """A stream worker stopped because the parent asked it to (Ctrl-C, or another stream failed)."""


def _start_stream_worker(channel: Any, stop: Any) -> None:
    import signal  # noqa: PLC0415

    global _worker_channel, _worker_stop  # noqa: PLW0603
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the workers
    _worker_channel, _worker_stop = channel, stop


def _stream_job(job: _StreamJob, report: Callable[[str, str, Any], None] | None = None):
    """Make ``job``'s stream if needed, run it; returns ``(split, stream, result)``. Progress and
    log lines go to ``report`` (in a worker process: the channel to the parent)."""
    if report is None:
        channel, stop = _worker_channel, _worker_stop

        def report(split: str, kind: str, value: Any) -> None:
            if stop.is_set():
                raise _Stopped
            channel.put((split, kind, value))

    split = job.split
    stream = job.stream or make_stream(
        job.data_dir, job.stream_dir, job.cfg, job.item_seconds, split
    )
    report(split, "total", stream.seconds)
    result = run_stream(
        job.bundle_path,
        stream,
        job.predictions,
        log=lambda message: report(split, "log", message),
        on_tick=lambda: report(split, "tick", 1),
    )
    return split, stream, result


def run_streams(jobs: list[_StreamJob], console: Any, log: Callable[[str], None]) -> dict[str, Any]:
    """Run every job's stream, one progress bar each; returns ``{split: (stream, result)}``.

    The runtime's ticks follow one another, so a stream keeps one core busy: the streams run in
    worker processes, as many as the cores (``EDGEAV_WORKERS`` sets them; 1: one after another
    in this process). A failure or Ctrl-C stops the other workers within a tick.
    """
    import multiprocessing  # noqa: PLC0415
    import queue  # noqa: PLC0415
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait  # noqa: PLC0415
    from concurrent.futures.process import BrokenProcessPool  # noqa: PLC0415

    from edgeav.parallel import worker_count  # noqa: PLC0415

    workers = min(len(jobs), worker_count(len(jobs), min_items=2))
    out: dict[str, Any] = {}
    with _progress(console) as bar:
        tasks = {
            job.split: bar.add_task(f"edgeav run ({job.split} stream)", total=None) for job in jobs
        }

        def report(split: str, kind: str, value: Any) -> None:
            if kind == "tick":
                bar.advance(tasks[split], value)
            elif kind == "total":
                bar.update(tasks[split], total=value)
            else:
                log(value)

        def finished(split: str, stream: Any, result: dict[str, Any]) -> None:
            out[split] = (stream, result)
            bar.update(tasks[split], total=result["ticks"], completed=result["ticks"])

        if workers == 1:
            for job in jobs:
                finished(*_stream_job(job, report))
            return out
        context = multiprocessing.get_context("spawn")
        channel, stop = context.Queue(), context.Event()

        def drain(timeout: float) -> None:
            try:
                while True:
                    report(*channel.get(timeout=timeout))
            except queue.Empty:
                pass

        pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start_stream_worker, initargs=(channel, stop)
        )
        try:
            pending = {pool.submit(_stream_job, job) for job in jobs}
            while pending:
                done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                drain(0)
                for future in done:
                    finished(*future.result())
            drain(0.2)  # what a worker sent just before its result
        except BrokenProcessPool as exc:
            raise EdgeAVError(f"a worker process died while running a stream: {exc}") from exc
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
    return out


# --- the whole demo -----------------------------------------------------------------------------


def run_demo(out: str | os.PathLike[str] = "demo", *, fast: bool = False) -> dict[str, Any]:
    """Run every stage into ``out`` and return the summary (also ``out/summary.json``).

    Raises:
        EdgeAVError: from any stage, one line naming the file, folder or value at fault.
    """
    from rich.console import Console  # noqa: PLC0415

    from edgeav.fileio import write_text_atomic  # noqa: PLC0415

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EdgeAVError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeAVError(f"cannot create --out folder {out}: {exc.strerror or exc}") from exc
    cfg = settings(fast)
    err = Console(stderr=True)
    # a summary piped to a file or a CI log is not cut to 80 columns
    stdout = Console() if sys.stdout.isatty() else Console(width=120)

    def log(message: str) -> None:
        err.print(f"edgeav: {message}", highlight=False, markup=False)

    data_dir, run_dir = out / "data", out / "run"
    bundle_path, plot_path = out / "model.edgeav", out / "latency.png"
    stream_dir = out / "stream"
    stages = _Stages(err, len(STAGES))
    err.print(
        f"edgeav demo{' --fast' if fast else ''}: data -> train -> convert -> bench -> "
        f"test stream -> edgeav run, into {out}/",
        style="bold",
        highlight=False,
        markup=False,
    )
    with stages.stage("data", f"data: av-digits into {data_dir} (--per-class {cfg.per_class})"):
        data = prepare_data(data_dir, cfg, log)
    with stages.stage("train", f"train: image + audio models, two steps, into {run_dir}"):
        metrics = train_models(data_dir, run_dir, cfg)
    how = f"prune {cfg.prune:g} + {cfg.quantize}" if cfg.prune else cfg.quantize
    with stages.stage("convert", f"convert: {how} -> {bundle_path}"):
        converted = convert_bundle(run_dir, data_dir, bundle_path, cfg, err)
    with stages.stage("bench", f"bench: {bundle_path.name} and the quick zoo sweep"):
        benched = bench(bundle_path, plot_path, cfg, err)
    with stages.stage("stream", f"stream: the test split as video + WAV in {stream_dir}"):
        from edgeav.bundle import read_bundle  # noqa: PLC0415

        window = read_bundle(bundle_path).feature_config.window_seconds
        stream = make_stream(data_dir, stream_dir, cfg, item_seconds=max(1.0, window))
        log(
            f"wrote {stream.video} and {stream.wav} "
            f"({stream.seconds} items of {stream.item_seconds:g} s)"
        )
    with stages.stage("run", f"run: edgeav run --camera {stream.video} --audio-file "
                      f"{stream.wav} --rate {1 / stream.item_seconds:g} --no-realtime"):  # fmt: skip
        splits = ["test", *other_streams(data_dir)]
        jobs = [
            _StreamJob(
                split,
                bundle_path,
                data_dir,
                stream_dir,
                cfg,
                stream.item_seconds,
                stream_dir / ("predictions.jsonl" if split == "test" else f"{split}.jsonl"),
                stream if split == "test" else None,
            )
            for split in splits
        ]
        results = run_streams(jobs, err, log)
        ran = results["test"][1]
        streams = {split: results[split][1] for split in splits[1:]}
    with stages.stage("report", f"report: {out / 'report.md'} and {out / 'summary.json'}"):
        seconds = dict(stages.seconds)
        seconds["total"] = round(stages.elapsed(), 2)
        summary = build_summary(
            out=out,
            cfg=cfg,
            data=data,
            metrics=metrics,
            converted=converted,
            benched=benched,
            stream=stream,
            ran=ran,
            streams=streams,
            seconds=seconds,
        )
        write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        write_text_atomic(out / "report.md", render_report(summary, benched))
    print_summary(summary, stdout)
    return summary
