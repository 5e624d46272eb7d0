"""``edgeav run`` as a user runs it: JSON lines, the table, one-line errors (signals:
tests/test_signals.py).

Each test starts the real CLI in a subprocess on real files (tests/media.py's stream) and a real
int8 bundle.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from media import CLASSES, SEQUENCE
from test_audio import NO_PORTAUDIO

pytestmark = pytest.mark.slow


def edgeav(*args, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "edgeav", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_json_lines_on_the_files_clock_without_heavy_imports(av_bundle, av_stream):
    video, wav = av_stream
    code = textwrap.dedent(
        f"""
        import sys
        from edgeav.cli import main
        try:
            main(["run", "--model", {str(av_bundle)!r}, "--camera", {str(video)!r},
                  "--audio-file", {str(wav)!r}, "--json", "--no-realtime", "--threads", "1"])
        except SystemExit as exc:
            assert not exc.code, exc.code
        heavy = [m for m in ("tensorflow", "tf_keras", "librosa", "sounddevice") if m in sys.modules]
        print("HEAVY", heavy, file=sys.stderr)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    records, summary = lines[:-1], lines[-1]["summary"]
    assert [r["label"] for r in records] == [CLASSES[c] for c in SEQUENCE]
    assert [r["t"] for r in records] == [float(k + 1) for k in range(len(SEQUENCE))]
    assert records[0]["window"] == [0.0, 1.0] and records[0]["frame"]["index"] == 9
    assert summary["ticks"] == len(SEQUENCE) and summary["end"] == "end of input"
    assert summary["threads"] == 1
    assert set(summary["latency_ms"]) >= {"capture", "frontend", "image", "audio", "fusion"}
    assert "run: " in proc.stderr and "Traceback" not in proc.stderr


def test_a_table_for_a_person(av_bundle, av_stream):
    video, wav = av_stream
    env = {**os.environ, "FORCE_COLOR": "1"}  # a terminal, as rich sees one
    proc = edgeav(
        "run", "--model", av_bundle, "--camera", video, "--audio-file", wav, "--no-realtime",
        "--duration", "3", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "edgeav run" in proc.stdout and "bright" in proc.stdout
    assert "p95 ms" in proc.stdout and "3 ticks" in proc.stdout and "(duration)" in proc.stdout


def test_a_line_per_change_without_a_terminal(av_bundle, av_stream):
    """Piped, or in a service's journal: a line each time the named label changes, no table."""
    video, wav = av_stream
    proc = edgeav(
        "run", "--model", av_bundle, "--camera", video, "--audio-file", wav, "--no-realtime",
        "--threads", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if re.match(r"\d+\.\d\d s  ", line)]
    changes = [CLASSES[c] for k, c in enumerate(SEQUENCE) if k == 0 or c != SEQUENCE[k - 1]]
    assert len(changes) < len(SEQUENCE)  # the stream repeats a label: it gets one line
    assert [line.split()[2] for line in lines] == changes
    assert all("image " in line and "audio " in line for line in lines)
    assert "edgeav run" not in proc.stdout and "p95 ms" in proc.stdout


def _bad_bundle(tmp_path):
    path = tmp_path / "random.edgeav"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    return path


@pytest.mark.parametrize(
    "case, expect",
    [
        ("missing bundle", r"bundle .*missing\.edgeav does not exist"),
        ("invalid bundle", r"bundle .*random\.edgeav is not a valid zip"),
        ("camera index", r"camera index 7 cannot be opened"),
        ("unreadable video", r"cannot read video .*bad\.mkv"),
        ("unreadable audio", r"cannot read audio file .*bad\.wav"),
        ("portaudio missing", r"libportaudio2"),
        ("no modality", r"no input given"),
        ("live source without realtime", r"--no-realtime needs file sources"),
    ],
)
def test_errors_are_one_line(case, expect, av_bundle, av_stream, tmp_path):
    video, wav = av_stream
    bad_video = tmp_path / "bad.mkv"
    bad_video.write_bytes(b"not a video at all" * 50)
    bad_wav = tmp_path / "bad.wav"
    bad_wav.write_bytes(b"RIFF" + bytes(100))
    env = None
    args = {
        "missing bundle": ["--model", tmp_path / "missing.edgeav", "--camera", video],
        "invalid bundle": ["--model", _bad_bundle(tmp_path), "--camera", video],
        "camera index": ["--model", av_bundle, "--camera", "7"],
        "unreadable video": ["--model", av_bundle, "--camera", bad_video],
        "unreadable audio": ["--model", av_bundle, "--audio-file", bad_wav],
        "portaudio missing": ["--model", av_bundle, "--mic"],
        "no modality": ["--model", av_bundle],
        "live source without realtime": ["--model", av_bundle, "--camera", "0", "--no-realtime"],
    }[case]
    if case == "camera index" and Path("/dev/video7").exists():
        pytest.skip("this machine has a /dev/video7")
    if case == "portaudio missing":
        (tmp_path / "sitecustomize.py").write_text(NO_PORTAUDIO)
        env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = edgeav("run", *args, env=env)
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgeav: error: ")
    assert re.search(expect, lines[0]), lines[0]
    assert proc.stdout == ""
