"""The camera and microphone checks of ``edgeav doctor`` (:mod:`edgeav.runtime.doctor`): every
camera and microphone found, opened for about a second.

- **cameras**: V4L2 capture devices (``/dev/video*``, asked with the ``VIDIOC_QUERYCAP`` ioctl;
  the Raspberry Pi's own codec, ISP and camera-module nodes are named, not opened) read through
  OpenCV, and the cameras libcamera lists read through Picamera2 when it is importable: frames
  received and their size;
- **microphones**: every input device PortAudio lists (sounddevice), recorded: samples received
  and the RMS level in dBFS.

Each failure carries its fix (the Debian package, the group to join, the flag to pass). Native
libraries' output is captured, never printed. OpenCV, sounddevice and Picamera2 are imported
when a check runs.
"""

from __future__ import annotations

import fcntl
import math
import os
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError
from edgeav.native_stderr import captured_native_stderr
from edgeav.runtime.doctor import FAIL, INFO, OK, WARN, Check

#: The fixes printed for what is missing.
JOIN_VIDEO = "sudo usermod -aG video $USER, then log out and in again"
JOIN_AUDIO = "sudo usermod -aG audio $USER, then log out and in again"
NO_CAMERA_FIX = (
    "connect a USB webcam (it appears as /dev/video0) or the Raspberry Pi camera module "
    "(then: sudo apt install python3-picamera2, and a venv made with --system-site-packages); "
    "or run with --camera VIDEO_FILE or --camera rtsp://..."
)
NO_MIC_FIX = (
    "plug in a USB microphone and check it with `arecord -l`; " + JOIN_AUDIO + "; "
    "or run with --audio-file FILE"
)

# V4L2's VIDIOC_QUERYCAP: struct v4l2_capability is 104 bytes (driver[16], card[32],
# bus_info[32], version, capabilities, device_caps, reserved[3]).
VIDIOC_QUERYCAP = 0x80685600
CAP_VIDEO_CAPTURE, CAP_VIDEO_CAPTURE_MPLANE, CAP_DEVICE_CAPS = 0x1, 0x1000, 0x80000000
#: Drivers of the Raspberry Pi's own video nodes: codecs and the ISP (never a camera), and the
#: camera module's raw receivers (unicam on a Pi 4, rp1-cfe on a Pi 5: read through Picamera2).
PI_INTERNAL = {"bcm2835-codec", "bcm2835-isp", "rpivid", "pispbe", "rpi-hevc-dec", "hevc-dec"}
PI_CSI = {"unicam", "rp1-cfe"}


# --- cameras ----------------------------------------------------------------------------------


