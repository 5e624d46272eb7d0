"""``edgeav doctor``: is this device ready for ``edgeav run``? Cameras, microphones, LiteRT and
the bundle, each opened for real, with the fix for what fails (:mod:`edgeav.runtime.doctor`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

#: Exit status when something that matters does not work (as other expected failures).
EXIT_PROBLEMS = 3


def doctor(
    model: Path = typer.Option(
        None,
        "--model",
        "-m",
        help="Also load this bundle and run each of its models once (timed).",
        show_default=False,
    ),
    seconds: float = typer.Option(
        1.0, "--seconds", help="How long each camera and microphone is opened."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check this device for `edgeav run`: cameras, microphones, LiteRT and the bundle.

    Lists the V4L2 cameras (/dev/video*) and the cameras libcamera lists (through Picamera2, when it is installed) and reads each for a second; records a second from each microphone and shows its level; loads LiteRT; with --model, loads the bundle and runs each model once. For each failure it prints the fix: the package to install, the group to join, the flag to pass.

    Exit status 0 when an interpreter loads, the bundle (if given) loads and runs, and at least one camera or microphone delivers (with --model: one the bundle has a model for); 3 otherwise.
    """
    from edgeav.runtime.doctor import diagnose  # noqa: PLC0415

    report = diagnose(model, seconds)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_table(report)
    if not report.ok:
        raise typer.Exit(EXIT_PROBLEMS)


STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red", "info": "dim"}


def _print_table(report) -> None:
    from rich import box  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(title="edgeav doctor", title_justify="left", box=box.SIMPLE_HEAD)
    for header in ("check", "what", "", "found", "fix"):
        table.add_column(header, overflow="fold")
    for c in report.checks:
        style = STYLES.get(c.status, "")
        table.add_row(c.kind, c.name, f"[{style}]{c.status}[/{style}]", c.detail, c.fix or "")
    console = Console()
    console.print(table)
    failures = sum(c.status == "fail" for c in report.checks)
    verdict = "ready for edgeav run" if report.ok else "not ready for edgeav run"
    console.print(f"{verdict}; {failures} check(s) failed", highlight=False)
