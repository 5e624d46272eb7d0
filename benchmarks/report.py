"""Benchmark results as a table, Markdown, CSV, JSON and a latency-against-parameters plot.

A result row is a flat dict; :func:`finish_rows` adds the derived columns. The keys a row may
carry (missing or None ones are shown as "-"):

    model, family, input (e.g. "224x224x3"), params, macs, size_bytes, quant, threads,
    p50_ms, p90_ms, p99_ms, mean_ms, std_ms, min_ms, max_ms, init_ms, first_ms, runs, warmup,
    peak_rss_mb, accuracy (a fraction in [0, 1]), backend, cached

and derived: ``gmacs`` (effective GMAC/s = MACs / p50), ``metric`` (the seed's metric: accuracy
in % minus 0.1 x parameters in millions) and ``vs_float32`` (p50 over the float32 row's p50 of
the same model and threads: the int8/float32 latency ratio on int8 rows).

Matplotlib is imported only by the plots (:func:`write_plot`, :func:`write_tradeoff_plot`; Agg
backend), so tables and the device's bundle benchmark never need it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeav.errors import EdgeAVError
from edgeav.fileio import atomic_path, write_text_atomic

#: Identifies the JSON document ``--json`` prints.
JSON_FORMAT = "edgeav-bench/1"

#: Quantisation modes in the order tables list them.
QUANT_ORDER = ("float32", "float16", "dynamic", "int8")


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, fmt)


def ms(value: Any) -> str:
    """Milliseconds with about three significant digits (0.0012, 0.123, 12.35, 1234.5)."""
    if value is None:
        return "-"
    for limit, fmt in ((0.01, ".4f"), (1, ".3f"), (100, ".2f")):
        if value < limit:
            return format(value, fmt)
    return f"{value:.1f}"


def count(value: Any) -> str:
    """A count with a K/M/G suffix (357.3K, 13.62M, 4.12G)."""
    if value is None:
        return "-"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{suffix}" if suffix != "K" else f"{value / scale:.1f}K"
    return str(int(value))


def _megabytes(value: Any) -> str:
    return "-" if value is None else f"{value / 1e6:.2f} MB"


def _percent(value: Any) -> str:
    return "-" if value is None else f"{100.0 * value:.2f}%"


@dataclass(frozen=True)
class Column:
    """One column of the table: the row key, its heading and how a value is shown."""

    key: str
    title: str
    show: Callable[[Any], str]
    right: bool = True


#: The table's columns (rich, Markdown). CSV and JSON carry every key of the rows.
COLUMNS: tuple[Column, ...] = (
    Column("model", "model", str, right=False),
    Column("input", "input", str, right=False),
    Column("params", "params", count),
    Column("macs", "MACs", count),
    Column("size_bytes", "size", _megabytes),
    Column("quant", "quant", str, right=False),
    Column("threads", "threads", lambda v: _num(v, "d")),
    Column("p50_ms", "p50 ms", ms),
    Column("p90_ms", "p90 ms", ms),
    Column("gmacs", "GMAC/s", lambda v: _num(v, ".2f")),
    Column("vs_float32", "x float32", lambda v: _num(v, ".2f")),
    Column("accuracy", "accuracy", _percent),
    Column("metric", "metric", lambda v: _num(v, ".2f")),
)

#: Keys left out of CSV (lists, per-run times).
_CSV_SKIP = {"times_ms", "inputs"}


def seed_metric(accuracy: float | None, params: int | None) -> float | None:
    """The seed's metric: accuracy in % minus 0.1 x parameters in millions."""
    if accuracy is None or params is None:
        return None
    return 100.0 * float(accuracy) - 0.1 * params / 1e6


