"""``edgeav zoo``: every model variant with its parameters, MACs and the seed's parameter figure."""

from __future__ import annotations

import json

import typer


def zoo(
    names: list[str] = typer.Argument(
        None, metavar="VARIANT", help="Variants to show (default: all).", show_default=False
    ),
    classes: int = typer.Option(49, "--classes", min=2, help="Number of output classes."),
    input_size: int = typer.Option(
        None,
        "--input-size",
        min=32,
        help="Square image input size for every image variant (default: each variant's own).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """List the model zoo: parameters, MACs and the seed's parameter figure for each variant.

    Each variant is built once (tf_keras) to count its parameters and MACs; the big ones take a while, progress is shown on stderr. The seed's figures are for 49 classes (the default). MACs depend on the input size, parameters do not.
    """
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    from edgeav.models.registry import VARIANTS, describe_variant, get_variant  # noqa: PLC0415

    selected = [get_variant(name).name for name in names] if names else list(VARIANTS)
    rows = []
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # no bar (and no stray blank line) in a log or a pipe
    ) as progress:
        task = progress.add_task("building", total=len(selected))
        for name in selected:
            progress.update(task, description=f"building {name}")
            rows.append(describe_variant(name, classes=classes, input_size=input_size))
            progress.advance(task)

    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    _print_table(rows, classes)


def _print_table(rows: list[dict], classes: int) -> None:
    from rich import box  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(
        title=f"edgeav model zoo ({classes} classes)", box=box.SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("variant", no_wrap=True)
    for header in ("input", "params", "MACs", "seed params", "diff"):
        table.add_column(header, justify="right", no_wrap=True)
    for row in rows:
        size = row["input_size"]
        seed = row["seed_params"]
        table.add_row(
            row["name"],
            f"{size}" if row["family"] == "audio" else f"{size}²",
            f"{row['params']:,}",
            _si(row["macs"]),
            "" if seed is None else f"{seed:,}",
            "" if row["diff_pct"] is None else f"{row['diff_pct']:+.2f}%",
        )
    console = Console()
    console.print(table)
    if classes != 49:
        console.print("The seed's parameter figures are for 49 classes.")


def _si(value: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return str(value)
