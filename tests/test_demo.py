"""``edgeav demo``: the whole job end to end (``--fast``), and its checks on the output folder.

The slow tests share one real ``python -m edgeav demo --fast --out TMP`` run (module fixture):
av-digits -> training -> int8 bundle -> bundle bench + quick zoo sweep -> test stream ->
the runtime on it -> report. They check that what the demo says matches what it wrote: the
report's tables, summary.json, the bundle's manifest, the runtime's predictions file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from edgeav.errors import EdgeAVError

MODALITIES = ("image", "audio", "fused")


def _edgeav(*args: str, timeout: float = 900, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "edgeav", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One ``edgeav demo --fast`` run: (out folder, completed process, summary dict)."""
    root = tmp_path_factory.mktemp("demo")
    out = root / "out"
    env = dict(os.environ, COLUMNS="200")
    # Zoo-sweep conversions are cached under $EDGEAV_CACHE: keep the test's own.
    env["EDGEAV_CACHE"] = str(root / "cache")
    proc = _edgeav("demo", "--fast", "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return out, proc, summary


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _md_rows(text: str, heading: str) -> dict[str, list[str]]:
    """The first Markdown table after ``heading``: first cell -> the other cells."""
    section = text.split(heading, 1)[1]
    rows: dict[str, list[str]] = {}
    started = False
    for line in section.splitlines():
        if line.startswith("|"):
            started = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set(cells[0]) <= set(":-"):
                rows[cells[0]] = cells[1:]
        elif started:
            break
    return rows


@pytest.mark.slow
def test_demo_writes_every_output_and_prints_the_summary(demo):
    out, proc, summary = demo
    for name in (
        "data/dataset.json",
        "run/run.json",
        "model.edgeav",
        "latency.png",
        "report.md",
        "summary.json",
        "stream/test.mkv",
        "stream/test.wav",
        "stream/labels.json",
        "stream/predictions.jsonl",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p.name for p in out.rglob("*.part*")], "temporary files left behind"
    assert summary["format"] == "edgeav-demo/1" and summary["fast"] is True
    assert set(summary["seconds"]) >= {"data", "train", "convert", "bench", "stream", "run"}
    # stdout: the summary (tables, bundle size, next commands); stderr: a header per stage
    text = proc.stdout
    assert "accuracy on the test split" in text and "latency per stage" in text
    assert f"{summary['bundle']['size_bytes'] / 1024:,.1f} KiB" in text
    assert 'bin/pip install "./edgeav-' in text and '-py3-none-any.whl[runtime]"' in text
    assert "edgeav run --model model.edgeav --camera 0 --mic" in text
    for row, values in (
        ("fused", summary["accuracy"]["tflite"]["fused"]),
        ("image", summary["accuracy"]["stream"]["image"]),
    ):
        line = next(x for x in text.splitlines() if re.search(rf"\b{row}\b", x))
        assert _pct(values) in line
    headers = re.findall(r"\[(\d)/7\] (\w+)", proc.stderr)
    assert [h[1] for h in headers] == [
        "data",
        "train",
        "convert",
        "bench",
        "stream",
        "run",
        "report",
    ]


@pytest.mark.slow
def test_summary_matches_the_bundle_manifest_and_the_report(demo):
    from edgeav.bundle import read_bundle

    out, _, summary = demo
    bundle = read_bundle(out / "model.edgeav")
    acc = bundle.manifest.accuracy
    for m in MODALITIES:
        assert summary["accuracy"]["keras"][m] == acc["keras"][m]
        assert summary["accuracy"]["tflite"][m] == acc["tflite"][m]
        assert 0.0 <= summary["accuracy"]["tflite"][m] <= 1.0
    assert summary["bundle"]["size_bytes"] == (out / "model.edgeav").stat().st_size
    assert summary["bundle"]["quantization"] == bundle.manifest.quantization == "int8"
    assert summary["bundle"]["classes"] == bundle.classes == [str(d) for d in range(10)]
    # not pruned (edgeav.demo.DemoSettings.prune): no sparsity, and no pruned column
    assert not bundle.manifest.sparsity
    assert "not pruned" in (out / "report.md").read_text(encoding="utf-8")
    for m in ("image", "audio"):
        assert summary["bundle"]["models"][m]["sparsity"] is None
        assert summary["bundle"]["models"][m]["size_bytes"] == len(bundle.model_bytes(m))

    report = (out / "report.md").read_text(encoding="utf-8")
    table = _md_rows(report, "## Accuracy on the test split")
    for m in MODALITIES:
        keras, tflite, stream = table[m]
        assert keras == _pct(summary["accuracy"]["keras"][m])
        assert tflite == _pct(summary["accuracy"]["tflite"][m])
        assert stream == _pct(summary["accuracy"]["stream"][m])
    latency = _md_rows(report, "## Latency per stage")
    for stage in ("frontend", "preprocess", "image", "audio", "fusion", "total"):
        assert stage in latency and stage in summary["latency_ms"]["stages"]
        assert summary["latency_ms"]["stages"][stage]["bench_p50"] > 0
    assert summary["latency_ms"]["stages"]["total"]["run_p50"] > 0
    assert "## Bundle" in report and f"{summary['bundle']['size_bytes']:,}" in report
    assert "![latency against parameters](latency.png)" in report
    assert "### Zoo sweep" in report and "resnet-sep-tiny" in report


@pytest.mark.slow
def test_stream_accuracy_is_the_runtime_predictions_scored_and_matches_tflite(demo):
    out, _, summary = demo
    labels = json.loads((out / "stream" / "labels.json").read_text(encoding="utf-8"))
    lines = (out / "stream" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(x) for x in lines]
    assert "summary" in records[-1]
    ticks = records[:-1]
    n = len(labels["labels"])
    assert len(ticks) == n == summary["accuracy"]["stream_seconds"] == summary["run"]["ticks"]
    classes = labels["classes"]
    for m in MODALITIES:
        hits = [
            classes[int(np.argmax(r["probs"][m]))] == y
            for r, y in zip(ticks, labels["labels"], strict=True)
        ]
        assert summary["accuracy"]["stream"][m] == pytest.approx(np.mean(hits))
        # The stream holds the converter's test pairs (video lossless, the clips' own samples):
        # the runtime on it scores what the bundle's TFLite models scored, within one sample.
        assert abs(summary["accuracy"]["stream"][m] - summary["accuracy"]["tflite"][m]) <= 1 / n
    # both present every tick; one may be left out only as unsure (calibration's minimum)
    assert all(set(r["present"]) == {"image", "audio"} for r in ticks)
    assert all(set(r["flags"].values()) <= {"unsure"} for r in ticks)


@pytest.mark.slow
def test_bundle_loads_and_predicts_like_the_runtime_did(demo):
    """The bundle, read and run directly, gives the runtime's probabilities for item 0."""
    import soundfile as sf

    from edgeav.bundle import read_bundle
    from edgeav.candidates import pick
    from edgeav.data.loader import read_image
    from edgeav.preprocess import image_candidates
    from edgeav.runtime.frontend import FrontEnd
    from edgeav.runtime.interpreter import load_interpreter

    out, _, _ = demo
    bundle = read_bundle(out / "model.edgeav")
    labels = json.loads((out / "stream" / "labels.json").read_text(encoding="utf-8"))
    first = json.loads((out / "stream" / "predictions.jsonl").read_text().splitlines()[0])

    image = load_interpreter(bundle.model_bytes("image"), output=bundle.model_output("image"))
    # every candidate layout of the frame (camera scenes: one per search of the digit finder),
    # the most confident reading kept
    x = image_candidates(
        read_image(labels["image_files"][0]), bundle.image_spec, source_order="bgr"
    )
    assert x.shape == (2, *bundle.image_spec.shape)
    p_image = pick(np.stack([image.probabilities(c) for c in x])[None])[0]
    audio = load_interpreter(bundle.model_bytes("audio"), output=bundle.model_output("audio"))
    front = FrontEnd(bundle.audio_input, bundle.feature_config, bundle.frontend_models())
    y, sr = sf.read(labels["audio_files"][0], dtype="float32")
    assert sr == bundle.feature_config.sample_rate
    window = np.zeros(front.window, np.float32)  # the stream's item 0: the clip, then silence
    window[: min(sr, y.size)] = y[:sr]
    p_audio = audio.probabilities(front(window)).reshape(-1)

    for probs, m in ((p_image, "image"), (p_audio, "audio")):
        assert probs.shape == (len(bundle.classes),)
        assert probs.sum() == pytest.approx(1.0, abs=0.05)
        tempered = bundle.calibration.apply(m, probs)  # the runtime reports tempered ones
        np.testing.assert_allclose(tempered, first["probs"][m], atol=1e-6)


@pytest.mark.slow
def test_locate_benchmark_splits_the_image_errors_and_reads_frames_as_the_bundle_did(demo):
    """``python -m edgeav.benchmarks.locate`` on the demo's bundle and camera scenes."""
    from edgeav.benchmarks.locate import _Sources
    from edgeav.bundle import read_bundle
    from edgeav.data.loader import read_image
    from edgeav.locate import mnist_layout
    from edgeav.preprocess import preprocess_image

    out, _, _ = demo
    proc = subprocess.run(
        [sys.executable, "-m", "edgeav.benchmarks.locate", str(out / "model.edgeav"),
         "--data", str(out / "data"), "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    splits = json.loads(proc.stdout)["splits"]
    meta = json.loads((out / "data" / "dataset.json").read_text(encoding="utf-8"))
    bundle = read_bundle(out / "model.edgeav")
    for split in ("val", "test", "test-unseen", "test-noisy"):
        r = splits[split]
        assert r["digits"] == meta["counts"][split]["image"]
        assert r["nothing_frames"] == meta["counts"][split]["none"]
        assert r["with_source"] == r["digits"]  # every digit's source is known
        n = r["digits"]
        assert round(r["accuracy"] * n / 100) == n - r["wrong_search_only"] - r["wrong_both"]
        assert round(r["accuracy_from_source"] * n / 100) == (
            n - r["wrong_both"] - r["wrong_reading_only"]
        )
    # As the device reads the frames: the converter's LiteRT accuracy on test, digit for digit.
    assert splits["test"]["accuracy"] / 100 == pytest.approx(
        bundle.manifest.accuracy["tflite"]["image"], abs=1e-9
    )
    # Each frame's source is the digit drawn in it: a found digit's layout matches its own
    # source's layout better than another digit's of the same class.
    sources = _Sources(meta)
    spec = bundle.image_spec
    for split in ("test", "test-unseen"):
        own, other = [], []
        for digit in range(10):
            files = sorted((out / "data" / split / "image" / str(digit)).glob("*.jpg"))
            for f, g in zip(files, files[1:] + files[:1], strict=True):
                x = preprocess_image(read_image(f), spec)[:, :, 0].ravel()
                if np.ptp(x) == 0:
                    continue
                for ink, into in ((sources.ink(split, digit, f.name), own),
                                  (sources.ink(split, digit, g.name), other)):  # fmt: skip
                    s = mnist_layout(ink.astype(np.float32) / 255.0, spec.size).ravel()
                    into.append(float(np.corrcoef(x, s)[0, 1]))
        assert len(own) >= 50
        # medians on the full demo's data: test 0.75 vs 0.46, test-unseen 0.82 vs 0.66
        assert np.median(own) > np.median(other) + 0.08, (split, np.median(own), np.median(other))


# --- fast checks (no training) ------------------------------------------------------------------


def test_demo_refuses_an_out_that_is_a_file(tmp_path):
    target = tmp_path / "not-a-folder"
    target.write_text("x")
    proc = _edgeav("demo", "--fast", "--out", str(target), timeout=120)
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        f"edgeav: error: --out {target} exists and is not a folder"
    ]
    assert target.read_text() == "x"


def test_demo_never_touches_a_data_folder_it_did_not_build(tmp_path):
    from edgeav.demo import prepare_data, settings

    data = tmp_path / "data"
    data.mkdir()
    (data / "mine.txt").write_text("keep me")
    with pytest.raises(EdgeAVError, match=r"is not an av-digits data set"):
        prepare_data(data, settings(fast=True), log=lambda message: None)
    assert (data / "mine.txt").read_text() == "keep me"


def test_demo_reuses_av_digits_built_with_the_same_settings(tmp_path):
    from edgeav.data.avdigits import FORMAT, split_sizes
    from edgeav.demo import prepare_data, settings

    cfg = settings(fast=True)
    data = tmp_path / "data"
    data.mkdir()
    meta = {
        "format": FORMAT,
        "style": "camera",
        "per_class": cfg.per_class,
        "seed": cfg.seed,
        "clips_per_class": split_sizes(cfg.per_class)["audio"]["train"],
        "counts": {"train": {"image": 300, "audio": 600}},
    }
    (data / "dataset.json").write_text(json.dumps(meta))
    messages: list[str] = []
    result = prepare_data(data, cfg, log=messages.append)
    assert result["reused"] is True and result["counts"] == meta["counts"]
    assert messages and "already in" in messages[0]


def test_fast_settings_are_smaller_than_the_full_ones():
    from edgeav.demo import settings

    full, fast = settings(), settings(fast=True)
    assert fast.fast and not full.fast
    assert fast.per_class < full.per_class
    assert fast.bench_runs < full.bench_runs and fast.zoo_runs <= full.zoo_runs
    assert fast.train["epochs"] < 15 and full.train == {}  # full: `edgeav train`'s defaults
    assert full.prune == fast.prune == 0.0 and full.quantize == fast.quantize == "int8"


def test_demo_is_registered_and_documented():
    proc = _edgeav("demo", "--help", timeout=120)
    assert proc.returncode == 0
    assert "--fast" in proc.stdout and "--out" in proc.stdout
    assert "model.edgeav" in proc.stdout
