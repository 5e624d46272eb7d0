"""The device runtime: interpreter, camera, audio sources and the fused pipeline.

Everything here is real: tiny Keras models converted to real ``.tflite`` files (float32 and
int8), videos written with cv2.VideoWriter, WAVs written with soundfile, bundles written with
edgeav.bundle. The synthetic stream has three classes a tiny model can tell apart exactly --
frame brightness (dark / mid / bright) and tone pitch (300 / 1000 / 3000 Hz) -- so the expected
label of every tick is known.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgeav.errors import EdgeAVError

CLASSES = ["dark", "mid", "bright"]
LEVELS = [0.1, 0.5, 0.9]  # frame brightness per class
TONES = [300.0, 1000.0, 3000.0]  # Hz per class
SR = 16000
FPS = 10
SEQUENCE = [0, 1, 2, 2, 0, 1, 0, 2]  # class shown / heard in each second of the test stream


# --- artifacts ----------------------------------------------------------------------------------


def write_video(path: Path, values: list[int], fps: float = FPS, size: int = 16) -> Path:
    """A lossless video (FFV1) whose frame ``i`` is uniformly grey ``values[i]``."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (size, size))
    assert writer.isOpened()
    for v in values:
        writer.write(np.full((size, size, 3), int(v), np.uint8))
    writer.release()
    return path


def tone(cls: int, seconds: float = 1.0, sr: int = SR, amp: float = 0.3, phase: float = 0.0):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * TONES[cls] * t + phase)).astype(np.float32)


def write_stream(folder: Path, sequence: list[int], *, silent: tuple[int, ...] = ()):
    """Video + WAV: second ``k`` shows class ``sequence[k]`` and plays its tone (or silence)."""
    import soundfile as sf

    values = [int(LEVELS[c] * 255) for c in sequence for _ in range(FPS)]
    video = write_video(folder / "stream.mkv", values)
    audio = np.concatenate(
        [np.zeros(SR, np.float32) if k in silent else tone(c) for k, c in enumerate(sequence)]
    )
    wav = folder / "stream.wav"
    sf.write(wav, audio, SR, subtype="PCM_16")
    return video, wav


