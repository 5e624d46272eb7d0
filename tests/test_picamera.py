"""The Raspberry Pi camera module through Picamera2, and the choice between it and V4L2.

Picamera2 cannot be installed here (it comes from Raspberry Pi OS's apt and needs libcamera and a
camera), so these tests run edgeav's own code -- the choice of backend, the stream's
configuration, the conversion of its frames to BGR, the reopening of a failing camera, the
``edgeav run`` line that says which backend opened -- in subprocesses whose ``PYTHONPATH`` holds
``tests/standins``, where a stand-in ``picamera2`` module with Picamera2's interface produces
frames (see its docstring). The real Picamera2 path is untested on hardware.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeav.errors import EdgeAVError
from edgeav.runtime.camera import open_frame_source, parse_camera_size
from edgeav.runtime.picamera import to_bgr

STANDINS = Path(__file__).parent / "standins"


def _python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter that imports the stand-in as ``picamera2``."""
    full_env = {**os.environ, "PYTHONPATH": str(STANDINS), **env}
    full_env.pop("LIBCAMERA_LOG_LEVELS", None)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        cwd=tmp_path,
    )


def test_every_picamera2_rgb_format_becomes_opencv_bgr():
    """libcamera names formats by their packing in a little-endian word: RGB888's bytes are
    B, G, R; XBGR8888's (Picamera2's default) R, G, B, X."""
    r, g, b = 200, 100, 50
    layouts = {
        "RGB888": [b, g, r],
        "BGR888": [r, g, b],
        "XBGR8888": [r, g, b, 255],
        "XRGB8888": [b, g, r, 255],
    }
    for fmt, pixel in layouts.items():
        frame = np.broadcast_to(np.array(pixel, np.uint8), (6, 8, len(pixel))).copy()
        bgr = to_bgr(frame, fmt)
        assert bgr.shape == (6, 8, 3) and bgr.flags.c_contiguous, fmt
        assert bgr[0, 0].tolist() == [b, g, r], fmt
    with pytest.raises(EdgeAVError, match="format SRGGB10"):
        to_bgr(frame, "SRGGB10")


OPEN_AND_FAIL = """
import json, pathlib, time
from edgeav.runtime.camera import open_frame_source
state = pathlib.Path("state")
log = []
cam = open_frame_source("0", size=(64, 48), fps=50, log=log.append)
cam.open()
time.sleep(0.2)
first = cam.frame_at(0)
state.write_text("raise")  # the camera stops delivering...
time.sleep(0.9)
during = cam.state
state.write_text("")  # ...and comes back
deadline = time.monotonic() + 6
while time.monotonic() < deadline and (cam.state != "open" or cam.reopens == 0):
    time.sleep(0.05)
time.sleep(0.2)
after = cam.frame_at(0)
cam.close()
print(json.dumps({"type": type(cam).__name__, "log": log, "shape": first.image.shape,
                  "pixel": first.image[0, 0].tolist(), "during": during,
                  "after": after.index > first.index, "stats": cam.stats()}))
"""


