"""``edgeav info``: what is inside a model.edgeav bundle (no TensorFlow needed)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from edgeav.bundle import Bundle


def bundle_info(bundle: Bundle) -> dict[str, Any]:
    """Everything ``edgeav info`` shows about a bundle :func:`~edgeav.bundle.read_bundle` read,
    as a JSON-ready dict."""
    from edgeav.tflite_schema import available, describe  # noqa: PLC0415

    manifest = bundle.manifest
    models: dict[str, Any] = {}
    for modality in bundle.modalities:
        data = bundle.model_bytes(modality)
        entry = manifest.entry(modality)
        item: dict[str, Any] = {
            "file": entry.file,
            "size_bytes": len(data),
            "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0)),
            "sha256": hashlib.sha256(data).hexdigest(),
            "params": entry.params,
            "output": entry.output,
        }
        if available():
            item["tflite"] = describe(data).to_dict()
        models[modality] = item
    for role, data in (bundle.frontend_models() or {}).items():
        models[f"frontend {role}"] = {
            "file": manifest.frontend["models"][role],
            "size_bytes": len(data),
            "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0)),
            "sha256": hashlib.sha256(data).hexdigest(),
            "params": None,
            "output": "front-end",
            **({"tflite": describe(data).to_dict()} if available() else {}),
        }
    return {
        "path": str(bundle.path),
        "feature_dim": bundle.feature_config.dim if manifest.audio else None,
        "size_bytes": bundle.path.stat().st_size,
        "manifest": manifest.to_dict(),
        "models": models,
    }


def info(
    bundle: Path = typer.Argument(..., help="The model.edgeav bundle to describe."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show what is inside a model.edgeav bundle (no TensorFlow needed).

    Labels, preprocessing, fusion, quantisation, sparsity and accuracy, and per model its
    input/output tensors (shape, dtype, scale, zero point), operator counts and sizes.

    The bundle is fully validated first (hashes, names, sizes, shapes); an invalid one is an error.
    """
    from edgeav.bundle import read_bundle  # noqa: PLC0415

    loaded = read_bundle(bundle)
    result = bundle_info(loaded)
    if json_out:
        typer.echo(json.dumps(result, indent=2))
        return
    print_info(loaded, result)


def _fmt_quant(t: dict[str, Any]) -> tuple[str, str]:
    if not t["scale"]:
        return "-", "-"
    if len(t["scale"]) == 1:
        return f"{t['scale'][0]:.6g}", str(t["zero_point"][0] if t["zero_point"] else 0)
    return f"per-channel ({len(t['scale'])})", "..."