def _convert(keras_model, representative, int8: bool, float_input: bool = False) -> bytes:
    from edgeav.converters.quantize import convert_keras

    mode = "int8" if int8 else "float32"
    return convert_keras(keras_model, mode, representative, float_input=float_input)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Keras + float32 and int8 TFLite versions of a brightness image model and a tone model."""
    from edgeav.features import FeatureConfig, extract
    from edgeav.preprocess import ImageSpec
    from edgeav.tf import keras

    keras = keras()
    keras.utils.set_random_seed(0)
    spec = ImageSpec(size=8, channels=1, color_order="rgb", crop="none")
    config = FeatureConfig()
    # image: logits = w_c * mean(pixel) + b_c (hand-set: dark / mid / bright)
    inp = keras.Input(spec.shape)
    x = keras.layers.Flatten()(inp)
    dense = keras.layers.Dense(3)
    out = keras.layers.Softmax()(dense(x))
    image_model = keras.Model(inp, out)
    n = int(np.prod(spec.shape))
    w = np.array([-40.0, 0.0, 40.0], np.float32) / n
    dense.set_weights([np.tile(w, (n, 1)), np.array([15.0, 0.0, -25.0], np.float32)])
    rng = np.random.default_rng(0)
    image_rep = rng.uniform(0, 1, size=(32, *spec.shape)).astype(np.float32)
    image_rep[:3] = np.asarray(LEVELS, np.float32)[:, None, None, None]
    # audio: a normalised softmax regression on edgeav features of noisy tones
    feats, labels = [], []
    for i in range(36):
        c = i % 3
        y = tone(c, amp=rng.uniform(0.05, 0.5), phase=rng.uniform(0, 6))
        y = y + rng.normal(0, 0.01 * (i % 2), y.shape).astype(np.float32)
        feats.append(extract(y, config))
        labels.append(c)
    feats = np.stack(feats).astype(np.float32)
    labels = np.asarray(labels)
    norm = keras.layers.Normalization()
    norm.adapt(feats)
    a_in = keras.Input((config.dim,))
    a_out = keras.layers.Dense(3, activation="softmax")(norm(a_in))
    audio_model = keras.Model(a_in, a_out)
    audio_model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    audio_model.fit(feats, labels, epochs=40, verbose=0)
    folder = tmp_path_factory.mktemp("tiny_models")
    out = {"spec": spec, "config": config, "keras_image": image_model, "keras_audio": audio_model}
    for name, kind, model, rep in (
        ("image", "int8", image_model, image_rep),
        ("audio", "int8", audio_model, feats),
        ("audio", "float32", audio_model, feats),
    ):
        path = folder / f"{name}_{kind}.tflite"
        # the audio model keeps its leading normalisation (and so its input) in float, as
        # `edgeav convert` does: one int8 scale cannot hold raw features of such mixed ranges
        path.write_bytes(_convert(model, rep, kind == "int8", float_input=name == "audio"))
        out[f"{name}_{kind}"] = path
    out["audio_features"], out["audio_labels"] = feats, labels
    return out


def make_bundle(path: Path, models: dict, kind: str = "int8", modalities=("image", "audio")):
    from edgeav.bundle import Manifest, ModelEntry, write_bundle
    from edgeav.fusion import FusionWeights
    from edgeav.runtime.interpreter import load_interpreter

    members, entries = {}, {"image": None, "audio": None}
    for m in modalities:
        data = models[f"{m}_{kind}"].read_bytes()
        model = load_interpreter(data)
        members[f"{m}.tflite"] = data
        entries[m] = ModelEntry(
            file=f"{m}.tflite",
            input_shape=list(model.input_shape),
            input_dtype=model.input_dtype,
            output_shape=list(model.output_shape),
            output_dtype=model.output_dtype,
            params=0,
        )
    manifest = Manifest(
        classes=list(CLASSES),
        image=entries["image"],
        audio=entries["audio"],
        image_spec=models["spec"].to_dict(),
        feature_config=models["config"].to_dict(),
        fusion=FusionWeights(1.0, 1.0).to_dict(),
        quantization=kind,
    )
    return write_bundle(path, manifest, members)


@pytest.fixture(scope="session")
def int8_bundle(tiny_models, tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("bundle") / "model.edgeav", tiny_models)


@pytest.fixture()
def stream(tmp_path):
    return write_stream(tmp_path, SEQUENCE)


# --- interpreter -------------------------------------------------------------------------------


@pytest.mark.slow
def test_interpreter_float_matches_keras(tiny_models):
    from edgeav.runtime.interpreter import load_interpreter

    model = load_interpreter(tiny_models["audio_float32"], num_threads=1)
    assert model.backend == "ai_edge_litert"
    assert model.input_shape == (1, tiny_models["config"].dim)
    assert model.input_dtype == "float32"
    x = tiny_models["audio_features"][:5]
    expected = tiny_models["keras_audio"].predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(x), expected, atol=1e-5)
    single = model.predict(x[0])
    assert single.shape == (3,)
    np.testing.assert_allclose(single, expected[0], atol=1e-5)


@pytest.mark.slow
def test_interpreter_int8_dequantises_to_probabilities(tiny_models):
    from edgeav.runtime.interpreter import load_interpreter

    model = load_interpreter(tiny_models["image_int8"].read_bytes())
    assert model.input_dtype == "int8" and model.output_dtype == "int8"
    in_scale, _ = model.input_quantization
    out_scale, _ = model.output_quantization
    assert 0 < in_scale < 0.01 and out_scale == pytest.approx(1 / 256)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (12, 8, 8, 1)).astype(np.float32)
    x[:3] = np.asarray(LEVELS, np.float32)[:, None, None, None]
    probs = model.predict(x)
    assert probs.dtype == np.float32
    assert np.all(probs >= 0) and np.all(probs <= 1.0 + 1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.02)
    expected = tiny_models["keras_image"].predict(x, verbose=0)
    assert np.abs(probs - expected).max() < 0.03  # within int8 steps of the Keras model
    assert list(probs[:3].argmax(1)) == [0, 1, 2]
    audio = load_interpreter(tiny_models["audio_int8"])
    feats = tiny_models["audio_features"]
    assert (audio.predict(feats).argmax(1) == tiny_models["audio_labels"]).mean() >= 0.9


@pytest.mark.slow
def test_interpreter_tf_lite_fallback_agrees(tiny_models):
    from edgeav.runtime.interpreter import load_interpreter

    x = tiny_models["audio_features"][:4]
    litert = load_interpreter(tiny_models["audio_int8"])
    tflite = load_interpreter(tiny_models["audio_int8"], backend="tf.lite")
    assert tflite.backend == "tf.lite"
    np.testing.assert_array_equal(litert.predict(x), tflite.predict(x))


@pytest.mark.slow
def test_interpreter_errors(tiny_models, tmp_path):
    from edgeav.runtime.interpreter import load_interpreter

    with pytest.raises(EdgeAVError, match="does not exist|cannot read model"):
        load_interpreter(tmp_path / "missing.tflite")
    with pytest.raises(EdgeAVError, match="not a TFLite model"):
        load_interpreter(b"definitely not a flatbuffer")
    data = tiny_models["image_int8"].read_bytes()
    with pytest.raises(EdgeAVError, match="cannot load model truncated"):
        load_interpreter(data[: len(data) // 2], name="truncated")
    with pytest.raises(EdgeAVError, match="threads"):
        load_interpreter(data, num_threads=0)
    with pytest.raises(EdgeAVError, match="unknown TFLite backend"):
        load_interpreter(data, backend="onnx")
    model = load_interpreter(data)
    with pytest.raises(EdgeAVError, match=r"expects input of shape \(8, 8, 1\)"):
        model.predict(np.zeros((4, 4), np.float32))


# --- camera ------------------------------------------------------------------------------------


def test_camera_file_clock_takes_the_frame_on_screen_just_before_t(tmp_path):
    from edgeav.runtime.camera import Camera

    video = write_video(tmp_path / "v.mkv", [10 * i for i in range(25)])  # 2.5 s at 10 fps
    cam = Camera(str(video)).open()
    assert cam.frame_at(0.0) is None  # nothing on screen before the first frame
    f = cam.frame_at(0.05)
    assert (f.index, f.t) == (0, 0.0)
    assert cam.frame_at(0.1).index == 0  # frame 1 starts exactly at 0.1: not yet
    f = cam.frame_at(0.100001)
    assert (f.index, f.t, int(f.image[0, 0, 0])) == (1, 0.1, 10)
    f = cam.frame_at(1.0)
    assert (f.index, int(f.image[0, 0, 0])) == (9, 90)
    assert cam.frames_dropped == 7  # frames 2..8 were never handed out
    assert cam.frame_at(2.5).index == 24  # the last frame is on screen until 2.5 s
    assert not cam.ended
    assert cam.frame_at(2.6) is None and cam.ended
    cam.close()


def test_camera_file_clock_loops_with_continuous_time(tmp_path):
    from edgeav.runtime.camera import Camera

    video = write_video(tmp_path / "v.mkv", [0, 50, 100, 150, 200])  # 0.5 s
    cam = Camera(video.as_posix(), loop=True).open()
    f = cam.frame_at(0.55)
    assert (f.index, f.t, int(f.image[0, 0, 0])) == (5, 0.5, 0)
    f = cam.frame_at(1.25)
    assert (f.index, f.t, int(f.image[0, 0, 0])) == (12, 1.2, 100)
    assert not cam.ended
    cam.close()


def test_camera_file_clock_decodes_ahead_boundedly_and_stops_on_close(tmp_path, looping_capture):
    """The file clock's decoder thread holds at most its queue's worth of frames, hands them
    out in order, passes a failure on to frame_at, and is gone after close()."""
    from edgeav.runtime.camera import Camera

    video = write_video(tmp_path / "v.mkv", [i for i in range(60)])  # 6 s at 10 fps
    cam = Camera(str(video)).open()
    cam.decode_ahead_bytes = 1  # the minimum queue: 2 frames
    assert cam.frame_at(0.05).index == 0
    time.sleep(0.3)  # let the decoder run as far ahead as it may
    assert cam._ahead.maxsize == 2 and cam._ahead.qsize() <= 2
    pixels = [int(cam.frame_at(0.05 + 0.1 * k).image[0, 0, 0]) for k in range(1, 60)]
    assert pixels == list(range(1, 60))  # every frame, in order
    decoder = cam._decoder
    cam.close()
    assert not decoder.is_alive() and cam._decoder is None

    looping = Camera(str(video), loop=True).open()
    looping.frame_at(0.05)
    # reopens, then delivers nothing: the decoder's error reaches frame_at
    looping._opener = lambda source: looping_capture(video, 1000, fault=lambda: "false")
    with pytest.raises(EdgeAVError, match="yields no frames when looped"):
        looping.frame_at(7.0)
    looping.close()
    assert not any(t.name.endswith("-decoder") for t in threading.enumerate())


def test_camera_bad_sources_are_one_line_errors(tmp_path):
    from edgeav.runtime.camera import Camera

    with pytest.raises(EdgeAVError, match=r"video file .*missing\.mp4 does not exist"):
        Camera(str(tmp_path / "missing.mp4")).open()
    bad = tmp_path / "not a video.mp4"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(EdgeAVError, match="cannot read video .*not a video"):
        Camera(str(bad)).open()
    if not Path("/dev/video7").exists():
        with pytest.raises(EdgeAVError, match="camera index 7 cannot be opened"):
            Camera("7").open()
    with pytest.raises(EdgeAVError, match="camera index must be >= 0"):
        Camera(-1)


def test_camera_live_file_is_paced_and_keeps_only_the_newest(tmp_path):
    from edgeav.runtime.camera import Camera

    video = write_video(tmp_path / "v.mkv", list(range(0, 200, 10)), fps=20)  # 1 s at 20 fps
    with Camera(str(video)).start() as cam:
        time.sleep(0.45)
        f = cam.latest()
        # paced at 20 fps: about frame 9 after 0.45 s, never the whole file at once
        assert f is not None and 5 <= f.index <= 12
        assert cam.latest() is f
        deadline = time.monotonic() + 3
        while not cam.ended and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cam.ended
        assert cam.latest().index == 19
        assert cam.frames_dropped >= 15  # newest only: the frames nobody asked for are dropped


def flaky_capture(looping_capture, video: Path, down: float, up: float):
    """A looping capture at 40 fps that delivers nothing while ``down <= monotonic() < up``:
    a camera that stops (unplugged, driver hang) and comes back; the outage is on the wall clock,
    so it lasts across the camera's reopen attempts."""

    def off() -> bool:
        return down <= time.monotonic() < up

    return looping_capture(
        video, 40, fault=lambda: "false" if off() else None, online=lambda: not off()
    )


