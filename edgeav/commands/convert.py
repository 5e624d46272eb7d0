"""``edgeav convert``: training run -> (prune) -> TFLite -> checked in LiteRT -> model.edgeav."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def convert(
    run_dir: Path = typer.Argument(
        None, help="Training run folder (default: the newest run under runs/)."
    ),
    out: Path = typer.Option(Path("model.edgeav"), "--out", "-o", help="Bundle to write."),
    quantize: str = typer.Option(
        "int8",
        "--quantize",
        "-q",
        help="int8 (full integer), float16, dynamic (int8 weights, float activations) or float32.",
    ),
    prune: float = typer.Option(
        None,
        "--prune",
        help="Magnitude-prune the Dense, Conv and pointwise kernels to this sparsity (0..1), "
        "fine-tuning meanwhile (depthwise kernels, about 1 % of the weights, stay dense).",
    ),
    prune_block: int = typer.Option(
        1,
        "--prune-block",
        help="--prune in blocks of this many consecutive input channels where a kernel is 2-D "
        "(Dense, 1x1 and pointwise convs; others element-wise); 1: element-wise everywhere. "
        "Blocks (4) compress better gzipped but cost accuracy on data the model never saw.",
    ),
    structured: str = typer.Option(
        None, "--structured", help="Structured sparsity pattern: 2:4 (two zeros in every four)."
    ),
    calibration_samples: int = typer.Option(
        200, "--calibration-samples", help="int8 calibration samples (stratified, train split)."
    ),
    prune_epochs: int = typer.Option(
        10,
        "--prune-epochs",
        help="Fine-tuning epochs when pruning (fewer lose accuracy: on av-digits 3 cost the "
        "image model a point in LiteRT, 10 a third of one).",
    ),
    qat: bool = typer.Option(
        False,
        "--qat",
        help="Quantisation-aware training: fine-tune both models with tfmot's fake int8 "
        "quantisation (pruning-preserving with --prune), then convert to full int8. Post-training "
        "int8 is converted too and shown side by side (accuracy, size, latency); the bundle gets "
        "the quantisation-aware models.",
    ),
    qat_epochs: int = typer.Option(
        3, "--qat-epochs", help="Quantisation-aware fine-tuning epochs."
    ),
    strategy: str = typer.Option(
        "auto",
        "--strategy",
        help="tf.distribute strategy of the pruning and QAT fine-tuning: one, mirrored, "
        "multi-worker (TF_CONFIG; only the chief writes --out) or auto (as `edgeav train`).",
    ),
    max_drop: float = typer.Option(
        None,
        "--max-drop",
        help="Largest accuracy drop allowed, in points (default 1; 2 with --prune/--structured).",
    ),
    allow_drop: bool = typer.Option(
        False, "--allow-drop", help="Write the bundle even if the drop exceeds --max-drop."
    ),
    data: Path = typer.Option(
        None, "--data", help="Data set folder (default: the one the run was trained on)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Convert a training run to one model.edgeav bundle for the device.

    Optionally prunes (tfmot magnitude pruning of the Dense, Conv and pointwise kernels, fine-tuned on train as the run was trained: its image augmentation every epoch, the nothing-inputs taught as unsure; the sparsity shown is measured in the stripped weights, per layer). --prune-block 4 puts the zeros in runs in the .tflite, which gzip/zip compress better than zeros scattered element by element, at some cost in accuracy. Then converts both models to TFLite, runs each in LiteRT on the test split and compares it with Keras (accuracy and top-1 agreement per modality and fused). If accuracy drops by more than --max-drop points, no bundle is written.

    int8: the image model is full integer with int8 input and output; the audio model keeps its input normalisation in float32 (float input/output, int8 everywhere after it), because one int8 scale cannot hold raw features whose ranges differ a thousandfold. If int8 loses too much, try --qat (quantisation-aware fine-tuning on train), or --quantize dynamic or float16.

    Every mode: a model that ends in a softmax is converted without it and outputs logits (the bundle says so; edgeav run takes the softmax in float), because an int8 softmax rounds each probability under 0.2 % to zero and the fusion weighs those.
    """
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    from edgeav.converters.convert import (  # noqa: PLC0415
        BarProgress,
        ConvertOptions,
        check_output,
        convert_run,
        locate_run,
    )

    options = ConvertOptions(
        quantize=quantize,
        prune=prune,
        structured=structured,
        calibration_samples=calibration_samples,
        max_drop=max_drop,
        allow_drop=allow_drop,
        prune_epochs=prune_epochs,
        prune_block=prune_block,
        qat=qat,
        qat_epochs=qat_epochs,
        strategy=strategy,
    )
    options.check()
    if options.pruning or options.qat:
        from edgeav.distribute import check as check_strategy  # noqa: PLC0415

        check_strategy(strategy)
    check_output(out)
    located = locate_run(run_dir, data)
    stages = options.stages()
    err = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task("converting", total=stages)
        progress = BarProgress(bar, task)
        result = convert_run(run_dir, out, options, progress, located=located)
        bar.update(task, completed=stages, description="done")
    for msg in result.over_limit:
        err.print(f"[yellow]warning:[/] {msg} (written because of --allow-drop)", highlight=False)
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    print_table(result.to_dict())


