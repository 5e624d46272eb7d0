"""The demo's figures: ``summary.json``, ``report.md`` and the summary printed on stdout.

:func:`build_summary` gathers every figure of a demo run (the data set, training, the bundle's
manifest, the benchmarks, the run on the test stream, the time per stage) into one JSON-ready
dict; :func:`render_report` turns it into Markdown tables and :func:`print_summary` into rich
tables for a person. The stages that produce the figures are in :mod:`edgeav.demo`.
"""

from __future__ import annotations

import contextlib
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeav import __version__

if TYPE_CHECKING:
    from edgeav.demo import DemoSettings

#: Identifies ``summary.json``.
SUMMARY_FORMAT = "edgeav-demo/1"

#: Modalities in the accuracy tables, in order.
ROWS = ("image", "audio", "fused")


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _host() -> dict[str, Any]:
    from edgeav.benchmarks.report import host_info  # noqa: PLC0415

    return {**host_info(), "cpu": _cpu_name()}


def _stage_latency(bench_stages: list[dict[str, Any]], run_latency: dict[str, Any]):
    out: dict[str, dict[str, float | None]] = {}
    bench = {r["stage"]: r for r in bench_stages}
    from edgeav.runtime.pipeline import STAGES  # noqa: PLC0415 (the bench rows and run summary merged)

    for stage in STAGES:
        b, r = bench.get(stage), run_latency.get(stage)
        if b is None and r is None:
            continue
        out[stage] = {
            "bench_p50": None if b is None else round(b["p50_ms"], 4),
            "bench_p90": None if b is None else round(b["p90_ms"], 4),
            "bench_mean": None if b is None else round(b["mean_ms"], 4),
            "run_p50": None if r is None else r["p50"],
            "run_p95": None if r is None else r["p95"],
        }
    return out


