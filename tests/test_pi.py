"""The device path on the Raspberry Pi's architecture: aarch64 user space under qemu-user.

``tests/pi/setup_sysroot.py`` prepares (once, cached outside the repository) an arm64 Debian 12
sysroot with python3.11 and PortAudio and the aarch64 wheels of the ``runtime`` extra; for each run
it builds edgeav's wheel and installs it as the README's Pi steps do (a venv, ``pip install
"edgeav-….whl[runtime]"``). These tests run that venv's Python under ``qemu-aarch64-static`` as a
Raspberry Pi 4 (Cortex-A72) and a Raspberry Pi 5 (Cortex-A76) and compare its answers with the
host's.

Skipped, with the reason, where qemu cannot be installed or the wheels cannot be downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.pi, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
PI = HERE / "pi"
REPO = HERE.parent

_spec = importlib.util.spec_from_file_location("edgeav_pi_setup", PI / "setup_sysroot.py")
setup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(setup)
CPUS = setup.CPUS  # cortex-a72 (Raspberry Pi 4), cortex-a76 (Raspberry Pi 5)


@pytest.fixture(scope="session")
def pi(tmp_path_factory) -> dict:
    """The emulated Pi: paths from ``tests/pi/setup_sysroot.py`` (skips where it cannot be)."""
    work = tmp_path_factory.mktemp("pi")
    res = subprocess.run(
        [sys.executable, str(PI / "setup_sysroot.py"), "--work", str(work)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if res.returncode == 77:
        pytest.skip(res.stderr.strip().splitlines()[-1])
    assert res.returncode == 0, f"setup_sysroot.py failed:\n{res.stderr[-3000:]}"
    info = json.loads(res.stdout)
    info["work"] = work
    print(
        f"\n[pi] ready in {info['seconds']} s {info['steps_seconds']};"
        f" sizes (MB): {info['sizes_mb']}",
        file=sys.stderr,
    )
    return info


def emulate(pi: dict, cpu: str, args: list[str], cwd: Path, timeout: float = 300):
    """Run the sysroot's python3.11 under qemu-user as ``cpu`` (cwd outside the repo, so the
    installed edgeav wheel is what gets imported)."""
    return subprocess.run(
        [pi["qemu"], pi["python"], *args],
        env=setup.emulated_env(pi, cpu),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def host(args: list[str], cwd: Path, timeout: float = 300):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QEMU_", "PYTHONPATH"))}
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def _tiny_int8_tflite(path: Path) -> Path:
    """A small real int8 convolutional network (plain, separable and depthwise convolutions,
    pooling, dense), fully quantised (int8 in and out) with a representative data set."""
    from edgeav.tf import keras, tf

    tf, keras = tf(), keras()
    tf.random.set_seed(0)
    rng = np.random.default_rng(0)
    model = keras.Sequential(
        [
            keras.layers.Input((32, 32, 3)),
            keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
            keras.layers.SeparableConv2D(32, 3, activation="relu"),
            keras.layers.DepthwiseConv2D(3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),  # logits: an untrained softmax would be flat
        ]
    )

    def representative():
        for _ in range(16):
            yield [rng.random((1, 32, 32, 3), dtype=np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    path.write_bytes(conv.convert())
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("pi-model")
    model = _tiny_int8_tflite(d / "tiny.tflite")
    rng = np.random.default_rng(1)
    np.save(d / "inputs.npy", rng.integers(-128, 128, size=(8, 32, 32, 3), dtype=np.int8))
    return model, d / "inputs.npy"


@pytest.fixture(scope="module")
def host_probe(tiny_model, tmp_path_factory) -> tuple[dict, np.ndarray]:
    model, inputs = tiny_model
    d = tmp_path_factory.mktemp("pi-host")
    res = host(
        [str(PI / "probe.py"), str(d / "p.json"), str(model), str(inputs), str(d / "o.npy")], d
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((d / "p.json").read_text()), np.load(d / "o.npy")


@pytest.mark.parametrize("cpu", CPUS)
def test_runtime_extra_under_emulation_matches_host(pi, tiny_model, host_probe, cpu, tmp_path):
    """numpy, cv2, soundfile, soxr and sounddevice (with the sysroot's PortAudio) import on
    aarch64, and a real int8 model gives bit-identical outputs through ai_edge_litert."""
    model, inputs = tiny_model
    res = emulate(
        pi,
        cpu,
        [
            str(PI / "probe.py"),
            str(tmp_path / "p.json"),
            str(model),
            str(inputs),
            str(tmp_path / "o.npy"),
        ],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    probe = json.loads((tmp_path / "p.json").read_text())
    host_info, host_out = host_probe
    assert probe["machine"] == "aarch64"
    assert probe["python"].startswith("3.11.")
    assert probe["litert_file"].startswith(pi["site"])  # the venv's aarch64 wheel, not the host's
    assert probe["find_library_from"] == "sitecustomize"  # the harness shim (tests/pi/shim)
    assert probe["find_library_portaudio"] == "libportaudio.so.2"
    assert probe["find_library_sndfile"] is None
    assert probe["portaudio"].startswith("PortAudio V19")
    for name in ("numpy", "cv2", "soundfile", "soxr", "sounddevice"):
        assert probe[name] == host_info[name], name
    assert probe["heavy_modules"] == []
    assert probe["threads_agree"]
    out = np.load(tmp_path / "o.npy")
    assert out.dtype == np.int8 and out.shape == (8, 10)
    assert len({tuple(r) for r in out}) > 1  # the inputs really give different answers
    np.testing.assert_array_equal(out, host_out)


# --- edgeav itself: info and run on a file stream ------------------------------------------


def _records(stdout: str) -> list[dict]:
    """The per-tick records of ``edgeav run --json`` without their (machine-dependent) timings."""
    out = []
    for line in stdout.splitlines():
        rec = json.loads(line)
        if "tick" in rec:
            rec.pop("timings_ms", None)
            out.append(rec)
    return out


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> tuple[Path, Path]:
    """A 3 s file stream: a lossless (FFV1) 64x64 video whose bright square moves between the
    tiny bundle's class positions, and a 16 kHz WAV of tones in noise."""
    import cv2
    import soundfile

    d = tmp_path_factory.mktemp("pi-stream")
    rng = np.random.default_rng(3)
    fps, seconds, size = 10, 3, 64
    video = d / "stream.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"FFV1"), fps, (size, size))
    assert writer.isOpened()
    for i in range(fps * seconds):
        img = rng.integers(0, 64, size=(size, size, 3), dtype=np.uint8)
        r, q = divmod((i // 5) % 10, 5)
        top, left = 2 * (4 + 16 * r), 2 * (1 + 6 * q)
        img[top : top + 16, left : left + 12] = 230
        writer.write(img)
    writer.release()
    sr = 16000
    t = np.arange(sr * seconds) / sr
    freq = np.repeat([300.0, 700.0, 1500.0], sr)
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    audio = d / "stream.wav"
    soundfile.write(audio, y.astype(np.float32), sr, subtype="PCM_16")
    return video, audio


@pytest.fixture(scope="module")
def host_edgeav(tiny_bundle, stream, tmp_path_factory) -> dict:
    video, audio = stream
    d = tmp_path_factory.mktemp("pi-host-run")
    info = host(["-m", "edgeav", "info", "--json", str(tiny_bundle)], d)
    assert info.returncode == 0, info.stderr[-3000:]
    args = ["run", "--model", str(tiny_bundle), "--camera", str(video)]
    args += ["--audio-file", str(audio), "--rate", "5", "--json", "--no-realtime"]
    run = host(["-m", "edgeav", *args], d)
    assert run.returncode == 0, run.stderr[-3000:]
    return {"info": json.loads(info.stdout), "records": _records(run.stdout), "args": args}


@pytest.mark.parametrize("cpu", CPUS)
def test_edgeav_info_and_run_under_emulation_match_host(
    pi, tiny_bundle, host_edgeav, cpu, tmp_path
):
    """``edgeav info`` and ``edgeav run --json --no-realtime`` on a file stream with a real int8
    bundle give the same answers on the emulated Pi as on the host, bit for bit, and the emulated
    process never even tries to import TensorFlow, tf_keras, tfmot or librosa."""
    info = emulate(pi, cpu, ["-m", "edgeav", "info", "--json", str(tiny_bundle)], tmp_path)
    assert info.returncode == 0, info.stderr[-3000:]
    assert json.loads(info.stdout) == host_edgeav["info"]

    imports = tmp_path / "imports.json"
    run = emulate(
        pi, cpu, [str(PI / "check_imports.py"), str(imports), *host_edgeav["args"]], tmp_path
    )
    assert run.returncode == 0, run.stderr[-3000:]
    records = _records(run.stdout)
    expected = host_edgeav["records"]
    assert len(expected) >= 10
    assert any(r["probs"]["image"] and r["probs"]["audio"] for r in expected)
    assert len({r["label"] for r in expected}) > 1
    assert [r["tick"] for r in records] == [r["tick"] for r in expected]
    for got, want in zip(records, expected, strict=True):
        assert got["label"] == want["label"], got["tick"]
        assert got["probs"] == want["probs"], got["tick"]  # floats parsed from JSON: exact
        assert got == want

    seen = json.loads(imports.read_text())
    assert seen["attempted"] == [] and seen["loaded_heavy"] == []
    assert {"edgeav", "numpy", "cv2", "ai_edge_litert"} <= set(seen["top_level"])
    assert seen["edgeav_file"].startswith(pi["site"])  # the wheel built from this tree


# --- the speech-embedding front-end on the Pi --------------------------------------------------


@pytest.fixture(scope="module")
def embed_bundle(tmp_path_factory) -> tuple[Path, Path]:
    """An audio-only int8 bundle whose head reads the speech-embedding front-end (untrained
    weights: the test compares the device with the host, not accuracy), and a WAV to run on."""
    import soundfile

    from edgeav.converters.convert import ConvertOptions, SplitArrays, convert_models
    from edgeav.features import FeatureConfig
    from edgeav.fusion import FusionWeights
    from edgeav.models.registry import build_variant
    from edgeav.preprocess import ImageSpec
    from edgeav.runtime.frontend import AudioInput, FrontEnd
    from edgeav.speech_embedding import load_models

    d = tmp_path_factory.mktemp("pi-embed")
    rng = np.random.default_rng(5)
    config, spec, models = (
        FeatureConfig(window_seconds=1.5),
        AudioInput("speech-embedding", -20.0),
        load_models(),
    )
    front = FrontEnd(spec, config, models)
    t = np.arange(config.window_samples) / 16000
    clips = [
        (0.2 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
        for f in rng.uniform(150, 3000, 24)
    ]
    x = np.stack([front(c) for c in clips])
    y = np.arange(len(x)) % 3
    flat = x.reshape(-1, x.shape[-1])
    head = build_variant(
        "audio-embed", classes=3, input_shape=front.shape, mean=flat.mean(0), variance=flat.var(0)
    )
    arrays = SplitArrays(None, None, x, y)
    convert_models(
        {"audio": head},
        classes=["a", "b", "c"],
        image_spec=ImageSpec(),
        feature_config=config,
        fusion=FusionWeights(),
        train=arrays,
        test=arrays,
        out=d / "embed.edgeav",
        options=ConvertOptions(quantize="int8", calibration_samples=24, allow_drop=True),
        audio_input=spec,
        frontend_models=models,
    )
    soundfile.write(d / "speech.wav", np.concatenate(clips[:4]), 16000, subtype="PCM_16")
    return d / "embed.edgeav", d / "speech.wav"


def test_speech_embedding_front_end_under_emulation_matches_host(pi, embed_bundle, tmp_path):
    """The front-end's float LiteRT models and the int8 head run on the emulated Pi from the
    bundle alone; the probabilities agree with the host's to float precision (the front-end is
    float, whose kernels may round differently per architecture) and the labels are the same.
    One CPU and three ticks: float models run slowly under emulation."""
    bundle, wav = embed_bundle
    args = ["-m", "edgeav", "run", "--model", str(bundle), "--audio-file", str(wav)]
    args += ["--rate", "2", "--duration", "2.5", "--json", "--no-realtime"]
    want = _records(host(args, tmp_path).stdout)
    got_run = emulate(pi, CPUS[0], args, tmp_path)
    assert got_run.returncode == 0, got_run.stderr[-3000:]
    got = _records(got_run.stdout)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want, strict=True):
        assert g["label"] == w["label"] and g["window"] == w["window"]
        np.testing.assert_allclose(g["probs"]["audio"], w["probs"]["audio"], atol=2e-3)
