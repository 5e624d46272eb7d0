"""Benchmarks: the timer's statistics on a tiny real model, and the table/CSV/JSON/plot writers."""

from __future__ import annotations

import csv
import json
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

from edgeav.benchmarks import report, timer
from edgeav.errors import EdgeAVError


def _tiny_tflite(quant: str) -> bytes:
    from edgeav.tf import keras, tf

    tf_, k = tf(), keras()
    k.utils.set_random_seed(0)
    model = k.Sequential(
        [
            k.layers.Input((8, 8, 3)),
            k.layers.SeparableConv2D(4, 3, padding="same", activation="relu"),
            k.layers.GlobalAveragePooling2D(),
            k.layers.Dense(3, activation="softmax"),
        ]
    )
    converter = tf_.lite.TFLiteConverter.from_keras_model(model)
    if quant == "int8":
        rng = np.random.default_rng(0)

        def representative():
            for _ in range(4):
                yield [rng.standard_normal((1, 8, 8, 3)).astype(np.float32)]

        converter.optimizations = [tf_.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf_.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf_.int8
        converter.inference_output_type = tf_.int8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Statistics for quantized inputs were expected"
        return converter.convert()


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "tiny.tflite"
    path.write_bytes(_tiny_tflite("float32"))
    return path


@pytest.fixture(scope="module")
def tiny_int8_tflite(tmp_path_factory) -> bytes:
    return _tiny_tflite("int8")


# --- timer --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_timer_statistics_are_consistent(tiny_tflite):
    result = timer.time_tflite(tiny_tflite, runs=25, warmup=3, threads=1)
    assert result["backend"] in ("ai_edge_litert", "tflite_runtime")
    assert result["runs"] == 25 and len(result["times_ms"]) == 25
    assert result["warmup"] == 3 and result["warmup_mean_ms"] > 0
    assert result["threads"] == 1
    assert result["size_bytes"] == tiny_tflite.stat().st_size
    assert result["inputs"] == [{"shape": [1, 8, 8, 3], "dtype": "float32"}]
    times = np.array(result["times_ms"])
    assert result["min_ms"] == pytest.approx(times.min())
    assert result["max_ms"] == pytest.approx(times.max())
    assert result["mean_ms"] == pytest.approx(times.mean())
    assert result["std_ms"] == pytest.approx(times.std())
    assert result["min_ms"] <= result["mean_ms"] <= result["max_ms"]
    assert result["min_ms"] <= result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"]
    assert result["p99_ms"] <= result["max_ms"]
    assert result["p50_ms"] == pytest.approx(float(np.median(times)))
    assert result["init_ms"] > 0 and result["first_ms"] > 0
    assert result["peak_rss_mb"] is not None and result["peak_rss_mb"] >= 0


@pytest.mark.slow
def test_timer_takes_bytes_and_int8_inputs(tiny_int8_tflite):
    result = timer.time_tflite(tiny_int8_tflite, runs=5, warmup=0)
    assert result["inputs"][0]["dtype"] == "int8"
    assert result["runs"] == 5 and result["warmup_mean_ms"] is None
    assert result["size_bytes"] == len(tiny_int8_tflite)


@pytest.mark.slow
def test_timer_max_seconds_stops_early_after_three_runs_and_one_warmup(tiny_tflite):
    result = timer.time_tflite(tiny_tflite, runs=1000, warmup=50, max_seconds=0.0)
    assert result["runs"] == 3 and len(result["times_ms"]) == 3
    assert result["warmup"] == 1


def test_timer_rejects_bad_input(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(EdgeAVError, match="bad.tflite"):
        timer.time_tflite(bad, runs=1)
    with pytest.raises(EdgeAVError, match="missing.tflite"):
        timer.time_tflite(tmp_path / "missing.tflite", runs=1)
    with pytest.raises(EdgeAVError, match="runs"):
        timer.time_tflite(bad, runs=0)


@pytest.mark.slow
def test_timer_script_prints_json(tiny_tflite, capsys):
    assert timer.main([str(tiny_tflite), "--runs", "3", "--warmup", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["runs"] == 3 and "times_ms" not in doc and doc["p50_ms"] > 0


# --- report -------------------------------------------------------------------------------------


def _rows() -> list[dict]:
    rows = []
    for model, params, macs, base in (
        ("small", 120_000, 3_000_000, 2.0),
        ("big", 2_400_000, 90_000_000, 20.0),
    ):
        for quant, factor, size in (("float32", 1.0, 4 * params), ("int8", 0.5, params)):
            for threads in (1, 2):
                p50 = base * factor / threads
                rows.append(
                    {
                        "model": model,
                        "input": "32x32x3",
                        "params": params,
                        "macs": macs,
                        "size_bytes": size,
                        "quant": quant,
                        "threads": threads,
                        "p50_ms": p50,
                        "p90_ms": p50 * 1.1,
                        "times_ms": [p50] * 3,
                        "accuracy": None,
                    }
                )
    return rows


def test_finish_rows_derives_ratio_gmacs_and_metric():
    rows = report.finish_rows(reversed(_rows()))
    assert [r["model"] for r in rows[:4]] == ["big"] * 4  # first appearance of reversed rows
    assert [(r["quant"], r["threads"]) for r in rows[:4]] == [
        ("float32", 1),
        ("float32", 2),
        ("int8", 1),
        ("int8", 2),
    ]
    for row in rows:
        assert row["vs_float32"] == pytest.approx(1.0 if row["quant"] == "float32" else 0.5)
        assert row["gmacs"] == pytest.approx(row["macs"] / (row["p50_ms"] / 1e3) / 1e9)
        assert row["metric"] is None
    assert report.seed_metric(0.9, 13_618_884) == pytest.approx(90.0 - 1.3618884)
    accurate = report.finish_rows([{"model": "m", "accuracy": 0.5, "params": 2_000_000}])
    assert accurate[0]["metric"] == pytest.approx(49.8)


def test_pareto_front_keeps_the_undominated_points():
    points = [(1.0, 1.0), (2.0, 0.5), (2.0, 3.0), (3.0, 2.0), (5.0, 4.0), (5.0, 4.0)]
    assert report.pareto_front(points) == [0, 2, 4]


def test_markdown_table_has_the_columns_and_one_line_per_row():
    rows = report.finish_rows(_rows())
    text = report.to_markdown(rows)
    lines = text.strip().splitlines()
    assert len(lines) == 2 + len(rows)
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    for title in (
        "model",
        "input",
        "params",
        "MACs",
        "size",
        "quant",
        "threads",
        "p50 ms",
        "p90 ms",
        "GMAC/s",
        "x float32",
    ):
        assert title in header
    assert "accuracy" not in header  # no row knows its accuracy
    first = [c.strip() for c in lines[2].strip("|").split("|")]
    assert first[header.index("model")] == "small"
    assert first[header.index("params")] == "120.0K"
    assert first[header.index("MACs")] == "3.00M"
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_rich_table_renders_every_row():
    from rich.console import Console

    rows = report.finish_rows(_rows())
    console = Console(width=200, record=True)
    console.print(report.rich_table(rows, title="t"))
    text = console.export_text()
    assert text.count("small") == 4 and text.count("big") == 4
    assert "x float32" in text


def test_csv_written_atomically_parses_back(tmp_path):
    rows = report.finish_rows(_rows())
    path = report.write_csv(rows, tmp_path / "bench.csv")
    assert not list(tmp_path.glob(".*part"))
    with open(path, newline="") as fh:
        back = list(csv.DictReader(fh))
    assert len(back) == len(rows)
    assert "times_ms" not in back[0]
    for key in (
        "model",
        "params",
        "macs",
        "size_bytes",
        "quant",
        "threads",
        "p50_ms",
        "vs_float32",
    ):
        assert key in back[0]
    assert [float(r["p50_ms"]) for r in back] == pytest.approx([r["p50_ms"] for r in rows])
    assert back[0]["accuracy"] == ""


def test_csv_to_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(EdgeAVError, match="nowhere"):
        report.write_csv(report.finish_rows(_rows()), tmp_path / "nowhere" / "b.csv")


def test_json_parses_back():
    rows = report.finish_rows(_rows())
    doc = json.loads(report.to_json(rows, mode="zoo"))
    assert doc["format"] == report.JSON_FORMAT and doc["mode"] == "zoo"
    assert doc["host"]["cpus"] >= 1
    assert len(doc["rows"]) == len(rows)
    assert doc["rows"][0]["p50_ms"] == rows[0]["p50_ms"]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert zlib.crc32(data[12:29]) == struct.unpack(">I", data[29:33])[0]  # IHDR intact
    return struct.unpack(">II", data[16:24])


@pytest.mark.slow
def test_plot_writes_a_png_with_one_panel_per_thread_count(tmp_path):
    rows = report.finish_rows(_rows())
    path = report.write_plot(rows, tmp_path / "latency.png")
    width, height = _png_size(path)
    assert width > 1.5 * height  # two panels side by side
    one = report.write_plot([r for r in rows if r["threads"] == 1], tmp_path / "one.png")
    w1, h1 = _png_size(one)
    assert w1 < width and h1 == height


def test_plot_without_latencies_is_an_error(tmp_path):
    with pytest.raises(EdgeAVError, match="nothing to plot"):
        report.write_plot([{"model": "m", "params": 3}], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# --- zoo sweep ----------------------------------------------------------------------------------


def _tiny_variant() -> str:
    from edgeav.benchmarks import zoo_sweep

    names = zoo_sweep.quick_models()
    assert names, "the zoo has no 32x32 variants"
    return names[0]


@pytest.fixture(scope="module")
def sweep_cache(tmp_path_factory) -> Path:
    """An ``EDGEAV_CACHE`` root whose ``bench/`` holds the tiny variant in float32 and int8."""
    return tmp_path_factory.mktemp("edgeav-cache")


@pytest.fixture(scope="module")
def swept(sweep_cache):
    """The first sweep of the tiny variant (converts), with what ``on_step`` reported."""
    from edgeav.benchmarks import zoo_sweep

    config = zoo_sweep.SweepConfig(
        models=(_tiny_variant(),),
        quants=("float32", "int8"),
        threads=(1, 2),
        runs=4,
        warmup=1,
        cache_dir=sweep_cache / "bench",
    )
    advances: list[int] = []
    rows = zoo_sweep.sweep(config, on_step=lambda desc, adv: advances.append(adv))
    return config, rows, advances


@pytest.mark.slow
def test_sweep_converts_and_times(swept):
    from edgeav.benchmarks import zoo_sweep

    config, rows, advances = swept
    assert sum(advances) == zoo_sweep.steps(config)
    assert [(r["quant"], r["threads"]) for r in rows] == [
        ("float32", 1),
        ("float32", 2),
        ("int8", 1),
        ("int8", 2),
    ]
    for row in rows:
        assert row["model"] == config.models[0] and row["runs"] == 4 and not row["cached"]
        assert row["params"] > 0 and row["macs"] > 0 and row["size_bytes"] > 0
        assert row["input"] == "32x32x3"
        assert row["min_ms"] <= row["p50_ms"] <= row["p90_ms"] <= row["max_ms"]
    by_quant = {r["quant"]: r for r in rows}
    assert by_quant["int8"]["size_bytes"] < by_quant["float32"]["size_bytes"]


@pytest.mark.slow
def test_second_sweep_only_times_from_the_cache(swept):
    from edgeav.benchmarks import zoo_sweep

    config, rows, _ = swept
    cached = sorted(config.cache_dir.glob("*.tflite"))
    assert len(cached) == 2 and len(list(config.cache_dir.glob("*.json"))) == 2
    stamps = {p: p.stat().st_mtime_ns for p in cached}
    again = zoo_sweep.sweep(config)
    assert all(r["cached"] for r in again)
    assert [(r["params"], r["macs"], r["size_bytes"]) for r in again] == [
        (r["params"], r["macs"], r["size_bytes"]) for r in rows
    ]
    assert {p: p.stat().st_mtime_ns for p in cached} == stamps


def test_cache_key_follows_the_configuration(tmp_path):
    from edgeav.benchmarks import zoo_sweep

    name = _tiny_variant()
    base = zoo_sweep.SweepConfig(models=(name,), cache_dir=tmp_path)
    key = zoo_sweep.cache_key(name, "int8", base)
    assert key == zoo_sweep.cache_key(name, "int8", zoo_sweep.SweepConfig(models=(name,)))
    assert len(key) == 64 and key != zoo_sweep.cache_key(name, "float32", base)
    for changed in (
        zoo_sweep.SweepConfig(models=(name,), classes=11),
        zoo_sweep.SweepConfig(models=(name,), input_size=48),
        zoo_sweep.SweepConfig(models=(name,), channels=1),
        zoo_sweep.SweepConfig(models=(name,), representative=3),
    ):
        assert zoo_sweep.cache_key(name, "int8", changed) != key
    # Timing options do not change the converted model.
    timing = zoo_sweep.SweepConfig(models=(name,), runs=3, threads=(4,), max_seconds=1.0)
    assert zoo_sweep.cache_key(name, "int8", timing) == key


def test_sweep_rejects_unknown_models_and_quants(tmp_path):
    from edgeav.benchmarks import zoo_sweep

    with pytest.raises(EdgeAVError, match="no-such-net"):
        zoo_sweep.check_models(["no-such-net"])
    with pytest.raises(EdgeAVError, match="int4"):
        zoo_sweep.check_quants(["float32", "int4"])


def test_cache_dir_follows_edgeav_cache(monkeypatch, tmp_path):
    from edgeav.benchmarks import zoo_sweep

    monkeypatch.setenv("EDGEAV_CACHE", str(tmp_path))
    assert zoo_sweep.default_cache_dir() == tmp_path / "bench"
    monkeypatch.delenv("EDGEAV_CACHE")
    assert zoo_sweep.default_cache_dir() == Path.home() / ".cache" / "edgeav" / "bench"


@pytest.mark.slow
def test_bench_command_writes_json_csv_markdown_and_plot(
    swept, sweep_cache, tmp_path, monkeypatch, capsys
):
    from edgeav.cli import main

    monkeypatch.setenv("EDGEAV_CACHE", str(sweep_cache))  # converted by the sweep fixture
    name = swept[0].models[0]
    args = ["bench", "--models", name, "--quant", "float32,int8", "--runs", "3", "--warmup", "1"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--json", "--csv", str(tmp_path / "b.csv"), "--plot", str(tmp_path / "b.png")])
    assert exit_info.value.code in (0, None)
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == report.JSON_FORMAT and doc["mode"] == "zoo"
    assert [r["quant"] for r in doc["rows"]] == ["float32", "int8"]
    assert all(r["cached"] for r in doc["rows"])
    assert doc["rows"][0]["vs_float32"] == 1.0 and doc["rows"][1]["vs_float32"] > 0
    with open(tmp_path / "b.csv", newline="") as fh:
        assert [r["quant"] for r in csv.DictReader(fh)] == ["float32", "int8"]
    _png_size(tmp_path / "b.png")

    with pytest.raises(SystemExit):
        main([*args, "--markdown"])
    main_table, ratios = capsys.readouterr().out.split("\n\n")
    assert main_table.startswith("| model |") and main_table.count(f"| {name} |") == 2
    assert "int8/float32 latency" in ratios and ratios.count(f"| {name} |") == 1


def test_bench_command_bad_options_are_one_line_errors(capsys, tmp_path):
    from edgeav.cli import main

    for argv, needle in (
        (["bench", "--threads", "0"], "--threads"),
        (["bench", "--threads", "two"], "--threads"),
        (["bench", "--quant", "int4"], "int4"),
        (["bench", "--models", "no-such-net"], "no-such-net"),
        (["bench", "--runs", "0"], "--runs"),
        (["bench", "--channels", "2"], "--channels must be 1 or 3"),
        # Output files are checked before the sweep, not after it.
        (["bench", "--quick", "--csv", str(tmp_path / "no" / "b.csv")], "does not exist"),
        (["bench", "--quick", "--plot", str(tmp_path)], "is a folder"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 3
        err = capsys.readouterr().err.strip()
        assert err.startswith("edgeav: error:") and needle in err and "\n" not in err


# --- bundle bench -------------------------------------------------------------------------------


@pytest.fixture
def bundle_path(request) -> Path:
    try:
        value = request.getfixturevalue("tiny_bundle")
    except pytest.FixtureLookupError:
        pytest.skip("tests/conftest.py has no tiny_bundle fixture")
    return Path(getattr(value, "path", value))


@pytest.mark.slow
def test_bundle_bench_imports_no_tensorflow(bundle_path):
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from edgeav.benchmarks.bundle_bench import bench_bundle\n"
        f"result = bench_bundle({str(bundle_path)!r}, runs=3, warmup=1, threads=[1])\n"
        "heavy = [m for m in ('tensorflow', 'tf_keras', 'tensorflow_model_optimization', 'librosa')"
        " if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'result': result}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["heavy"] == []
    result = doc["result"]
    assert [r["stage"] for r in result["stages"]] == [
        "preprocess",
        "image",
        "frontend",
        "audio",
        "fusion",
        "total",
    ]
    for row in result["stages"]:
        assert row["runs"] == 3 and 0 <= row["p50_ms"] <= row["p90_ms"] <= row["max_ms"]
    total = result["stages"][-1]
    assert total["ticks_per_second"] == pytest.approx(1000.0 / total["mean_ms"])
    assert result["ticks_per_second"]["1"] == pytest.approx(total["ticks_per_second"])
    models = [r["model"] for r in result["models"]]
    assert models[-1] == "fused" and set(models[:-1]) <= {"image", "audio"} and models[:-1]
    for row in result["models"]:
        assert row["params"] > 0 and row["size_bytes"] > 0 and row["p50_ms"] > 0


@pytest.mark.slow
def test_bench_command_on_a_bundle(bundle_path, capsys):
    from edgeav.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "bench",
                str(bundle_path),
                "--runs",
                "3",
                "--warmup",
                "0",
                "--threads",
                "1,2",
                "--json",
            ]
        )
    assert exit_info.value.code in (0, None)
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "bundle" and set(doc["ticks_per_second"]) == {"1", "2"}
    assert len(doc["stages"]) == 12
    with pytest.raises(SystemExit):
        main(["bench", str(bundle_path), "--runs", "2", "--warmup", "0", "--markdown"])
    text = capsys.readouterr().out
    assert "| stage |" in text and "| total |" in text and "| fused |" in text


def test_bench_command_on_a_missing_bundle_is_a_one_line_error(tmp_path, capsys):
    from edgeav.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["bench", str(tmp_path / "nope.edgeav")])
    assert exit_info.value.code == 3
    assert "nope.edgeav" in capsys.readouterr().err


def test_counts_and_latencies_are_shown_readably():
    assert [report.count(v) for v in (None, 999, 357_252, 13_618_884, 5_700_000_000)] == [
        "-",
        "999",
        "357.3K",
        "13.62M",
        "5.70G",
    ]
    assert [report.ms(v) for v in (None, 0.00123, 0.2345, 12.345, 1234.56)] == [
        "-",
        "0.0012",
        "0.234",
        "12.35",
        "1234.6",
    ]


@pytest.mark.slow
def test_timer_in_a_subprocess_reports_the_same_fields(tiny_tflite, tmp_path):
    result = timer.time_tflite_in_subprocess(tiny_tflite, runs=4, warmup=1, threads=1)
    assert result["runs"] == 4 and len(result["times_ms"]) == 4
    assert result["min_ms"] <= result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"]
    assert result["threads"] == 1 and result["size_bytes"] == tiny_tflite.stat().st_size
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"nope")
    with pytest.raises(EdgeAVError, match="bad.tflite"):
        timer.time_tflite_in_subprocess(bad, runs=1)


def test_int8_against_float32_per_model_and_threads():
    rows = report.finish_rows(_rows())
    ratios = report.ratio_rows(rows)
    assert [(r["model"], r["threads"]) for r in ratios] == [
        ("small", 1),
        ("small", 2),
        ("big", 1),
        ("big", 2),
    ]
    for r in ratios:
        assert r["latency_ratio"] == pytest.approx(0.5) and r["size_ratio"] == pytest.approx(0.25)
    text = report.ratio_markdown(rows)
    lines = text.strip().splitlines()
    assert len(lines) == 2 + 4 and "int8/float32 latency" in lines[0]
    assert lines[2].split("|")[5].strip() == "0.50"
    assert report.ratio_markdown([r for r in rows if r["quant"] == "int8"]) == ""
