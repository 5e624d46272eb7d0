"""The fused-classification tick, on real files and a real (stand-in) camera device.

The bundle tells three classes apart exactly (brightness / tone pitch, see tests/media.py), so
the expected label of every tick is known.
"""

from __future__ import annotations

import dataclasses
import time

import media
import numpy as np
import pytest
from conftest import write_av_bundle
from media import CLASSES, FPS, LEVELS, SEQUENCE, SR

from edgeav.errors import EdgeAVError
from edgeav.runtime.pipeline import Pipeline, RunOptions, open_pipeline

pytestmark = pytest.mark.slow  # the bundle's models are trained and converted with TensorFlow


def run_files(bundle, video=None, wav=None, **options):
    options.setdefault("realtime", False)
    opts = RunOptions(camera=video and str(video), audio_file=wav, **options)
    with open_pipeline(bundle, opts) as pipe:
        predictions = list(pipe.run())
    return predictions, pipe.summary()


def without_timings(predictions):
    return [dataclasses.replace(p, timings_ms={}) for p in predictions]


def test_one_prediction_per_second_on_the_files_clock(av_bundle, av_stream):
    video, wav = av_stream
    expected = [CLASSES[c] for c in SEQUENCE]
    fused, summary = run_files(av_bundle, video, wav)
    assert [p.t for p in fused] == [float(k + 1) for k in range(len(SEQUENCE))]
    assert [p.label for p in fused] == expected
    assert all(p.used == ["image", "audio"] and p.flags == {} for p in fused)
    assert all(len(p.probs["fused"]) == 3 and p.confidence > 0.5 for p in fused)
    # the frame of tick k is the last frame of second k; its audio is second k
    assert [p.frame["index"] for p in fused] == [FPS * (k + 1) - 1 for k in range(len(SEQUENCE))]
    assert [p.window for p in fused] == [[float(k), float(k + 1)] for k in range(len(SEQUENCE))]
    assert set(fused[0].timings_ms) >= {"capture", "preprocess", "frontend", "image", "audio"}
    assert summary["ticks"] == len(SEQUENCE) and summary["end"] == "end of input"
    assert summary["backend"] == "ai_edge_litert"
    assert summary["latency_ms"]["total"]["p95"] >= summary["latency_ms"]["total"]["p50"] > 0
    assert summary["camera"]["frames_read"] == FPS * len(SEQUENCE)
    assert summary["frames_dropped"] == (FPS - 1) * len(SEQUENCE)

    image_only, _ = run_files(av_bundle, video=video)
    audio_only, _ = run_files(av_bundle, wav=wav)
    assert [p.label for p in image_only] == expected
    assert [p.label for p in audio_only] == expected
    assert all(p.used == ["image"] and p.probs["audio"] is None for p in image_only)
    assert all(p.used == ["audio"] and p.frame is None for p in audio_only)
    # deterministic: the same stream gives the same predictions (timings aside)
    again, _ = run_files(av_bundle, video, wav)
    assert without_timings(fused) == without_timings(again)


def test_files_in_real_time_give_the_same_predictions_paced(av_bundle, av_stream):
    video, wav = av_stream
    fast, _ = run_files(av_bundle, video, wav, rate=4.0, duration=2.5)
    started = time.monotonic()
    paced, summary = run_files(av_bundle, video, wav, rate=4.0, duration=2.5, realtime=True)
    took = time.monotonic() - started
    assert without_timings(paced) == without_timings(fast)
    assert 2.3 <= took <= 4.5  # the loop slept until each tick was due
    assert summary["ticks_skipped"] == 0


def test_rate_duration_and_silence(av_bundle, tmp_path):
    video, wav = media.write_stream(tmp_path, [0, 1, 2, 0], silent=(2,))
    predictions, summary = run_files(av_bundle, video, wav, rate=4.0, duration=2.6)
    assert [p.t for p in predictions] == [1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5]
    assert summary["end"] == "duration"
    predictions, summary = run_files(av_bundle, video, wav)
    silent = predictions[2]
    assert silent.flags == {"audio": "silent"} and silent.used == ["image"]
    assert silent.present == ["image", "audio"] and silent.label == "bright"
    assert summary["modalities"]["audio"] == {
        "used": 3,
        "absent": 0,
        "stale": 0,
        "silent": 1,
        "unsure": 0,
    }


