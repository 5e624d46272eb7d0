"""``edgeav compare``: the seed's table on your own data, and the variant that fits a budget."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edgeav.errors import EdgeAVError


def _names(text: str | None, option: str) -> tuple[str, ...]:
    items = tuple(t.strip() for t in (text or "").split(",") if t.strip())
    if not items:
        raise EdgeAVError(f"{option} is empty: name at least one model (see `edgeav zoo`)")
    return items


def compare(
    data: Path = typer.Argument(
        None,
        help="Data set folder (e.g. from `edgeav data av-digits`); not with --results.",
        show_default=False,
    ),
    image_models: str = typer.Option(
        None,
        "--image-models",
        help="Image variants to compare, comma-separated (see `edgeav zoo`).",
    ),
    results: Path = typer.Option(
        None,
        "--results",
        help="An earlier comparison's --out folder: nothing is trained; its table is shown and "
        "judged again, e.g. --budget-ms with --latency-from files measured since on the device.",
    ),
    audio_models: str = typer.Option(
        "audio-hybrid",
        "--audio-models",
        help="Audio models, comma-separated: each is trained once and shared by every image "
        "variant; with several, every image x audio pair is a variant.",
    ),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder for every variant's run (runs/<variant>) and bundle "
        "(bundles/<variant>.edgeav) and compare.json (default: runs/compare-<timestamp>).",
    ),
    quant: str = typer.Option(
        "int8", "--quant", help="Quantisation: int8, float16, dynamic or float32."
    ),
    fast: bool = typer.Option(
        False,
        "--fast",
        help="Practical on a laptop CPU: 32x32 images, 3 image epochs, 8 audio epochs, no "
        "triplet step, 20 timed ticks.",
    ),
    epochs: int = typer.Option(
        None, "--epochs", help="Step-1 image epochs (default: as `edgeav train`, or --fast's)."
    ),
    triplet_epochs: int = typer.Option(
        None, "--triplet-epochs", help="Triplet epochs of both models; 0 skips the step."
    ),
    seed: int = typer.Option(0, "--seed", help="The one random seed every variant trains with."),
    threads: int = typer.Option(1, "--threads", help="Interpreter threads when timing."),
    runs: int = typer.Option(
        None, "--runs", help="Timed pipeline ticks per variant (default 50; --fast 20)."
    ),
    budget_ms: float = typer.Option(
        None,
        "--budget-ms",
        help="Latency budget of one pipeline tick (p50 of the audio front-end, image "
        "preprocessing, both models and fusion, as `edgeav bench BUNDLE` times it): the most "
        "accurate variant (combined accuracy on test) that fits is written to --out-model. If "
        "none fits, the closest (fastest) is named, nothing is written and the exit status is 3.",
    ),
    out_model: Path = typer.Option(
        Path("model.edgeav"),
        "--out-model",
        help="Where --budget-ms writes the chosen variant's bundle.",
    ),
    latency_from: list[Path] = typer.Option(
        None,
        "--latency-from",
        help="Judge --budget-ms by latency measured on the device: an `edgeav bench "
        "<variant>.edgeav --json` file per variant (repeat the option), the bundles from an "
        "earlier compare's OUT/bundles; rows at --threads are used.",
    ),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table."),
    csv_path: Path = typer.Option(None, "--csv", help="Also write the rows as CSV to this file."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a table."),
    plot: Path = typer.Option(
        None,
        "--plot",
        help="Write a PNG of accuracy against latency with the Pareto front (needs matplotlib).",
    ),
) -> None:
    """Train, convert and time several image variants on your data: the seed's table, and the variant for a latency budget.

    Every variant trains on the same data with the same seed and shares one audio model (trained with the first variant), is converted like `edgeav convert` (int8 by default) and evaluated in LiteRT on test and test-unseen: image and combined accuracy, parameters, the seed's metric (combined % - 0.1 x image parameters in millions), int8 size, MACs and p50 latency (image model and pipeline tick) on this machine. Every run folder and bundle is kept under --out.
    """
    from rich.console import Console  # noqa: PLC0415

    from edgeav import compare as lib  # noqa: PLC0415

    err = Console(stderr=True)
    if results is not None:
        if data is not None or image_models is not None:
            raise EdgeAVError(
                "--results judges an earlier comparison again: give no DATA or --image-models"
            )
        _check_outputs(csv_path, plot, out_model if budget_ms is not None else None)
        doc = lib.rejudge(results, budget_ms, tuple(latency_from or ()), threads)
        _report(doc, csv_path, plot, markdown, json_out, err)
        err.print(f"the comparison in {results}, judged again", highlight=False)
        _choose(doc, budget_ms, out_model, threads, err)
        return
    if data is None or image_models is None:
        raise EdgeAVError(
            "give DATA and --image-models (or --results DIR of an earlier comparison)"
        )
    if not data.is_dir():
        raise EdgeAVError(f"data folder {data} does not exist or is not a folder")
    config = lib.CompareConfig(
        image_models=_names(image_models, "--image-models"),
        audio_models=_names(audio_models, "--audio-models"),
        quantize=quant,
        fast=fast,
        seed=seed,
        epochs=epochs,
        triplet_epochs=triplet_epochs,
        threads=threads,
        runs=runs if runs is not None else (20 if fast else 50),
        warmup=2 if fast else 5,
        budget_ms=budget_ms,
        latency_from=tuple(latency_from or ()),
    )
    config.check()
    _check_outputs(csv_path, plot, out_model if budget_ms is not None else None)
    if out is None:
        from edgeav.run_folder import DEFAULT_BASE, default_run_dir  # noqa: PLC0415

        out = Path(DEFAULT_BASE) / f"compare-{default_run_dir().name}"
    if out.exists():
        raise EdgeAVError(f"{out} already exists; choose another --out or remove it")

    doc = lib.compare(data, out, config)
    _report(doc, csv_path, plot, markdown, json_out, err)
    for row in doc["rows"]:
        for msg in row["over_limit"]:
            err.print(f"[yellow]warning:[/] {row['variant']}: {msg}", highlight=False)
    err.print(f"runs and bundles in {out} ({doc['seconds']:.0f} s)", highlight=False)
    _choose(doc, budget_ms, out_model, threads, err)


def _check_outputs(csv_path: Path | None, plot: Path | None, out_model: Path | None) -> None:
    """Fail before any work when an output cannot be written or matplotlib is missing."""
    from edgeav.commands.bench import _check_output  # noqa: PLC0415

    _check_output(csv_path, "--csv")
    _check_output(plot, "--plot")
    if plot is not None:
        import importlib.util  # noqa: PLC0415

        if importlib.util.find_spec("matplotlib") is None:
            raise EdgeAVError(
                "--plot needs matplotlib: pip install matplotlib (or 'edgeav[train]')"
            )
    if out_model is not None:
        from edgeav.converters.convert import check_output  # noqa: PLC0415

        check_output(out_model)


def _report(
    doc: dict, csv_path: Path | None, plot: Path | None, markdown: bool, json_out: bool, err
) -> None:
    """The table on stdout (rich, Markdown or JSON), and the CSV and plot files."""
    from edgeav import compare as lib  # noqa: PLC0415

    if csv_path is not None:
        from edgeav.fileio import write_text_atomic  # noqa: PLC0415

        write_text_atomic(csv_path, lib.to_csv(doc))
        err.print(f"wrote {csv_path}")
    if plot is not None:
        lib.write_plot(doc, plot)
        err.print(f"wrote {plot}")
    if json_out:
        typer.echo(json.dumps(doc, indent=2))
    elif markdown:
        typer.echo(lib.to_markdown(doc), nl=False)
    else:
        from edgeav.commands.tables import TablePrinter  # noqa: PLC0415

        TablePrinter().print(lib.rich_table(doc))


def _choose(doc: dict, budget_ms: float | None, out_model: Path, threads: int, err) -> None:
    """With a budget: copy the chosen bundle to ``out_model``, or fail naming the closest."""
    if budget_ms is None:
        return
    device = doc["latency"] == "device"
    where = "on the device" if device else "here"
    threads = threads if device else doc["threads"]  # the device files' rows, or as timed here
    if doc["chosen"] is None:
        closest = next(r for r in doc["rows"] if r["variant"] == doc["closest"])
        raise EdgeAVError(
            f"no variant's pipeline tick fits {budget_ms:g} ms {where} at {threads} thread(s); "
            f"the closest is {closest['variant']} at {closest['budget_latency_ms']:.2f} ms "
            f"({closest['bundle']})"
        )
    from edgeav.fileio import write_bytes_atomic  # noqa: PLC0415

    row = next(r for r in doc["rows"] if r["variant"] == doc["chosen"])
    write_bytes_atomic(out_model, Path(row["bundle"]).read_bytes())
    err.print(
        f"chosen for {budget_ms:g} ms {where}: {row['variant']} (tick p50 "
        f"{row['budget_latency_ms']:.2f} ms, combined {100 * row['test_fused']:.1f} % on test); "
        f"wrote {out_model}",
        highlight=False,
    )
