"""``edgeav run``: fused classification from a camera and/or a microphone, on the device.

Imports only the device path (edgeav.runtime, edgeav.bundle, edgeav.features, edgeav.fusion,
edgeav.preprocess): never TensorFlow, tf_keras or librosa. sounddevice is imported only with
``--mic``/``--mic-device``, so a machine without PortAudio still runs from files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from edgeav.errors import EdgeAVError

#: Default ``--rate`` with ``--mic``: several overlapping windows a second, so one of them holds a
#: whole word wherever it falls (a 1 s window once a second cuts words in half).
MIC_RATE = 4.0
#: Default ``--rate`` otherwise.
RATE = 1.0


def _log(message: str) -> None:
    typer.echo(f"edgeav: {message}", err=True)


def run(
    model: Path = typer.Option(
        Path("model.edgeav"), "--model", "-m", help="The bundle written by `edgeav convert`."
    ),
    camera: str = typer.Option(
        None,
        "--camera",
        "-c",
        help="Camera index (0: the Raspberry Pi camera module through Picamera2 when it is "
        "installed and libcamera lists it, else /dev/video0 through OpenCV), picam or picam:N "
        "(Picamera2 only), a video file, or a stream URL (rtsp://, http://).",
    ),
    camera_size: str = typer.Option(
        None,
        "--camera-size",
        metavar="WxH",
        help="Frame size asked of a live camera, e.g. 640x480 (default: the camera's own; "
        "640x480 for the camera module).",
        show_default=False,
    ),
    camera_fps: float = typer.Option(
        None,
        "--camera-fps",
        help="Frames a second asked of a live camera (default: the camera's own).",
        show_default=False,
    ),
    mic: bool = typer.Option(False, "--mic", help="Listen to the default microphone."),
    mic_device: str = typer.Option(
        None, "--mic-device", help="Microphone by index or a part of its name (implies --mic)."
    ),
    audio_file: Path = typer.Option(
        None, "--audio-file", "-a", help="A WAV/FLAC file instead of the microphone."
    ),
    rate: float = typer.Option(
        None,
        "--rate",
        help=(
            f"Predictions per second. Default: {MIC_RATE:g} with --mic/--mic-device (each "
            f"prediction's audio window overlaps the last), else {RATE:g}."
        ),
        show_default=False,
    ),
    smooth: int = typer.Option(
        1,
        "--smooth",
        help="Decide on the mean of the last N ticks' fused probabilities (steadier labels, "
        "slower to change: at 4 Hz, 3 ticks put the slowest reaction near 0.5 s).",
    ),
    threshold: float = typer.Option(
        None,
        "--threshold",
        help="Name a label only when the decision's confidence is at least P (0..1), whichever "
        "modalities it used; below it the record's label is null and its reason says why. "
        "Default: the bundle's, one for each set of modalities a decision can use (image, "
        "audio, image+audio), chosen on held-out data so that empty frames and room noise "
        "name nothing.",
        show_default=False,
    ),
    top_k: int = typer.Option(3, "--top-k", help="List the K most likely labels per record."),
    threads: int = typer.Option(None, "--threads", help="Interpreter threads per model."),
    json_out: bool = typer.Option(
        False, "--json", help="One JSON object per prediction on stdout (logs on stderr)."
    ),
    duration: float = typer.Option(
        None,
        "--duration",
        help="Stop after this many seconds (of the files' time with --no-realtime).",
    ),
    no_realtime: bool = typer.Option(
        False,
        "--no-realtime",
        help="Files only: run on the files' own clocks as fast as possible (deterministic).",
    ),
    loop: bool = typer.Option(False, "--loop", help="Restart video and audio files at their end."),
    serve: str = typer.Option(
        None,
        "--serve",
        metavar="[HOST:]PORT",
        help="Also serve a live page and an HTTP API (JSON, Server-Sent Events, Prometheus "
        "metrics) on HOST (default 127.0.0.1; 0.0.0.0 exposes it) and PORT (0: any free port).",
    ),
    token: str = typer.Option(
        None,
        "--token",
        envvar="EDGEAV_TOKEN",
        help="With --serve: every request must carry it (Authorization: Bearer T, or ?token=T).",
        show_default=False,
    ),
    mqtt: str = typer.Option(
        None,
        "--mqtt",
        metavar="URL",
        help="Also publish to the MQTT broker at URL, mqtt://user:pass@host:port/prefix (all but "
        "the host optional; port 1883, prefix edgeav/<hostname>): PREFIX/availability "
        "(online/offline, retained, with a last will), an event (JSON) on each confident label "
        "change, PREFIX/<label>/state ON/OFF (retained), PREFIX/label. A lost broker is retried "
        "in the background; the ticks never wait for it.",
        show_default=False,
    ),
    mqtt_discovery: bool = typer.Option(
        False,
        "--mqtt-discovery",
        help="With --mqtt: announce a binary_sensor per label and a sensor for the last label to "
        "Home Assistant (MQTT discovery under homeassistant/).",
    ),
) -> None:
    """Classify what the camera sees and the microphone hears, fused, one prediction per tick.

    Either modality alone works: --camera only, or --mic / --audio-file only.

    A live table for a person; without a terminal (a pipe, a service's journal) a line each time
    the named label changes; --json prints one JSON object per tick for a program.

    Ends at the end of the files, after --duration, or on Ctrl-C / SIGTERM (exit 130 / 143).

    Then prints a summary: ticks, latency p50/p95 per stage, frames dropped, audio overflows.

    --serve 8000 also shows it all on http://127.0.0.1:8000/ (a phone's browser too) and as an HTTP API; the ticks never wait for the server.

    --mqtt mqtt://broker publishes to home automation (Home Assistant with --mqtt-discovery); the ticks never wait for the broker.
    """
    from edgeav import interrupts  # noqa: PLC0415
    from edgeav.runtime.pipeline import RunOptions, open_pipeline  # noqa: PLC0415

    target = None
    if mqtt is not None:
        from edgeav.runtime.mqtt import parse_mqtt_url  # noqa: PLC0415

        target = parse_mqtt_url(mqtt)
    elif mqtt_discovery:
        raise EdgeAVError("--mqtt-discovery needs --mqtt mqtt://broker")
    if rate is None:
        rate = MIC_RATE if mic or mic_device is not None else RATE
    from edgeav.runtime.camera import check_camera_fps, parse_camera_size  # noqa: PLC0415

    options = RunOptions(
        camera=camera,
        camera_size=parse_camera_size(camera_size),
        camera_fps=check_camera_fps(camera_fps),
        mic=mic,
        mic_device=mic_device,
        audio_file=audio_file,
        rate=rate,
        smooth=smooth,
        threshold=threshold,
        top_k=top_k,
        threads=threads,
        realtime=not no_realtime,
        duration=duration,
        loop=loop,
    )
    pipe = server = publisher = None
    try:
        with open_pipeline(model, options, log=_log) as pipe:
            _log(
                f"run: {model} ({'+'.join(pipe.models)}), {pipe.backend}, "
                f"{threads or 'default'} thread(s), {rate:g} Hz"
                + (", files' own clock" if no_realtime else "")
            )
            predictions = pipe.run()
            if serve is not None:
                from edgeav.runtime.serve import Server  # noqa: PLC0415

                server = Server(pipe, serve, token or None, log=_log)
                predictions = server.publishing(predictions)
            if target is not None:
                from edgeav.runtime.mqtt import MqttPublisher  # noqa: PLC0415

                publisher = MqttPublisher(
                    target, pipe.classes, list(pipe.models), discovery=mqtt_discovery, log=_log
                ).start()
                predictions = publisher.publishing(predictions)
            try:
                if json_out:
                    _emit_json(predictions)
                else:
                    _show_live(pipe, predictions)
            finally:
                if publisher is not None:
                    publisher.stop()
                if server is not None:
                    server.stop()
    except interrupts.Interrupted as exc:
        if pipe is None:
            raise
        pipe.end_reason = exc.reason
        _print_summary(_summary(pipe, publisher), json_out)
        raise typer.Exit(exc.exit_code) from None
    except BrokenPipeError:  # stdout closed by the reader (e.g. `| head`)
        pass
    if pipe is not None:
        _print_summary(_summary(pipe, publisher), json_out)


def _summary(pipe: Any, publisher: Any) -> dict[str, Any]:
    summary = pipe.summary()
    if publisher is not None:
        summary["mqtt"] = publisher.stats()
    return summary


def _emit_json(predictions: Any) -> None:
    out = sys.stdout
    for prediction in predictions:
        out.write(json.dumps(prediction.to_dict()) + "\n")
        out.flush()


#: Rows of the live table (the newest predictions).
LIVE_ROWS = 12
_console: Any = None


def _stdout_console() -> Any:
    global _console
    if _console is None:
        from rich.console import Console  # noqa: PLC0415

        _console = Console()
    return _console


def _show_live(pipe: Any, predictions: Any) -> None:
    from collections import deque  # noqa: PLC0415

    from rich.live import Live  # noqa: PLC0415

    console = _stdout_console()
    if not console.is_terminal:
        _show_changes(pipe, predictions)
        return
    rows: deque[dict[str, Any]] = deque(maxlen=LIVE_ROWS)
    with Live(_table(rows, pipe), console=console, refresh_per_second=8) as live:
        for prediction in predictions:
            rows.append(prediction)
            live.update(_table(rows, pipe))


def _show_changes(pipe: Any, predictions: Any) -> None:
    """No terminal (a pipe, a file, a service's journal): a line whenever the named label
    changes (a digit named, or none any more), instead of a table redrawn at every tick."""
    shown: Any = object()  # nothing yet
    for p in predictions:
        if p.label == shown:
            continue
        shown = p.label
        if p.label is not None:
            what = f"{p.label} ({p.confidence:.2f})"
        elif p.confidence is None:
            what = "no input"
        else:
            what = f"uncertain ({p.top[0][0]}? {p.confidence:.2f})"
        cells = zip(pipe.models, _cells(pipe, p, False), strict=True)
        models = ", ".join(f"{m} {cell}" for m, cell in cells)
        print(f"{p.t:.2f} s  {what}  [{models}]", flush=True)


def _cells(pipe: Any, p: Any, markup: bool) -> list[str]:
    """Per model: its best label and probability, or why it was left out (``flags``)."""
    cells = []
    for m in pipe.models:
        probs = p.probs[m]
        if m in p.flags:
            cells.append(f"[yellow]{p.flags[m]}[/yellow]" if markup else p.flags[m])
        elif probs is not None:
            best = max(range(len(probs)), key=probs.__getitem__)
            cells.append(f"{pipe.classes[best]} {probs[best]:.2f}")
        else:
            cells.append("" if markup else "-")
    return cells


def _table(rows: Any, pipe: Any) -> Any:
    from rich.table import Table  # noqa: PLC0415

    table = Table(title="edgeav run", title_justify="left", show_edge=False)
    table.add_column("t (s)", justify="right")
    table.add_column("label")
    table.add_column("conf.", justify="right")
    for m in pipe.models:
        table.add_column(m)
    table.add_column("ms", justify="right")
    if not rows:
        table.add_row("…", "waiting for input", "", *["" for _ in pipe.models], "")
    for p in rows:
        if p.label is not None:
            label = p.label
        elif p.confidence is None:
            label = "[red]no input[/red]"
        else:
            label = f"[yellow]uncertain[/yellow] ({p.top[0][0]}?)"
        conf = f"{p.confidence:.2f}" if p.confidence is not None else ""
        table.add_row(
            f"{p.t:.2f}",
            f"[bold]{label}[/bold]",
            conf,
            *_cells(pipe, p, True),
            f"{p.timings_ms['total']:.1f}",
        )
    return table


def _print_summary(summary: dict[str, Any], json_out: bool) -> None:
    if json_out:
        try:
            sys.stdout.write(json.dumps({"summary": summary}) + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            pass
        return
    from rich.table import Table  # noqa: PLC0415

    table = Table(title="summary", title_justify="left", show_edge=False)
    table.add_column("stage")
    table.add_column("p50 ms", justify="right")
    table.add_column("p95 ms", justify="right")
    for stage, p in summary["latency_ms"].items():
        table.add_row(stage, f"{p['p50']:.2f}", f"{p['p95']:.2f}")
    console = _stdout_console()
    console.print()
    console.print(table)
    used = ", ".join(
        f"{m} used {c['used']}" + "".join(f", {k} {v}" for k, v in c.items() if k != "used" and v)
        for m, c in summary["modalities"].items()
    )
    console.print(
        f"{summary['ticks']} ticks in {summary['seconds']:.1f} s ({summary['end']}); "
        f"skipped {summary['ticks_skipped']}; {used}; frames dropped {summary['frames_dropped']}; "
        f"audio overflows {summary['audio_overflows']}",
        highlight=False,
    )
    if "mqtt" in summary:
        m = summary["mqtt"]
        console.print(
            f"mqtt {m['broker']}: {m['events']} events, connected {m['connects']} time(s), "
            f"{m['dropped']} messages dropped",
            highlight=False,
        )
