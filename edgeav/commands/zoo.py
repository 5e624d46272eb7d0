"""``edgeav zoo``: the model zoo with parameter and MAC counts (placeholder until the zoo lands)."""

from __future__ import annotations

import typer


def zoo(
    classes: int = typer.Option(49, "--classes", help="Number of output classes."),
    input_size: int = typer.Option(
        None, "--input-size", help="Square input size (default: each variant's own)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the model zoo: parameters, MACs and the seed's parameter figure for each variant."""
    from edgeav.models.registry import zoo_rows  # noqa: PLC0415

    zoo_rows(classes=classes, input_size=input_size)
