"""The runtime end to end: `edgeav run` on an av-digits test stream with a converted int8 bundle.

The whole chain runs for real on a small av-digits (``edgeav data`` -> ``edgeav train`` ->
``edgeav convert --quantize int8``), then :func:`edgeav.streams.make_test_stream` writes the
``test`` split as a video (each digit for 1 s) and a WAV (the matching spoken digit each second),
and ``edgeav run --no-realtime --json`` must make one prediction per second with the accuracy
the converter measured for the bundle (fused, and each modality alone).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _edgeav(*args, timeout=900):
    proc = subprocess.run(
        [sys.executable, "-m", "edgeav", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def av_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("av")
    # MNIST-framed digits: 20 per class teach the image model enough in seconds for the
    # runtime-vs-bundle comparison (camera scenes need thousands; the demo trains on those)
    _edgeav(
        "data", "av-digits", root / "data", "--per-class", "20", "--seed", "0", "-q",
        "--style", "mnist",
    )  # fmt: skip
    _edgeav(
        "train", root / "data", "--out", root / "run", "--epochs", "6", "--batch-size", "16",
        "--triplet-epochs", "0", "--head-epochs", "0", "--seed", "0",
    )  # fmt: skip
    _edgeav(
        "convert", root / "run", "--out", root / "model.edgeav", "--quantize", "int8",
        "--calibration-samples", "60", "--allow-drop",
    )  # fmt: skip
    return root


def _accuracy(records, labels):
    assert len(records) == len(labels)
    return sum(r["label"] == y for r, y in zip(records, labels, strict=True)) / len(labels)


@pytest.mark.slow
def test_run_on_an_av_digits_test_stream_matches_the_bundle(av_bundle):
    from edgeav.bundle import read_bundle
    from edgeav.streams import make_test_stream

    bundle = av_bundle / "model.edgeav"
    loaded = read_bundle(bundle)
    expected = loaded.manifest.accuracy["tflite"]
    item = loaded.feature_config.window_seconds  # one audio window per image and clip
    stream = make_test_stream(
        av_bundle / "data", "test", av_bundle / "test.mkv", av_bundle / "test.wav", seed=1,
        item_seconds=item,
    )  # fmt: skip
    assert stream.seconds >= 50
    accuracy = {}
    for name, args in (
        ("fused", ["--camera", stream.video, "--audio-file", stream.wav]),
        ("image", ["--camera", stream.video]),
        ("audio", ["--audio-file", stream.wav]),
    ):
        args += ["--rate", str(1 / item), "--json", "--no-realtime"]
        proc = _edgeav("run", "--model", bundle, *args, timeout=300)
        lines = [json.loads(line) for line in proc.stdout.splitlines()]
        records = lines[:-1]
        # one prediction per item of the stream, at t = item, 2 item, ...
        assert [r["t"] for r in records] == [
            round((k + 1) * item, 6) for k in range(stream.seconds)
        ]
        assert lines[-1]["summary"]["end"] == "end of input"
        accuracy[name] = _accuracy(records, stream.labels)
    print("stream accuracy", accuracy, "bundle (tflite)", expected)
    assert expected["image"] > 0.3 and expected["audio"] > 0.3  # a model that learned something
    assert accuracy["fused"] >= expected["fused"] - 0.03
    assert abs(accuracy["image"] - expected["image"]) <= 0.03
    assert abs(accuracy["audio"] - expected["audio"]) <= 0.03


@pytest.mark.slow
def test_make_test_stream_pairs_every_test_image_with_a_clip_of_its_class(av_bundle, tmp_path):
    import cv2
    import soundfile as sf

    from edgeav.errors import EdgeAVError
    from edgeav.streams import make_test_stream

    stream = make_test_stream(
        av_bundle / "data", "test", tmp_path / "s.mkv", tmp_path / "s.wav", seconds=5, seed=3,
        labels_json=tmp_path / "s.json",
    )  # fmt: skip
    assert stream.seconds == 5
    assert all(p.parent.name == y for p, y in zip(stream.image_files, stream.labels, strict=True))
    assert all(p.parent.name == y for p, y in zip(stream.audio_files, stream.labels, strict=True))
    cap = cv2.VideoCapture(str(stream.video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 50 and cap.get(cv2.CAP_PROP_FPS) == 10
    cap.release()
    info = sf.info(str(stream.wav))
    assert info.frames == 5 * info.samplerate
    assert json.loads((tmp_path / "s.json").read_text())["labels"] == stream.labels
    with pytest.raises(EdgeAVError, match="has no split 'nope'"):
        make_test_stream(av_bundle / "data", "nope", tmp_path / "x.mkv", tmp_path / "x.wav")
    with pytest.raises(EdgeAVError, match="unsupported suffix"):
        make_test_stream(av_bundle / "data", "test", tmp_path / "x.gif", tmp_path / "x.wav")
    assert not list(tmp_path.glob(".*part*"))