def test_camera_device_reopens_with_backoff_after_an_outage(tmp_path, looping_capture):
    from edgeav.runtime.camera import Camera

    video = write_video(tmp_path / "v.mkv", [10 * i for i in range(20)])
    now = time.monotonic()
    messages = []
    cam = Camera(
        0,
        opener=lambda src: flaky_capture(looping_capture, video, now + 0.3, now + 1.2),
        backoff_start=0.1,
        backoff_max=0.4,
        log=messages.append,
    ).start()
    try:
        time.sleep(0.25)
        before = cam.latest()
        assert before is not None
        time.sleep(0.3)  # in the outage
        stuck = cam.latest()
        time.sleep(0.3)
        assert cam.state == "reopening"
        assert cam.latest() is stuck  # nothing new: the pipeline will call it stale
        time.sleep(1.2)  # the camera is back
        after = cam.latest()
        assert after.index > before.index and cam.state == "open"
        assert cam.reopens >= 2 and cam.read_failures >= 3
        assert any("reopening" in m for m in messages) and any("again" in m for m in messages)
    finally:
        cam.close()
    assert cam.state == "closed"


# --- audio sources ------------------------------------------------------------------------------


def test_audio_file_clock_windows_are_the_files_samples(tmp_path):
    import soundfile as sf

    from edgeav.runtime.microphone import AudioFile

    y = (np.arange(3 * SR) % 1000 / 1000.0 - 0.5).astype(np.float32)
    sf.write(tmp_path / "a.wav", y, SR, subtype="FLOAT")
    src = AudioFile(tmp_path / "a.wav", sample_rate=SR, seconds=2).open()
    assert src.advance_to(0.5) and src.window(SR) is None  # not a full window yet
    assert src.advance_to(1.0)
    np.testing.assert_array_equal(src.window(SR), y[:SR])
    assert src.advance_to(2.25)
    np.testing.assert_array_equal(src.window(SR), y[int(1.25 * SR) : int(2.25 * SR)])
    assert src.advance_to(3.0) and not src.ended
    assert not src.advance_to(3.1) and src.ended
    src.close()