def test_camera_0_is_the_camera_module_through_picamera2_and_reopens(tmp_path):
    """With Picamera2 importable and a camera module listed, ``--camera 0`` opens it through
    Picamera2 at the asked size, converts its XBGR8888 frames (the format granted instead of the
    one asked) to BGR, says so in its first line, and reopens after frames stop; libcamera's
    own INFO line never reaches stderr."""
    proc = _python(
        OPEN_AND_FAIL,
        tmp_path,
        EDGEAV_FAKE_PICAMERA2_STATE=str(tmp_path / "state"),
        EDGEAV_FAKE_PICAMERA2_FORMAT="XBGR8888",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # the stand-in's libcamera INFO line was turned off
    out = json.loads(proc.stdout)
    assert out["type"] == "PiCamera"
    assert out["log"][0] == "camera 0: Picamera2 (libcamera camera 0: imx708), 64x48 at 50 fps"
    assert out["shape"] == [48, 64, 3] and out["pixel"] == [50, 100, 200]  # RGB 200,100,50
    assert out["during"] == "reopening" and out["after"]
    assert any("no frames; reopening" in m for m in out["log"]), out["log"]
    assert out["log"][-1] == "camera 0: frames again"
    stats = out["stats"]
    assert stats["kind"] == "libcamera" and stats["reopens"] >= 1 and stats["state"] == "closed"


CHOOSE = """
import json
from edgeav.errors import EdgeAVError
from edgeav.runtime.camera import open_frame_source
out = {}
for value in ("0", "1", "picam:1", "picam:x"):
    try:
        cam = open_frame_source(value)
        out[value] = [type(cam).__name__, cam.note]
        cam.open()
    except EdgeAVError as exc:
        out[value].append(str(exc)) if value in out else out.setdefault(value, [str(exc)])
print(json.dumps(out))
"""


def test_a_usb_or_missing_libcamera_camera_goes_to_v4l2(tmp_path):
    """libcamera lists a camera module and a USB webcam: ``--camera 1`` (the webcam) goes to
    V4L2 through OpenCV and its error says why not Picamera2; ``picam:1`` is refused."""
    cameras = [
        {"Model": "imx708", "Id": "/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a"},
        {"Model": "HD Pro Webcam C920", "Id": "/base/scb/pcie@7d500000/pci@0,0/usb@0,0-1:1.0"},
    ]
    proc = _python(CHOOSE, tmp_path, EDGEAV_FAKE_PICAMERA2_CAMERAS=json.dumps(cameras[1:]))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["0"][:2] == ["LiveCamera", "libcamera camera 0 is a USB camera"]
    assert out["1"][:2] == ["LiveCamera", "libcamera lists no camera 1"]
    if not Path("/dev/video1").exists():
        assert out["1"][2] == (
            "camera index 1 cannot be opened (V4L2 through OpenCV: no such camera, or it is "
            "busy; libcamera lists no camera 1)"
        )
    assert out["picam:1"] == [
        "--camera picam:1: libcamera lists 0: HD Pro Webcam C920; check the camera's ribbon "
        "cable and `rpicam-hello --list-cameras`"
    ]
    assert out["picam:x"] == [
        "--camera picam:x: the camera number after 'picam:' must be 0, 1, ..."
    ]


def test_a_picamera2_that_numpy_2_broke_says_how_to_repair_it(tmp_path):
    """apt's Picamera2 in a venv where pip installed NumPy 2 fails to import (its simplejpeg is
    built for NumPy 1.x): the error names the repair instead of "install Picamera2"."""
    code = "from edgeav.runtime.camera import open_frame_source\nopen_frame_source('picam')"
    proc = _python(code, tmp_path, EDGEAV_FAKE_PICAMERA2_IMPORT="numpy2")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "Picamera2 does not load with this NumPy (ValueError: numpy.dtype size" in last
    assert "pip install --force-reinstall simplejpeg" in last


def test_picam_without_picamera2_says_how_to_install_it():
    try:
        import picamera2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("Picamera2 is installed here")
    with pytest.raises(EdgeAVError) as info:
        open_frame_source("picam")
    assert "sudo apt install python3-picamera2" in str(info.value)
    assert "--system-site-packages" in str(info.value)
    assert parse_camera_size("640x480") == (640, 480)
    for bad in ("640", "640x", "axb", "8x8", "640x480x3"):
        with pytest.raises(EdgeAVError, match="camera size"):
            parse_camera_size(bad)


def test_edgeav_run_names_the_camera_module_first_and_classifies_its_frames(av_bundle, tmp_path):
    """``edgeav run --camera picam --camera-size 64x48`` end to end: the first stderr line says
    Picamera2 opened the camera, and the frames (a bright grey) are classified."""
    args = [sys.executable, "-m", "edgeav", "run", "-m", str(av_bundle), "--camera", "picam"]
    args += ["--camera-size", "64x48", "--camera-fps", "20", "--duration", "2", "--json"]
    env = {**os.environ, "PYTHONPATH": str(STANDINS), "EDGEAV_FAKE_PICAMERA2_RGB": "230,230,230"}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == "edgeav: camera 0: Picamera2 (libcamera camera 0: imx708), 64x48 at 20 fps"
    assert all(line.startswith("edgeav: ") for line in lines), lines
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    summary = records.pop()["summary"]
    assert len(records) == 2 and [r["label"] for r in records] == ["bright", "bright"]
    assert summary["camera"]["kind"] == "libcamera" and summary["camera"]["frames_read"] >= 20