def test_errors_are_one_line(av_bundle, av_models, tmp_path, av_stream):
    from edgeav.bundle import read_bundle
    from edgeav.runtime.audio import AudioFile
    from edgeav.runtime.camera import LiveCamera, VideoFile

    bundle = read_bundle(av_bundle)
    with pytest.raises(EdgeAVError, match="no input given"):
        Pipeline(bundle)
    with pytest.raises(EdgeAVError, match="no input given"):
        with open_pipeline(tmp_path / "missing.edgeav", RunOptions()):
            pass
    image_only = read_bundle(write_av_bundle(tmp_path / "img.edgeav", av_models, ("image",)))
    with pytest.raises(EdgeAVError, match="has no audio model; run without --mic/--audio-file"):
        Pipeline(image_only, audio=AudioFile(av_stream[1]))
    with pytest.raises(EdgeAVError, match="--no-realtime needs file sources"):
        Pipeline(bundle, frames=LiveCamera(0), options=RunOptions(realtime=False))
    with pytest.raises(EdgeAVError, match="tick rate"):
        Pipeline(bundle, frames=VideoFile(av_stream[0]), options=RunOptions(rate=0))
    with pytest.raises(EdgeAVError, match="either --mic or --audio-file"):
        with open_pipeline(bundle, RunOptions(mic=True, audio_file=av_stream[1])):
            pass


def test_camera_down_the_run_goes_on_with_audio_and_uses_frames_again(
    av_bundle, tmp_path, looping_capture
):
    from edgeav.runtime.audio import AudioFile
    from edgeav.runtime.camera import LiveCamera

    video = media.write_video(tmp_path / "mid.mkv", [int(LEVELS[1] * 255)] * 20)
    wav = media.write_wav(tmp_path / "mid.wav", np.concatenate([media.tone(1)] * 5))
    start = time.monotonic()

    def opener(source):
        def off():
            return start + 1.6 <= time.monotonic() < start + 2.6

        return looping_capture(
            video, 40, fault=lambda: "false" if off() else None, online=lambda: not off()
        )

    cam = LiveCamera(0, opener=opener, backoff_start=0.1, backoff_max=0.2)
    options = RunOptions(rate=10, stale_after=0.3, duration=3.6)
    audio = AudioFile(wav, sample_rate=SR)
    with open_pipeline(av_bundle, options, frames=cam, audio=audio) as pipe:
        predictions = list(pipe.run())
    states = [(p.t, tuple(p.used), p.flags.get("image")) for p in predictions]
    assert ("image", "audio") in [s[1] for s in states]
    down = [s for s in states if s[2] == "stale"]
    assert down and all(s[1] == ("audio",) for s in down)
    assert all(p.label == "mid" for p in predictions)
    last_down = max(s[0] for s in down)
    assert any(s[0] > last_down and s[1] == ("image", "audio") for s in states)  # back again
    summary = pipe.summary()
    assert summary["modalities"]["image"]["stale"] == len(down)
    assert summary["camera"]["reopens"] >= 1
    assert cam.state == "closed"


def test_smoothing_decides_on_the_mean_of_the_last_ticks(av_bundle, tmp_path):
    """A 0.25 s blip of another class between two seconds of one: smoothed over four ticks at
    4 Hz, the decision holds; unsmoothed, the tick that hears the blip may follow it."""
    tones = [media.tone(0, 1.0), media.tone(2, 0.25), media.tone(0, 1.75)]
    wav = media.write_wav(tmp_path / "blip.wav", np.concatenate(tones))
    plain, _ = run_files(av_bundle, wav=wav, rate=4.0)
    smooth, _ = run_files(av_bundle, wav=wav, rate=4.0, smooth=4)
    assert [p.probs for p in smooth] == [p.probs for p in plain]  # per-tick probabilities kept
    assert all(p.label == "dark" for p in smooth)
    for k, p in enumerate(smooth):  # the decision is the mean of the last (up to) four ticks
        recent = np.mean([q.probs["fused"] for q in plain[max(0, k - 3) : k + 1]], axis=0)
        assert p.confidence == pytest.approx(float(recent.max()), abs=1e-6)
    with pytest.raises(EdgeAVError, match="smoothing must be 1..100 ticks"):
        run_files(av_bundle, wav=wav, smooth=0)


