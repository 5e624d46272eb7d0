"""``python -m edgeav.benchmarks.serve BUNDLE``: do 50 live-page clients slow the ticks?

One run, two phases of ``--seconds`` each, on loopback only: the pipeline ticks (as ``edgeav run
--serve`` does: file sources looped, real time, the server in its own thread) with no client,
and with ``--clients`` Server-Sent-Events clients reading ``/api/records``; the phases alternate
in ``--rounds`` parts, so a change in the machine's other load falls on both. The clients
run in a separate process (as phones would be other machines, they do not share the server's
interpreter lock), each on its own socket. Reported per phase:

- **tick total**: the pipeline's own ``total`` stage (capture → fusion), p50 / p95 in ms;
- **tick lateness**: how long after its scheduled time each tick's record was ready (the loop's
  wake-up, the tick itself and anything that kept the thread from running), p50 / p95 in ms;
- **publish**: the tick thread's time from the record being ready to having handed it to the
  server (:meth:`~edgeav.runtime.serve.Hub.publish`), including any wait for Python's
  interpreter lock held by the server's thread, p50 / p95 in ms;

the ratios with / without, and for the clients: events received of those sent, clients dropped,
and the delivery time from a tick's record to a client reading it, p50 / p95 (one machine's
monotonic clock, so exact).

Without ``--camera``/``--audio-file``, a 2-second synthetic clip (grey noise frames, quiet noise)
of the bundle's modalities is made in a temporary folder. Speed depends on the machine; no test
asserts it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import selectors
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.benchmarks.report import run_and_report
from edgeav.errors import EdgeAVError

CLIENTS = 50
SECONDS = 12.0
ROUNDS = 3
RATE = 10.0


def _clients(port: int, n: int, seconds: float, out: Any) -> None:
    """``n`` event-stream clients for ``seconds``: put [(tick, monotonic time read), ...] and the
    count of clients that connected on ``out``."""
    selector = selectors.DefaultSelector()
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /api/records HTTP/1.1\r\nHost: bench\r\n\r\n")
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ, bytearray())
        socks.append(s)
    received: list[tuple[int, float]] = []
    connected = 0
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        for key, _ in selector.select(timeout=min(left, 0.5)):
            now = time.monotonic()
            try:
                data = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                selector.unregister(key.fileobj)
                continue
            buf = key.data
            if not buf and data.startswith(b"HTTP/1.1 200"):
                connected += 1
            buf += data
            while (i := buf.find(b"\nid: ")) >= 0 or buf.startswith(b"id: "):
                start = 0 if buf.startswith(b"id: ") else i + 1
                j = buf.find(b"\n", start)
                if j < 0:
                    break
                received.append((int(buf[start + 4 : j]), now))
                del buf[:j]
            if len(buf) > 4096:
                del buf[:-4096]
    for s in socks:
        s.close()
    out.put((connected, received))


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None}
    p50, p95 = np.percentile(values, [50, 95])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3)}


def _synthetic_clip(bundle: Any, folder: Path) -> tuple[str | None, Path | None]:
    import cv2  # noqa: PLC0415

    rng = np.random.default_rng(0)
    video = wav = None
    if "image" in bundle.modalities:
        path = folder / "frames.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
        for _ in range(20):
            writer.write(rng.integers(0, 255, (120, 160, 3), np.uint8))
        writer.release()
        video = str(path)
    if "audio" in bundle.modalities:
        import soundfile as sf  # noqa: PLC0415

        rate = bundle.feature_config.sample_rate
        wav = folder / "noise.wav"
        sf.write(wav, (0.05 * rng.standard_normal(2 * rate)).astype(np.float32), rate)
    return video, wav


def measure(
    bundle_path: Path,
    camera: str | None = None,
    audio_file: Path | None = None,
    *,
    clients: int = CLIENTS,
    seconds: float = SECONDS,
    rounds: int = ROUNDS,
    rate: float = RATE,
    threads: int | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Tick latency and lateness without and with ``clients`` event-stream clients."""
    from edgeav.bundle import read_bundle  # noqa: PLC0415
    from edgeav.runtime.pipeline import RunOptions, open_pipeline  # noqa: PLC0415
    from edgeav.runtime.serve import Server  # noqa: PLC0415

    if not (1 <= clients <= 190 and 1 <= seconds <= 600 and 1 <= rounds <= 20):
        raise EdgeAVError("--clients must be 1..190, --seconds 1..600 and --rounds 1..20")
    bundle = read_bundle(bundle_path)
    with tempfile.TemporaryDirectory(prefix="edgeav-serve-bench-") as tmp:
        if camera is None and audio_file is None:
            camera, audio_file = _synthetic_clip(bundle, Path(tmp))
        options = RunOptions(
            camera=camera, audio_file=audio_file, rate=rate, loop=True, threads=threads
        )
        # (record ready at, t, total ms, ms from ready to published)
        ticks: list[tuple[float, float, float, float]] = []
        published: dict[int, float] = {}
        with open_pipeline(bundle, options) as pipe:
            server = Server(pipe, "127.0.0.1:0", log=lambda m: None)

            ready: dict[int, float] = {}

            def stamped() -> Any:
                for p in pipe.run():
                    ready[p.tick] = time.monotonic()
                    yield p

            def tick_loop() -> None:
                for p in server.publishing(stamped()):
                    now = time.monotonic()
                    published[p.tick] = now
                    at = ready[p.tick]
                    ticks.append((at, p.t, p.timings_ms["total"], (now - at) * 1e3))

            loop = threading.Thread(target=tick_loop, name="ticks")
            loop.start()
            try:
                time.sleep(1.0)  # warm-up
                phases: dict[str, list[tuple[float, float]]] = {"without": [], "with": []}
                connected, received = clients, []
                part = seconds / rounds
                ctx = multiprocessing.get_context("spawn")
                for r in range(rounds):  # alternated, so a change in the machine's load hits both
                    start = time.monotonic()
                    time.sleep(part)
                    phases["without"].append((start, time.monotonic()))
                    log(f"round {r + 1}/{rounds}: {len(ticks)} ticks; {clients} clients")
                    queue = ctx.Queue()
                    args = (server.port, clients, part + 2, queue)
                    proc = ctx.Process(target=_clients, args=args)
                    proc.start()
                    time.sleep(1.0)  # connected
                    start = time.monotonic()
                    time.sleep(part)
                    phases["with"].append((start, time.monotonic()))
                    n, got = queue.get(timeout=part + 30)
                    proc.join(timeout=10)
                    connected, received = min(connected, n), received + got
                dropped = server.hub.dropped
            finally:
                pipe.stop()
                loop.join(timeout=10)
                server.stop()
    first = min(at - t for at, t, _, _ in ticks[:20])  # the loop's start on the files' clock
    result: dict[str, Any] = {
        "clients": clients,
        "seconds": seconds,
        "rounds": rounds,
        "rate": rate,
    }

    def within(name: str, at: float) -> bool:
        return any(a <= at < b for a, b in phases[name])

    for name in phases:
        rows = [row for row in ticks if within(name, row[0])]
        result[name] = {
            "ticks": len(rows),
            "total_ms": _percentiles([total for _, _, total, _ in rows]),
            "late_ms": _percentiles([(at - first - t) * 1e3 for at, t, _, _ in rows]),
            "publish_ms": _percentiles([publish for *_, publish in rows]),
        }
    result["ratio"] = {
        key: {
            q: round(result["with"][key][q] / result["without"][key][q], 3)
            if result["without"][key][q]
            else None
            for q in ("p50", "p95")
        }
        for key in ("total_ms", "late_ms")
    }
    sent = {k for k, at in published.items() if within("with", at)}
    in_phase = [(k, at) for k, at in received if k in sent]
    result["delivery"] = {
        "connected": connected,
        "events_sent": len(sent) * clients,
        "events_received": len(in_phase),
        "dropped_clients": dropped,
        "ms": _percentiles([(at - published[k]) * 1e3 for k, at in in_phase]),
    }
    return result