def finish_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy the rows, add ``gmacs``, ``metric`` and ``vs_float32``, and sort them.

    Rows are sorted by model (first appearance), then quantisation (float32, float16, dynamic,
    int8), then threads.
    """
    rows = [dict(r) for r in rows]
    order: dict[str, int] = {}
    for row in rows:
        order.setdefault(str(row.get("model")), len(order))
        macs, p50 = row.get("macs"), row.get("p50_ms")
        row["gmacs"] = macs / (p50 / 1e3) / 1e9 if macs and p50 else None
        row["metric"] = seed_metric(row.get("accuracy"), row.get("params"))
    base = {
        (r.get("model"), r.get("threads")): r.get("p50_ms")
        for r in rows
        if r.get("quant") == "float32"
    }
    for row in rows:
        ref = base.get((row.get("model"), row.get("threads")))
        p50 = row.get("p50_ms")
        row["vs_float32"] = p50 / ref if ref and p50 is not None else None

    def key(r: dict[str, Any]) -> tuple:
        quant = r.get("quant")
        q = QUANT_ORDER.index(quant) if quant in QUANT_ORDER else len(QUANT_ORDER)
        return (order[str(r.get("model"))], q, r.get("threads") or 0)

    return sorted(rows, key=key)


def _columns(rows: Sequence[dict[str, Any]]) -> list[Column]:
    """The table's columns, without the ones no row has a value for."""
    return [c for c in COLUMNS if any(r.get(c.key) is not None for r in rows)]


def rich_table(rows: Sequence[dict[str, Any]], title: str | None = None):
    """A :class:`rich.table.Table` of the rows (run :func:`finish_rows` first)."""
    from rich.table import Table  # noqa: PLC0415

    columns = _columns(rows)
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col.title, justify="right" if col.right else "left", no_wrap=True)
    previous = None
    for row in rows:
        if previous is not None and row.get("model") != previous:
            table.add_section()
        previous = row.get("model")
        table.add_row(*(col.show(row.get(col.key)) for col in columns))
    return table


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A GitHub-flavoured Markdown table of the rows (run :func:`finish_rows` first)."""
    columns = _columns(rows)
    lines = [
        "| " + " | ".join(c.title for c in columns) + " |",
        "|" + "|".join("---:" if c.right else ":---" for c in columns) + "|",
    ]
    for row in rows:
        cells = (col.show(row.get(col.key)).replace("|", "\\|") for col in columns)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ratio_rows(rows: Sequence[dict[str, Any]], quant: str = "int8") -> list[dict[str, Any]]:
    """Per model and thread count: ``quant`` against float32 in latency (p50) and size."""
    float32 = {(r.get("model"), r.get("threads")): r for r in rows if r.get("quant") == "float32"}
    out = []
    for row in rows:
        ref = float32.get((row.get("model"), row.get("threads")))
        if row.get("quant") != quant or ref is None:
            continue
        p50, ref_p50 = row.get("p50_ms"), ref.get("p50_ms")
        size, ref_size = row.get("size_bytes"), ref.get("size_bytes")
        out.append(
            {
                "model": row.get("model"),
                "threads": row.get("threads"),
                "float32_p50_ms": ref_p50,
                f"{quant}_p50_ms": p50,
                "latency_ratio": p50 / ref_p50 if p50 and ref_p50 else None,
                "size_ratio": size / ref_size if size and ref_size else None,
            }
        )
    return out


def _ratio_cells(row: dict[str, Any], quant: str) -> list[str]:
    return [
        str(row["model"]),
        _num(row["threads"], "d"),
        ms(row["float32_p50_ms"]),
        ms(row[f"{quant}_p50_ms"]),
        _num(row["latency_ratio"], ".2f"),
        _num(row["size_ratio"], ".2f"),
    ]


def _ratio_titles(quant: str) -> list[str]:
    return [
        "model",
        "threads",
        "float32 p50 ms",
        f"{quant} p50 ms",
        f"{quant}/float32 latency",
        f"{quant}/float32 size",
    ]


def ratio_table(rows: Sequence[dict[str, Any]], quant: str = "int8"):
    """A rich table of :func:`ratio_rows`."""
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=f"{quant} against float32")
    for i, title in enumerate(_ratio_titles(quant)):
        table.add_column(title, justify="left" if i == 0 else "right", no_wrap=True)
    for row in ratio_rows(rows, quant):
        table.add_row(*_ratio_cells(row, quant))
    return table


def ratio_markdown(rows: Sequence[dict[str, Any]], quant: str = "int8") -> str:
    """A Markdown table of :func:`ratio_rows` (empty when no model has both)."""
    ratios = ratio_rows(rows, quant)
    if not ratios:
        return ""
    titles = _ratio_titles(quant)
    lines = ["| " + " | ".join(titles) + " |", "|:---|" + "---:|" * (len(titles) - 1)]
    lines += ["| " + " | ".join(_ratio_cells(r, quant)) + " |" for r in ratios]
    return "\n".join(lines) + "\n"


def _csv_fields(rows: Sequence[dict[str, Any]]) -> list[str]:
    fields: list[str] = []
    for row in rows:
        for key in row:
            if key not in _CSV_SKIP and key not in fields:
                fields.append(key)
    return fields


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV text: one line per row, every scalar key of the rows (empty when absent)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_csv_fields(rows), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items() if k not in _CSV_SKIP})
    return buf.getvalue()


def write_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write :func:`to_csv` to ``path`` atomically."""
    return write_text_atomic(path, to_csv(rows))