def test_calibration_thresholds_and_top_k(av_bundle, av_models, av_stream, tmp_path):
    """The bundle's calibration is applied: a high temperature flattens both modalities, the
    decision threshold then names nothing (with the reason), --threshold overrides it, and a
    modality below its minimum confidence is left out as unsure."""
    from edgeav.calibration import Calibration

    video, wav = av_stream
    named, _ = run_files(av_bundle, video, wav, top_k=2)
    assert all(p.reason is None and len(p.top) == 2 for p in named)
    assert all(p.top[0] == [p.label, pytest.approx(p.confidence, abs=1e-6)] for p in named)

    flat = Calibration(
        temperature={"image": 50.0, "audio": 50.0},
        min_confidence={"image": 0.0, "audio": 0.0},
        threshold={"image": 0.9, "audio": 0.9, "image+audio": 0.9},
    )
    bundle = write_av_bundle(tmp_path / "flat.edgeav", av_models, calibration=flat)
    unsure, _ = run_files(bundle, video, wav)
    assert all(p.label is None for p in unsure)
    assert all(p.confidence < 0.9 and p.reason.startswith("uncertain: confidence") for p in unsure)
    assert all("< image+audio threshold 0.90" in p.reason for p in unsure)
    # the argmax is untouched by the temperature
    assert [p.top[0][0] for p in unsure] == [p.label for p in named]
    overridden, _ = run_files(bundle, video, wav, threshold=0.0)
    assert [p.label for p in overridden] == [p.label for p in named]
    # a decision is held to the threshold of the modalities it used (here both), not the others'
    per_set = dataclasses.replace(flat, threshold={"image": 0.9, "audio": 0.9, "image+audio": 0.0})
    bundle = write_av_bundle(tmp_path / "per-set.edgeav", av_models, calibration=per_set)
    both_open, _ = run_files(bundle, video, wav)
    assert [p.label for p in both_open] == [p.label for p in named]
    assert all(p.used == ["image", "audio"] for p in both_open)

    picky = Calibration(
        temperature={"image": 1.0, "audio": 1.0},
        min_confidence={"image": 1.0, "audio": 0.0},
        threshold={"image": 0.0, "audio": 0.0, "image+audio": 0.0},
    )
    bundle = write_av_bundle(tmp_path / "picky.edgeav", av_models, calibration=picky)
    audio_decides, summary = run_files(bundle, video, wav)
    assert all(p.used == ["audio"] and p.flags == {"image": "unsure"} for p in audio_decides)
    assert all(p.probs["image"] is not None for p in audio_decides)  # still reported
    assert summary["modalities"]["image"]["unsure"] == len(audio_decides)
    assert all(p.label is not None for p in audio_decides)
    both = dataclasses.replace(picky, min_confidence={"image": 1.0, "audio": 1.0})
    bundle = write_av_bundle(tmp_path / "both.edgeav", av_models, calibration=both)
    nothing, _ = run_files(bundle, video, wav)
    assert all(
        p.label is None and p.used == [] and p.reason.startswith("unsure: image") for p in nothing
    )
    assert all(p.probs["fused"] is not None and p.top for p in nothing)  # shown, not named
    with pytest.raises(EdgeAVError, match="top-k must be 1..3"):
        run_files(av_bundle, video, wav, top_k=4)
    with pytest.raises(EdgeAVError, match="threshold must be a probability"):
        run_files(av_bundle, video, wav, threshold=1.5)
