"""``edgeav compare``: two tiny image variants trained, converted, scored in LiteRT and timed by the
CLI's ``main``; the table, the plot, a budget judged on a device's latency files, the chosen bundle run
by ``edgeav run``, and one-line errors before any training."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import media
import pytest

VARIANTS = ("resnet-sep-tiny", "inception-resnet-sep-tiny")
#: A budget only the first variant fits on the hand-written "device" (5 ms against 50 ms).
DEVICE_MS = {VARIANTS[0]: 5.0, VARIANTS[1]: 50.0}
BUDGET = 20.0


def edgeav(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "edgeav", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def bench_json(path: Path, bundle: str, tick_ms: float, threads: int = 1) -> Path:
    """What `edgeav bench BUNDLE --json` prints, trimmed to the rows compare reads."""
    rows = [
        {"model": "image", "threads": threads, "p50_ms": tick_ms / 4},
        {"model": "audio", "threads": threads, "p50_ms": tick_ms / 4},
        {"model": "fused", "threads": threads, "p50_ms": tick_ms},
    ]
    doc = {"format": "edgeav-bench/1", "mode": "bundle", "bundle": bundle, "rows": rows}
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One `edgeav compare` of the two variants (1 image epoch, --fast otherwise), judged
    against a 20 ms budget on hand-written device latencies: (folder, JSON document)."""
    root = tmp_path_factory.mktemp("compare")
    data = media.write_bars_dataset(
        root / "data", {"train": 8, "val": 3, "test": 4, "test-unseen": 3}
    )
    device = [
        bench_json(root / f"{name}.json", f"/home/pi/{name}.edgeav", ms)
        for name, ms in DEVICE_MS.items()
    ]
    args = [
        "compare",
        data,
        "--image-models",
        ",".join(VARIANTS),
        "--audio-models",
        "audio-mlp",
        "--fast",
        "--epochs",
        "1",
        "--runs",
        "5",
        "--out",
        root / "out",
        "--json",
        "--plot",
        root / "plot.png",
        "--csv",
        root / "rows.csv",
        "--budget-ms",
        BUDGET,
        "--out-model",
        root / "model.edgeav",
        *(a for path in device for a in ("--latency-from", path)),
    ]
    from edgeav.cli import main

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])  # in this process: TensorFlow is imported once
    assert exit_info.value.code == 0
    return root, json.loads(stdout.getvalue())