def print_info(bundle: Bundle, res: dict[str, Any]) -> None:
    """The tables on stdout: the manifest from ``bundle``, sizes and tensors from ``res``."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from edgeav.commands.tables import TablePrinter  # noqa: PLC0415

    m = bundle.manifest
    console = Console()  # the summary's prose wraps; the tables of figures print at full width
    figures = TablePrinter()
    summary = Table(title=f"{res['path']} ({res['size_bytes']:,} bytes)", show_header=False)
    summary.add_column("field", style="bold")
    summary.add_column("value")
    classes = m.classes
    shown = ", ".join(classes[:12]) + (
        f", ... ({len(classes)} in all)" if len(classes) > 12 else ""
    )
    spec, fc, fusion = m.image_spec, m.feature_config, m.fusion
    summary.add_row("format", f"edgeav bundle v{m.format_version} (edgeav {m.edgeav_version})")
    summary.add_row("created", m.created)
    summary.add_row("classes", f"{len(classes)}: {shown}")
    summary.add_row(
        "image input",
        f"{spec.size}x{spec.size}x{spec.channels}"
        f"{' ' + spec.color_order if spec.channels == 3 else ''}, "
        f"crop {spec.crop}, x*{spec.scale:.6g}"
        f"+{spec.offset:g}{', inverted' if spec.invert else ''}",
    )
    kind = m.audio_input.kind
    level = (
        f", level normalised to {m.audio_input.target_dbfs:g} dBFS"
        if m.audio_input.target_dbfs is not None
        else ""
    )
    what = {
        "features": f"{res['feature_dim']} averaged MFCC/chroma/mel/contrast values",
        "log-mel": f"{m.audio_input.n_mels}-band log-mel frames",
        "speech-embedding": "speech embeddings (96 values every 80 ms)",
        "embedding+features": (
            f"speech embeddings (96 values every 80 ms) and {fc.dim} MFCC/chroma/mel/contrast "
            f"statistics"
        ),
    }[kind]
    summary.add_row(
        "audio input", f"{what} of {fc.window_seconds:g} s windows at {fc.sample_rate} Hz{level}"
    )
    if m.frontend is not None:
        origin = m.frontend["origin"]
        summary.add_row(
            "audio front-end",
            f"{origin.get('model', '?')}; {origin.get('package', '?')}, "
            f"licence {origin.get('license', '?')}",
        )
    summary.add_row("fusion", f"log-linear: image {fusion.image}, audio {fusion.audio}")
    from edgeav.calibration import describe_thresholds  # noqa: PLC0415

    cal = m.calibration
    summary.add_row(
        "calibration",
        f"temperature image {cal.temperature['image']:g}, audio {cal.temperature['audio']:g}; "
        f"minimum confidence image {cal.min_confidence['image']:.2f}, "
        f"audio {cal.min_confidence['audio']:.2f}; decision threshold by modalities used: "
        f"{describe_thresholds(cal.threshold)}",
    )
    summary.add_row("quantization", m.quantization)
    outputs = {m_: v["output"] for m_, v in res["models"].items() if m_ in bundle.modalities}
    summary.add_row(
        "model outputs",
        ", ".join(
            f"{m_} {kind}{' (softmax at run time)' if kind == 'logits' else ''}"
            for m_, kind in outputs.items()
        ),
    )
    sp = m.sparsity
    if sp:
        measured = ", ".join(
            f"{k} {100 * v['measured']:.1f}%" for k, v in sp.items() if isinstance(v, dict)
        )
        target = f"{100 * sp['target']:.0f}%" if sp.get("target") is not None else "?"
        summary.add_row(
            "sparsity",
            f"target {target}{' (' + sp['structured'] + ')' if sp.get('structured') else ''}; "
            f"measured {measured}",
        )
    else:
        summary.add_row("sparsity", "not pruned")
    acc = m.accuracy
    if acc.keras and acc.tflite:
        parts = [
            f"{k} {100 * acc.keras[k]:.2f} -> {100 * acc.tflite.get(k, float('nan')):.2f}"
            for k in acc.keras
        ]
        summary.add_row(f"accuracy % ({acc.split or '?'})", "; ".join(parts) + " (Keras -> TFLite)")
    console.print(summary)

    tensors = Table(title="model tensors")
    for col in ("model", "tensor", "shape", "dtype", "scale", "zero point"):
        tensors.add_column(col)
    sizes = Table(title="model sizes")
    for col in ("model", "file", "params", "tflite", "gzipped", "weights", "zero weights %"):
        sizes.add_column(col, justify="left" if col in ("model", "file") else "right")
    ops = Table(title="operators")
    ops.add_column("model")
    ops.add_column("operator counts")
    for modality, item in res["models"].items():
        t = item.get("tflite")
        if t:
            for role in ("inputs", "outputs"):
                for tensor in t[role]:
                    scale, zero = _fmt_quant(tensor)
                    tensors.add_row(
                        modality, role[:-1], str(tensor["shape"]), tensor["dtype"], scale, zero,
                    )  # fmt: skip
            ops.add_row(modality, ", ".join(f"{k} {v}" for k, v in t["op_counts"].items()))
        sizes.add_row(
            modality,
            item["file"],
            "-" if item["params"] is None else f"{item['params']:,}",
            f"{item['size_bytes']:,}",
            f"{item['gzip_bytes']:,}",
            f"{t['weight_bytes']:,}" if t else "?",
            f"{100 * t['weight_sparsity']:.1f}" if t else "?",
        )
    if any(item.get("tflite") for item in res["models"].values()):
        figures.print(tensors)
        console.print(ops)
    else:
        console.print("(install ai-edge-litert to see tensors and operators)")
    figures.print(sizes)
