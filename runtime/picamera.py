"""The Raspberry Pi camera module through Picamera2 (:class:`PiCamera`), and the choice between it
and V4L2 for a ``--camera`` index (:func:`choose_device`).

On Raspberry Pi OS (Bookworm and later) the camera module (CSI, libcamera) does not deliver frames
through ``cv2.VideoCapture(0)``; only USB webcams do. Picamera2 is the Raspberry Pi's own
library for it. It comes from apt (``sudo apt install python3-picamera2``: it needs the system's
libcamera bindings, which pip cannot install), so a venv that should see it is made with
``python3 -m venv --system-site-packages``.

:class:`PiCamera` is a :class:`~edgeav.runtime.camera.LiveCamera` whose capture is a Picamera2
camera (:class:`Picamera2Capture`): the same reader thread keeping only the newest frame, the same
reopening with backoff when frames stop. Frames are converted to OpenCV's BGR from whatever the
stream delivers (:func:`to_bgr`). libcamera's own INFO lines are turned off
(``LIBCAMERA_LOG_LEVELS``) and Picamera2's Python log records are not printed, unless
``edgeav --debug``.

Picamera2 is imported only when a camera index or ``picam`` is opened.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError
from edgeav.native_stderr import captured_native_stderr, showing_native_output
from edgeav.runtime.camera import BACKOFF_MAX, BACKOFF_START, LiveCamera

#: How to get Picamera2, for messages.
INSTALL_HINT = (
    "sudo apt install python3-picamera2, and a venv made with "
    "python3 -m venv --system-site-packages"
)
#: The repair when apt's Picamera2 cannot load in a venv whose NumPy pip upgraded to 2.x.
NUMPY_FIX = "in the venv: pip install --force-reinstall simplejpeg (a build for NumPy 2)"
#: The frame size asked of the camera module when ``--camera-size`` is not given (Picamera2's
#: own video default, 1280x720, is more than a classifier needs).
DEFAULT_SIZE = (640, 480)
#: The stream format asked for: libcamera's RGB888 is stored B, G, R: OpenCV's order already.
FORMAT = "RGB888"
#: Seconds a frame may take before the read counts as failed (a hung camera).
READ_TIMEOUT = 2.0


def import_picamera2() -> tuple[Any, str]:
    """``(Picamera2, "")``, or ``(None, why not)`` when it cannot be imported."""
    if not showing_native_output():
        os.environ.setdefault("LIBCAMERA_LOG_LEVELS", "*:ERROR")  # read when libcamera starts
    try:
        with captured_native_stderr():
            from picamera2 import Picamera2  # noqa: PLC0415
    except ImportError as exc:
        return None, f"Picamera2 is not installed ({exc})"
    except Exception as exc:  # noqa: BLE001 - a broken libcamera binding raises anything
        text = " ".join(f"{type(exc).__name__}: {exc}".split())
        if "numpy" in text.lower() or "binary incompatibility" in text:
            # apt's simplejpeg (which Picamera2 imports) is built for Debian's NumPy 1.x; a venv
            # with --system-site-packages that pip gave NumPy 2 cannot load it
            return None, f"Picamera2 does not load with this NumPy ({text}); {NUMPY_FIX}"
        return None, f"Picamera2 does not load ({text})"
    if not showing_native_output():
        # Picamera2 logs its errors through `logging`; with no handler Python would print them
        logging.getLogger("picamera2").addHandler(logging.NullHandler())
    return Picamera2, ""


def libcamera_cameras(picamera2: Any) -> list[dict[str, Any]]:
    """``Picamera2.global_camera_info()``: one dict per camera libcamera lists (``Model``,
    ``Id``, ``Location``...); an empty list when it cannot tell."""
    try:
        with captured_native_stderr():
            return [dict(info) for info in picamera2.global_camera_info()]
    except Exception:  # noqa: BLE001 - no camera manager: no camera
        return []


def is_usb(info: dict[str, Any]) -> bool:
    """A USB camera that libcamera also lists (its Id names the USB path): V4L2 serves it."""
    return "usb" in str(info.get("Id", "")).lower()


def on_raspberry_pi() -> bool:
    """True on a Raspberry Pi (its device tree says so)."""
    with contextlib.suppress(OSError):
        return "raspberry pi" in Path("/proc/device-tree/model").read_text("latin-1").lower()
    return False


def to_bgr(array: np.ndarray, fmt: str) -> np.ndarray:
    """A Picamera2 frame of stream format ``fmt`` as an OpenCV BGR ``uint8`` ``(H, W, 3)`` array.

    libcamera names formats by their packing in a little-endian word, so the bytes of
    ``RGB888`` are B, G, R (OpenCV's order), those of ``BGR888`` R, G, B, of ``XBGR8888``
    R, G, B, X (Picamera2's default) and of ``XRGB8888`` B, G, R, X. ``YUV420`` is converted
    with OpenCV.
    """
    if fmt == "RGB888":
        return np.ascontiguousarray(array[..., :3])
    if fmt == "BGR888":
        return np.ascontiguousarray(array[..., 2::-1])
    if fmt == "XBGR8888":
        return np.ascontiguousarray(array[..., 2::-1])
    if fmt == "XRGB8888":
        return np.ascontiguousarray(array[..., :3])
    if fmt == "YUV420":
        from edgeav.runtime.camera import import_cv2  # noqa: PLC0415

        cv2 = import_cv2()
        return cv2.cvtColor(array, cv2.COLOR_YUV2BGR_I420)
    raise EdgeAVError(f"the camera delivers frames of format {fmt}, which edgeav cannot convert")


class Picamera2Capture:
    """One Picamera2 camera, opened, configured for video at ``size`` (and ``fps``) and started,
    read like a ``cv2.VideoCapture`` (``isOpened``, ``read``, ``get``, ``release``) so that
    :class:`~edgeav.runtime.camera.LiveCamera`'s reader thread can drive it.

    Raises:
        EdgeAVError: the camera does not open, or does not take the configuration.
    """

    def __init__(
        self, picamera2: Any, number: int, size: tuple[int, int], fps: float | None
    ) -> None:
        self.fps = fps
        try:
            camera = picamera2(number)
        except Exception as exc:  # noqa: BLE001 - RuntimeError, or libcamera's own
            raise EdgeAVError(f"cannot open libcamera camera {number}: {exc}") from exc
        try:
            controls = {}
            if fps is not None:
                frame_us = int(round(1e6 / fps))
                controls["FrameDurationLimits"] = (frame_us, frame_us)
            config = camera.create_video_configuration(
                main={"size": tuple(size), "format": FORMAT}, controls=controls
            )
            camera.configure(config)
            camera.start()
            # what libcamera granted: it may adjust the format or the size
            self.format = str(camera.camera_config["main"]["format"])
        except Exception as exc:  # noqa: BLE001
            with contextlib.suppress(Exception):
                camera.close()
            raise EdgeAVError(
                f"libcamera camera {number} does not start at {size[0]}x{size[1]}: {exc}"
            ) from exc
        self._camera = camera

    def isOpened(self) -> bool:  # noqa: N802 - mirrors cv2.VideoCapture
        return self._camera is not None

    def read(self) -> tuple[bool, np.ndarray | None]:
        """The next frame in BGR; a camera that raises or takes longer than
        :data:`READ_TIMEOUT` is a failed read (the reader reopens it after a few)."""
        if self._camera is None:
            return False, None
        job = self._camera.capture_array("main", wait=False)
        array = job.get_result(timeout=READ_TIMEOUT)
        return True, to_bgr(array, self.format)

    def get(self, prop: int) -> float:
        """The asked frame rate for ``CAP_PROP_FPS`` (0 when none was asked), else 0."""
        from edgeav.runtime.camera import import_cv2  # noqa: PLC0415

        return float(self.fps or 0.0) if prop == import_cv2().CAP_PROP_FPS else 0.0

    def release(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            with contextlib.suppress(Exception):
                camera.stop()
            with contextlib.suppress(Exception):
                camera.close()


class PiCamera(LiveCamera):
    """libcamera's camera ``number`` through Picamera2, newest frame only, reopened when it fails.

    Args:
        number: libcamera's camera number (``Picamera2.global_camera_info()``'s order).
        picamera2: the ``Picamera2`` class (:func:`import_picamera2`).
        info: that camera's ``global_camera_info()`` entry, for messages.
        size: frame size asked (default :data:`DEFAULT_SIZE`). fps: frame rate asked.
        log, backoff_start, backoff_max: as :class:`~edgeav.runtime.camera.LiveCamera`.
    """

    backend = "Picamera2 (libcamera)"

    def __init__(
        self,
        number: int,
        picamera2: Any,
        info: dict[str, Any] | None = None,
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        log: Callable[[str], None] | None = None,
        backoff_start: float = BACKOFF_START,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        size = size or DEFAULT_SIZE
        super().__init__(
            number,
            opener=lambda src: Picamera2Capture(picamera2, int(src), size, fps),
            backoff_start=backoff_start,
            backoff_max=backoff_max,
            log=log,
            size=size,
            fps=fps,
        )
        self.model = str((info or {}).get("Model") or "unknown model")

    @property
    def kind(self) -> str:
        return "libcamera"

    def opened_line(self, first: np.ndarray) -> str:
        height, width = first.shape[:2]
        fps = f" at {self.fps:g} fps" if self.fps else ""
        return (
            f"{self.label}: Picamera2 (libcamera camera {self.source}: {self.model}), "
            f"{width}x{height}{fps}"
        )


def choose_device(
    index: int,
    *,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    log: Callable[[str], None] | None = None,
) -> LiveCamera:
    """The source for ``--camera INDEX``: :class:`PiCamera` when Picamera2 is importable and
    libcamera lists a camera ``index`` that is not a USB camera, else the V4L2 device through
    OpenCV, noting why not Picamera2 (on a Raspberry Pi, with how to install it)."""
    picamera2, why = import_picamera2()
    if picamera2 is not None:
        cameras = libcamera_cameras(picamera2)
        if index < len(cameras) and not is_usb(cameras[index]):
            return PiCamera(index, picamera2, cameras[index], size=size, fps=fps, log=log)
        why = (
            f"libcamera camera {index} is a USB camera"
            if index < len(cameras)
            else f"libcamera lists no camera {index}"
        )
    elif on_raspberry_pi():
        why = f"{why}; for the camera module: {INSTALL_HINT}"
    else:
        why = ""  # not a Pi, no Picamera2: V4L2 is simply the way
    return LiveCamera(index, log=log, size=size, fps=fps, note=why)


def describe_cameras(cameras: list[dict[str, Any]]) -> str:
    """``"0: imx708, 1: ov5647"``, or ``"no camera"``."""
    return ", ".join(f"{i}: {c.get('Model', '?')}" for i, c in enumerate(cameras)) or "no camera"


def open_picamera(
    text: str,
    *,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    log: Callable[[str], None] | None = None,
) -> PiCamera:
    """The source for ``--camera picam`` / ``--camera picam:N``: libcamera's camera N (0 by
    default) through Picamera2, or one line saying what is missing and how to get it."""
    number_text = text.partition(":")[2].strip() or "0"
    if not number_text.isdigit():
        raise EdgeAVError(f"--camera {text}: the camera number after 'picam:' must be 0, 1, ...")
    number = int(number_text)
    picamera2, why = import_picamera2()
    if picamera2 is None:
        hint = f"; install it: {INSTALL_HINT}" if "not installed" in why else ""
        raise EdgeAVError(f"--camera {text} needs Picamera2: {why}{hint}")
    cameras = libcamera_cameras(picamera2)
    if number >= len(cameras):
        raise EdgeAVError(
            f"--camera {text}: libcamera lists {describe_cameras(cameras)}; check the camera's "
            "ribbon cable and `rpicam-hello --list-cameras`"
        )
    return PiCamera(number, picamera2, cameras[number], size=size, fps=fps, log=log)
