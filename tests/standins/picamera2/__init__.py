"""A stand-in for Picamera2, for tests that cannot have the real one.

The real Picamera2 comes from Raspberry Pi OS's apt (python3-picamera2) and needs libcamera and
a camera; neither exists on a test machine. Tests put ``tests/standins`` on ``PYTHONPATH`` of a
subprocess, so that ``import picamera2`` finds this module there and nowhere else, and drive
edgeav's own code for real: choosing Picamera2 or V4L2, configuring the stream, converting its
frames to BGR, and reopening a camera that fails.

It offers the calls edgeav makes, with the real signatures and behaviour (picamera2 0.3.x):
``Picamera2.global_camera_info()`` (a static method), ``Picamera2(camera_num)`` (RuntimeError
when the camera is not there), ``create_video_configuration(main=..., controls=...)``,
``configure`` (``camera_config["main"]["format"]`` afterwards; odd sizes refused),
``start``/``stop``/``close``, and ``capture_array(name, wait=False)`` returning a job whose
``get_result(timeout)`` raises ``TimeoutError`` when no frame comes. Like libcamera, it prints an
INFO line to file descriptor 2 when its camera manager starts unless ``LIBCAMERA_LOG_LEVELS``
asks for errors only.

The environment decides what it simulates:

- ``EDGEAV_FAKE_PICAMERA2_CAMERAS``: JSON list of camera infos (default: one imx708 module);
- ``EDGEAV_FAKE_PICAMERA2_FORMAT``: the format ``configure`` grants, whatever was asked (as
  libcamera may adjust it); default: the one asked for;
- ``EDGEAV_FAKE_PICAMERA2_RGB``: the frames' colour as ``R,G,B`` (default ``200,100,50``);
- ``EDGEAV_FAKE_PICAMERA2_IMPORT``: ``numpy2`` makes the import fail as apt's Picamera2 does in
  a venv where pip installed NumPy 2 (its simplejpeg is built for Debian's NumPy 1.x);
- ``EDGEAV_FAKE_PICAMERA2_STATE``: a file whose content is read before every call: empty or
  missing (frames at the configured rate), ``raise`` (captures fail), ``hang`` (captures never
  complete) or ``gone`` (the camera is unplugged: not listed, not opened).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import Future

import numpy as np

if os.environ.get("EDGEAV_FAKE_PICAMERA2_IMPORT") == "numpy2":
    raise ValueError(  # simplejpeg/_jpeg.pyx's import under NumPy 2, as reported
        "numpy.dtype size changed, may indicate binary incompatibility. "
        "Expected 96 from C header, got 88 from PyObject"
    )

_DEFAULT_CAMERAS = [
    {"Model": "imx708", "Location": 2, "Rotation": 180, "Id": "/base/soc/i2c0mux/i2c@1/imx708@1a"}
]
_started_manager = False


def _state() -> str:
    path = os.environ.get("EDGEAV_FAKE_PICAMERA2_STATE")
    try:
        with open(path) as f:  # noqa: PTH123
            return f.read().strip()
    except (OSError, TypeError):
        return ""


def _cameras() -> list[dict]:
    global _started_manager
    if not _started_manager:  # libcamera's camera manager announces itself once
        _started_manager = True
        if "ERROR" not in os.environ.get("LIBCAMERA_LOG_LEVELS", ""):
            os.write(
                2,
                b"[0:00:01.000000000] [4242]  INFO Camera camera_manager.cpp:327 libcamera v0.3.2\n",
            )
    if _state() == "gone":
        return []
    return json.loads(os.environ.get("EDGEAV_FAKE_PICAMERA2_CAMERAS") or "null") or _DEFAULT_CAMERAS


def _pixel(fmt: str, rgb: tuple[int, int, int]) -> list[int]:
    r, g, b = rgb
    return {
        "RGB888": [b, g, r],
        "BGR888": [r, g, b],
        "XBGR8888": [r, g, b, 255],
        "XRGB8888": [b, g, r, 255],
    }[fmt]


class Job:
    """What ``capture_array(..., wait=False)`` returns (picamera2.job.Job's interface)."""

    def __init__(self) -> None:
        self._future: Future = Future()

    def get_result(self, timeout: float | None = None):
        return self._future.result(timeout=timeout)


class Picamera2:
    @staticmethod
    def global_camera_info() -> list:
        return [dict(c) for c in _cameras()]

    def __init__(self, camera_num: int = 0) -> None:
        if camera_num >= len(_cameras()):
            raise RuntimeError("Camera __init__ sequence did not complete.")
        self.camera_idx = camera_num
        self.camera_config = None
        self.started = False
        self._last = 0.0

    def create_video_configuration(self, main=None, controls=None, buffer_count=6, **others):
        stream = {"format": "XBGR8888", "size": (1280, 720)} | dict(main or {})
        controls = {"FrameDurationLimits": (33333, 33333)} | dict(controls or {})
        return {
            "use_case": "video",
            "buffer_count": buffer_count,
            "main": stream,
            **others,
            "controls": controls,
        }

    def configure(self, config: dict) -> None:
        width, height = config["main"]["size"]
        if width % 2 or height % 2:
            raise RuntimeError("width and height should be even")
        fmt = os.environ.get("EDGEAV_FAKE_PICAMERA2_FORMAT") or config["main"]["format"]
        self.camera_config = {**config, "main": {"format": fmt, "size": (width, height)}}

    def start(self) -> None:
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.stop()
        self.camera_config = None

    def capture_array(self, name: str = "main", wait=None, signal_function=None):
        job = Job()
        state = _state()
        if not self.started:
            job._future.set_exception(RuntimeError("Camera not started"))
        elif state in ("raise", "gone"):
            job._future.set_exception(RuntimeError("Camera frontend has timed out!"))
        elif state != "hang":
            period = self.camera_config["controls"]["FrameDurationLimits"][0] / 1e6
            time.sleep(max(0.0, self._last + period - time.monotonic()))
            self._last = time.monotonic()
            main = self.camera_config["main"]
            rgb = tuple(
                int(v) for v in os.environ.get("EDGEAV_FAKE_PICAMERA2_RGB", "200,100,50").split(",")
            )
            width, height = main["size"]
            pixel = np.array(_pixel(main["format"], rgb), np.uint8)
            job._future.set_result(np.broadcast_to(pixel, (height, width, pixel.size)).copy())
        return job if wait is False else job.get_result()
