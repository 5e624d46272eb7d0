"""``edgeav demo``: data -> train -> convert -> bench -> test stream -> run, in one command."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(
        Path("demo"), "--out", "-o", help="Folder for everything the demo writes."
    ),
    fast: bool = typer.Option(
        False,
        "--fast",
        help="Smaller settings (30 digits per class, few epochs, few timed runs): a few minutes, for CI.",
    ),
) -> None:
    """Run the whole job on the built-in av-digits data and print a summary.

    Builds av-digits into OUT/data (unless already there), trains the default small image and audio models (both steps) into OUT/run, converts them to an int8 bundle OUT/model.edgeav, benchmarks it (each model, the pipeline stages, and the quick zoo sweep; plot OUT/latency.png), writes test streams (OUT/stream/: the test and test-unseen splits, and five minutes of empty scenes with room noise) and runs the runtime on each as `edgeav run --camera VIDEO --audio-file WAV --no-realtime` does. Writes OUT/report.md (tables and plot) and OUT/summary.json (every figure), and leaves OUT/model.edgeav ready to copy to a Raspberry Pi. About 9–13 minutes on two cores (most of it training the image model); --fast about 3.
    """
    from edgeav.demo import run_demo  # noqa: PLC0415

    run_demo(out, fast=fast)
