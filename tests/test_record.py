"""``edgeav record``: paired samples from a video file and a WAV (tests/media.py's stand-ins), and
from the PulseAudio test microphone (a private server whose null sink's monitor is the default
source, :mod:`edgeav.benchmarks.pulse`) with a countdown; numbering that continues, files never
overwritten, Ctrl-C leaving whole pairs only; then ``edgeav train`` on the recorded folder."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import media
import numpy as np
import pytest


def _record(*args: str, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeav", "record", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def _files(data: Path) -> list[str]:
    return sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file())


def test_record_from_files_pairs_frame_and_clip_and_never_overwrites(tmp_path):
    import cv2
    import soundfile as sf

    video, wav = media.write_stream(tmp_path, [0, 1, 2, 0, 1, 2])  # 6 s: dark, mid, bright, ...
    data = tmp_path / "DATA"
    (data / "image" / "x").mkdir(parents=True)
    cv2.imwrite(str(data / "image" / "x" / "0002.png"), np.full((4, 4, 3), 7, np.uint8))
    mine = (data / "image" / "x" / "0002.png").read_bytes()
    proc = _record(data, "--label", "x", "--camera", video, "--audio", wav, "--count", 3,
                   "--every", 2, "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    samples = [json.loads(line) for line in proc.stdout.splitlines()]
    # numbering continues after the 0002 already there, which is left alone
    assert [s["stem"] for s in samples] == ["0003", "0004", "0005"]
    assert (data / "image" / "x" / "0002.png").read_bytes() == mine
    stream = sf.read(wav, dtype="float32")[0]
    for s, t in zip(samples, (1, 3, 5), strict=True):
        assert s["t"] == t
        # the frame on screen just before t: second t-1 of the stream, class sequence[t-1]
        image = cv2.imread(s["image"])
        cls = [0, 1, 2, 0, 1, 2][t - 1]
        assert abs(int(image.mean()) - int(media.LEVELS[cls] * 255)) <= 1
        # the clip: exactly the stream's audio of [t-1, t), at 16 kHz mono 16-bit
        clip, sr = sf.read(s["audio"], dtype="float32")
        info = sf.info(s["audio"])
        assert (sr, info.channels, info.subtype) == (16000, 1, "PCM_16")
        np.testing.assert_allclose(clip, stream[(t - 1) * sr : t * sr], atol=1 / 32768)
        assert s["level_dbfs"] == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.2)

    # again, past the end of the files: continues at 0006, stops when the input ends
    again = _record(data, "--label", "x", "--camera", video, "--audio", wav, "--count", 10,
                    "--every", 1)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "the input ended after 6 of 10 sample(s)" in again.stderr
    assert "x 10 images / 9 clips" in again.stderr and "edgeav train" in again.stderr
    files = _files(data)
    assert files == sorted(
        [f"audio/x/{n:04d}.wav" for n in range(3, 12)]
        + [f"image/x/{n:04d}.png" for n in range(2, 12)]
    ), files
    assert not [f for f in files if "/." in f]  # no temporary files left


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label", "../up"], "label '../up' cannot be a folder name"),
        (["--label", "a", "--every", "0.5"], "--every must be at least the clip's length"),
        (["--label", "a", "--count", "0"], "--count must be 1..100000"),
        (["--label", "a", "--camera", "missing.mkv"], "video file missing.mkv does not exist"),
        (["--label", "a"], "no input given"),
        (["--label", "a", "--mic", "--audio", "x.wav"], "either --mic or --audio-file"),
    ],
)
def test_bad_options_are_one_line_errors_and_write_nothing(tmp_path, args, message):
    proc = _record("DATA", *args, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("edgeav: error: ") and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "DATA").exists()


def test_a_folder_with_splits_is_refused(tmp_path):
    video, wav = media.write_stream(tmp_path, [0, 0])
    (tmp_path / "DATA" / "train" / "image" / "a").mkdir(parents=True)
    proc = _record(tmp_path / "DATA", "--label", "a", "--camera", video, "--audio", wav)
    assert proc.returncode == 3
    assert "holds split folders (train)" in proc.stderr
    assert not (tmp_path / "DATA" / "image").exists()


def test_record_the_microphone_with_a_countdown_and_stop_with_ctrl_c(pulse, tmp_path):
    """The PulseAudio test microphone and a video file, in real time: a tone played into the
    sink is in the clips (not silence); the countdown and "now" lines go to stderr; Ctrl-C after
    two samples leaves only whole pairs."""
    video, _ = media.write_stream(tmp_path, [2])
    tone = media.write_wav(tmp_path / "tone.wav", media.tone(1, 30.0, sr=48000), sr=48000)
    from edgeav.benchmarks.pulse import SINK

    player = subprocess.Popen(
        ["paplay", f"--device={SINK}", str(tone)], env=pulse.client_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    data = tmp_path / "DATA"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeav", "record", str(data), "--label", "mid", "--mic",
         "--camera", str(video), "--loop", "--count", "20", "--every", "1", "--countdown", "0.5",
         "--json"],
        env=pulse.client_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    samples = []
    for line in proc.stdout:
        samples.append(json.loads(line))
        if len(samples) == 2:
            proc.send_signal(signal.SIGINT)
            time.sleep(0.3)
    code = proc.wait(timeout=30)
    player.kill()
    player.wait()
    stderr = proc.stderr.read()
    assert code == 130, stderr
    assert len(samples) in (2, 3), samples  # a sample due as the signal came may be whole too
    lines = stderr.splitlines()
    assert all(line.startswith("edgeav: ") for line in lines), lines
    assert "edgeav: record: sample 1/20: in 0.5 s" in stderr.replace("in 0.4 s", "in 0.5 s")
    assert "edgeav: record: sample 2/20: now" in stderr
    assert "record: stopped after" in stderr and lines[-1] == "edgeav: interrupted"
    for s in samples:
        assert s["level_dbfs"] > -20, s  # the tone (amplitude 0.3: -13.5 dBFS), not silence
    stems = [s["stem"] for s in samples]
    assert _files(data) == sorted(
        [f"audio/mid/{s}.wav" for s in stems] + [f"image/mid/{s}.png" for s in stems]
    )


@pytest.mark.slow
def test_edgeav_train_accepts_a_recorded_folder(pulse, tmp_path):
    """Two labels recorded from files and one from the PulseAudio test microphone (with a video
    file for its frames), then a tiny real `edgeav train` on the folder as it is."""
    from edgeav.benchmarks.pulse import SINK

    data = tmp_path / "DATA"
    for cls in (0, 2):
        folder = tmp_path / media.CLASSES[cls]
        folder.mkdir()
        video, wav = media.write_stream(folder, [cls] * 6)
        proc = _record(data, "--label", media.CLASSES[cls], "--camera", video, "--audio", wav,
                       "--count", 6, "--every", 1)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    video, _ = media.write_stream(tmp_path, [1])
    tone = media.write_wav(tmp_path / "tone.wav", media.tone(1, 30.0))
    player = subprocess.Popen(
        ["paplay", f"--device={SINK}", str(tone)], env=pulse.client_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        proc = _record(data, "--label", "mid", "--mic", "--camera", video, "--loop", "--count", 6,
                       "--every", 1, "--countdown", 0, "--json", env=pulse.client_env())  # fmt: skip
    finally:
        player.kill()
        player.wait()
    assert proc.returncode == 0, proc.stderr
    assert all(json.loads(line)["level_dbfs"] > -20 for line in proc.stdout.splitlines())
    proc = subprocess.run(
        [sys.executable, "-m", "edgeav", "train", str(data), "--out", str(tmp_path / "run"),
         "--audio-model", "audio-mlp", "--input-size", "32", "--epochs", "1",
         "--triplet-epochs", "0", "--head-epochs", "1", "--batch-size", "8", "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no split folders: split deterministically" in proc.stdout  # the metrics' note
    from edgeav.run_folder import read_run

    run = read_run(tmp_path / "run")
    assert run.classes == ["bright", "dark", "mid"]
    metrics = json.loads(proc.stdout)
    assert metrics["counts"]["train"]["image"] >= 12, metrics["counts"]


def test_a_stem_taken_in_either_folder_is_skipped_for_both(tmp_path):
    from edgeav.runtime.record import commit_pair

    folders = (tmp_path / "image" / "a", tmp_path / "audio" / "a")
    folders[1].mkdir(parents=True)
    (folders[1] / "0001.wav").write_bytes(b"someone else's")
    stem, paths = commit_pair(folders, 1, {"image": (".png", b"png"), "audio": (".wav", b"wav")})
    assert stem == "0002"
    assert paths["image"].read_bytes() == b"png" and paths["audio"].read_bytes() == b"wav"
    assert (folders[1] / "0001.wav").read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "0001.wav", "0002.png", "0002.wav"
    ]  # fmt: skip
