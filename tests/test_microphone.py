"""The live microphone for real: ``edgeav run --mic --json`` listening through PortAudio, ALSA and
its pulse plugin to a private PulseAudio server (:mod:`edgeav.benchmarks.pulse`) whose null
sink's monitor is the default source, while ``paplay`` plays tones of :mod:`media` into the sink
-- tones the ``av_bundle`` model tells apart exactly, so every prediction's label is known. Also:
the server killed and restarted mid-run, and the live benchmark.

Skipped, with the reason, only where the PulseAudio server cannot start (the Makefile installs
``pulseaudio pulseaudio-utils libasound2-plugins``).
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import media
import numpy as np
import pytest

#: stderr lines of PortAudio and ALSA themselves (never to reach edgeav's stderr).
NATIVE = ("ALSA lib", "Expression '", "PaAlsa", "pa_linux_alsa", "PortAudio", "Cannot connect")
#: Margins (s) when deciding that a prediction's window lies wholly inside a tone or a silence:
#: the window's end lags the wall clock by capture buffering and the tick's compute.
LAG, MARGIN = 0.2, 0.15


class LiveRun:
    """``edgeav run --mic --json`` as a subprocess; each stdout line is stamped with
    ``time.monotonic()`` as it is read."""

    def __init__(self, bundle: Path, pulse, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeav", "run", "-m", str(bundle), "--mic", "--json", *args],
            env=pulse.client_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.records: list[tuple[float, dict]] = []
        self.summary: dict | None = None
        self._new: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            item = (time.monotonic(), json.loads(line))
            if "summary" in item[1]:
                self.summary = item[1]["summary"]
            else:
                self.records.append(item)
                self._new.put(item)
        self._new.put(None)

    def wait_for_sound(self, after: float = 0.0, timeout: float = 30.0) -> None:
        """Until a prediction has audio (not absent, not stale) in a window ending after
        ``after`` stream seconds: the microphone delivers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                item = self._new.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            if item is None:
                break
            r = item[1]
            if r["window"] and r["window"][1] > after and "absent" not in r["flags"].values():
                if r["flags"].get("audio") != "stale":
                    return
        self.stop()
        pytest.fail(f"the microphone delivered nothing for {timeout} s: {self.stderr}")

    def stop(self) -> int:
        """SIGINT, as Ctrl-C; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(timeout=10)
        self.stderr = self.proc.stderr.read()
        return code

    stderr = ""


def _inside(records, start: float, end: float, window: float) -> list[dict]:
    """Predictions whose windows lie wholly in ``[start, end]`` (wall clock)."""
    lo, hi = start + window + LAG + MARGIN, end - MARGIN
    return [r for wall, r in records if lo <= wall <= hi]


def _check_stderr(stderr: str) -> list[str]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    native = [line for line in lines if line.startswith(NATIVE)]
    assert not native, f"PortAudio/ALSA wrote to stderr: {native}"
    assert all(line.startswith("edgeav: ") for line in lines), lines
    assert "Traceback" not in stderr
    return lines


def test_the_live_microphone_names_what_is_played(av_bundle, pulse, tmp_path):
    """Tone 0, silence, tone 2, silence, tone 1 played into the sink: every prediction whose
    window lies inside a tone names that tone, every one inside a silence is flagged silent, at
    the microphone's default rate (4 a second, 1 s windows overlapping)."""
    sequence = [(0, 3.0), (None, 2.0), (2, 3.0), (None, 2.0), (1, 3.0), (None, 0.5)]
    parts = [
        media.tone(c, s) if c is not None else np.zeros(int(s * media.SR)) for c, s in sequence
    ]
    wav = media.write_wav(tmp_path / "tones.wav", np.concatenate(parts).astype(np.float32))
    run = LiveRun(av_bundle, pulse)
    run.wait_for_sound()
    _, played_end = pulse.play(wav)
    time.sleep(0.5)
    assert run.stop() == 130  # Ctrl-C, as a person ends it
    lines = _check_stderr(run.stderr)
    assert "4 Hz" in lines[0] and lines[-1] == "edgeav: interrupted"

    records = run.records
    ts = [r["t"] for _, r in records]
    assert np.allclose(np.diff(ts), 0.25)  # the --mic default: 4 ticks a second
    with_window = [r for _, r in records if r["window"]]
    assert all(abs(r["window"][1] - r["window"][0] - 1.0) < 1e-6 for r in with_window)
    total = sum(s for _, s in sequence)
    offset = 0.0
    for cls, seconds in sequence:
        start, end = played_end - total + offset, played_end - total + offset + seconds
        offset += seconds
        inside = _inside(records, start, end, 1.0)
        if cls is None:
            assert all(r["flags"].get("audio") == "silent" for r in inside), inside
            continue
        assert len(inside) >= 4, (cls, len(inside))
        labels = [r["label"] for r in inside]
        assert labels == [media.CLASSES[cls]] * len(inside), (media.CLASSES[cls], labels)
    assert run.summary["audio"]["kind"] == "microphone" and run.summary["audio"]["reopens"] == 0
    assert run.summary["end"] == "SIGINT"


