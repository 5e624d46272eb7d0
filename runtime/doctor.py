"""The checks behind ``edgeav doctor``: is this device ready for ``edgeav run``?

Each check opens the real thing for about a second and says what it found and, when something
fails, how to fix it (the Debian package, the group to join, the flag to pass):

- **cameras**: V4L2 capture devices (``/dev/video*``, asked with the ``VIDIOC_QUERYCAP`` ioctl;
  the Raspberry Pi's own codec, ISP and camera-module nodes are named, not opened) read
  through OpenCV, and the cameras libcamera lists through Picamera2 when it is importable;
- **microphones**: every input device PortAudio lists (sounddevice), recorded for a second:
  samples received and the RMS level in dBFS;
- **LiteRT**: which interpreter loads, and its version;
- **the bundle** (when given): it loads, and each model runs once on a prepared input (an image
  through the bundle's preprocessing, a window through its audio front-end), timed.

:func:`diagnose` returns a :class:`Report`; :attr:`Report.ok` is the rule ``edgeav doctor``'s
exit status follows (:data:`RULE`). Native libraries' output is captured, never printed.
Imports nothing heavy at module level.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import platform
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError
from edgeav.native_stderr import captured_native_stderr

#: When the report is ok (and ``edgeav doctor`` exits 0).
RULE = (
    "ok when an interpreter (LiteRT) loads, the bundle (if given) loads and every model in it "
    "runs, and at least one camera or microphone delivers (with a bundle: one for a modality "
    "the bundle has)"
)
#: Statuses of a check: works, works with a caveat, does not work, for information.
OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"

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


@dataclass
class Check:
    """One line of the report.

    Attributes:
        kind: ``system``, ``camera``, ``microphone``, ``litert`` or ``bundle``.
        name: what was checked ("/dev/video0 HD Pro Webcam C920", "microphone 1 default").
        status: :data:`OK`, :data:`WARN`, :data:`FAIL` or :data:`INFO`.
        detail: what was found, one line.
        fix: what to do about a failure or a warning (None when there is nothing to do).
        data: the measurements, for programs (frames, size, level_dbfs, latency_ms, ...).
    """

    kind: str
    name: str
    status: str
    detail: str
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """Every :class:`Check`, and whether what matters works (:data:`RULE`)."""

    checks: list[Check]
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "rule": RULE, "checks": [asdict(c) for c in self.checks]}


def _system() -> Check:
    model = ""
    with contextlib.suppress(OSError):
        model = Path("/proc/device-tree/model").read_text("latin-1").strip("\0 \n")
    groups = []
    with contextlib.suppress(Exception):
        import grp  # noqa: PLC0415

        groups = sorted({grp.getgrgid(g).gr_name for g in os.getgroups()} & {"video", "audio"})
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    missing = [] if root else [g for g in ("video", "audio") if g not in groups]
    if root:
        user = "root (may open every device)"
    elif missing:
        user = f"not in the {' and '.join(missing)} group{'s' if len(missing) > 1 else ''}"
    else:
        user = "in the video and audio groups"
    detail = (
        f"{model or platform.system() + ' ' + platform.release()}, {platform.machine()}, Python "
        f"{platform.python_version()}; user {user}"
    )
    fix = None
    if missing:
        fix = f"sudo usermod -aG {','.join(missing)} $USER, then log out and in again"
    return Check(
        "system", "this machine", WARN if missing else INFO, detail, fix, {"groups": groups}
    )


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


# --- LiteRT and the bundle --------------------------------------------------------------------


def litert_check() -> Check:
    """Which TFLite interpreter loads (LiteRT first), and its version."""
    from importlib import metadata  # noqa: PLC0415

    from edgeav.runtime.interpreter import _resolve_backend  # noqa: PLC0415

    try:
        with captured_native_stderr():
            backend, _ = _resolve_backend(None)
    except EdgeAVError as exc:
        fix = "pip install 'edgeav[runtime]'"
        if platform.machine() in ("armv7l", "armv6l"):
            fix = "use the 64-bit Raspberry Pi OS (LiteRT has no 32-bit ARM wheels)"
        return Check("litert", "interpreter", FAIL, str(exc), fix)
    dist = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}
    version = "?"
    with contextlib.suppress(metadata.PackageNotFoundError):
        version = metadata.version(dist.get(backend, "tensorflow"))
    data = {"backend": backend, "version": version}
    if backend == "tf.lite":
        fix = "pip install ai-edge-litert: far lighter than TensorFlow on a device"
        return Check("litert", backend, WARN, f"TensorFlow {version}'s tf.lite", fix, data)
    return Check("litert", backend, OK, f"{dist[backend]} {version}", None, data)


def bundle_checks(path: Path) -> list[Check]:
    """The bundle loads, and each of its models runs once on a prepared input (timed)."""
    from edgeav.bundle import read_bundle  # noqa: PLC0415
    from edgeav.preprocess import preprocess_image  # noqa: PLC0415
    from edgeav.runtime.interpreter import load_interpreter  # noqa: PLC0415

    try:
        bundle = read_bundle(path)
    except EdgeAVError as exc:
        fix = "give the model.edgeav that `edgeav convert` wrote (copy it again if it is damaged)"
        return [Check("bundle", str(path), FAIL, str(exc), fix)]
    checks = [
        Check(
            "bundle",
            str(path),
            OK,
            f"{len(bundle.classes)} labels, models: {', '.join(bundle.modalities)}",
            None,
            {"modalities": bundle.modalities},
        )
    ]
    for modality in bundle.modalities:
        name = f"{modality} model"
        try:
            model = load_interpreter(
                bundle.model_bytes(modality),
                name=f"{path} {modality} model",
                output=bundle.model_output(modality),
            )
            extra = {}
            if modality == "image":
                frame = np.full((480, 640, 3), 128, np.uint8)  # a grey VGA camera frame
                x = preprocess_image(frame, bundle.image_spec, source_order="bgr")
            else:
                from edgeav.runtime.frontend import FrontEnd  # noqa: PLC0415

                frontend = FrontEnd(
                    bundle.audio_input, bundle.feature_config, bundle.frontend_models()
                )
                noise = np.random.default_rng(0).normal(0, 0.1, frontend.window)
                t = time.perf_counter()
                x = frontend(noise.astype(np.float32))  # a window of room noise
                extra["frontend_ms"] = round((time.perf_counter() - t) * 1e3, 3)
            t = time.perf_counter()
            model.predict(x)
            ms = (time.perf_counter() - t) * 1e3
        except EdgeAVError as exc:
            checks.append(Check("bundle", name, FAIL, str(exc), None, {"modality": modality}))
            continue
        shape = "x".join(str(d) for d in model.input_shape[1:])
        data = {"modality": modality, "latency_ms": round(ms, 3), "backend": model.backend}
        frontend = f", front-end {extra['frontend_ms']:.2f} ms" if extra else ""
        checks.append(
            Check(
                "bundle",
                name,
                OK,
                f"input {shape} {model.input_dtype}, one invoke {ms:.2f} ms{frontend}",
                None,
                data | extra,
            )
        )
    return checks


def diagnose(model: Path | None = None, seconds: float = 1.0) -> Report:
    """Run every check (the bundle's when ``model`` is given); :attr:`Report.ok` per :data:`RULE`."""
    if not (isinstance(seconds, (int, float)) and 0.1 <= seconds <= 30):
        raise EdgeAVError(f"seconds must be 0.1..30, got {seconds!r}")
    checks = [_system()]
    checks += camera_checks(seconds)
    checks += microphone_checks(seconds)
    checks.append(litert_check())
    if model is not None:
        checks += bundle_checks(Path(model))
    sources = {
        "camera": any(c.kind == "camera" and c.status == OK for c in checks),
        "microphone": any(c.kind == "microphone" and c.status in (OK, WARN) for c in checks),
    }
    ok = any(c.kind == "litert" and c.status in (OK, WARN) for c in checks)
    if model is not None:
        ok = ok and not any(c.kind == "bundle" and c.status == FAIL for c in checks)
        modalities = next((c.data["modalities"] for c in checks if "modalities" in c.data), [])
        wanted = {"image": "camera", "audio": "microphone"}
        ok = ok and any(sources[wanted[m]] for m in modalities)
    else:
        ok = ok and any(sources.values())
    return Report(checks, ok)