def print_result(r: dict[str, Any]) -> None:
    print(
        f"ticks at {r['rate']:g} Hz, {r['seconds']:g} s per phase in {r['rounds']} alternated "
        "parts, loopback"
    )
    print(
        f"{'':<22}{'ticks':>6}{'total p50':>11}{'p95':>8}{'late p50':>10}{'p95':>8}"
        f"{'publish p50':>13}{'p95':>8}  (ms)"
    )
    for name, label in (("without", "without clients"), ("with", f"with {r['clients']} clients")):
        p = r[name]
        print(
            f"{label:<22}{p['ticks']:>6}{p['total_ms']['p50']:>11.3f}{p['total_ms']['p95']:>8.3f}"
            f"{p['late_ms']['p50']:>10.3f}{p['late_ms']['p95']:>8.3f}"
            f"{p['publish_ms']['p50']:>13.3f}{p['publish_ms']['p95']:>8.3f}"
        )
    ratio = r["ratio"]
    print(
        f"{'ratio with/without':<22}{'':>6}{ratio['total_ms']['p50']:>11.2f}"
        f"{ratio['total_ms']['p95']:>8.2f}{ratio['late_ms']['p50']:>10.2f}"
        f"{ratio['late_ms']['p95']:>8.2f}"
    )
    d = r["delivery"]
    print(
        f"clients: {d['connected']} connected, {d['events_received']}/{d['events_sent']} events "
        f"received, {d['dropped_clients']} dropped; tick → client p50 {d['ms']['p50']} ms, "
        f"p95 {d['ms']['p95']} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgeav.benchmarks.serve",
        description="Tick latency of `edgeav run --serve` without and with N live-page "
        "(Server-Sent Events) clients, in one run, on loopback.",
    )
    parser.add_argument("bundle", type=Path, help="model.edgeav")
    parser.add_argument("--camera", help="a video file (default: a synthetic clip)")
    parser.add_argument("--audio-file", type=Path, help="a WAV/FLAC (default: synthetic noise)")
    parser.add_argument("--clients", type=int, default=CLIENTS, help=f"default {CLIENTS}")
    parser.add_argument(
        "--seconds", type=float, default=SECONDS, help=f"per phase (default {SECONDS:g})"
    )
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help=f"alternations of the phases ({ROUNDS})"
    )
    parser.add_argument("--rate", type=float, default=RATE, help=f"ticks/s (default {RATE:g})")
    parser.add_argument("--threads", type=int, help="interpreter threads")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    return run_and_report(
        lambda: measure(
            args.bundle,
            args.camera,
            args.audio_file,
            clients=args.clients,
            seconds=args.seconds,
            rounds=args.rounds,
            rate=args.rate,
            threads=args.threads,
            log=lambda m: print(f"edgeav: {m}", file=sys.stderr, flush=True),
        ),
        as_json=args.json,
        show=print_result,
    )


if __name__ == "__main__":
    sys.exit(main())
