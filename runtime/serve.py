"""The live page and HTTP API of ``edgeav run --serve [HOST:]PORT``.

What the camera sees and what the model thinks, on any browser (a phone's too): the newest frame
with the decision over it, per-modality probabilities and flags, per-stage latency and the audio
level, updated on every tick by Server-Sent Events; and the same as JSON for a program (see
:data:`ROUTES`), Prometheus metrics, and ``POST /api/classify`` for an uploaded image and/or
sound.

**Why Starlette + uvicorn.** Both are small, widely used, actively kept and pure Python on top of
h11 (no compiler needed on a Pi): Starlette gives routing, requests and a streaming multipart
parser (python-multipart) without a framework's weight; uvicorn is the reference ASGI server and
runs in a thread of its own, so the tick loop stays exactly as it is. No HTTP is parsed here.

**The ticks come first.** The pipeline keeps ticking in the main thread; after each tick
:meth:`Hub.publish` stores the newest record and frame under a lock (a few assignments) and hands
one callback to the server's event loop, which encodes the record once and offers it to every
Server-Sent-Events client's small bounded queue. A client whose queue is full (it is not reading)
or whose send does not finish within :data:`SEND_TIMEOUT` is dropped, never waited for; JPEG
encoding happens in the server's threads, once per frame, and only when asked. Memory stays flat:
the newest record, the newest frame, one JPEG, and at most :data:`QUEUE` events per client.

**Uploads** are bounded (:data:`MAX_BODY`, :data:`MAX_FILE`, :data:`MAX_AUDIO_SECONDS`,
:data:`MAX_PIXELS`), decoded with ``cv2.imdecode`` and soundfile from memory, never written to
disk, executed or unpickled; every bad one gets a 4xx JSON ``{"error": ...}``.

**The token** (``--token`` or ``EDGEAV_TOKEN``): every request carries ``Authorization: Bearer
T`` or ``?token=T`` (the page passes its own on to its requests), else 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import ipaddress
import json
import math
import os
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import numpy as np

from edgeav.errors import EdgeAVError

#: Largest request body accepted by ``POST /api/classify`` (bytes); a larger Content-Length is
#: refused before the body is read.
MAX_BODY = 16 * 2**20
#: Largest uploaded file (bytes).
MAX_FILE = 8 * 2**20
#: Longest uploaded sound (seconds); its last window is classified.
MAX_AUDIO_SECONDS = 60.0
#: Largest decoded image (pixels); cv2 refuses larger ones before allocating them.
MAX_PIXELS = 40_000_000
#: Events queued per Server-Sent-Events client before it is dropped as too slow.
QUEUE = 16
#: Seconds one send to a Server-Sent-Events client may take before it is dropped.
SEND_TIMEOUT = 5.0
#: Kernel send buffer of each connection (bytes; Linux doubles it). Left to autotuning, a client
#: that stops reading would hide behind megabytes of buffer (kernel memory) before its sends block.
SEND_BUFFER = 64 * 1024
#: Seconds between keep-alive comments on a quiet event stream.
KEEPALIVE = 15.0
#: Most Server-Sent-Events clients at once (more get 503).
MAX_CLIENTS = 200
#: ``/healthz`` answers 503 "stalled" after this many seconds (or tick periods, if longer)
#: without a tick.
STALL_SECONDS, STALL_TICKS = 5.0, 5
#: The HTTP API (method, path, what it answers).
ROUTES = [
    ("GET", "/", "the live page"),
    ("GET", "/healthz", "200 {status, ticks, age_s} while ticks come; 503 when they stall"),
    ("GET", "/api/info", "the bundle: labels, models, sizes, quantisation, accuracy, calibration"),
    ("GET", "/api/latest", "the newest record (as `edgeav run --json` prints it)"),
    ("GET", "/api/summary", "ticks, latency p50/p95 per stage, drops, overflows, modality use"),
    ("GET", "/api/records", "Server-Sent Events: `record` (the record) and `level` per tick"),
    ("GET", "/api/frame.jpg", "the newest camera frame as JPEG"),
    ("GET", "/api/settings", "{threshold, thresholds, smooth}"),
    (
        "POST",
        "/api/settings",
        "JSON {threshold?, smooth?}: used from the next tick (threshold null: the bundle's)",
    ),
    ("POST", "/api/classify", "multipart `image` and/or `audio` files: their fused record"),
    ("GET", "/metrics", "Prometheus text: ticks, latency, drops, overflows, level, labels"),
]


def parse_address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` (HOST may be ``[v6]``) → (host, port); host defaults to 127.0.0.1."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise EdgeAVError(f"--serve wants [HOST:]PORT with PORT 0..65535, got {text!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats as None (JSON has no infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _dumps(value: Any) -> bytes:
    return json.dumps(_finite(value), separators=(",", ":")).encode()


class _Client:
    """One Server-Sent-Events client: a bounded queue (None in it ends the stream)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE)

    def end(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class Hub:
    """The newest record and frame (lock-protected) and the event-stream clients.

    :meth:`publish` is called by the tick loop's thread; everything else by the server's.
    """

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self._lock = threading.Lock()
        self._prediction: Any = None
        self._frame: Any = None  # (key, BGR image)
        self._level: float | None = None
        self._published = self._published_unix = 0.0
        self._event: bytes | None = None
        self._jpeg: tuple[Any, bytes] | None = None
        self.labels: Counter[str] = Counter()
        self.clients: set[_Client] = set()
        self.dropped = 0
        self.running = True
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- the tick loop's side --------------------------------------------------------------

    def publish(self, prediction: Any, frame: Any, level: float | None) -> None:
        """Store the newest tick and hand it to the event loop (cheap: never waits on a client)."""
        with self._lock:
            self._prediction, self._level = prediction, level
            if frame is not None:
                self._frame = ((frame.index, frame.t, id(frame.image)), frame.image)
            self._published = time.monotonic()
            self._published_unix = wall = time.time()
            self.labels[prediction.label if prediction.label is not None else "none"] += 1
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self._fanout, prediction, level, wall)

    # --- the server's side -----------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def _fanout(self, prediction: Any, level: float | None, published: float) -> None:
        event = _sse_event(prediction, level, published)
        self._event = event
        for client in list(self.clients):
            try:
                client.queue.put_nowait(event)
            except asyncio.QueueFull:  # not reading: drop it, never wait for it
                self.drop(client, slow=True)

    def drop(self, client: _Client, *, slow: bool = False) -> None:
        """End ``client``'s stream; ``slow``: counted in :attr:`dropped` (it fell behind)."""
        if client in self.clients:
            self.clients.discard(client)
            self.dropped += slow
            client.end()

    def subscribe(self) -> _Client | None:
        if len(self.clients) >= MAX_CLIENTS:
            return None
        client = _Client()
        self.clients.add(client)
        return client

    def close(self) -> None:
        """End every event stream (the server is stopping)."""
        for client in list(self.clients):
            self.clients.discard(client)
            client.end()

    def newest(self) -> tuple[Any, float | None, float]:
        """(newest prediction or None, its audio level, seconds since it)."""
        with self._lock:
            age = time.monotonic() - self._published if self._prediction is not None else math.nan
            return self._prediction, self._level, age

    def newest_event(self) -> bytes | None:
        prediction, level, _ = self.newest()
        if self._event is not None or prediction is None:
            return self._event
        return _sse_event(prediction, level, self._published_unix)

    def jpeg(self) -> bytes | None:
        """The newest frame as JPEG (encoded once per frame)."""
        with self._lock:
            frame = self._frame
        if frame is None:
            return None
        cached = self._jpeg
        if cached is not None and cached[0] == frame[0]:
            return cached[1]
        import cv2  # noqa: PLC0415

        ok, data = cv2.imencode(".jpg", frame[1], [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            return None
        self._jpeg = (frame[0], data.tobytes())
        return self._jpeg[1]


def _sse_event(prediction: Any, level: float | None, published: float) -> bytes:
    """The ``record`` event and the ``level`` event (audio level; when the tick was published,
    Unix seconds, so a page can tell how late it shows it) of one tick."""
    record = _dumps(prediction.to_dict())
    status = _dumps(
        {"tick": prediction.tick, "audio_level_dbfs": level, "published": round(published, 4)}
    )
    return b"id: %d\nevent: record\ndata: %s\n\nevent: level\ndata: %s\n\n" % (
        prediction.tick,
        record,
        status,
    )


# --- metrics ---------------------------------------------------------------------------------


def _label_value(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if isinstance(value, float) else str(value)


def metrics_text(hub: Hub) -> str:
    """Prometheus text format (version 0.0.4) of the pipeline's counters and the server's."""
    pipe = hub.pipeline
    summary = pipe.summary()
    _, level, _ = hub.newest()
    lines: list[str] = []

    def metric(name: str, kind: str, text: str, samples: list[tuple[dict[str, str], float]]):
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            inner = ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items())
            lines.append(
                f"{name}{{{inner}}} {_number(value)}" if inner else f"{name} {_number(value)}"
            )

    metric("edgeav_ticks_total", "counter", "Ticks run.", [({}, summary["ticks"])])
    metric(
        "edgeav_ticks_skipped_total",
        "counter",
        "Ticks skipped because the loop was late.",
        [({}, summary["ticks_skipped"])],
    )
    latency = [
        ({"stage": stage, "quantile": q}, p[key])
        for stage, p in summary["latency_ms"].items()
        for q, key in (("0.5", "p50"), ("0.95", "p95"))
    ]
    metric(
        "edgeav_tick_latency_ms",
        "summary",
        "Tick latency per stage in milliseconds (the last 4096 ticks).",
        latency,
    )
    metric(
        "edgeav_frames_dropped_total",
        "counter",
        "Camera frames dropped.",
        [({}, summary["frames_dropped"])],
    )
    metric(
        "edgeav_audio_overflows_total",
        "counter",
        "Audio input overflows.",
        [({}, summary["audio_overflows"])],
    )
    if level is not None:
        metric(
            "edgeav_audio_level_dbfs",
            "gauge",
            "RMS level of the newest audio window (dB full scale).",
            [({}, level)],
        )
    with hub._lock:
        labels = sorted(hub.labels.items())
    metric(
        "edgeav_label_total",
        "counter",
        'Ticks per decided label ("none": no label named).',
        [({"label": label}, n) for label, n in labels],
    )
    metric(
        "edgeav_modality_total",
        "counter",
        "Ticks per modality and state (used, absent, stale, silent, unsure).",
        [
            ({"modality": m, "state": state}, n)
            for m, counts in summary["modalities"].items()
            for state, n in counts.items()
        ],
    )
    decision = pipe.decision
    metric(
        "edgeav_threshold",
        "gauge",
        "Decision threshold per set of modalities used.",
        [({"used": key}, value) for key, value in decision["thresholds"].items()],
    )
    metric("edgeav_smooth_ticks", "gauge", "Ticks averaged.", [({}, decision["smooth"])])
    metric("edgeav_sse_clients", "gauge", "Event-stream clients.", [({}, len(hub.clients))])
    metric(
        "edgeav_sse_dropped_total",
        "counter",
        "Event-stream clients dropped as too slow.",
        [({}, hub.dropped)],
    )
    return "\n".join(lines) + "\n"


# --- uploads ---------------------------------------------------------------------------------


class UploadError(Exception):
    """A bad request: ``status`` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def decode_image(data: bytes) -> np.ndarray:
    """A BGR image from encoded bytes (PNG, JPEG, BMP, WebP...)."""
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))
    import cv2  # noqa: PLC0415

    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise UploadError(422, "image: not a decodable image (PNG, JPEG, BMP, WebP...)")
    return image


def decode_audio(data: bytes, sample_rate: int, window: int) -> np.ndarray:
    """The last ``window`` samples (mono float32 at ``sample_rate``, zeros before a short sound)
    of encoded audio bytes (WAV, FLAC, OGG...)."""
    import soundfile as sf  # noqa: PLC0415

    if (missing := _wav_missing_bytes(data)) > 0:
        raise UploadError(422, f"audio: a truncated WAV ({missing} bytes of samples missing)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            if f.samplerate <= 0 or f.channels <= 0:
                raise UploadError(422, "audio: no sample rate or channels")
            if f.frames > MAX_AUDIO_SECONDS * f.samplerate:
                raise UploadError(413, f"audio: longer than {MAX_AUDIO_SECONDS:g} s")
            rate = f.samplerate
            samples = f.read(dtype="float32", always_2d=True)
    except UploadError:
        raise
    except Exception as exc:  # libsndfile's errors name the problem
        raise UploadError(422, f"audio: not a decodable sound file ({_first_line(exc)})") from None
    if samples.shape[0] == 0:
        raise UploadError(422, "audio: no samples")
    if not np.all(np.isfinite(samples)):
        raise UploadError(422, "audio: samples are not finite")
    mono = samples.mean(axis=1, dtype=np.float32)
    if rate != sample_rate:
        import soxr  # noqa: PLC0415

        mono = soxr.resample(mono, rate, sample_rate).astype(np.float32)
    if len(mono) >= window:
        return np.ascontiguousarray(mono[-window:])
    return np.concatenate([np.zeros(window - len(mono), np.float32), mono])


def _wav_missing_bytes(data: bytes) -> int:
    """How many bytes of samples a RIFF/WAVE file's ``data`` chunk promises beyond its end (0 for
    other formats, a complete file, or a streamed one whose size field is a placeholder)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return 0
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if data[pos : pos + 4] == b"data":
            if size in (0, 0xFFFFFFFF):
                return 0
            return max(0, size - (len(data) - pos - 8))
        pos += 8 + size + (size & 1)
    return 0


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^Error opening <[^>]*>: ", "", text)[:200]


# --- the application ---------------------------------------------------------------------------

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgeav live</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;padding:.6em;background:#111;color:#eee;max-width:46em}
#view{position:relative;background:#000;min-height:4em}
#frame{width:100%;display:block;image-rendering:pixelated}
#overlay{position:absolute;left:0;top:0;padding:.2em .5em;background:rgba(0,0,0,.65);font-size:1.8em}
.none{color:#fb0}.bars{display:grid;grid-template-columns:5em 1fr 3.5em;gap:2px .4em;margin:.3em 0}
.bar{background:#333;height:1em}.bar div{background:#4a8;height:100%}
h2{font-size:1em;margin:.6em 0 .2em}small,.muted{color:#aaa}
table{border-collapse:collapse}td{padding:0 .6em 0 0}input{width:5em}
</style></head><body>
<div id="view"><img id="frame" alt="no camera frame">
<div id="overlay"><span id="label" data-tick="-1">waiting…</span> <span id="conf"></span></div></div>
<div class="muted"><span id="reason"></span> tick <span id="tick">-</span>,
t <span id="t">-</span> s, audio <span id="level">-</span> dBFS,
shown <span id="lag">-</span> ms after the tick</div>
<div id="modalities"></div>
<h2>latency (ms)</h2><table id="latency"></table>
<h2>decision</h2>
<form id="settings">threshold <input id="threshold" type="number" min="0" max="1" step="0.01"
placeholder="bundle's">
smooth <input id="smooth" type="number" min="1" max="100" step="1">
<button>apply</button> <small id="saved"></small>
<div class="muted">in force by modalities used: <span id="thresholds">-</span></div></form>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token");
const q = token ? "token=" + encodeURIComponent(token) : "";
const api = (p, s) => p + (q ? (p.includes("?") ? "&" : "?") + q : "");
const headers = token ? {"Authorization": "Bearer " + token} : {};
const $ = (id) => document.getElementById(id);
// the newest record, labels and settings when the page was served (shown before any request)
const initial = /*INITIAL*/null;
let labels = initial.classes;
const lags = [];  // ms from each tick's publication to its showing here (the newest 100)
window.edgeavLags = lags;
function bars(name, probs, flag) {
  const box = document.createElement("div");
  const h = document.createElement("h2");
  h.textContent = name + (flag ? " — " + flag : "");
  if (flag) h.className = "none";
  box.appendChild(h);
  if (!probs) return box;
  const grid = document.createElement("div"); grid.className = "bars";
  probs.forEach((p, i) => {
    const l = document.createElement("span"); l.textContent = labels[i] ?? i;
    const b = document.createElement("div"); b.className = "bar";
    const f = document.createElement("div"); f.style.width = (100 * p).toFixed(1) + "%";
    b.appendChild(f);
    const v = document.createElement("span"); v.textContent = p.toFixed(2);
    grid.append(l, b, v);
  });
  box.appendChild(grid);
  return box;
}
function show(r) {
  const label = $("label");
  label.textContent = r.label ?? (r.confidence == null ? "no input" : "uncertain");
  label.className = r.label == null ? "none" : "";
  label.dataset.tick = r.tick;
  label.dataset.label = r.label ?? "";
  $("conf").textContent = r.confidence == null ? "" : r.confidence.toFixed(2);
  $("reason").textContent = r.reason ?? "";
  $("tick").textContent = r.tick; $("t").textContent = r.t;
  const mods = $("modalities"); mods.replaceChildren();
  for (const m of ["image", "audio", "fused"]) {
    if (m in r.probs && (r.probs[m] || r.flags[m]))
      mods.appendChild(bars(m, r.probs[m], r.flags[m]));
  }
  const lat = $("latency"); lat.replaceChildren();
  for (const [k, v] of Object.entries(r.timings_ms)) {
    const row = lat.insertRow(); row.insertCell().textContent = k;
    row.insertCell().textContent = v.toFixed(2);
  }
  if (r.frame) $("frame").src = api("/api/frame.jpg?tick=" + r.tick);
}
function showDecision(d) {
  $("threshold").value = d.threshold == null ? "" : d.threshold;
  $("smooth").value = d.smooth;
  $("thresholds").textContent = Object.entries(d.thresholds)
    .map(([k, v]) => k + " " + v.toFixed(2)).join(", ");
}
function start() {
  showDecision(initial.decision);
  if (initial.record) show(initial.record);
  const events = new EventSource(api("/api/records"));
  events.addEventListener("record", (e) => show(JSON.parse(e.data)));
  events.addEventListener("level", (e) => {
    const status = JSON.parse(e.data), v = status.audio_level_dbfs;
    $("level").textContent = v == null ? "-" : v.toFixed(1);
    const lag = Date.now() - 1000 * status.published;  // same clock when on the same machine
    $("lag").textContent = lag.toFixed(0);
    lags.push(lag);
    if (lags.length > 100) lags.shift();
  });
}
$("settings").addEventListener("submit", async (e) => {
  e.preventDefault();
  const t = $("threshold").value;  // empty: the bundle's thresholds
  const body = {threshold: t === "" ? null : Number(t), smooth: Number($("smooth").value)};
  const r = await fetch(api("/api/settings"), {method: "POST", body: JSON.stringify(body),
    headers: {...headers, "Content-Type": "application/json"}});
  const answer = await r.json();
  if (r.ok) showDecision(answer);
  $("saved").textContent = r.ok ? "saved" : answer.error;
});
start();
</script></body></html>
"""


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Any:
    from starlette.responses import JSONResponse  # noqa: PLC0415

    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _json(value: Any, status: int = 200) -> Any:
    from starlette.responses import Response  # noqa: PLC0415

    return Response(_dumps(value), status_code=status, media_type="application/json")


class _TokenGate:
    """ASGI middleware: 401 for an HTTP request without the token (header or query)."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app, self.token = app, token

    def _allowed(self, scope: dict) -> bool:
        expected = self.token.encode()
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                if hmac.compare_digest(value[7:].strip(), expected):
                    return True
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return any(hmac.compare_digest(t.encode(), expected) for t in query.get("token", []))

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.token and scope["type"] == "http" and not self._allowed(scope):
            response = _error(
                401,
                "a token is required: Authorization: Bearer TOKEN, or ?token=TOKEN",
                {"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(hub: Hub, token: str | None = None) -> Any:
    """The Starlette application serving ``hub``'s pipeline (see :data:`ROUTES`)."""
    from starlette.applications import Starlette  # noqa: PLC0415
    from starlette.concurrency import run_in_threadpool  # noqa: PLC0415
    from starlette.exceptions import HTTPException  # noqa: PLC0415
    from starlette.responses import HTMLResponse, PlainTextResponse, Response  # noqa: PLC0415
    from starlette.routing import Route  # noqa: PLC0415

    pipe = hub.pipeline
    info_cache: dict[str, Any] = {}

    async def page(request):
        prediction, _, _ = hub.newest()
        initial = {
            "record": None if prediction is None else prediction.to_dict(),
            "classes": pipe.classes,
            "decision": pipe.decision,
        }
        html = PAGE.replace("/*INITIAL*/null", _dumps(initial).decode().replace("</", "<\\/"))
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    # healthy while ticks keep coming: none for this long (or none yet after it) is a stall
    stall_s = max(STALL_SECONDS, STALL_TICKS * pipe.period_us / 1e6) if pipe else STALL_SECONDS
    served_at = time.monotonic()

    async def healthz(request):
        prediction, _, age = hub.newest()
        ticks = 0 if prediction is None else prediction.tick + 1
        quiet = age if prediction is not None else time.monotonic() - served_at
        status = "stopped" if not hub.running else "stalled" if quiet > stall_s else "ok"
        body = {"status": status, "ticks": ticks, "age_s": age}
        return _json(body, 200 if status == "ok" else 503)

    async def info(request):
        if "bundle" not in info_cache:
            from edgeav.commands.info import bundle_info  # noqa: PLC0415

            info_cache["bundle"] = await run_in_threadpool(bundle_info, pipe.bundle)
        return _json(
            {
                **info_cache["bundle"],
                "running": list(pipe.models),
                "backend": pipe.backend,
                "decision": pipe.decision,
            }
        )

    async def latest(request):
        prediction, _, _ = hub.newest()
        if prediction is None:
            return _error(503, "no tick yet", {"Retry-After": "1"})
        return _json(prediction.to_dict())

    async def summary(request):
        return _json(pipe.summary())

    async def metrics(request):
        return PlainTextResponse(
            metrics_text(hub), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def frame(request):
        if pipe.frames is None:
            return _error(404, "no camera in this run")
        data = await run_in_threadpool(hub.jpeg)
        if data is None:
            return _error(503, "no frame yet", {"Retry-After": "1"})
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def settings(request):
        if request.method == "POST":
            try:
                body = json.loads(await _read_body(request, 4096))
            except UploadError as exc:
                return _error(exc.status, exc.message)
            except ValueError:
                return _error(400, "settings: the body must be JSON {threshold, smooth}")
            if not isinstance(body, dict) or not set(body) <= {"threshold", "smooth"}:
                return _error(400, "settings: the body must be JSON {threshold?, smooth?}")
            try:
                pipe.set_decision(**body)
            except EdgeAVError as exc:
                return _error(400, str(exc))
        return _json(pipe.decision)

    async def classify(request):
        try:
            image, audio = await _uploads(request)
            if image is not None:
                image = await run_in_threadpool(decode_image, image)
            if audio is not None:
                rate = pipe.feature_config.sample_rate
                audio = await run_in_threadpool(decode_audio, audio, rate, pipe.window)
        except UploadError as exc:
            return _error(exc.status, exc.message)
        prediction = await run_in_threadpool(pipe.classify, image, audio)
        return _json(prediction.to_dict())

    async def _uploads(request) -> tuple[bytes | None, bytes | None]:
        from starlette.formparsers import MultiPartException, MultiPartParser  # noqa: PLC0415

        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "multipart/form-data":
            raise UploadError(
                415, f"classify wants multipart/form-data (fields image, audio), got {ctype!r}"
            )
        if "boundary=" not in ctype:
            raise UploadError(400, "multipart/form-data without a boundary")
        body = await _read_body(request, MAX_BODY)

        async def stream():
            yield body

        try:
            form = await MultiPartParser(
                request.headers, stream(), max_files=2, max_fields=4
            ).parse()
        except MultiPartException as exc:
            raise UploadError(400, f"bad multipart body: {exc.message}") from None
        try:
            unknown = sorted(set(form) - {"image", "audio"})
            if unknown:
                raise UploadError(400, f"unknown fields {unknown}: give image and/or audio")
            if not form:
                raise UploadError(400, "give a file in field image and/or audio")
            out = {}
            for name in ("image", "audio"):
                field = form.get(name)
                if field is None:
                    out[name] = None
                    continue
                if isinstance(field, str):
                    raise UploadError(400, f"{name} must be a file, not a text field")
                if name not in pipe.models:
                    flag = "--camera" if name == "image" else "--mic/--audio-file"
                    raise UploadError(
                        400, f"this run has no {name} model running (start it with {flag})"
                    )
                data = await field.read(MAX_FILE + 1)
                if len(data) > MAX_FILE:
                    raise UploadError(413, f"{name}: larger than {MAX_FILE} bytes")
                if not data:
                    raise UploadError(400, f"{name}: the file is empty")
                out[name] = data
            return out["image"], out["audio"]
        finally:
            await form.close()

    async def http_error(request, exc):
        return _error(exc.status_code, exc.detail)

    routes = [
        Route("/", page),
        Route("/healthz", healthz),
        Route("/api/info", info),
        Route("/api/latest", latest),
        Route("/api/summary", summary),
        Route("/api/records", _EventStream(hub)),
        Route("/api/frame.jpg", frame),
        Route("/api/settings", settings, methods=["GET", "POST"]),
        Route("/api/classify", classify, methods=["POST"]),
        Route("/metrics", metrics),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        hub.attach(asyncio.get_running_loop())
        yield
        hub.close()

    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error}
    )
    return _TokenGate(app, token)


async def _read_body(request: Any, limit: int) -> bytes:
    """The request body, refusing (413) one longer than ``limit`` before reading it all."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise UploadError(400, f"bad Content-Length {length!r}")
        if int(length) > limit:
            raise UploadError(413, f"the body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise UploadError(413, f"the body is larger than {limit} bytes")
    return bytes(body)


class _EventStream:
    """``GET /api/records``: a plain ASGI endpoint streaming :meth:`Hub.publish`'s events to one
    client from its bounded queue, ending when the client goes or is dropped."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await _error(405, "GET only")(scope, receive, send)
            return
        client = self.hub.subscribe()
        if client is None:
            await _error(503, "too many event-stream clients")(scope, receive, send)
            return

        async def watch() -> None:  # a client that goes is noticed even between ticks
            while (await receive())["type"] != "http.disconnect":
                pass
            self.hub.drop(client)

        watcher = asyncio.create_task(watch())
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),
        ]
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            first = self.hub.newest_event() or b": no tick yet\n\n"
            chunk: bytes | None = b"retry: 1000\n\n" + first
            while chunk is not None:
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": chunk, "more_body": True}),
                    SEND_TIMEOUT,
                )
                try:
                    chunk = await asyncio.wait_for(client.queue.get(), KEEPALIVE)
                except asyncio.TimeoutError:
                    chunk = b": keep-alive\n\n"
        except asyncio.TimeoutError:  # a send that did not finish: too slow
            self.hub.drop(client, slow=True)
        except OSError:  # gone
            pass
        finally:
            watcher.cancel()
            self.hub.drop(client)
        with contextlib.suppress(asyncio.TimeoutError, OSError):
            await asyncio.wait_for(
                send({"type": "http.response.body", "body": b"", "more_body": False}), 1.0
            )


class Server:
    """The page and API of a running pipeline, served by uvicorn in a thread of its own.

    Args:
        pipeline: an open :class:`~edgeav.runtime.pipeline.Pipeline`.
        address: ``[HOST:]PORT`` (port 0: any free port; see :attr:`url`).
        token: required on every request when given.
        log: where the one-line messages go (the URL; the no-token warning).

    Raises:
        EdgeAVError: a bad address, a port in use, a server that does not start.
    """

    def __init__(
        self,
        pipeline: Any,
        address: str,
        token: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        import uvicorn  # noqa: PLC0415

        host, port = parse_address(address)
        log = log or (lambda message: None)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER
            )  # accepted ones inherit
            sock.bind((host, port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise EdgeAVError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"
        self.hub = Hub(pipeline)
        config = uvicorn.Config(
            create_app(self.hub, token),
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=5,
            h11_max_incomplete_event_size=64 * 1024,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="edgeav-serve", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise EdgeAVError(f"the server on {host}:{self.port} did not start")
            time.sleep(0.01)
        if not token and not is_loopback(host):
            log(
                f"warning: serving on {host} without a token: anyone who can reach this "
                "address sees the camera (use --token or EDGEAV_TOKEN)"
            )
        log(f"serving {self.url}" + ("?token=…" if token else ""))

    def publishing(self, predictions: Iterator[Any]) -> Iterator[Any]:
        """``predictions``, each published to the page and API as it passes."""
        pipe = self.hub.pipeline
        for prediction in predictions:
            self.hub.publish(prediction, pipe.last_frame, pipe.audio_level)
            yield prediction

    def stop(self) -> None:
        """End the event streams, then the server (well within a second: a signal's grace)."""
        self.hub.running = False
        loop = self.hub._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self.hub.close)
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self.sock.close()
