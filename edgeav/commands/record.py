"""``edgeav record``: collect your own paired samples on the device, from the sources ``edgeav
run`` uses, into the data-set folder ``edgeav train`` reads (:mod:`edgeav.runtime.record`).

A countdown and an audio level meter go to stderr (live with rich on a terminal, plain lines
otherwise); each sample written is a line on stdout (a JSON object with ``--json``). Device path
only: never TensorFlow or librosa; sounddevice only with ``--mic``/``--mic-device``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import typer

from edgeav.errors import EdgeAVError

#: The level meter's range (dBFS) and width (characters).
METER_FLOOR, METER_WIDTH = -60.0, 30


def _log(message: str) -> None:
    typer.echo(f"edgeav: {message}", err=True)


def meter(level: float | None) -> str:
    """A text bar for an audio level in dBFS (``-60`` empty, ``0`` full)."""
    if level is None:
        return ""
    fill = 0.0 if not math.isfinite(level) else (level - METER_FLOOR) / -METER_FLOOR
    n = max(0, min(METER_WIDTH, round(fill * METER_WIDTH)))
    shown = f"{level:6.1f}" if math.isfinite(level) else "  -inf"
    return "█" * n + "░" * (METER_WIDTH - n) + f" {shown} dBFS"


def record(
    data: Path = typer.Argument(..., help="The data-set folder to add to (created if missing)."),
    label: str = typer.Option(
        ...,
        "--label",
        "-l",
        help="The class of these samples (a folder name), e.g. seven; 'none' for nothing in "
        "view and room noise (not a class: training teaches the models to be unsure on it).",
    ),
    camera: str = typer.Option(
        None,
        "--camera",
        "-c",
        help="Camera index (0), video file, or stream URL (rtsp://, http://).",
    ),
    mic: bool = typer.Option(False, "--mic", help="Record the default microphone."),
    mic_device: str = typer.Option(
        None, "--mic-device", help="Microphone by index or a part of its name (implies --mic)."
    ),
    audio_file: Path = typer.Option(
        None, "--audio-file", "--audio", "-a", help="A WAV/FLAC file instead of the microphone."
    ),
    count: int = typer.Option(10, "--count", "-n", help="Samples to take."),
    every: float = typer.Option(2.0, "--every", help="Seconds from one sample to the next."),
    seconds: float = typer.Option(1.0, "--seconds", help="Length of each audio clip (seconds)."),
    countdown: float = typer.Option(
        3.0, "--countdown", help="Seconds before the first sample (live sources only)."
    ),
    loop: bool = typer.Option(False, "--loop", help="Restart video and audio files at their end."),
    json_out: bool = typer.Option(
        False, "--json", help="One JSON object per sample written on stdout."
    ),
) -> None:
    """Record paired samples (a camera frame + an audio clip) of one label into DATA.

    Writes DATA/image/LABEL/0001.png and DATA/audio/LABEL/0001.wav (16 kHz mono), 0002, ...: the
    same stem pairs them, numbering continues after what is there, nothing is overwritten, and
    Ctrl-C never leaves half a file or half a pair. `edgeav train DATA` reads the folder as it is.

    With a live camera or microphone: a countdown, then "now" for each sample, while a level
    meter shows what the microphone hears. With files only: the files are cut into samples on
    their own clock, no waiting.
    """
    from edgeav import interrupts  # noqa: PLC0415
    from edgeav.runtime.audio import AudioFile, Microphone  # noqa: PLC0415
    from edgeav.runtime.camera import open_frame_source  # noqa: PLC0415
    from edgeav.runtime.record import (  # noqa: PLC0415
        SAMPLE_RATE,
        Recorder,
        RecordOptions,
        check_options,
        folder_counts,
    )

    options = RecordOptions(label, count, every, seconds, countdown)
    check_options(options)
    wants_mic = mic or mic_device is not None
    if wants_mic and audio_file is not None:
        raise EdgeAVError("give either --mic or --audio-file, not both")
    if camera is None and not wants_mic and audio_file is None:
        raise EdgeAVError(
            "no input given: use --camera (index, video file or URL) and/or --mic / --audio-file"
        )
    frames = open_frame_source(camera, loop=loop, log=_log) if camera is not None else None
    audio: Any = None
    if audio_file is not None:
        audio = AudioFile(audio_file, sample_rate=SAMPLE_RATE, loop=loop)
    elif wants_mic:
        audio = Microphone(mic_device, sample_rate=SAMPLE_RATE, log=_log)
    # the terminal itself, for the live countdown: once a microphone is open, fd 2 is a pipe
    # that keeps PortAudio's and ALSA's own lines out (edgeav.runtime.audio)
    terminal = os.fdopen(os.dup(2), "w") if sys.stderr.isatty() else None
    opened: list[Any] = []
    try:
        for source in (frames, audio):
            if source is not None:
                source.open()
                opened.append(source)
        recorder = Recorder(data, options, frames=frames, audio=audio)
        sources = " + ".join(s.label for s in opened)
        _log(f"record: {count} sample(s) of {label!r} from {sources} into {data}")
        try:
            _show(recorder, json_out, terminal)
        except interrupts.Interrupted:
            _log(f"record: stopped after {recorder.written} sample(s); each one written is whole")
            raise
    finally:
        for source in opened:
            source.close()
        if terminal is not None:
            terminal.close()
    if recorder.ended:
        _log(f"record: the input ended after {recorder.written} of {count} sample(s)")
    counts = folder_counts(data)
    lopsided = [c for c, n in counts.items() if c != "none" and 0 in n.values()]
    if lopsided:
        _log(
            f"record: note: {lopsided[0]!r} has only "
            + ("clips" if counts[lopsided[0]]["image"] == 0 else "images")
            + "; edgeav train needs both for each label (only 'none' may have one)"
        )
    _log(
        "record: "
        + ", ".join(f"{c} {n['image']} images / {n['audio']} clips" for c, n in counts.items())
        + f" in {data}; train with: edgeav train {data}"
    )


def _show(recorder: Any, json_out: bool, terminal: Any) -> None:
    """Run the recorder: waiting reports to stderr (live on the ``terminal``, if there is one),
    samples to stdout."""
    from edgeav.runtime.record import Sample  # noqa: PLC0415

    count = recorder.options.count
    live = None
    if recorder.live and terminal is not None:
        from rich.console import Console  # noqa: PLC0415
        from rich.live import Live  # noqa: PLC0415

        console = Console(file=terminal, force_terminal=True)
        live = Live("", console=console, refresh_per_second=12, transient=True)
        live.start()
    said: tuple[int, str] | None = None
    try:
        for item in recorder.samples():
            if isinstance(item, Sample):
                sys.stdout.write(_sample_line(item, count, json_out) + "\n")
                sys.stdout.flush()
                continue
            what = f"sample {item.index + 1}/{count}: "
            if item.phase == "countdown":
                what += f"get ready, {math.ceil(item.left)}"
            else:
                what += "NOW"
            if live is not None:
                style = "bold red" if item.phase == "recording" else "bold"
                live.update(f"[{style}]{what}[/{style}]  {meter(item.level_dbfs)}")
            elif said != (item.index, item.phase):  # plain: one line per phase
                said = (item.index, item.phase)
                head = f"sample {item.index + 1}/{count}: " + (
                    f"in {item.left:.1f} s" if item.phase == "countdown" else "now"
                )
                _log(f"record: {head}  {meter(item.level_dbfs)}".rstrip())
    finally:
        if live is not None:
            live.stop()


def _sample_line(sample: Any, count: int, json_out: bool) -> str:
    if json_out:
        return json.dumps(sample.to_dict())
    files = " + ".join(str(p) for p in (sample.image, sample.audio) if p is not None)
    level = ""
    if sample.level_dbfs is not None:
        level = f"  level {sample.level_dbfs:.1f} dBFS" if math.isfinite(sample.level_dbfs) else ""
        level = level or "  level -inf dBFS (digital silence)"
    return f"{sample.index + 1}/{count}  {files}{level}"