def test_audio_file_resamples_and_loops(tmp_path):
    import soundfile as sf

    from edgeav.runtime.microphone import AudioFile

    sr = 44100
    t = np.arange(sr) / sr
    y = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(tmp_path / "a.flac", y, sr)
    src = AudioFile(tmp_path / "a.flac", sample_rate=SR, seconds=2, loop=True).open()
    assert src.advance_to(2.5)  # 2.5 passes of a 1 s file
    assert src.loops == 2 and not src.ended
    w = src.window(SR)
    spectrum = np.abs(np.fft.rfft(w))
    assert abs(np.argmax(spectrum) * SR / len(w) - 440) <= 2  # still a 440 Hz tone at 16 kHz
    assert np.isclose(np.sqrt(np.mean(w**2)), 0.5 / np.sqrt(2), rtol=0.05)
    src.close()


def test_audio_file_errors(tmp_path):
    import soundfile as sf

    from edgeav.runtime.microphone import AudioFile

    with pytest.raises(EdgeAVError, match=r"audio file .*nope\.wav does not exist"):
        AudioFile(tmp_path / "nope.wav").open()
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)
    with pytest.raises(EdgeAVError, match=r"cannot read audio file .*bad\.wav"):
        AudioFile(bad).open()
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SR)
    with pytest.raises(EdgeAVError, match="contains no samples"):
        AudioFile(tmp_path / "empty.wav").open()
    y = np.zeros(SR, np.float32)
    y[100] = np.nan
    sf.write(tmp_path / "nan.wav", y, SR, subtype="FLOAT")
    src = AudioFile(tmp_path / "nan.wav").open()
    with pytest.raises(EdgeAVError, match="NaN"):
        src.advance_to(1.0)
    src.close()


def test_audio_file_realtime_replay_follows_the_wall_clock(tmp_path):
    import soundfile as sf

    from edgeav.runtime.microphone import AudioFile

    sf.write(tmp_path / "a.wav", tone(1, seconds=0.6), SR)
    src = AudioFile(tmp_path / "a.wav", sample_rate=SR, seconds=2).start()
    time.sleep(0.3)
    written = src.total_written
    assert 0.15 * SR <= written <= 0.5 * SR  # about 0.3 s of audio after 0.3 s
    time.sleep(0.6)
    assert src.ended and src.total_written == int(0.6 * SR)
    src.close()