def build_summary(
    *,
    out: Path,
    cfg: DemoSettings,
    data: dict[str, Any],
    metrics: dict[str, Any],
    converted: Any,
    benched: dict[str, Any],
    stream: Any,
    ran: dict[str, Any],
    seconds: dict[str, float],
    streams: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Every figure of the demo as one JSON-ready dict (``summary.json``)."""
    from edgeav import __version__  # noqa: PLC0415
    from edgeav.bundle import read_bundle  # noqa: PLC0415

    bundle_path = Path(converted.out)
    manifest = read_bundle(bundle_path).manifest
    acc = manifest.accuracy
    conv = converted.to_dict()
    accuracy = {
        "split": acc.split or "test",
        "keras": {m: acc.keras.get(m) for m in ROWS},
        "keras_pruned": {m: acc.keras_pruned.get(m) for m in ROWS},
        "tflite": {m: acc.tflite.get(m) for m in ROWS},
        "agreement": {m: acc.agreement.get(m) for m in ROWS},
        "samples": {m: acc.samples.get(m) for m in ROWS},
        "stream": dict(ran["accuracy"]),
        "stream_seconds": ran["seconds"],
    }
    models = {}
    for m, r in conv["models"].items():
        sp = r.get("sparsity") or {}
        models[m] = {
            "file": f"{m}.tflite",
            "size_bytes": r["size_bytes"],
            "gzip_bytes": r["gzip_bytes"],
            "params": r["params"],
            "sparsity": sp.get("measured"),
            "drop_points": r["drop_points"],
        }
    bench_models = {
        r["model"]: {
            "p50_ms": round(r["p50_ms"], 4),
            "p90_ms": round(r["p90_ms"], 4),
            "mean_ms": round(r["mean_ms"], 4),
            "size_bytes": r.get("size_bytes"),
            "params": r.get("params"),
            "backend": r.get("backend"),
        }
        for r in benched["models"]
    }
    zoo = [
        {
            k: r.get(k)
            for k in (
                "model",
                "input",
                "params",
                "macs",
                "quant",
                "threads",
                "size_bytes",
                "p50_ms",
            )
        }
        for r in benched["zoo"]
    ]
    run_summary = ran["summary"]
    tps = benched["ticks_per_second"]
    train_cfg = metrics.get("config", {})
    return {
        "format": SUMMARY_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "edgeav_version": __version__,
        "fast": cfg.fast,
        "settings": cfg.to_dict(),
        "host": _host(),
        "paths": {
            "out": str(out),
            "data": str(out / "data"),
            "run": str(out / "run"),
            "bundle": str(bundle_path),
            "plot": str(out / "latency.png"),
            "report": str(out / "report.md"),
            "video": str(stream.video),
            "wav": str(stream.wav),
            "predictions": str(out / "stream" / "predictions.jsonl"),
        },
        "data": {"name": "av-digits", "per_class": cfg.per_class, **data},
        "train": {
            "image_model": train_cfg.get("image_model"),
            "input_size": manifest.image_spec.size,
            "epochs": {
                k: train_cfg.get(k)
                for k in (
                    "epochs",
                    "audio_epochs",
                    "triplet_epochs",
                    "audio_triplet_epochs",
                    "head_epochs",
                )
            },
            "params": metrics.get("params"),
            "audio_model": metrics.get("audio_model", "audio-mlp"),
            "accuracy": {s: metrics[s]["accuracy"] for s in ("step1", "step2") if s in metrics},
            "fusion": metrics.get("step2", {}).get("fusion"),
        },
        "accuracy": accuracy,
        "bundle": {
            "path": str(bundle_path),
            "size_bytes": bundle_path.stat().st_size,
            "quantization": manifest.quantization,
            "sparsity_target": cfg.prune,
            "models": models,
            "classes": list(manifest.classes),
            "warnings": list(conv.get("over_limit") or []),
        },
        "latency_ms": {
            "threads": cfg.threads,
            "backend": run_summary.get("backend"),
            "models": bench_models,
            "stages": _stage_latency(benched["stages"], run_summary.get("latency_ms", {})),
            "ticks_per_second": tps.get(str(cfg.threads)),
        },
        "run": {
            "ticks": ran["ticks"],
            "seconds": run_summary.get("seconds"),
            "ticks_per_second": run_summary.get("ticks_per_second"),
            "end": run_summary.get("end"),
            "modalities": run_summary.get("modalities"),
            "frames_dropped": run_summary.get("frames_dropped"),
            "audio_overflows": run_summary.get("audio_overflows"),
        },
        "zoo": {"classes": benched["zoo_classes"], "rows": zoo},
        "streams": {
            name: {
                "seconds": r["seconds"],
                "accuracy": r["accuracy"],
                "named": r["named"],
                "named_accuracy": r["named_accuracy"],
            }
            for name, r in {"test": ran, **(streams or {})}.items()
        },
        "calibration": manifest.calibration.to_dict(),
        "ece": metrics.get("step2", {}).get("ece"),
        "nothing_named": metrics.get("step2", {}).get("nothing_named"),
        "seconds": seconds,
    }


def pct(x: float | None) -> str:
    """A fraction as a percentage with two decimals (the report's and the summary's format)."""
    return "-" if x is None else f"{100 * x:.2f}"


def _ms(x: float | None) -> str:
    from edgeav.benchmarks.report import ms  # noqa: PLC0415

    return ms(x)


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:,.1f}"


def _pruned(summary: dict[str, Any]) -> bool:
    return bool(summary["bundle"].get("sparsity_target"))


def accuracy_header(summary: dict[str, Any]) -> list[str]:
    """The accuracy table's columns ("Keras pruned" only for a pruned bundle)."""
    quant = summary["bundle"]["quantization"]
    pruned = ["Keras pruned"] if _pruned(summary) else []
    return ["model", "Keras", *pruned, f"TFLite {quant}", "edgeav run (stream)"]


def accuracy_rows(summary: dict[str, Any]) -> list[list[str]]:
    """Rows of the accuracy table: modality, Keras, (Keras pruned,) TFLite, live stream (%)."""
    acc = summary["accuracy"]
    return [
        [
            m,
            pct(acc["keras"][m]),
            *([pct(acc["keras_pruned"][m])] if _pruned(summary) else []),
            pct(acc["tflite"][m]),
            pct(acc["stream"][m]),
        ]
        for m in ROWS
    ]


LATENCY_HEADER = ("stage", "bench p50", "bench p90", "run p50", "run p95")


def latency_rows(summary: dict[str, Any]) -> list[list[str]]:
    lat = summary["latency_ms"]
    rows = [
        [f"{m} model alone", _ms(r["p50_ms"]), _ms(r["p90_ms"]), "", ""]
        for m, r in lat["models"].items()
        if m != "fused"
    ]
    for stage, r in lat["stages"].items():
        rows.append(
            [stage, _ms(r["bench_p50"]), _ms(r["bench_p90"]), _ms(r["run_p50"]), _ms(r["run_p95"])]
        )
    return rows


def next_commands(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(comment, command) pairs: what to try after the demo."""
    bundle = summary["paths"]["bundle"]
    video, wav = summary["paths"]["video"], summary["paths"]["wav"]
    wheel = f"edgeav-{__version__}-py3-none-any.whl"
    return [
        ("build edgeav's wheel (dist/)", "make wheel"),
        (
            "copy the bundle and the wheel to a Raspberry Pi (64-bit OS)",
            f"scp {bundle} dist/{wheel} pi@raspberrypi.local:",
        ),
        ("on the Pi: PortAudio and venv", "sudo apt install libportaudio2 python3-venv"),
        (
            "on the Pi: install the runtime into a venv",
            f'python3 -m venv ~/edgeav && ~/edgeav/bin/pip install "./{wheel}[runtime]"',
        ),
        (
            "on the Pi: classify camera + microphone",
            "~/edgeav/bin/edgeav run --model model.edgeav --camera 0 --mic",
        ),
        ("on the Pi: time it there", "~/edgeav/bin/edgeav bench model.edgeav"),
        (
            "here: replay the first 30 s of the test stream in real time",
            f"edgeav run --model {bundle} --camera {video} --audio-file {wav} --duration 30",
        ),
        ("here: what is inside the bundle", f"edgeav info {bundle}"),
        ("here: your own data (DATA/{train,val,test}/{image,audio}/<class>/)", "edgeav train DATA"),
    ]


def _md_table(header: list[str] | tuple[str, ...], rows: list[list[str]], left: int = 1) -> str:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join(":---" if i < left else "---:" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def render_report(summary: dict[str, Any], benched: dict[str, Any]) -> str:
    """``report.md``: the tables and the latency plot (relative link)."""
    from edgeav.benchmarks import bundle_bench, report  # noqa: PLC0415

    host = summary["host"]
    bundle = summary["bundle"]
    acc = summary["accuracy"]
    quant = bundle["quantization"]
    mode = "`edgeav demo --fast`" if summary["fast"] else "`edgeav demo`"
    total = summary["seconds"].get("total", 0.0)
    if _pruned(summary):
        conversion = (
            f"bundle pruned to {bundle['sparsity_target']:g} sparsity and quantised to {quant}.\n"
        )
        pruned_column = "Keras pruned: after pruning and fine-tuning; "
    else:
        conversion, pruned_column = f"bundle quantised to {quant}, not pruned.\n", ""
    out: list[str] = [
        "# edgeav demo report\n",
        f"{mode} on {summary['created']} — {host['cpu']} ({host['cpus']} CPUs, "
        f"{host['machine']}, {host['system']} {host['release']}, Python {host['python']}); "
        f"edgeav {summary['edgeav_version']}; the whole demo took {total:.0f} s.\n",
        "Data: av-digits (MNIST digits paired with spoken digits), "
        f"--per-class {summary['data']['per_class']}. Image model "
        f"`{summary['train']['image_model']}` ({summary['train']['input_size']}x"
        f"{summary['train']['input_size']}), audio model `{summary['train']['audio_model']}`; "
        + conversion,
        "## Accuracy on the test split (%)\n",
        "Keras: the trained models; "
        + pruned_column
        + "TFLite: the bundle's models in LiteRT; edgeav run: the runtime on the test stream "
        f"({acc['stream_seconds']} items of video + audio, each one audio window long, one "
        "prediction per item). Voices in the "
        "test split never occur in training.\n",
        _md_table(accuracy_header(summary), accuracy_rows(summary)),
    ]
    train_acc = summary["train"]["accuracy"]
    if train_acc.get("step1") and train_acc.get("step2"):
        splits = [s for s in train_acc["step1"] if s != "val"]
        header = ["model"] + [f"{s} step {n}" for s in splits for n in (1, 2)]
        rows = [
            [m] + [pct(train_acc[st][s][m]) for s in splits for st in ("step1", "step2")]
            for m in ROWS
        ]
        out += [
            "## Training (%)\n",
            "Step 1: cross-entropy; step 2: triplet loss on the embedding, then the head refit. "
            "test-noisy is the test split degraded (image noise and occlusion, audio at about "
            "0 dB SNR); test-unseen holds speech engines and voice families and handwriting "
            "that no train or val sample uses.\n",
            _md_table(header, rows),
        ]
    out += _streams_section(summary)
    rows = [
        [
            m["file"],
            f"{m['size_bytes']:,}",
            f"{m['gzip_bytes']:,}",
            f"{m['params']:,}",
            "-" if m["sparsity"] is None else f"{100 * m['sparsity']:.1f}",
        ]
        for m in bundle["models"].values()
    ]
    rows.append([Path(bundle["path"]).name, f"{bundle['size_bytes']:,}", "", "", ""])
    out += [
        "## Bundle\n",
        f"`{bundle['path']}`: {bundle['size_bytes']:,} bytes ({_kib(bundle['size_bytes'])} KiB), "
        "the one file to copy to the device. Sparsity is measured in the pruned weights; it "
        "shows in the gzip size, not the raw one.\n",
        _md_table(["file", "bytes", "gzip bytes", "params", "sparsity %"], rows),
    ]
    if bundle["warnings"]:
        out.append("Warnings: " + "; ".join(bundle["warnings"]) + "\n")
    lat = summary["latency_ms"]
    tps = lat["ticks_per_second"]
    out += [
        "## Latency per stage (ms)\n",
        f"bench: `edgeav bench` on the bundle ({lat['threads']} thread, synthetic 640x480 frame "
        f"and random audio; {'-' if tps is None else f'{tps:.0f}'} ticks/s); run: the "
        f"runtime on the test stream ({lat['backend']}). compute = everything after capture.\n",
        _md_table(list(LATENCY_HEADER), latency_rows(summary)),
        "### Each model alone and the pipeline\n",
        report.to_markdown(benched["models"]),
        bundle_bench.stages_markdown(benched["stages"]),
        f"### Zoo sweep (`edgeav bench --quick`: random weights, {summary['zoo']['classes']} "
        "classes)\n",
        report.to_markdown(benched["zoo"]),
        "![latency against parameters](latency.png)\n",
        "## Next\n",
        "```sh\n" + "\n".join(f"# {c}\n{cmd}" for c, cmd in next_commands(summary)) + "\n```\n",
        "## Time per stage (s)\n",
        _md_table(
            ["stage", "seconds"],
            [[k, f"{v:.1f}"] for k, v in summary["seconds"].items()],
        ),
    ]
    return "\n".join(out)


def _streams_section(summary: dict[str, Any]) -> list[str]:
    """The report's streams table: every stream the runtime ran, each modality's accuracy, the
    share of ticks that named a label at the bundle's threshold and how many of those were
    right; then the calibration."""
    streams = summary.get("streams") or {}
    if not streams:
        return []
    header = ["stream", "items", *ROWS, "named", "right when named"]
    rows = [
        [
            name,
            str(r["seconds"]),
            *(pct(r["accuracy"].get(m)) for m in ROWS),
            pct(r["named"]),
            pct(r["named_accuracy"]),
        ]
        for name, r in streams.items()
    ]
    from edgeav.calibration import describe_thresholds  # noqa: PLC0415

    cal = summary.get("calibration") or {}
    out = [
        "## edgeav run on streams (%)\n",
        "test and test-unseen: one item per audio window, as in the table above; nothing: "
        "five minutes of empty scenes (no sheet, or a blank one) with room noise, where every "
        "named label is a false alarm. named: ticks whose confidence reached the bundle's decision "
        "threshold for the modalities they used (chosen on val: "
        f"{describe_thresholds(cal.get('threshold', 0))}).\n",
        _md_table(header, rows),
    ]
    ece = summary.get("ece") or {}
    if ece:
        t = cal.get("temperature", {})
        rows = [
            [split, *(f"{pct(e[m]['before'])} → {pct(e[m]['after'])}" for m in ("image", "audio"))]
            for split, e in ece.items()
        ]
        out += [
            "## Calibration\n",
            f"Temperatures fit on val: image {t.get('image', 1):g}, audio {t.get('audio', 1):g}. "
            "Expected calibration error (%), before → after:\n",
            _md_table(["split", "image", "audio"], rows),
        ]
    return out


def print_summary(summary: dict[str, Any], console: Any) -> None:
    """The summary on stdout: accuracy, bundle, latency per stage, next commands."""
    from rich.table import Table  # noqa: PLC0415

    bundle = summary["bundle"]
    quant = bundle["quantization"]
    acc = summary["accuracy"]
    table = Table(
        title=f"accuracy on the test split (%), test stream of {acc['stream_seconds']} items",
        title_justify="left",
    )
    for i, h in enumerate(accuracy_header(summary)):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in accuracy_rows(summary):
        table.add_row(*row)
    console.print(table)
    step2 = summary["train"]["accuracy"].get("step2", {})
    if step2:
        splits = Table(
            title=f"accuracy on every split (%), Keras, audio model {summary['train']['audio_model']}",
            title_justify="left",
        )
        splits.add_column("model")
        for split in step2:
            splits.add_column(split, justify="right")
        for m in ROWS:
            splits.add_row(m, *(pct(step2[split][m]) for split in step2))
        console.print(splits)
    for name, r in (summary.get("streams") or {}).items():
        console.print(
            f"edgeav run on the {name} stream ({r['seconds']} items): "
            + ", ".join(f"{m} {pct(r['accuracy'].get(m))} %" for m in ROWS)
            + f"; named a label on {pct(r['named'])} % of ticks"
            + ("" if r["named_accuracy"] is None else f", {pct(r['named_accuracy'])} % right"),
            highlight=False,
            markup=False,
        )

    sizes = ", ".join(
        f"{m['file']} {_kib(m['size_bytes'])} KiB"
        + ("" if m["sparsity"] is None else f" ({100 * m['sparsity']:.0f} % zeros)")
        for m in bundle["models"].values()
    )
    console.print(
        f"bundle {bundle['path']}: {_kib(bundle['size_bytes'])} KiB ({quant}; {sizes})",
        highlight=False,
        markup=False,
    )
    for w in bundle["warnings"]:
        console.print(f"warning: {w}", style="yellow", highlight=False, markup=False)

    lat = summary["latency_ms"]
    table = Table(
        title=f"latency per stage (ms, {lat['threads']} thread bench; run on the test stream)",
        title_justify="left",
    )
    for i, h in enumerate(LATENCY_HEADER):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in latency_rows(summary):
        table.add_row(*row)
    console.print(table)
    paths = summary["paths"]
    console.print(
        f"report {paths['report']} (plot {paths['plot']}), figures "
        f"{Path(paths['out']) / 'summary.json'}; demo took {summary['seconds']['total']:.0f} s",
        highlight=False,
        markup=False,
    )
    console.print("\n[bold]Next:[/]")
    for comment, command in next_commands(summary):
        console.print(f"  # {comment}", style="dim", highlight=False, markup=False)
        console.print(f"  {command}", highlight=False, markup=False, soft_wrap=True)
