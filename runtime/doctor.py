"""The checks behind ``edgeav doctor``: is this device ready for ``edgeav run``?

Each check opens the real thing and says what it found and, when something fails, how to fix
it (the Debian package, the group to join, the flag to pass):

- **this machine**: the Raspberry Pi model (or the OS), Python, whether the user is in the
  ``video`` and ``audio`` groups;
- **cameras** and **microphones**, each opened for about a second
  (:mod:`edgeav.runtime.device_checks`);
- **LiteRT**: which interpreter loads, and its version;
- **the bundle** (when given): it loads, and each model runs once on a prepared input (an image
  through the bundle's preprocessing, a window through its audio front-end), timed.

:func:`diagnose` returns a :class:`Report`; :attr:`Report.ok` is the rule ``edgeav doctor``'s
exit status follows (:data:`RULE`). Native libraries' output is captured, never printed.
Imports nothing heavy at module level.
"""

from __future__ import annotations

import contextlib
import os
import platform
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
    from edgeav.runtime.device_checks import camera_checks, microphone_checks  # noqa: PLC0415

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
