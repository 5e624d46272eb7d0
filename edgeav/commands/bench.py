"""``edgeav bench``: latency, size and accuracy of the zoo's variants or of one bundle."""

from __future__ import annotations

from pathlib import Path

import typer

from edgeav.errors import EdgeAVError


def _split(text: str | None, what: str) -> list[str]:
    if text is None:
        return []
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise EdgeAVError(f"--{what} is empty")
    return items


def _threads(text: str | None) -> list[int]:
    out = []
    for item in _split(text, "threads"):
        try:
            value = int(item)
        except ValueError:
            raise EdgeAVError(f"--threads takes whole numbers, got {item!r}") from None
        if value < 1:
            raise EdgeAVError(f"--threads must be at least 1, got {value}")
        out.append(value)
    return out


def _check_output(path: Path | None, option: str) -> None:
    """Fail before a long sweep, not after it, when an output file cannot be written."""
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise EdgeAVError(f"cannot write {option} {path}: folder {parent} does not exist")
    if path.is_dir():
        raise EdgeAVError(f"cannot write {option} {path}: it is a folder")


def _write_files(rows: list, csv_path: Path | None, plot: Path | None, title: str, err) -> None:
    from edgeav.benchmarks import report  # noqa: PLC0415

    if csv_path is not None:
        report.write_csv(rows, csv_path)
        err.print(f"wrote {csv_path}")
    if plot is not None:
        report.write_plot([r for r in rows if "stage" not in r], plot, title=title)
        err.print(f"wrote {plot}")


