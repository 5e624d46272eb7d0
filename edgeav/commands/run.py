"""``edgeav run``: fused classification from a camera and/or a microphone, on the device.

Imports only the device path (edgeav.runtime, edgeav.bundle, edgeav.features, edgeav.fusion,
edgeav.preprocess): never TensorFlow, tf_keras or librosa. sounddevice is imported only with
``--mic``/``--mic-device``, so a machine without PortAudio still runs from files.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import typer


class _Terminated(BaseException):
    """Raised from the SIGTERM handler so the loop unwinds like on Ctrl-C."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


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
        help="Camera index (0), video file, or stream URL (rtsp://, http://).",
    ),
    mic: bool = typer.Option(False, "--mic", help="Listen to the default microphone."),
    mic_device: str = typer.Option(
        None, "--mic-device", help="Microphone by index or a part of its name (implies --mic)."
    ),
    audio_file: Path = typer.Option(
        None, "--audio-file", "-a", help="A WAV/FLAC file instead of the microphone."
    ),
    rate: float = typer.Option(1.0, "--rate", help="Predictions per second."),
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
    serial: bool = typer.Option(
        False,
        "--serial",
        help="Run each tick's image and audio branches one after the other on one core "
        "(default: side by side on two threads when both are used and there are 2+ cores; "
        "the predictions are the same).",
    ),
    no_pin: bool = typer.Option(
        False,
        "--no-pin",
        help="With the branches side by side, leave the two threads' placement to the OS "
        "(default: the tick's thread and the image worker each get one of the last two CPUs, "
        "not two threads of one core).",
    ),
) -> None:
    """Classify what the camera sees and the microphone hears, fused, one prediction per tick.

    Either modality alone works: --camera only, or --mic / --audio-file only.

    A live table for a person; --json prints one JSON object per tick for a program.

    Ends at the end of the files, after --duration, or on Ctrl-C / SIGTERM (exit 130 / 143).

    Then prints a summary: ticks, latency p50/p95 per stage, frames dropped, audio overflows.
    """
    from edgeav.errors import EdgeAVError  # noqa: PLC0415

    if camera is None and not mic and mic_device is None and audio_file is None:
        raise EdgeAVError(
            "no input given: use --camera (index, video file or URL) and/or --mic / --audio-file"
        )
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    # Ctrl-C ends the run cleanly even when started from a shell that ignores SIGINT (`cmd &`)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    pipe = None
    exit_code = 0
    try:
        from edgeav.bundle import read_bundle  # noqa: PLC0415
        from edgeav.runtime.pipeline import Pipeline, open_sources  # noqa: PLC0415

        bundle = read_bundle(model)
        config = bundle.feature_config
        cam, audio = open_sources(
            camera=camera,
            mic=mic,
            mic_device=mic_device,
            audio_file=audio_file,
            sample_rate=config.sample_rate,
            buffer_seconds=max(2.0, 2 * config.window_seconds),
            loop=loop,
            realtime=not no_realtime,
            log=_log,
        )
        try:
            pipe = Pipeline(
                bundle,
                camera=cam,
                audio=audio,
                rate=rate,
                threads=threads,
                realtime=not no_realtime,
                duration=duration,
                overlap=False if serial else None,
                pin=not no_pin,
                log=_log,
            )
        except BaseException:
            for source in (cam, audio):
                if source is not None:
                    source.close()
            raise
        modalities = "+".join(pipe.models)
        features = ""
        if "audio" in pipe.models:
            from edgeav.features import backend  # noqa: PLC0415 (imported by the pipeline)

            features = ", features in " + {"c": "C", "numpy": "NumPy"}[backend()]
        _log(
            f"run: {model} ({modalities}), {pipe.backend}, "
            f"{threads or 'default'} thread(s), {rate:g} Hz"
            + (", branches overlapped" if pipe.overlap else "")
            + (", files' own clock" if no_realtime else "")
            + features
        )
        if json_out:
            _emit_json(pipe)
        else:
            _show_live(pipe)
    except KeyboardInterrupt:
        exit_code = 130
    except _Terminated:
        exit_code = 143
    except BrokenPipeError:  # stdout closed by the reader (e.g. `| head`)
        exit_code = 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        if pipe is not None:
            pipe.close()
            if exit_code:
                pipe.end_reason = "SIGINT" if exit_code == 130 else "SIGTERM"
            _print_summary(pipe.summary(), json_out)
    if exit_code:
        raise typer.Exit(exit_code)


def _emit_json(pipe: Any) -> None:
    out = sys.stdout
    for record in pipe.run():
        out.write(json.dumps(record) + "\n")
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


def _show_live(pipe: Any) -> None:
    from collections import deque  # noqa: PLC0415

    from rich.live import Live  # noqa: PLC0415

    rows: deque[dict[str, Any]] = deque(maxlen=LIVE_ROWS)
    console = _stdout_console()
    with Live(_table(rows, pipe), console=console, refresh_per_second=8) as live:
        for record in pipe.run():
            rows.append(record)
            live.update(_table(rows, pipe))


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
    for record in rows:
        cells = []
        for m in pipe.models:
            probs = record["probs"][m]
            if m in record["flags"]:
                cells.append(f"[yellow]{record['flags'][m]}[/yellow]")
            elif probs is not None:
                best = max(range(len(probs)), key=probs.__getitem__)
                cells.append(f"{pipe.classes[best]} {probs[best]:.2f}")
            else:
                cells.append("")
        label = record["label"] if record["label"] is not None else "[red]no input[/red]"
        conf = f"{record['confidence']:.2f}" if record["confidence"] is not None else ""
        table.add_row(
            f"{record['t']:.2f}", f"[bold]{label}[/bold]", conf, *cells,
            f"{record['timings_ms']['total']:.1f}",
        )  # fmt: skip
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
        f"audio overflows {summary['audio_overflows']}"
        + (
            "; tick and image worker on CPUs {}, {}".format(*summary["pinned_cpus"])
            if summary.get("pinned_cpus")
            else ""
        ),
        highlight=False,
    )