def test_input_device_selection_by_index_and_name():
    from edgeav.runtime.microphone import choose_rate, resolve_input_device

    devices = [
        {"name": "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "max_input_channels": 2},
        {"name": "HDMI 0 (hw:0,3)", "max_input_channels": 0},
        {"name": "USB PnP Sound Device: Audio (hw:1,0)", "max_input_channels": 1},
        {"name": "USB Camera: Audio (hw:2,0)", "max_input_channels": 2},
        {"name": "default", "max_input_channels": 32},
    ]
    assert resolve_input_device(devices, None, 4) == 4
    assert resolve_input_device(devices, "2", 4) == 2
    assert resolve_input_device(devices, "pnp", 4) == 2
    assert resolve_input_device(devices, "DEFAULT", 4) == 4
    with pytest.raises(EdgeAVError, match="'usb' is ambiguous: 2: USB PnP.*3: USB Camera"):
        resolve_input_device(devices, "usb", 4)
    with pytest.raises(EdgeAVError, match="no audio input device matches 'blue'"):
        resolve_input_device(devices, "blue", 4)
    with pytest.raises(EdgeAVError, match="device 1 .*HDMI.* has no input channels"):
        resolve_input_device(devices, 1, 4)
    with pytest.raises(EdgeAVError, match="index 9 does not exist"):
        resolve_input_device(devices, 9, 4)
    with pytest.raises(EdgeAVError, match="no audio input device found"):
        resolve_input_device([devices[1]], None, -1)
    assert choose_rate(lambda r: True, 16000, 48000.0) == 16000
    assert choose_rate(lambda r: r in (44100, 48000), 16000, 44100.0) == 44100
    assert choose_rate(lambda r: r == 32000, 16000, 48000.0) == 32000
    with pytest.raises(EdgeAVError, match="supports none of the rates"):
        choose_rate(lambda r: False, 16000, None)


def _input_devices() -> list:
    try:
        import sounddevice as sd

        return [d for d in sd.query_devices() if d["max_input_channels"] > 0]
    except Exception:
        return []


@pytest.mark.skipif(not _input_devices(), reason="no audio input device on this machine")
def test_microphone_captures_into_the_ring_buffer():
    from edgeav.runtime.microphone import Microphone

    mic = Microphone(None, sample_rate=SR, seconds=2).open()
    try:
        time.sleep(1.2)
        assert mic.total_written >= 0.8 * SR
        assert mic.window(SR).shape == (SR,)
    finally:
        mic.close()


# Hides the system's PortAudio from ctypes.util.find_library, exactly what a machine without
# libportaudio2 looks like to sounddevice (its own import then raises OSError).
_NO_PORTAUDIO = """
import ctypes.util
_find = ctypes.util.find_library
ctypes.util.find_library = lambda name: None if "portaudio" in name else _find(name)
"""


def test_portaudio_missing_is_a_clear_error(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(_NO_PORTAUDIO)
    code = textwrap.dedent(
        """
        import sys
        from edgeav.errors import EdgeAVError
        from edgeav.runtime.microphone import import_sounddevice
        try:
            import_sounddevice()
        except EdgeAVError as exc:
            print(exc)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "libportaudio2" in proc.stdout and "--audio-file" in proc.stdout


# --- pipeline ---------------------------------------------------------------------------------


def _run_pipeline(bundle_path, video=None, wav=None, **kwargs):
    from edgeav.bundle import read_bundle
    from edgeav.runtime.camera import Camera
    from edgeav.runtime.microphone import AudioFile
    from edgeav.runtime.pipeline import Pipeline

    bundle = read_bundle(bundle_path)
    cam = Camera(str(video)).open() if video else None
    audio = AudioFile(wav, sample_rate=SR, seconds=3).open() if wav else None
    kwargs.setdefault("realtime", False)
    pipe = Pipeline(bundle, camera=cam, audio=audio, **kwargs)
    try:
        records = list(pipe.run())
    finally:
        pipe.close()
    return records, pipe.summary()


@pytest.mark.slow
def test_pipeline_no_realtime_one_prediction_per_second(int8_bundle, stream):
    video, wav = stream
    expected = [CLASSES[c] for c in SEQUENCE]
    fused, summary = _run_pipeline(int8_bundle, video, wav)
    assert [r["t"] for r in fused] == [float(k + 1) for k in range(len(SEQUENCE))]
    assert [r["label"] for r in fused] == expected
    assert all(r["used"] == ["image", "audio"] and r["flags"] == {} for r in fused)
    assert all(len(r["probs"]["fused"]) == 3 and r["confidence"] > 0.5 for r in fused)
    # the frame of tick k is the last frame of second k
    assert [r["frame"]["index"] for r in fused] == [FPS * (k + 1) - 1 for k in range(len(SEQUENCE))]
    assert set(fused[0]["timings_ms"]) >= {"capture", "preprocess", "features", "image", "audio"}
    assert summary["ticks"] == len(SEQUENCE) and summary["end"] == "end of input"
    assert summary["backend"] == "ai_edge_litert"
    assert summary["latency_ms"]["total"]["p95"] >= summary["latency_ms"]["total"]["p50"] > 0
    assert summary["camera"]["frames_read"] == FPS * len(SEQUENCE)

    image_only, _ = _run_pipeline(int8_bundle, video=video)
    audio_only, _ = _run_pipeline(int8_bundle, wav=wav)
    assert [r["label"] for r in image_only] == expected
    assert [r["label"] for r in audio_only] == expected
    assert all(r["used"] == ["image"] and r["probs"]["audio"] is None for r in image_only)
    assert all(r["used"] == ["audio"] and r["frame"] is None for r in audio_only)
    # deterministic: the same stream gives the same records (timings aside)
    again, _ = _run_pipeline(int8_bundle, video, wav)
    strip = [{k: v for k, v in r.items() if k != "timings_ms"} for r in fused]
    assert strip == [{k: v for k, v in r.items() if k != "timings_ms"} for r in again]


@pytest.mark.slow
def test_pipeline_rate_duration_and_silence(int8_bundle, tmp_path):
    video, wav = write_stream(tmp_path, [0, 1, 2, 0], silent=(2,))
    records, summary = _run_pipeline(int8_bundle, video, wav, rate=4.0, duration=2.6)
    assert [r["t"] for r in records] == [1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5]
    assert summary["end"] == "duration"
    records, summary = _run_pipeline(int8_bundle, video, wav)
    silent = records[2]
    assert silent["flags"] == {"audio": "silent"} and silent["used"] == ["image"]
    assert silent["present"] == ["image", "audio"] and silent["label"] == "bright"
    assert summary["modalities"]["audio"] == {"used": 3, "absent": 0, "stale": 0, "silent": 1}


@pytest.mark.slow
def test_pipeline_errors(int8_bundle, tiny_models, tmp_path, stream):
    from edgeav.bundle import read_bundle
    from edgeav.runtime.camera import Camera
    from edgeav.runtime.pipeline import Pipeline

    bundle = read_bundle(int8_bundle)
    with pytest.raises(EdgeAVError, match="no input given"):
        Pipeline(bundle)
    image_only = read_bundle(
        make_bundle(tmp_path / "img.edgeav", tiny_models, modalities=("image",))
    )
    from edgeav.runtime.microphone import AudioFile

    with pytest.raises(EdgeAVError, match="has no audio model; run without --mic/--audio-file"):
        Pipeline(image_only, audio=AudioFile(stream[1]))
    with pytest.raises(EdgeAVError, match="--no-realtime needs file sources"):
        Pipeline(bundle, camera=Camera(0), realtime=False)
    with pytest.raises(EdgeAVError, match="tick rate"):
        Pipeline(bundle, camera=Camera(str(stream[0])), rate=0)


@pytest.mark.slow
def test_pipeline_realtime_continues_audio_only_while_the_camera_is_down(
    int8_bundle, tmp_path, looping_capture
):
    """Issue 9's device fault: frames stop, the run goes on with audio, and uses them again."""
    import soundfile as sf

    from edgeav.bundle import read_bundle
    from edgeav.runtime.camera import Camera
    from edgeav.runtime.microphone import AudioFile
    from edgeav.runtime.pipeline import Pipeline

    video = write_video(tmp_path / "mid.mkv", [int(LEVELS[1] * 255)] * 20)
    sf.write(tmp_path / "mid.wav", np.concatenate([tone(1)] * 5), SR)
    start = time.monotonic()
    cam = Camera(
        0,
        opener=lambda src: flaky_capture(looping_capture, video, start + 1.6, start + 2.6),
        backoff_start=0.1,
        backoff_max=0.2,
    ).open()
    audio = AudioFile(tmp_path / "mid.wav", sample_rate=SR, seconds=3).open()
    pipe = Pipeline(
        read_bundle(int8_bundle), camera=cam, audio=audio, rate=10, stale_after=0.3, duration=3.6
    )
    try:
        records = list(pipe.run())
    finally:
        pipe.close()
    states = [(r["t"], tuple(r["used"]), r["flags"].get("image")) for r in records]
    used = [s[1] for s in states]
    assert ("image", "audio") in used
    down = [s for s in states if s[2] == "stale"]
    assert down and all(s[1] == ("audio",) for s in down)
    assert all(r["label"] == "mid" for r in records)
    last_down = max(s[0] for s in down)
    assert any(s[0] > last_down and s[1] == ("image", "audio") for s in states)  # back again
    summary = pipe.summary()
    assert summary["modalities"]["image"]["stale"] == len(down)
    assert summary["camera"]["reopens"] >= 1
    assert cam.state == "closed"


def test_pipeline_module_imports_no_tensorflow():
    code = (
        "import sys, edgeav.runtime.pipeline, edgeav.runtime.camera, edgeav.runtime.microphone\n"
        "import edgeav.runtime.interpreter, edgeav.bundle, edgeav.features, edgeav.fusion\n"
        "heavy = [m for m in ('tensorflow', 'tf_keras', 'librosa', 'sounddevice', 'cv2') "
        "if m in sys.modules]\n"
        "print(heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_threading_names_are_cleaned_up_after_close(tmp_path):
    from edgeav.runtime.camera import Camera

    video = write_video(tmp_path / "v.mkv", [0] * 5)
    cam = Camera(str(video), loop=True).start()
    time.sleep(0.1)
    cam.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("edgeav-")]


# --- edgeav run ---------------------------------------------------------------------------------


def _edgeav(*args, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "edgeav", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.mark.slow
def test_run_json_no_realtime_and_no_heavy_imports(int8_bundle, stream):
    video, wav = stream
    code = textwrap.dedent(
        f"""
        import sys
        from edgeav.cli import main
        try:
            main(["run", "--model", {str(int8_bundle)!r}, "--camera", {str(video)!r},
                  "--audio-file", {str(wav)!r}, "--json", "--no-realtime", "--threads", "1"])
        except SystemExit as exc:
            assert not exc.code, exc.code
        heavy = [m for m in ("tensorflow", "tf_keras", "librosa", "sounddevice") if m in sys.modules]
        print("HEAVY", heavy, file=sys.stderr)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    records, summary = lines[:-1], lines[-1]["summary"]
    assert [r["label"] for r in records] == [CLASSES[c] for c in SEQUENCE]
    assert [r["t"] for r in records] == [float(k + 1) for k in range(len(SEQUENCE))]
    assert summary["ticks"] == len(SEQUENCE) and summary["end"] == "end of input"
    assert summary["threads"] == 1
    assert summary["overlap"] is (_usable_cpus() >= 2)
    assert summary["pinned_cpus"] == _expected_pins()
    assert set(summary["latency_ms"]) >= {"capture", "features", "image", "audio", "fusion"}
    from edgeav.features import backend

    assert f"features in {'C' if backend() == 'c' else 'NumPy'}" in proc.stderr  # says which
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_run_table_for_a_person(int8_bundle, stream):
    video, wav = stream
    proc = _edgeav(
        "run", "--model", int8_bundle, "--camera", video, "--audio-file", wav, "--no-realtime",
        "--duration", "3", "--serial",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "overlapped" not in proc.stderr  # --serial: one thread
    assert "edgeav run" in proc.stdout and "bright" in proc.stdout
    assert "p95 ms" in proc.stdout and "3 ticks" in proc.stdout and "(duration)" in proc.stdout
    assert "on CPUs" not in proc.stdout  # nothing to pin on one thread
    # overlapped, but the threads left to the OS
    proc = _edgeav(
        "run", "--model", int8_bundle, "--camera", video, "--audio-file", wav, "--no-realtime",
        "--duration", "3", "--no-pin", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])["summary"]
    assert summary["ticks"] == 3 and summary["pinned_cpus"] is None
    assert summary["overlap"] is (_usable_cpus() >= 2)


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _can_pin() -> bool:
    """Whether this OS lets a thread pin itself to one CPU (a seccomp profile may refuse)."""
    if not hasattr(os, "sched_setaffinity") or _usable_cpus() < 2:
        return False
    ok = []

    def probe():
        try:
            os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return bool(ok)


def _expected_pins():
    """The CPUs an overlapped tick pins its two threads to here (None where it cannot)."""
    if not _can_pin():
        return None
    from edgeav.runtime.affinity import tick_cpus

    return list(tick_cpus())


def _bad_bundle(tmp_path):
    path = tmp_path / "random.edgeav"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    "case, expect",
    [
        ("missing bundle", r"bundle .*missing\.edgeav does not exist"),
        ("invalid bundle", r"bundle .*random\.edgeav is not a valid zip"),
        ("camera index", r"camera index 7 cannot be opened"),
        ("unreadable video", r"cannot read video .*bad\.mkv"),
        ("unreadable audio", r"cannot read audio file .*bad\.wav"),
        ("portaudio missing", r"libportaudio2"),
        ("no modality", r"no input given"),
        ("live source without realtime", r"--no-realtime needs file sources"),
    ],
)
def test_run_errors_are_one_line(case, expect, int8_bundle, stream, tmp_path):
    video, wav = stream
    bad_video = tmp_path / "bad.mkv"
    bad_video.write_bytes(b"not a video at all" * 50)
    bad_wav = tmp_path / "bad.wav"
    bad_wav.write_bytes(b"RIFF" + bytes(100))
    env = None
    args = {
        "missing bundle": ["--model", tmp_path / "missing.edgeav", "--camera", video],
        "invalid bundle": ["--model", _bad_bundle(tmp_path), "--camera", video],
        "camera index": ["--model", int8_bundle, "--camera", "7"],
        "unreadable video": ["--model", int8_bundle, "--camera", bad_video],
        "unreadable audio": ["--model", int8_bundle, "--audio-file", bad_wav],
        "portaudio missing": ["--model", int8_bundle, "--mic"],
        "no modality": ["--model", int8_bundle],
        "live source without realtime": ["--model", int8_bundle, "--camera", "0", "--no-realtime"],
    }[case]
    if case == "camera index" and Path("/dev/video7").exists():
        pytest.skip("this machine has a /dev/video7")
    if case == "portaudio missing":
        (tmp_path / "sitecustomize.py").write_text(_NO_PORTAUDIO)
        env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = _edgeav("run", *args, env=env)
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgeav: error: ")
    assert __import__("re").search(expect, lines[0]), lines[0]
    assert proc.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_run_ends_cleanly_on_signals(sig, code, int8_bundle, stream):
    video, wav = stream
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeav", "run", "--model", str(int8_bundle), "--camera",
         str(video), "--audio-file", str(wav), "--json", "--loop", "--rate", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        first = json.loads(proc.stdout.readline())
        assert first["tick"] == 0
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
        assert time.monotonic() - sent < 2.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    summary = json.loads(out.strip().splitlines()[-1])["summary"]
    assert summary["end"] == ("SIGINT" if code == 130 else "SIGTERM")
    assert summary["camera"]["state"] == "closed"
    assert "Traceback" not in err


# --- the tick's worker thread --------------------------------------------------------------------


def test_worker_returns_results_raises_errors_and_drops_interrupted_ones():
    from edgeav.runtime.worker import Worker

    worker = Worker("edgeav-test-worker")
    try:
        worker.submit(lambda a, b: a + b, 2, 3)
        assert worker.result() == 5
        worker.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            worker.result()
        # a job whose wait was cut short: its result must not reach the next wait
        worker.submit(lambda: time.sleep(0.2) or "stale")
        worker.submit(lambda: "fresh")
        assert worker.result() == "fresh"
        worker.submit(lambda: time.sleep(0.1) or "drained")
        worker.drain()
        with pytest.raises(RuntimeError, match="no job"):
            worker.result()
    finally:
        worker.close()
    assert not [t for t in threading.enumerate() if t.name == "edgeav-test-worker"]
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(print)


def _spin_module():
    try:
        from edgeav import _spin
    except ImportError:
        pytest.skip("edgeav._spin is not built here (no C compiler at install?)")
    return _spin


def test_spin_wait_sees_another_threads_write_and_times_out_otherwise():
    wait_changed = _spin_module().wait_changed
    flags = np.zeros(2, dtype=np.int64)
    t0 = time.perf_counter()
    assert wait_changed(flags, 1, 0, 0.05) is False  # nothing changes: the timeout
    assert time.perf_counter() - t0 >= 0.05
    assert wait_changed(flags, 0, 7, 0.0) is True  # already different: returns at once
    writer = threading.Timer(0.05, flags.__setitem__, (1, 42))
    writer.start()
    try:
        t0 = time.perf_counter()
        assert wait_changed(flags, 1, 0, 30.0) is True
        assert time.perf_counter() - t0 < 20  # woke on the write, not at the timeout
    finally:
        writer.join()
    # the GIL is released while it spins: another Python thread gets work done meanwhile
    counted = []
    counter = threading.Thread(target=lambda: counted.extend(range(100_000)))
    counter.start()
    wait_changed(flags, 0, 0, 0.2)
    counter.join()
    assert len(counted) == 100_000
    for bad in ((flags, 2, 0, 0.1), (flags, -1, 0, 0.1), (flags, 0, 0, -1.0), (flags, 0, 0, 1e9)):
        with pytest.raises(ValueError, match="int64 buffer"):
            wait_changed(*bad)
    with pytest.raises(ValueError, match="int64 buffer"):
        wait_changed(np.zeros(3, dtype=np.uint8), 0, 0, 0.1)  # not whole int64s
    with pytest.raises(TypeError):
        wait_changed(b"\0" * 8, 0, 0, 0.1)  # read-only


@pytest.mark.parametrize("spin", [True, False], ids=["spinning", "blocking"])
def test_worker_hand_overs_spinning_or_blocking_give_the_same_results(spin):
    """With edgeav._spin the worker spins for an armed job and result() for the job's end; the
    answers, the errors and the dropping of interrupted results are the same as blocking."""
    from edgeav.runtime.worker import Worker

    if spin:
        _spin_module()
    worker = Worker("edgeav-test-spin")
    worker.spin = spin
    try:
        for k in range(50):
            worker.arm()
            if k % 3 == 0:
                time.sleep(0.001)  # the job comes a little later
            worker.submit(lambda a, b: a * b, k, 2)
            assert worker.result() == 2 * k
        worker.arm()
        time.sleep(0.02)  # armed, no job comes: the spin ends, the worker blocks again
        worker.arm()
        worker.arm()  # one arm at a time: a second is not queued behind the first
        assert worker._jobs.qsize() <= 1
        worker.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            worker.result()
        worker.submit(lambda: time.sleep(0.05) or "stale")  # outlasts result()'s spin
        worker.submit(lambda: "fresh")
        assert worker.result() == "fresh"
    finally:
        worker.close()
    assert not [t for t in threading.enumerate() if t.name == "edgeav-test-spin"]


def _affinity(tid: int) -> set[int]:
    return set(os.sched_getaffinity(tid))


def test_tick_cpus_are_the_last_two_that_are_not_one_core():
    from edgeav.runtime.affinity import choose_tick_cpus

    no_smt = lambda cpu: {cpu}  # noqa: E731
    assert choose_tick_cpus({0, 1}, no_smt) == (0, 1)
    assert choose_tick_cpus({0, 1, 2, 3}, no_smt) == (2, 3)  # a Pi: CPU 0 keeps the interrupts
    assert choose_tick_cpus({3, 5}, no_smt) == (3, 5)  # a taskset mask
    assert choose_tick_cpus({0}, no_smt) is None and choose_tick_cpus(set(), no_smt) is None
    # x86 laptops number SMT threads either as pairs (2k, 2k+1) or as halves (k, k + n/2)
    pairs = lambda cpu: {cpu - cpu % 2, cpu - cpu % 2 + 1}  # noqa: E731
    assert choose_tick_cpus(range(8), pairs) == (5, 7)
    halves = lambda cpu: {cpu % 4, cpu % 4 + 4}  # noqa: E731
    assert choose_tick_cpus(range(8), halves) == (6, 7)
    # one core's two threads only: better than nothing
    assert choose_tick_cpus({0, 1}, pairs) == (0, 1)


@pytest.mark.skipif(not _can_pin(), reason="needs two usable CPUs and thread affinity")
def test_tick_and_worker_are_pinned_apart_helpers_kept_off_and_all_undone():
    from edgeav.runtime.affinity import helper_thread, pin_tick, tick_cpus
    from edgeav.runtime.worker import Worker

    process = _affinity(0)
    tick_cpu, worker_cpu = tick_cpus()
    assert worker_cpu == max(process) and tick_cpu in process - {worker_cpu}
    # a helper (like the file decoder) that started before the pinning
    helper_started, helper_go = threading.Event(), threading.Event()

    def helper():
        helper_thread()
        helper_started.set()
        helper_go.wait(10)

    helper_t = threading.Thread(target=helper, name="edgeav-test-helper")
    helper_t.start()
    helper_started.wait(10)
    seen = {}

    def tick():  # on its own thread, so pytest's is never pinned
        before = _affinity(0)
        worker = Worker("edgeav-test-pinned", cpu=worker_cpu)
        seen["worker_cpu"] = worker.cpu
        pinned = pin_tick(tick_cpu, worker.native_id, worker_cpu)
        seen["pinned"] = (_affinity(0), _affinity(worker.native_id), _affinity(helper_t.native_id))
        worker.submit(lambda: _affinity(0))
        seen["job"] = worker.result()  # jobs run on the worker's CPU
        pinned.undo()
        pinned.undo()  # idempotent
        seen["undone"] = (_affinity(0), _affinity(helper_t.native_id), before)
        worker.close()
        # an impossible CPU: the OS refuses, and the worker says so
        refused = Worker("edgeav-test-refused", cpu=max(process) + 4096)
        seen["refused"] = refused.cpu
        refused.close()

    t = threading.Thread(target=tick, name="edgeav-test-tick")
    t.start()
    t.join(30)
    helper_go.set()
    helper_t.join(10)
    assert not t.is_alive() and "refused" in seen, f"the tick thread failed: {seen}"
    assert seen["worker_cpu"] == worker_cpu
    others = process - {tick_cpu, worker_cpu}
    assert seen["pinned"] == ({tick_cpu}, {worker_cpu}, others or process - {worker_cpu})
    assert seen["job"] == {worker_cpu}
    tick_after, helper_after, tick_before = seen["undone"]
    assert tick_after == tick_before and helper_after == process
    assert seen["refused"] is None


@pytest.mark.slow
def test_pipeline_overlapped_branches_give_the_serial_records(int8_bundle, stream):
    video, wav = stream
    before = _affinity(0) if hasattr(os, "sched_getaffinity") else None
    overlapped, summary = _run_pipeline(int8_bundle, video, wav, overlap=True)
    if before is not None:
        assert _affinity(0) == before  # close() gave the tick's thread its CPUs back
    serial, serial_summary = _run_pipeline(int8_bundle, video, wav, overlap=False)
    unpinned, unpinned_summary = _run_pipeline(int8_bundle, video, wav, overlap=True, pin=False)
    assert summary["overlap"] is True and serial_summary["overlap"] is False
    assert summary["pinned_cpus"] == _expected_pins()
    assert serial_summary["pinned_cpus"] is None and unpinned_summary["pinned_cpus"] is None
    # hand-overs spin only with the two threads pinned apart (and edgeav._spin built)
    from edgeav.runtime.worker import wait_changed

    assert summary["spin"] is (wait_changed is not None and summary["pinned_cpus"] is not None)
    assert serial_summary["spin"] is False and unpinned_summary["spin"] is False
    assert len(overlapped) == len(SEQUENCE)
    strip = [{k: v for k, v in r.items() if k != "timings_ms"} for r in overlapped]
    assert strip == [{k: v for k, v in r.items() if k != "timings_ms"} for r in serial]
    assert strip == [{k: v for k, v in r.items() if k != "timings_ms"} for r in unpinned]
    for r in overlapped:  # every stage is timed in both modes
        assert {"preprocess", "image", "features", "audio", "fusion"} <= set(r["timings_ms"])
        assert r["timings_ms"]["image"] > 0
    # one modality: nothing to overlap
    image_only, image_summary = _run_pipeline(int8_bundle, video=video, overlap=True)
    assert image_summary["overlap"] is False
    assert [r["label"] for r in image_only] == [r["label"] for r in overlapped]
    assert not [t for t in threading.enumerate() if t.name.startswith("edgeav-")]
