"""``edgeav doctor`` on this machine, for real: no camera (it must say so and how to fix it), the
PulseAudio test microphone (a private server whose null sink's monitor is the default input;
a tone played into it while the doctor listens), LiteRT, and real bundles.

Skipped where PulseAudio cannot start (the Makefile installs ``pulseaudio pulseaudio-utils
libasound2-plugins``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import media

STANDINS = Path(__file__).parent / "standins"
HAS_V4L2 = any(Path("/dev").glob("video*"))


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeav", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def by_kind(report: dict, kind: str) -> list[dict]:
    return [c for c in report["checks"] if c["kind"] == kind]


def test_doctor_hears_the_microphone_and_says_there_is_no_camera(pulse, tmp_path):
    """A tone is played into the null sink while the doctor listens: the default microphone
    delivers at the tone's level; no camera is found, with the fix; LiteRT loads; exit 0 (a
    microphone is enough without a bundle). A broken bundle makes it exit 3 with its fix."""
    from edgeav.benchmarks.pulse import SINK

    tone = media.write_wav(tmp_path / "tone.wav", media.tone(1, 20.0, amp=0.3))
    player = subprocess.Popen(  # as pulse.play does, but stopped once the doctor has listened
        ["paplay", f"--device={SINK}", str(tone)], env=pulse.client_env()
    )
    proc = doctor("--json", "--seconds", "0.5", env=pulse.client_env())
    player.terminate()
    player.wait(timeout=10)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""  # no ALSA/PortAudio lines either
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    if not HAS_V4L2:
        camera = by_kind(report, "camera")[0]
        assert (camera["status"], camera["detail"]) == ("fail", "no camera found")
        assert "python3-picamera2" in camera["fix"] and "--camera VIDEO_FILE" in camera["fix"]
    mics = by_kind(report, "microphone")
    default = next(m for m in mics if m["data"].get("default"))
    assert default["status"] == "ok", default
    # a sine of amplitude 0.3 has an RMS level of 20 log10(0.3 / sqrt 2) = -13.5 dBFS
    assert -15.0 < default["data"]["level_dbfs"] < -12.0, default
    assert default["data"]["samples"] > 0.25 * default["data"]["rate"]  # about half a second
    assert "(--mic)" in default["detail"]
    litert = by_kind(report, "litert")[0]
    assert litert["status"] == "ok" and litert["data"]["backend"] == "ai_edge_litert"

    broken = tmp_path / "model.edgeav"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    proc = doctor("--model", str(broken), "--seconds", "0.2", env=pulse.client_env())
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "not ready for edgeav run" in proc.stdout and "model.edgeav" in proc.stdout
    assert "edgeav convert" in proc.stdout  # the fix column
    assert proc.stderr == ""


def test_doctor_runs_each_model_of_a_bundle_and_reads_the_camera_module(av_bundle, tmp_path):
    """With the Picamera2 stand-in (tests/standins) a libcamera camera is read for its second;
    the bundle's models each run once, timed; with no microphone (no sound server here) the
    image model's camera is enough: exit 0. Without the camera, nothing the bundle can use
    delivers: exit 3."""
    env = {**os.environ, "PYTHONPATH": str(STANDINS)}
    proc = doctor("--model", str(av_bundle), "--json", "--seconds", "0.5", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    picam = next(c for c in by_kind(report, "camera") if c["name"].startswith("libcamera 0"))
    assert picam["status"] == "ok" and picam["data"]["size"] == [640, 480]
    assert picam["data"]["frames"] >= 5  # the stand-in's 30 fps for half a second
    models = {c["data"].get("modality"): c for c in by_kind(report, "bundle")}
    assert models["image"]["status"] == models["audio"]["status"] == "ok"
    assert 0 < models["image"]["data"]["latency_ms"] < 1000
    assert models["audio"]["data"]["frontend_ms"] > 0
    if any(c["status"] == "ok" for c in by_kind(report, "microphone")):
        return  # this machine has a microphone of its own: the bundle's audio model can use it
    env["EDGEAV_FAKE_PICAMERA2_STATE"] = str(tmp_path / "state")
    (tmp_path / "state").write_text("gone")  # the camera unplugged
    proc = doctor("--model", str(av_bundle), "--json", "--seconds", "0.2", env=env)
    assert proc.returncode == 3 and json.loads(proc.stdout)["ok"] is False


def test_doctor_without_portaudio_names_the_package_and_exits_3(tmp_path):
    """PortAudio hidden (as on a device without libportaudio2): the microphone check fails with
    the apt package to install; with no camera either, nothing delivers: exit 3, in the table
    a person reads."""
    from test_audio import NO_PORTAUDIO

    (tmp_path / "sitecustomize.py").write_text(NO_PORTAUDIO)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = doctor("--json", "--seconds", "0.2", env=env)
    report = json.loads(proc.stdout)
    mic = by_kind(report, "microphone")
    assert [(m["status"], m["fix"]) for m in mic] == [("fail", "sudo apt install libportaudio2")]
    if not HAS_V4L2:
        assert proc.returncode == 3 and report["ok"] is False
        table = doctor("--seconds", "0.2", env={**env, "COLUMNS": "200"})
        assert table.returncode == 3 and table.stderr == ""
        for text in ("no camera found", "libportaudio2", "not ready for edgeav run"):
            assert text in table.stdout, table.stdout