def test_a_restarted_sound_server_is_reopened_with_one_line(av_bundle, pulse, tmp_path):
    """The server is killed (as a crash) and started again mid-run: the run goes on, the
    microphone reopens by itself and hears the next tone; stderr says so in one edgeav line,
    none of PortAudio's or ALSA's."""
    wav = media.write_wav(tmp_path / "tone2.wav", media.tone(2, 3.0))
    run = LiveRun(av_bundle, pulse)
    run.wait_for_sound()
    before = run.records[-1][1]["window"][1]
    pulse.kill()
    time.sleep(1.0)  # down for a while: reopening fails, silently, with backoff
    pulse.start()
    run.wait_for_sound(after=before + 0.5)  # new samples: the stream was reopened
    start, end = pulse.play(wav)
    time.sleep(0.5)
    assert run.stop() == 130
    lines = _check_stderr(run.stderr)
    stopped = [line for line in lines if "stream stopped" in line]
    assert stopped == ["edgeav: microphone default: the stream stopped; reopening"], lines
    assert len(lines) == 3, lines  # the run line, the stop, "interrupted"
    assert run.summary["audio"]["reopens"] == 1
    flags = [r["flags"].get("audio") for _, r in run.records]
    assert "stale" in flags  # the outage shows in the records...
    inside = _inside(run.records, end - 3.0, end, 1.0)
    assert len(inside) >= 4 and {r["label"] for r in inside} == {"bright"}  # ...and it recovered


def test_the_live_benchmark_reports_accuracy_and_reaction(av_bundle, tmp_path):
    from edgeav.benchmarks.pulse import PulseServer

    reason = PulseServer.missing()
    if reason:
        pytest.skip(f"PulseAudio cannot start here: {reason}")
    wavs = [media.write_wav(tmp_path / f"tone{c}.wav", media.tone(c, 0.8)) for c in range(3)]
    args = [sys.executable, "-m", "edgeav.benchmarks.live", str(av_bundle), "--json", "--quiet"]
    for wav in wavs:
        args += ["--wav", str(wav)]
    args += ["--labels", json.dumps(media.CLASSES), "--gap", "1.2"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["plays"] == 3 and result["heard"] == 3
    assert result["rate_hz"] == 4.0 and result["window_s"] == 1.0
    assert result["accuracy"] == 1.0  # the tones are told apart exactly
    reaction = result["reaction_s"]
    assert all(isinstance(reaction[k], float) for k in ("p50", "p95"))
    assert reaction["min"] <= reaction["p50"] <= reaction["p95"] <= reaction["max"]
    assert result["silence"]["labelled"] == 0  # digital silence between the clips: no label
    assert [p["label"] for p in result["per_play"]].count("mid") == 1