def _querycap(path: Path) -> tuple[str, str, bool]:
    """(driver, card name, is a capture device) of a V4L2 node; OSError if it cannot be asked."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        buf = bytearray(104)
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, buf)
    finally:
        os.close(fd)
    driver = bytes(buf[0:16]).split(b"\0")[0].decode(errors="replace")
    card = bytes(buf[16:48]).split(b"\0")[0].decode(errors="replace")
    caps, device_caps = struct.unpack_from("<II", buf, 84)
    if caps & CAP_DEVICE_CAPS:
        caps = device_caps
    return driver, card, bool(caps & (CAP_VIDEO_CAPTURE | CAP_VIDEO_CAPTURE_MPLANE))


def _read_for(read: Any, seconds: float) -> tuple[int, tuple[int, int] | None]:
    """Frames ``read()`` delivers in ``seconds`` (stopping at the first failure) and their size."""
    frames, size = 0, None
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            ok, image = read()
        except Exception:  # noqa: BLE001 - a crashing driver is a failed read
            break
        if not ok or image is None:
            break
        frames, size = frames + 1, (int(image.shape[1]), int(image.shape[0]))
    return frames, size


def _v4l2_cameras(seconds: float) -> list[Check]:
    nodes = sorted(
        Path("/dev").glob("video*"),
        key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else 1 << 30,
    )
    checks, skipped = [], []
    for path in nodes:
        index = int(path.name[5:]) if path.name[5:].isdigit() else None
        try:
            driver, card, capture = _querycap(path)
        except PermissionError:
            checks.append(
                Check("camera", str(path), FAIL, "permission denied", JOIN_VIDEO, {"v4l2": True})
            )
            continue
        except OSError as exc:
            checks.append(
                Check("camera", str(path), FAIL, f"cannot be asked: {exc.strerror}", None)
            )
            continue
        name = f"{path} {card}".strip()
        if driver in PI_INTERNAL or not capture:
            skipped.append(path.name)
            continue
        if driver in PI_CSI:
            checks.append(
                Check(
                    "camera",
                    name,
                    INFO,
                    f"the camera module's raw node ({driver}): read through Picamera2, below",
                )
            )
            continue
        checks.append(_open_v4l2(index, name, seconds))
    if skipped:
        checks.append(
            Check("camera", "other video nodes", INFO, f"not cameras: {', '.join(skipped)}")
        )
    return checks


def _open_v4l2(index: int | None, name: str, seconds: float) -> Check:
    from edgeav.runtime.camera import import_cv2  # noqa: PLC0415

    if index is None:
        return Check("camera", name, INFO, "not a numbered device: pass its path to --camera")
    cv2 = import_cv2()
    with captured_native_stderr():
        cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
        try:
            if not cap.isOpened():
                return Check(
                    "camera",
                    name,
                    FAIL,
                    "does not open through V4L2",
                    "is another program using it? (fuser " + name.split()[0] + ")",
                )
            frames, size = _read_for(cap.read, seconds)
        finally:
            cap.release()
    data = {"backend": "v4l2", "index": index, "frames": frames, "size": size}
    if not frames:
        return Check(
            "camera",
            name,
            FAIL,
            "opens but delivers no frames",
            "is another program using it? (fuser " + name.split()[0] + ")",
            data,
        )
    return Check(
        "camera",
        name,
        OK,
        f"{frames} frames in {seconds:g} s, {size[0]}x{size[1]} (--camera {index})",
        None,
        data,
    )


def _libcamera_cameras(seconds: float) -> list[Check]:
    from edgeav.runtime import picamera  # noqa: PLC0415

    picamera2, why = picamera.import_picamera2()
    if picamera2 is None:
        if picamera.on_raspberry_pi():
            return [
                Check(
                    "camera",
                    "libcamera (camera module)",
                    WARN,
                    why,
                    picamera.NUMPY_FIX
                    if "NumPy" in why
                    else f"for the camera module: {picamera.INSTALL_HINT}",
                )
            ]
        return [
            Check(
                "camera",
                "libcamera (camera module)",
                INFO,
                f"{why}; only the Raspberry Pi camera module needs it",
            )
        ]
    checks = []
    for number, info in enumerate(picamera.libcamera_cameras(picamera2)):
        name = f"libcamera {number} {info.get('Model', '')}".strip()
        if picamera.is_usb(info):
            checks.append(Check("camera", name, INFO, "a USB camera: read through V4L2, above"))
            continue
        size = picamera.DEFAULT_SIZE
        try:
            with captured_native_stderr():
                cap = picamera.Picamera2Capture(picamera2, number, size, None)
        except EdgeAVError as exc:
            checks.append(
                Check(
                    "camera",
                    name,
                    FAIL,
                    str(exc),
                    "is another program using it (rpicam-hello, a second edgeav)? "
                    "check it with `rpicam-hello --list-cameras`",
                )
            )
            continue
        try:
            frames, got = _read_for(cap.read, seconds)
        finally:
            cap.release()
        data = {"backend": "libcamera", "number": number, "frames": frames, "size": got}
        if frames:
            detail = f"{frames} frames in {seconds:g} s, {got[0]}x{got[1]} (--camera {number})"
            checks.append(Check("camera", name, OK, detail, None, data))
        else:
            fix = "check the ribbon cable and `rpicam-hello --list-cameras`"
            checks.append(Check("camera", name, FAIL, "delivers no frames", fix, data))
    return checks


def camera_checks(seconds: float = 1.0) -> list[Check]:
    """Every camera found, opened for ``seconds``; one failing check when there is none."""
    checks = _v4l2_cameras(seconds) + _libcamera_cameras(seconds)
    if not any(c.status in (OK, FAIL) for c in checks):
        checks.insert(0, Check("camera", "camera", FAIL, "no camera found", NO_CAMERA_FIX))
    return checks


# --- microphones ------------------------------------------------------------------------------


def _dbfs(power: float) -> float:
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def _listen(sd: Any, index: int, rate: int, seconds: float) -> tuple[int, float]:
    """Record ``seconds`` from input ``index``: (samples received, RMS level in dBFS)."""
    blocks: list[np.ndarray] = []

    def callback(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        blocks.append(indata[:, 0].copy())

    stream = sd.InputStream(
        device=index, samplerate=rate, channels=1, dtype="float32", callback=callback
    )
    try:
        stream.start()
        time.sleep(seconds)
        stream.stop()
    finally:
        stream.close(ignore_errors=True)
    samples = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    power = float(np.mean(np.square(samples, dtype=np.float64))) if samples.size else 0.0
    return int(samples.size), _dbfs(power)


def _mic_failure(what: str, exc: Exception, native: list[str]) -> tuple[str, str]:
    """(detail, fix) of a microphone that does not open."""
    from edgeav.runtime.audio import _native_reason  # noqa: PLC0415

    reason = _native_reason(native)
    text = f"{exc}" + (f" ({reason})" if reason else "")
    lowered = text.lower()
    if "permission" in lowered or "access" in lowered:
        return f"{what}: {text}", JOIN_AUDIO
    if "busy" in lowered:
        return f"{what}: {text}", "another program holds it: close it, or use another device"
    return f"{what}: {text}", "check it with `arecord -l` and `arecord -d 1 test.wav`"


def microphone_checks(seconds: float = 1.0) -> list[Check]:
    """Every input device PortAudio lists, recorded for ``seconds``."""
    from edgeav.runtime.audio import import_sounddevice  # noqa: PLC0415

    try:
        sd = import_sounddevice()
    except EdgeAVError as exc:
        fix = "sudo apt install libportaudio2" if "PortAudio" in str(exc) else None
        return [Check("microphone", "sounddevice", FAIL, str(exc), fix)]
    with captured_native_stderr():
        try:
            devices = list(sd.query_devices())
            default = sd.default.device[0] if sd.default.device is not None else -1
        except Exception as exc:  # noqa: BLE001 - PortAudio errors
            return [Check("microphone", "PortAudio", FAIL, f"cannot list devices: {exc}", None)]
    inputs = [(i, d) for i, d in enumerate(devices) if int(d.get("max_input_channels", 0)) > 0]
    if not inputs:
        return [Check("microphone", "microphone", FAIL, "no audio input device found", NO_MIC_FIX)]
    checks = []
    for index, device in inputs:
        is_default = index == default
        name = f"{index} {device['name']}" + (" (default)" if is_default else "")
        flag = "--mic" if is_default else f"--mic-device {index}"
        rate = int(round(float(device.get("default_samplerate") or 16000)))
        error = None
        with captured_native_stderr() as native:
            try:
                received, level = _listen(sd, index, rate, seconds)
            except Exception as exc:  # noqa: BLE001 - PortAudio errors
                error = exc
        if error is not None:
            detail, fix = _mic_failure("does not open", error, native)
            checks.append(Check("microphone", name, FAIL, detail, fix, {"index": index}))
            continue
        data = {
            "index": index,
            "default": is_default,
            "rate": rate,
            "samples": received,
            "level_dbfs": None if math.isinf(level) else round(level, 1),
        }
        if received == 0:
            fix = "check it with `arecord -d 1 test.wav`"
            checks.append(Check("microphone", name, FAIL, "opens but delivers nothing", fix, data))
        elif math.isinf(level):
            detail = f"{received} samples at {rate} Hz, all zero ({flag})"
            fix = "muted? raise its capture level in alsamixer"
            checks.append(Check("microphone", name, WARN, detail, fix, data))
        else:
            detail = f"{received} samples at {rate} Hz, level {level:.1f} dBFS ({flag})"
            checks.append(Check("microphone", name, OK, detail, None, data))
    default_ok = any(c.status == OK and c.data.get("default") for c in checks)
    working = [c for c in checks if c.status == OK]
    if not default_ok and working:  # the flag to pass: a device that works
        index = working[0].data["index"]
        for check in checks:
            if check.data.get("default"):
                check.fix = f"{check.fix or ''}; or pass --mic-device {index}".lstrip("; ")
    return checks