@pytest.mark.slow
def test_every_variant_has_a_row_of_sane_figures(compared):
    root, doc = compared
    rows = {r["variant"]: r for r in doc["rows"]}
    assert list(rows) == list(VARIANTS)
    for name, row in rows.items():
        for key in ("test_image", "test_fused", "unseen_image", "unseen_fused"):
            assert 0.0 <= row[key] <= 1.0, (name, key, row[key])
        assert row["test_audio"] >= 0.9  # three tones an octave apart: the audio model hears them
        assert row["test_metric"] == pytest.approx(
            100 * row["test_fused"] - 0.1 * row["params"] / 1e6
        )
        assert row["params"] > 1000 and row["macs"] > row["params"]
        assert 0 < row["image_bytes"] < row["bundle_bytes"]
        assert 0 < row["image_p50_ms"] < row["tick_p50_ms"]  # the tick includes the image model
        assert Path(row["bundle"]).is_file() and (Path(row["run_dir"]) / "run.json").is_file()
        assert row["device_tick_p50_ms"] == DEVICE_MS[name] == row["budget_latency_ms"]
    # one audio model, trained with the first variant and reused by the second
    assert [r["audio_reused"] for r in rows.values()] == [False, True]
    assert rows[VARIANTS[0]]["test_audio"] == rows[VARIANTS[1]]["test_audio"]
    assert json.loads((root / "out" / "compare.json").read_text()) == doc
    csv_lines = (root / "rows.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and "test_fused" in csv_lines[0]
    assert (root / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _main(args: list, capsys) -> tuple[int, str, str]:
    from edgeav.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.mark.slow
def test_budget_picks_the_variant_that_fits_on_the_device(compared, tmp_path, capsys):
    """On the device's latencies only the first variant fits 20 ms. Judged again (--results,
    nothing trained) on swapped device figures, the second is chosen; for a budget nothing
    fits, the fastest is named, nothing is written and the exit status is 3."""
    root, doc = compared
    assert doc["latency"] == "device" and doc["chosen"] == VARIANTS[0]
    chosen = next(r for r in doc["rows"] if r["variant"] == doc["chosen"])
    assert (root / "model.edgeav").read_bytes() == Path(chosen["bundle"]).read_bytes()

    swapped = [
        a
        for i, name in enumerate(VARIANTS)
        for a in (
            "--latency-from",
            bench_json(tmp_path / f"{i}.json", f"{name}.edgeav", DEVICE_MS[VARIANTS[1 - i]]),
        )
    ]
    again = ["compare", "--results", root / "out", "--json", *swapped]
    out_model = tmp_path / "m.edgeav"
    code, out, err = _main([*again, "--budget-ms", BUDGET, "--out-model", out_model], capsys)
    assert code == 0, err
    redone = json.loads(out)
    assert redone["chosen"] == VARIANTS[1]
    assert (
        out_model.read_bytes() == (root / "out" / "bundles" / f"{VARIANTS[1]}.edgeav").read_bytes()
    )
    assert [r["test_fused"] for r in redone["rows"]] == [r["test_fused"] for r in doc["rows"]]

    out_model.unlink()
    code, out, err = _main([*again, "--budget-ms", "1", "--out-model", out_model], capsys)
    assert code == 3 and json.loads(out)["closest"] == VARIANTS[1]
    assert err.strip().splitlines()[-1].startswith("edgeav: error: no variant's pipeline tick")
    assert f"the closest is {VARIANTS[1]} at 5.00 ms" in err and not out_model.exists()

    code, _, err = _main(["compare", "--results", tmp_path, "--budget-ms", "5"], capsys)
    assert code == 3 and "no compare.json" in err


def test_choose_takes_the_most_accurate_that_fits_the_faster_on_a_tie():
    from edgeav.compare import choose

    rows = [
        {"variant": "a", "test_fused": 0.9, "budget_latency_ms": 10.0},
        {"variant": "b", "test_fused": 0.95, "budget_latency_ms": 30.0},
        {"variant": "c", "test_fused": 0.9, "budget_latency_ms": 8.0},
    ]
    assert choose(rows, 40.0) == ("b", None)
    assert choose(rows, 20.0) == ("c", None)
    assert choose(rows, 5.0) == (None, "c")
    assert choose(rows, None) == (None, None)


@pytest.mark.slow
def test_the_chosen_bundle_runs(compared, tmp_path):
    root, _ = compared
    video, wav = media.write_stream(tmp_path, [0, 1, 2])
    proc = edgeav(
        "run",
        "--model",
        root / "model.edgeav",
        "--camera",
        video,
        "--audio-file",
        wav,
        "--no-realtime",
        "--json",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[-1]["summary"]["ticks"] == 3
    assert all(r["label"] in (*media.BAR_CLASSES, None) for r in lines[:-1])


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--image-models", "resnet-sep-tiny,nope"], "unknown image model 'nope'"),
        (["--image-models", "resnet-sep-tiny", "--audio-models", "x"], "unknown audio model"),
        (["--image-models", "resnet-sep-tiny", "--budget-ms", "0"], "--budget-ms must be"),
        (
            ["--image-models", "resnet-sep-tiny", "--budget-ms", "5", "--latency-from", "no.json"],
            "--latency-from no.json: no such file",
        ),
        (
            ["--image-models", "resnet-sep-tiny", "--budget-ms", "5", "--latency-from", "bad.json"],
            "not the output of `edgeav bench BUNDLE --json`",
        ),
        (
            ["--image-models", "resnet-sep-tiny", "--budget-ms", "5", "--latency-from", "x.json"],
            "its bundle other.edgeav is none of the variants",
        ),
        (
            ["--image-models", "resnet-sep-tiny", "--budget-ms", "5", "--threads", "2"]
            + ["--latency-from", "y.json"],
            "no pipeline (fused) row at 2 thread(s)",
        ),
    ],
)
def test_bad_input_is_one_line_before_any_training(args, expect, tmp_path, monkeypatch, capsys):
    from edgeav.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()  # only its existence is checked before training
    (tmp_path / "bad.json").write_text('{"rows": []}')
    bench_json(tmp_path / "x.json", "other.edgeav", 3.0)
    bench_json(tmp_path / "y.json", "resnet-sep-tiny.edgeav", 3.0)
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "data", *args, "--out", "out"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 3, err
    assert err.strip().count("\n") == 0 and expect in err, err
    assert not (tmp_path / "out").exists()


def test_variants_pair_each_image_model_with_each_audio_model():
    """Several audio models: every pair is a variant, each audio model first trained with the
    first image model; one audio model: a variant is named by its image model. --fast's
    settings reach the training config, and the reused run is passed on."""
    from edgeav.compare import CompareConfig

    two = CompareConfig(image_models=VARIANTS, audio_models=("audio-mlp", "audio-dscnn"))
    assert two.variants() == [
        (f"{image}+{audio}", image, audio)
        for audio in ("audio-mlp", "audio-dscnn")
        for image in VARIANTS
    ]
    one = CompareConfig(image_models=VARIANTS, audio_models=("audio-mlp",), fast=True, epochs=2)
    assert one.variant_names() == list(VARIANTS)
    cfg = one.train_config(VARIANTS[1], "audio-mlp", Path("runs/first"))
    assert (cfg.input_size, cfg.epochs, cfg.triplet_epochs, cfg.audio_from) == (
        32,
        2,
        0,
        str(Path("runs/first")),
    )
