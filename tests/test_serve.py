"""``edgeav run --serve``: the live page and HTTP API, as a user and a browser meet them.

The fast tests run the upload decoders and the event hub on real bytes and real records; the
others start the real CLI in a subprocess (``--serve 127.0.0.1:0`` on tests/media.py's stream,
looped, with a token) and talk to it over real HTTP (httpx, and raw sockets where a client
must misbehave), and load the page in the system's headless chromium.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from media import CLASSES, SR, tone, write_stream

from edgeav.runtime.pipeline import Prediction
from edgeav.runtime.serve import (
    MAX_BODY,
    QUEUE,
    Hub,
    UploadError,
    decode_audio,
    decode_image,
    is_loopback,
    parse_address,
)

TOKEN = "test-token-3f9a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = SR  # the av bundle's audio window (1 s at 16 kHz)


def _png(value: int = 128, size: int = 20) -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", np.full((size, size, 3), value, np.uint8))
    assert ok
    return data.tobytes()


def _wav(cls: int = 2, seconds: float = 1.0, sr: int = SR) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, tone(cls, seconds, sr=sr), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# --- fast: the pieces on real bytes ----------------------------------------------------------


def test_addresses():
    assert parse_address("8000") == ("127.0.0.1", 8000)
    assert parse_address(":0") == ("127.0.0.1", 0)
    assert parse_address("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    for bad in ("", "host", "1.2.3.4:http", "70000"):
        with pytest.raises(Exception, match="--serve wants"):
            parse_address(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` grey pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress((b"\0" + bytes(width)) * 16, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_uploads_decode_or_say_why():
    assert decode_image(_png(200)).shape == (20, 20, 3)
    samples = decode_audio(_wav(seconds=1.5), SR, WINDOW)
    assert samples.shape == (WINDOW,) and samples.dtype == np.float32
    assert np.allclose(samples, tone(2, 1.5)[-WINDOW:], atol=1e-3)  # the last window
    short = decode_audio(_wav(seconds=0.25, sr=8000), SR, WINDOW)  # resampled, zeros first
    assert short.shape == (WINDOW,) and not short[: WINDOW // 2].any() and short[-100:].any()
    wav = _wav()
    cases = {
        "garbage image": (decode_image, np.random.default_rng(0).bytes(4000), 422, "image"),
        "truncated WAV": (decode_audio, wav[: len(wav) // 3], 422, "truncated"),
        "WAV header only": (decode_audio, wav[:44], 422, "audio"),
        "image as audio": (decode_audio, _png(), 422, "not a decodable sound"),
        "audio as image": (decode_image, wav, 422, "not a decodable image"),
    }
    for name, (decode, data, status, words) in cases.items():
        args = (data,) if decode is decode_image else (data, SR, WINDOW)
        with pytest.raises(UploadError) as err:
            decode(*args)
        assert err.value.status == status and words in err.value.message, name
        assert "BytesIO" not in err.value.message


def test_the_server_imports_no_training_libraries():
    code = (
        "import sys\n"
        "from edgeav.runtime.serve import Hub, create_app\n"
        "from edgeav.commands.info import bundle_info\n"
        "import starlette.formparsers, uvicorn\n"
        "create_app(Hub(None), 'token')\n"
        "print([m for m in ('tensorflow', 'tf_keras', 'librosa') if m in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


def _prediction(tick: int, label: str | None = "mid") -> Prediction:
    return Prediction(
        tick, tick / 4, label, 0.9, None, [[label, 0.9]], {"image": None, "audio": None,
        "fused": None}, [], [], {}, None, None, {"total": 1.0},
    )  # fmt: skip


def test_a_client_that_does_not_read_is_dropped_not_waited_for():
    hub = Hub(pipeline=None)

    async def scenario():
        hub.attach(asyncio.get_running_loop())
        reader, idle = hub.subscribe(), hub.subscribe()
        for k in range(QUEUE + 5):
            hub.publish(_prediction(k), None, -20.0)
            await asyncio.sleep(0)  # the event loop runs the fan-out
            assert (await reader.queue.get()).startswith(b"id: %d\n" % k)
        return reader, idle

    reader, idle = asyncio.run(scenario())
    assert hub.dropped == 1 and hub.clients == {reader}
    assert idle.queue.qsize() == 1 and idle.queue.get_nowait() is None  # its stream ends
    assert hub.newest()[0].tick == QUEUE + 4 and hub.labels == {"mid": QUEUE + 5}


def test_health_says_when_the_ticks_stall(monkeypatch):
    import httpx

    from edgeav.runtime import serve

    monkeypatch.setattr(serve, "STALL_SECONDS", 0.3)
    server = serve.Server(None, "127.0.0.1:0")  # a server with no pipeline: only the hub
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/healthz").json() == {"status": "ok", "ticks": 0, "age_s": None}
            time.sleep(0.4)
            stalled = client.get("/healthz")
            assert stalled.status_code == 503 and stalled.json()["status"] == "stalled"
            server.hub.publish(_prediction(0), None, -30.0)
            fresh = client.get("/healthz")
            assert fresh.status_code == 200 and fresh.json()["ticks"] == 1
            time.sleep(0.4)
            assert client.get("/healthz").json()["status"] == "stalled"
    finally:
        server.stop()
    assert not server._thread.is_alive()


# --- the real server ---------------------------------------------------------------------------


class Served:
    """A running ``edgeav run --serve`` subprocess: its URL, stdout/stderr files, process."""

    def __init__(self, args: list, folder: Path, token: str | None = TOKEN, env=None):
        self.out, self.err = folder / "stdout", folder / "stderr"
        cmd = [sys.executable, "-m", "edgeav", "run", *map(str, args), "--json"]
        if token:
            cmd += ["--token", token]
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        deadline = time.monotonic() + 60
        while not (match := re.search(r"serving (http://\S+?/)", self.err.read_text())):
            assert self.proc.poll() is None, self.err.read_text()
            assert time.monotonic() < deadline, self.err.read_text()
            time.sleep(0.1)
        self.url = match.group(1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def served(av_bundle, tmp_path_factory):
    """The CLI serving a looped stream that shows and plays class "mid" throughout (so the page
    and the API agree on the label whenever they are read), with :data:`TOKEN`."""
    folder = tmp_path_factory.mktemp("served")
    video, wav = write_stream(folder, [1, 1, 1])
    server = Served(
        ["--model", av_bundle, "--camera", video, "--audio-file", wav, "--loop", "--rate", "4",
         "--serve", "127.0.0.1:0"],
        folder,
    )  # fmt: skip
    yield server
    assert server.stop() == 143, server.err.read_text()
    assert "Traceback" not in server.err.read_text()


@pytest.fixture()
def http(served):
    import httpx

    with httpx.Client(base_url=served.url, headers=AUTH, timeout=30) as client:
        _wait_ticks(client, 2)
        yield client


def _wait_ticks(client, n: int) -> int:
    deadline = time.monotonic() + 30
    while True:
        ticks = client.get("/healthz").json()["ticks"]
        if ticks >= n:
            return ticks
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_every_endpoint(http, served):
    import cv2

    health = http.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    info = http.get("/api/info").json()
    assert info["manifest"]["classes"] == CLASSES and info["running"] == ["image", "audio"]
    assert info["manifest"]["quantization"] == "int8" and "calibration" in info["manifest"]
    assert info["models"]["image"]["size_bytes"] > 0
    latest = http.get("/api/latest").json()
    assert set(latest) == set(_prediction(0).to_dict())
    assert latest["label"] == "mid" and latest["used"] == ["image", "audio"]
    summary = http.get("/api/summary").json()
    assert summary["ticks"] >= 2 and "total" in summary["latency_ms"]
    frame = http.get("/api/frame.jpg")
    assert frame.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(frame.content, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image.shape == (16, 16) and abs(int(image.mean()) - 127) < 8
    metrics = http.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    values = dict(
        line.rsplit(" ", 1) for line in metrics.text.splitlines() if not line.startswith("#")
    )
    assert int(values["edgeav_ticks_total"]) >= 2
    assert float(values['edgeav_tick_latency_ms{stage="total",quantile="0.95"}']) > 0
    assert int(values['edgeav_label_total{label="mid"}']) >= 2
    assert {"edgeav_frames_dropped_total", "edgeav_audio_overflows_total"} <= set(values)
    assert -20 < float(values["edgeav_audio_level_dbfs"]) < -5  # a 0.3-amplitude tone
    assert int(values['edgeav_modality_total{modality="image",state="used"}']) >= 2
    page = http.get("/")
    assert page.status_code == 200 and "EventSource" in page.text and '"mid"' in page.text


def test_settings_reach_the_next_tick(http):
    bundles = {"image": 0.0, "audio": 0.0, "image+audio": 0.0}  # the bundle's: neutral
    assert http.get("/api/settings").json() == {
        "threshold": None,
        "thresholds": bundles,
        "smooth": 1,
    }
    for bad in (
        {"threshold": 2},
        {"threshold": True},
        {"smooth": 0},
        {"smooth": 1.5},
        {"other": 1},
        [1],
    ):
        r = http.post("/api/settings", json=bad)
        assert r.status_code == 400 and r.json()["error"], bad
    assert http.post("/api/settings", content=b"{").status_code == 400
    r = http.post("/api/settings", json={"threshold": 0.99, "smooth": 3})
    assert r.json() == {"threshold": 0.99, "thresholds": dict.fromkeys(bundles, 0.99), "smooth": 3}
    try:  # the image alone is 0.98 sure of "mid": below the new threshold, nothing is named
        record = http.post("/api/classify", files={"image": _png(128)}).json()
        assert record["label"] is None and "< image threshold 0.99" in record["reason"]
        assert _metric(http, "edgeav_smooth_ticks") == 3
        assert _metric(http, 'edgeav_threshold{used="audio"}') == 0.99
        # smoothing alone leaves the threshold as it is
        assert http.post("/api/settings", json={"smooth": 2}).json()["threshold"] == 0.99
    finally:  # null: back to the bundle's thresholds
        r = http.post("/api/settings", json={"threshold": None, "smooth": 1})
    assert r.json() == {"threshold": None, "thresholds": bundles, "smooth": 1}
    assert http.post("/api/classify", files={"image": _png(128)}).json()["label"] == "mid"


def test_records_stream(http):
    events = []
    with http.stream("GET", "/api/records") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "record":
                events.append(json.loads(line[6:]))
                if len(events) == 4:
                    break
    ticks = [e["tick"] for e in events]
    assert ticks == sorted(ticks) and ticks[-1] - ticks[0] == 3
    assert all(e["label"] == "mid" for e in events)


def test_vanished_event_clients_are_let_go(http, served):
    host, port = served.url[7:-1].rsplit(":", 1)
    socks = []
    for _ in range(20):
        s = socket.create_connection((host, int(port)))
        s.sendall(f"GET /api/records?token={TOKEN} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        socks.append(s)
    assert all(s.recv(64).startswith(b"HTTP/1.1 200") for s in socks)
    assert _metric(http, "edgeav_sse_clients") >= 20
    for s in socks:
        s.close()
    deadline = time.monotonic() + 10
    while _metric(http, "edgeav_sse_clients") > 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def _metric(http, name: str) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(name)


def test_the_token(served):
    import httpx

    routes = ["/", "/healthz", "/api/info", "/api/latest", "/api/summary", "/api/records",
              "/api/frame.jpg", "/api/settings", "/metrics"]  # fmt: skip
    with httpx.Client(base_url=served.url, timeout=30) as client:
        for route in routes:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                r = client.get(route, headers=headers)
                assert r.status_code == 401 and "token" in r.json()["error"], (route, headers)
            assert client.get(route, params={"token": "wrong"}).status_code == 401
        assert client.post("/api/classify", files={"image": _png()}).status_code == 401
        assert client.get("/healthz", params={"token": TOKEN}).status_code == 200
        assert client.get("/api/latest", headers=AUTH).status_code == 200


def test_classify(http):
    import soundfile as sf

    both = http.post("/api/classify", files={"image": ("a.png", _png(230)), "audio": _wav(2)})
    assert both.status_code == 200, both.text
    record = both.json()
    assert record["tick"] == -1 and record["label"] == "bright"
    assert record["used"] == ["image", "audio"] and record["flags"] == {}
    alone = http.post("/api/classify", files={"image": _png(128)}).json()
    assert alone["label"] == "mid" and alone["flags"] == {"audio": "absent"}
    dark = http.post("/api/classify", files={"audio": ("x.wav", _wav(0), "audio/wav")}).json()
    assert dark["label"] == "dark" and dark["flags"] == {"image": "absent"}
    short = http.post("/api/classify", files={"audio": _wav(0, 0.05)})  # padded to a window
    assert short.status_code == 200 and short.json()["present"] == ["audio"]
    buf = io.BytesIO()
    sf.write(buf, np.zeros(SR, np.float32), SR, format="WAV")
    silent = http.post("/api/classify", files={"audio": buf.getvalue()}).json()
    assert silent["flags"] == {"image": "absent", "audio": "silent"} and silent["label"] is None


def _bad_uploads():
    wav, png = _wav(), _png()
    multipart = {"files": None}
    return {
        "garbage image": (multipart | {"files": {"image": b"\x89PNG garbage" * 50}}, 422),
        "garbage audio": (multipart | {"files": {"audio": os.urandom(3000)}}, 422),
        "empty image": (multipart | {"files": {"image": ("e.png", b"")}}, 400),
        "empty audio": (multipart | {"files": {"audio": ("e.wav", b"")}}, 400),
        "truncated WAV": (multipart | {"files": {"audio": wav[: len(wav) // 2]}}, 422),
        "image as audio": (multipart | {"files": {"audio": png}}, 422),
        "audio as image": (multipart | {"files": {"image": wav}}, 422),
        # refused from its header by the server's pixel limit (MAX_PIXELS), never allocated
        "900 Mpx PNG": (multipart | {"files": {"image": _png_claiming(30000, 30000)}}, 422),
        "text, not a file": ({"data": {"image": "hello"}, "files": {"audio": wav}}, 400),
        "no field": ({"data": {"a": "1"}, "files": {"other": png}}, 400),
        "JSON body": ({"json": {"image": "x"}}, 415),
        "no content type": ({"content": png}, 415),
        "no boundary": (
            {"content": png, "headers": {"Content-Type": "multipart/form-data"}},
            400,
        ),
        "bad multipart": (
            {
                "content": b"--x\r\nnonsense",
                "headers": {"Content-Type": "multipart/form-data; boundary=x"},
            },
            400,
        ),  # fmt: skip
        "file too large": (multipart | {"files": {"image": bytes(9 * 2**20)}}, 413),
        "body too large": (multipart | {"files": {"image": png, "audio": bytes(MAX_BODY)}}, 413),
    }


def test_bad_uploads_get_clear_4xx_and_the_ticks_go_on(http, served):
    before = _wait_ticks(http, 2)
    table = {}
    for name, (kwargs, status) in _bad_uploads().items():
        r = http.post("/api/classify", **kwargs)
        table[name] = f"{r.status_code} {r.json()['error']}"
        assert r.status_code == status, (name, r.text)
        assert r.json()["error"] and "Traceback" not in r.text, name
    r = http.get("/api/classify")
    assert r.status_code == 405 and r.json()["error"]
    print("\n" + "\n".join(f"{name:<18} {answer}" for name, answer in table.items()))
    assert http.post("/api/classify", files={"image": _png(128)}).json()["label"] == "mid"
    assert _wait_ticks(http, before + 2) >= before + 2
    peak = Path(f"/proc/{served.proc.pid}/status").read_text()
    peak_mib = int(re.search(r"VmHWM:\s+(\d+) kB", peak).group(1)) / 1024
    assert peak_mib < 600, f"the server's peak memory was {peak_mib:.0f} MiB"


def test_a_64_mib_body_is_refused_without_being_read(served, http):
    host, port = served.url[7:-1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            b"POST /api/classify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: %d\r\n\r\n"
            % (TOKEN.encode(), 64 * 2**20)
        )
        s.sendall(b"--x\r\n" + bytes(2**16))  # a little of it, then wait for the answer
        answer = s.recv(4096)
        while b"larger than" not in answer and (more := s.recv(4096)):
            answer += more
    assert answer.startswith(b"HTTP/1.1 413") and b"larger than" in answer, answer
    assert http.get("/healthz").status_code == 200


def test_serving_everyone_without_a_token_warns(av_bundle, tmp_path):
    video, wav = write_stream(tmp_path, [0, 1])
    server = Served(
        ["--model", av_bundle, "--camera", video, "--audio-file", wav, "--serve", "0.0.0.0:0"],
        tmp_path,
        token=None,
        env={**os.environ, "EDGEAV_TOKEN": ""},
    )
    assert server.proc.wait(timeout=30) == 0
    warnings = [line for line in server.err.read_text().splitlines() if "warning" in line]
    assert len(warnings) == 1 and "without a token" in warnings[0]


def test_token_from_the_environment(av_bundle, tmp_path):
    import httpx

    video, wav = write_stream(tmp_path, [1, 1])
    server = Served(
        ["--model", av_bundle, "--camera", video, "--audio-file", wav, "--loop", "--serve", "0"],
        tmp_path,
        token=None,
        env={**os.environ, "EDGEAV_TOKEN": "from-env"},
    )
    try:
        assert httpx.get(server.url + "healthz").status_code == 401
        r = httpx.get(server.url + "healthz", headers={"Authorization": "Bearer from-env"})
        assert r.status_code == 200
        assert "warning" not in server.err.read_text()
    finally:
        assert server.stop() == 143


def test_a_client_that_stops_reading_is_dropped_and_the_ticks_go_on(av_bundle, tmp_path):
    """A real socket that never reads, at 50 ticks a second: once the kernel's and the server's
    buffers are full its sends time out (SEND_TIMEOUT) and it is dropped."""
    import httpx

    video, wav = write_stream(tmp_path, [1, 1])
    server = Served(
        ["--model", av_bundle, "--camera", video, "--audio-file", wav, "--loop", "--rate", "50",
         "--serve", "0"],
        tmp_path,
        token=None,
    )  # fmt: skip
    host, port = server.url[7:-1].rsplit(":", 1)
    stuck = socket.socket()
    try:
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect((host, int(port)))
        stuck.sendall(b"GET /api/records HTTP/1.1\r\nHost: x\r\n\r\n")
        with httpx.Client(base_url=server.url, timeout=10) as client:
            ticks = _wait_ticks(client, 1)
            deadline = time.monotonic() + 60
            while _metric(client, "edgeav_sse_dropped_total") < 1:
                assert time.monotonic() < deadline, "the stuck client was never dropped"
                time.sleep(0.5)
            assert _metric(client, "edgeav_sse_clients") == 0
            assert _wait_ticks(client, ticks + 100) >= ticks + 100
            assert client.get("/healthz").json()["status"] == "ok"
    finally:
        stuck.close()
        assert server.stop() == 143


def test_ctrl_c_with_clients_connected_ends_promptly_with_a_summary(av_bundle, tmp_path):
    import signal

    video, wav = write_stream(tmp_path, [1, 1])
    server = Served(
        ["--model", av_bundle, "--camera", video, "--audio-file", wav, "--loop", "--serve", "0"],
        tmp_path,
        token=None,
    )
    host, port = server.url[7:-1].rsplit(":", 1)
    socks = [socket.create_connection((host, int(port))) for _ in range(10)]
    for s in socks:
        s.sendall(b"GET /api/records HTTP/1.1\r\nHost: x\r\n\r\n")
    assert all(s.recv(64).startswith(b"HTTP/1.1 200") for s in socks)
    start = time.monotonic()
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=30) == 130
    assert time.monotonic() - start < 1.0  # within the signal's grace (edgeav.interrupts)
    assert '"summary"' in server.out.read_text()
    assert server.err.read_text().strip().splitlines()[-1] == "edgeav: interrupted"
    for s in socks:
        s.close()


def test_a_port_in_use_is_one_line(av_bundle, tmp_path):
    video, wav = write_stream(tmp_path, [1])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "edgeav", "run", "--model", str(av_bundle), "--camera",
             str(video), "--serve", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"cannot serve on 127.0.0.1:{port}" in proc.stderr.strip().splitlines()[-1]


# --- the page in a real browser ------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (make deb-test installs it)"
)


@needs_chromium
def test_the_page_shows_what_the_api_says(served, http, tmp_path):
    """chromium --headless --dump-dom: the page as served and first run."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         f"--user-data-dir={tmp_path / 'profile'}", f"{served.url}?token={TOKEN}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    match = re.search(r'<span id="label"[^>]*data-tick="(\d+)"[^>]*>([^<]*)<', proc.stdout)
    assert match, proc.stdout[-2000:] + proc.stderr[-2000:]
    latest = http.get("/api/latest").json()
    assert match.group(2) == latest["label"] == "mid"
    assert int(match.group(1)) <= latest["tick"]