def _kb(n: int | None) -> str:
    return "" if n is None else f"{n / 1024:,.1f}"


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2f}"


def print_table(res: dict) -> None:
    """The conversion table on stdout (from :meth:`ConvertResult.to_dict`)."""
    from rich.table import Table  # noqa: PLC0415

    from edgeav.commands.tables import TablePrinter  # noqa: PLC0415

    pruned = any(m.get("sparsity") for m in res["models"].values())
    kind = res["quantization"] + (", quantisation-aware" if res.get("qat") else "")
    table = Table(title=f"edgeav convert ({kind}): accuracy on test, Keras vs TFLite")
    for col in ("model", "tflite KiB", "gzip KiB", "sparse %", "Keras %"):
        table.add_column(col, justify="left" if col == "model" else "right")
    if pruned:
        table.add_column("pruned Keras %", justify="right")
    for col in ("TFLite %", "agree %", "drop pts", "time s"):
        table.add_column(col, justify="right")
    for name, m in res["models"].items():
        sp = m.get("sparsity")
        row = [
            name,
            _kb(m["size_bytes"]),
            _kb(m["gzip_bytes"]),
            f"{100 * sp['measured']:.1f}" if sp else "-",
            _pct(m["keras_accuracy"]),
        ]
        if pruned:
            row.append(_pct(m.get("keras_pruned_accuracy")))
        row += [
            _pct(m["tflite_accuracy"]),
            _pct(m["agreement"]),
            f"{m['drop_points']:+.2f}",
            f"{m['seconds']:.1f}",
        ]
        table.add_row(*row)
    f = res.get("fused")
    if f:
        row = ["fused", "", "", "", _pct(f["keras_accuracy"])]
        if pruned:
            row.append("")
        row += [_pct(f["tflite_accuracy"]), _pct(f["agreement"]), f"{f['drop_points']:+.2f}", ""]
        table.add_row(*row)
    total_raw = sum(m["size_bytes"] for m in res["models"].values())
    total_gz = sum(m["gzip_bytes"] for m in res["models"].values())
    row = ["bundle", _kb(total_raw), _kb(total_gz), "", ""]
    if pruned:
        row.append("")
    row += ["", "", "", f"{res['seconds']:.1f}"]
    table.add_row(*row, style="bold")
    console = TablePrinter()
    console.print(table)
    if res.get("ptq"):
        console.print(_ptq_vs_qat(res))
    if pruned:
        layers = Table(title="measured sparsity of the pruned weights (stripped model), per layer")
        for col in ("model", "layer/weight", "zeros %"):
            layers.add_column(col, justify="right" if col == "zeros %" else "left")
        for name, m in res["models"].items():
            sp = m.get("sparsity") or {}
            for layer, value in sp.get("layers", {}).items():
                layers.add_row(name, layer, f"{100 * value:.1f}")
            if sp:
                block = sp.get("block") or 1
                blocks = f", blocks of {block}" if block > 1 else ""
                layers.add_row(
                    name,
                    f"all pruned weights (target {100 * sp['target']:.0f}%"
                    f"{', ' + sp['structured'] if sp.get('structured') else ''}"
                    f"{blocks}); every weight",
                    f"{100 * sp['measured']:.1f}; {100 * sp['overall']:.1f}",
                    style="bold",
                )
        console.print(layers)
    console.print(
        f"wrote {res['bundle']} ({res['bundle_bytes']:,} bytes) from run {res['run_dir']}; "
        f"max drop allowed {res['max_drop_points']:g} points",
        highlight=False,
    )


def _ms(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def _ptq_vs_qat(res: dict):
    """Post-training vs quantisation-aware int8: TFLite accuracy on test, size, p50 latency."""
    from rich.table import Table  # noqa: PLC0415

    table = Table(title="int8: post-training (PTQ) vs quantisation-aware (QAT), on test")
    for col in ("model", "PTQ %", "QAT %", "change pts", "PTQ KiB", "QAT KiB"):
        table.add_column(col, justify="left" if col == "model" else "right")
    table.add_column("PTQ p50 ms", justify="right")
    table.add_column("QAT p50 ms", justify="right")
    ptq = res["ptq"]
    for name, q in res["models"].items():
        p = ptq["models"][name]
        change = 100 * (q["tflite_accuracy"] - p["tflite_accuracy"])
        table.add_row(
            name,
            _pct(p["tflite_accuracy"]),
            _pct(q["tflite_accuracy"]),
            f"{change:+.2f}",
            _kb(p["size_bytes"]),
            _kb(q["size_bytes"]),
            _ms(p.get("latency_ms")),
            _ms(q.get("latency_ms")),
        )
    f, pf = res.get("fused"), ptq.get("fused")
    if f and pf:
        change = 100 * (f["tflite_accuracy"] - pf["tflite_accuracy"])
        table.add_row(
            "fused", _pct(pf["tflite_accuracy"]), _pct(f["tflite_accuracy"]), f"{change:+.2f}"
        )
    return table