def host_info() -> dict[str, Any]:
    """Where the figures were measured: machine, OS, Python, CPU count."""
    return {
        "machine": platform.machine(),
        "system": platform.system(),
        "release": platform.release(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def to_json(rows: Sequence[dict[str, Any]], **extra: Any) -> str:
    """The JSON document ``--json`` prints: format, host, any ``extra`` keys, and the rows."""
    doc = {"format": JSON_FORMAT, "host": host_info(), **extra, "rows": list(rows)}
    return json.dumps(doc, indent=2, default=str)


# --- plot ---------------------------------------------------------------------------------------


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points on the front of (lowest latency, highest score), by latency.

    ``points`` are (latency, score) pairs; a point is on the front when no other point is at
    least as fast and scores at least as high, and is strictly better in one of the two.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


_MARKERS = {"float32": "o", "float16": "s", "dynamic": "^", "int8": "D"}


def _pyplot():
    """matplotlib.pyplot on the Agg backend, or a one-line error saying how to get it."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as exc:
        raise EdgeAVError(
            "--plot needs matplotlib: pip install matplotlib (or 'edgeav[train]')"
        ) from exc
    return plt


def write_tradeoff_plot(
    series: dict[str, Sequence[tuple[str, float, float]]],
    path: str | os.PathLike[str],
    *,
    title: str,
    budget_ms: float | None = None,
) -> Path:
    """Accuracy (y, %) against p50 latency (x, ms, log) and save a PNG atomically.

    ``series`` maps a legend label to ``(name, latency_ms, accuracy_percent)`` points; each
    series is drawn with its points labelled and its :func:`pareto_front` (the most accurate
    choice for each latency) as a dashed line. ``budget_ms`` draws the budget as a vertical line.
    """
    if not any(series.values()):
        raise EdgeAVError(f"nothing to plot in {path}: no point has a latency and an accuracy")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, points) in enumerate(series.items()):
        if not points:
            continue
        color = colors[i % len(colors)]
        ax.scatter([p[1] for p in points], [p[2] for p in points], color=color, label=label, s=45)
        for k, (name, x, y) in enumerate(points):
            ax.annotate(
                name,
                (x, y),
                textcoords="offset points",
                xytext=(6, 6 if k % 2 == 0 else -12),
                fontsize=8,
                color=color,
            )
        front = pareto_front([(p[1], p[2]) for p in points])
        ax.plot(
            [points[j][1] for j in front],
            [points[j][2] for j in front],
            color=color,
            linestyle="--",
            linewidth=1,
            label=f"Pareto front ({label.split(' ')[0]})",
        )
    if budget_ms is not None:
        ax.axvline(budget_ms, color="0.3", linewidth=1, label=f"budget {budget_ms:g} ms")
    ax.set_xscale("log")
    ax.margins(x=0.15, y=0.08)  # room for the labels
    ax.set_xlabel("latency p50 (ms)")
    ax.set_ylabel("accuracy on test (%)")
    ax.grid(True, which="both", linewidth=0.3, alpha=0.6)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def write_plot(
    rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], *, title: str | None = None
) -> Path:
    """Plot p50 latency (y, log) against parameters (x, log) and save a PNG atomically.

    One series per quantisation, each point labelled with its model, one panel per thread
    count, and the Pareto front drawn: the fastest way to each accuracy when every row has an
    accuracy, else the most parameters (capacity) for a given latency.
    """
    points = [r for r in rows if r.get("params") and r.get("p50_ms")]
    if not points:
        raise EdgeAVError(f"nothing to plot in {path}: no row has both parameters and a latency")
    plt = _pyplot()
    from matplotlib import ticker  # noqa: PLC0415

    threads = sorted({r.get("threads") or 0 for r in points})
    quants = [q for q in QUANT_ORDER if any(r.get("quant") == q for r in points)]
    quants += sorted({str(r.get("quant")) for r in points} - set(quants))
    use_accuracy = all(r.get("accuracy") is not None for r in points)
    score_key = "accuracy" if use_accuracy else "params"

    fig, axes = plt.subplots(
        1, len(threads), figsize=(6.5 * len(threads), 5.5), squeeze=False, sharey=True
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, nthreads in zip(axes[0], threads, strict=True):
        panel = [r for r in points if (r.get("threads") or 0) == nthreads]
        for qi, quant in enumerate(quants):
            series = [r for r in panel if str(r.get("quant")) == quant]
            if not series:
                continue
            ax.scatter(
                [r["params"] for r in series],
                [r["p50_ms"] for r in series],
                label=quant,
                marker=_MARKERS.get(quant, "o"),
                color=colors[qi % len(colors)],
                s=45,
                zorder=3,
            )
        # One label per model, beside its slowest point: a model's points share one x.
        tops: dict[str, dict[str, Any]] = {}
        for r in panel:
            name = str(r.get("model"))
            if name not in tops or r["p50_ms"] > tops[name]["p50_ms"]:
                tops[name] = r
        ordered = sorted(tops.items(), key=lambda item: item[1]["params"])
        for i, (name, r) in enumerate(ordered):
            ax.annotate(
                name,
                (r["params"], r["p50_ms"]),
                textcoords="offset points",
                xytext=(6, 6 if i % 2 == 0 else -12),  # neighbours alternate above/below
                fontsize=8,
            )
        front = pareto_front([(r["p50_ms"], float(r[score_key])) for r in panel])
        ax.plot(
            [panel[i]["params"] for i in front],
            [panel[i]["p50_ms"] for i in front],
            color="0.4",
            linestyle="--",
            linewidth=1,
            zorder=2,
            label=f"Pareto front ({'accuracy' if use_accuracy else 'params'} vs latency)",
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        low = min(r["params"] for r in points)
        high = max(r["params"] for r in points)
        ax.set_xlim(low / 1.6, high * 2.5)  # room for the labels on the right
        label = ticker.FuncFormatter(lambda v, _: count(v))
        ax.xaxis.set_major_formatter(label)

        def minor(v: float, _: Any) -> str:  # label only 2x, 3x and 5x, or the labels collide
            lead = round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0
            return count(v) if lead in (2, 3, 5) else ""

        ax.xaxis.set_minor_formatter(
            ticker.FuncFormatter(minor) if high / low < 20 else ticker.NullFormatter()
        )
        ax.set_xlabel("parameters")
        ax.set_title(
            f"{nthreads} thread{'s' if nthreads != 1 else ''}" if nthreads else "default threads"
        )
        ax.grid(True, which="both", linewidth=0.3, alpha=0.6)
    handles: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(name, handle)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="lower center",
        ncol=len(handles),
        fontsize=9,
        frameon=False,
    )
    axes[0][0].set_ylabel("latency p50 (ms)")
    host = host_info()
    fig.suptitle(
        title
        or f"edgeav bench: latency against parameters ({host['machine']}, {host['cpus']} CPUs)"
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def run_and_report(
    measure: Callable[[], dict[str, Any]],
    *,
    as_json: bool,
    show: Callable[[dict[str, Any]], None],
) -> int:
    """The ``main`` of a ``python -m edgeav.benchmarks.*`` script: run ``measure``, print its
    result as JSON or with ``show``; an expected failure is one line on stderr and its exit
    status, Ctrl-C exits 130. Returns the exit status."""
    import sys  # noqa: PLC0415

    try:
        result = measure()
    except EdgeAVError as exc:
        print(f"edgeav: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgeav: interrupted", file=sys.stderr)
        return 130
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
    return 0