@needs_chromium
def test_the_page_follows_the_ticks(served, http, tmp_path):
    """The page in headless chromium driven by Playwright: it follows the event stream."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
            page.goto(f"{served.url}?token={TOKEN}")
            first = int(page.get_attribute("#label", "data-tick"))
            page.wait_for_function(
                f"Number(document.getElementById('label').dataset.tick) >= {first + 3}",
                timeout=20000,
            )
            shown = page.inner_text("#label")
            lags = page.evaluate("window.edgeavLags.slice(1)")  # the first was already old
            assert len(lags) >= 2 and -5 < min(lags) and max(lags) < 2000, lags
            print(f"\ntick to page: median {sorted(lags)[len(lags) // 2]:.0f} ms of {lags}")
            assert page.inner_text("#level") not in ("", "-")
            assert page.locator("#modalities .bars").count() == 3
            page.fill("#threshold", "1")
            page.click("button")
            page.wait_for_function("document.getElementById('saved').textContent === 'saved'")
            assert http.get("/api/settings").json()["threshold"] == 1.0
            assert "image+audio 1.00" in page.inner_text("#thresholds")
            page.fill("#threshold", "")  # empty: the bundle's thresholds again
            page.click("button")
            page.wait_for_function("document.getElementById('threshold').value === ''")
            assert http.get("/api/settings").json()["threshold"] is None
            page.screenshot(path=str(tmp_path / "page.png"))
        finally:
            browser.close()
            http.post("/api/settings", json={"threshold": None})
    assert shown == http.get("/api/latest").json()["label"] == "mid"


# --- the benchmark ---------------------------------------------------------------------------------


def test_the_clients_benchmark_runs(av_bundle):
    proc = subprocess.run(
        [sys.executable, "-m", "edgeav.benchmarks.serve", str(av_bundle), "--clients", "5",
         "--seconds", "2", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for phase in ("without", "with"):
        assert result[phase]["ticks"] >= 10 and result[phase]["total_ms"]["p95"] > 0
    assert result["ratio"]["total_ms"]["p50"] > 0
    delivery = result["delivery"]
    assert delivery["connected"] == 5 and delivery["dropped_clients"] == 0
    assert delivery["events_received"] >= 0.9 * delivery["events_sent"] > 0