def bench(
    bundle: Path = typer.Argument(
        None,
        help="A model.edgeav bundle to benchmark (each model and the pipeline's stages). "
        "Without one, sweep the model zoo.",
        show_default=False,
    ),
    models: str = typer.Option(
        None, "--models", help="Zoo variants, comma-separated (default: the seed's six)."
    ),
    quant: str = typer.Option(
        None,
        "--quant",
        help="Quantisations, comma-separated: float32, float16, dynamic, int8 "
        "(default: float32,int8; --quick: all four).",
    ),
    threads: str = typer.Option("1", "--threads", help="Interpreter threads, comma-separated."),
    runs: int = typer.Option(None, "--runs", help="Timed runs per model (default 50; --quick 20)."),
    warmup: int = typer.Option(None, "--warmup", help="Warm-up runs (default 5; --quick 2)."),
    max_seconds: float = typer.Option(
        20.0, "--max-seconds", help="Stop timing one model after this long (at least 3 runs)."
    ),
    classes: int = typer.Option(49, "--classes", help="Classes of the zoo models' heads."),
    channels: int = typer.Option(
        None,
        "--channels",
        help="Input channels of the zoo's image models: 1 (grey, as camera-scene bundles read) "
        "or 3 (default).",
    ),
    input_size: int = typer.Option(
        None, "--input-size", help="Square input size of the zoo models (default: each one's own)."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="Small 32x32 variants only, few runs: for CI and for trying it out."
    ),
    cache_dir: Path = typer.Option(
        None,
        "--cache-dir",
        help="Where converted models are kept (default: $EDGEAV_CACHE/bench or ~/.cache/edgeav/bench).",
    ),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table."),
    csv_path: Path = typer.Option(None, "--csv", help="Also write the rows as CSV to this file."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a table."),
    plot: Path = typer.Option(
        None, "--plot", help="Write a PNG of latency against parameters (needs matplotlib)."
    ),
) -> None:
    """Measure latency, size and accuracy on this machine: which variant and quantisation to ship.

    Without BUNDLE: build each zoo variant with random weights, convert it to each --quant mode (cached on disk, so a second run only times) and time it at each --threads value.

    With BUNDLE: time each model in it and the pipeline's stages (features, image, audio, fusion, total) and ticks per second; needs only the runtime extra, no TensorFlow.
    """
    from rich.console import Console  # noqa: PLC0415

    from edgeav.benchmarks import report  # noqa: PLC0415

    thread_list = _threads(threads)
    _check_output(csv_path, "--csv")
    _check_output(plot, "--plot")
    if plot is not None:
        import importlib.util  # noqa: PLC0415

        if importlib.util.find_spec("matplotlib") is None:
            raise EdgeAVError(
                "--plot needs matplotlib: pip install matplotlib (or 'edgeav[train]')"
            )
    if runs is not None and runs < 1:
        raise EdgeAVError(f"--runs must be at least 1, got {runs}")
    if warmup is not None and warmup < 0:
        raise EdgeAVError(f"--warmup must be 0 or more, got {warmup}")
    runs = runs if runs is not None else (20 if quick else 50)
    warmup = warmup if warmup is not None else (2 if quick else 5)
    err = Console(stderr=True)
    from edgeav.commands.tables import TablePrinter  # noqa: PLC0415

    out = TablePrinter()

    if bundle is not None:
        from edgeav.benchmarks import bundle_bench  # noqa: PLC0415

        if models or quant or quick or input_size is not None or channels is not None:
            raise EdgeAVError(
                "--models, --quant, --quick, --input-size and --channels apply to the zoo sweep, "
                "not a bundle"
            )
        result = bundle_bench.bench_bundle(
            bundle,
            runs=runs,
            warmup=warmup,
            threads=thread_list,
            max_seconds=max_seconds,
            progress_console=err,
        )
        rows = report.finish_rows(result["models"])
        stage_rows = result["stages"]
        _write_files(rows + stage_rows, csv_path, plot, f"edgeav bench {bundle.name}", err)
        if json_out:
            print(
                report.to_json(
                    rows,
                    mode="bundle",
                    bundle=str(bundle),
                    stages=stage_rows,
                    ticks_per_second=result["ticks_per_second"],
                )
            )
            return
        if markdown:
            print(report.to_markdown(rows))
            print(bundle_bench.stages_markdown(stage_rows), end="")
        else:
            out.print(report.rich_table(rows, title=f"{bundle.name}: models"))
            out.print(bundle_bench.stages_table(stage_rows, title=f"{bundle.name}: pipeline"))
        return

    from edgeav.benchmarks import zoo_sweep  # noqa: PLC0415

    if models:
        model_list = zoo_sweep.check_models(_split(models, "models"))
    else:
        model_list = zoo_sweep.quick_models() if quick else zoo_sweep.seed_models()
        if not model_list:
            raise EdgeAVError("the model zoo has no variants to benchmark")
    quants = zoo_sweep.check_quants(
        _split(quant, "quant")
        if quant
        else (list(zoo_sweep.QUANT_MODES) if quick else ["float32", "int8"])
    )
    if channels is not None and channels not in (1, 3):
        raise EdgeAVError(f"--channels must be 1 or 3, got {channels}")
    config = zoo_sweep.SweepConfig(
        models=tuple(model_list),
        quants=tuple(quants),
        threads=tuple(thread_list),
        runs=runs,
        warmup=warmup,
        max_seconds=max_seconds,
        classes=classes,
        input_size=input_size,
        channels=channels,
        cache_dir=Path(cache_dir) if cache_dir else zoo_sweep.default_cache_dir(),
    )

    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("bench: converting", total=zoo_sweep.steps(config))

        def step(description: str, advance: int) -> None:
            progress.update(task, advance=advance, description=description)

        rows = report.finish_rows(zoo_sweep.sweep(config, on_step=step))

    _write_files(rows, csv_path, plot, "", err)
    if json_out:
        print(report.to_json(rows, mode="zoo", cache_dir=str(config.cache_dir)))
    elif markdown:
        print(report.to_markdown(rows))
        if report.ratio_rows(rows):
            print(report.ratio_markdown(rows), end="")
    else:
        out.print(report.rich_table(rows, title="edgeav bench: model zoo"))
        if report.ratio_rows(rows):
            out.print(report.ratio_table(rows))
