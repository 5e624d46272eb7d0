"""Audio sources: a file on its own clock, the microphone's device choice, PortAudio missing.

Real parts: WAV/FLAC files written with soundfile; the live microphone test runs where this
machine has an input device.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from media import SR, write_wav

from edgeav.errors import EdgeAVError
from edgeav.runtime.audio import AudioFile, Microphone, choose_rate, resolve_input_device


def us(seconds: float) -> int:
    return int(round(seconds * 1e6))


def test_audio_file_windows_are_the_files_samples(tmp_path):
    y = (np.arange(3 * SR) % 1000 / 1000.0 - 0.5).astype(np.float32)
    src = AudioFile(write_wav(tmp_path / "a.wav", y, subtype="FLOAT"), sample_rate=SR).open()
    assert src.window(us(0.5), SR) is None  # not a full window yet
    w = src.window(us(1.0), SR)
    np.testing.assert_array_equal(w.samples, y[:SR])
    assert (w.start, w.end, w.received) == (0.0, 1.0, None)
    w = src.window(us(2.25), SR)
    np.testing.assert_array_equal(w.samples, y[int(1.25 * SR) : int(2.25 * SR)])
    assert (w.start, w.end) == (1.25, 2.25)
    assert src.window(us(3.0), SR) is not None and not src.ended
    assert src.window(us(3.1), SR) is None and src.ended
    src.close()


def test_audio_file_resamples_and_loops(tmp_path):
    sr = 44100
    t = np.arange(sr) / sr
    y = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    src = AudioFile(write_wav(tmp_path / "a.flac", y, sr, "PCM_24"), sample_rate=SR, loop=True)
    w = src.open().window(us(2.5), SR).samples  # 2.5 passes of a 1 s file
    assert src.loops == 2 and not src.ended
    spectrum = np.abs(np.fft.rfft(w))
    assert abs(np.argmax(spectrum) * SR / len(w) - 440) <= 2  # still a 440 Hz tone at 16 kHz
    assert np.isclose(np.sqrt(np.mean(w**2)), 0.5 / np.sqrt(2), rtol=0.05)
    src.close()


def test_audio_file_errors(tmp_path):
    with pytest.raises(EdgeAVError, match=r"audio file .*nope\.wav does not exist"):
        AudioFile(tmp_path / "nope.wav").open()
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)
    with pytest.raises(EdgeAVError, match=r"cannot read audio file .*bad\.wav"):
        AudioFile(bad).open()
    with pytest.raises(EdgeAVError, match="contains no samples"):
        AudioFile(write_wav(tmp_path / "empty.wav", np.zeros(0, np.float32))).open()
    y = np.zeros(SR, np.float32)
    y[100] = np.nan
    src = AudioFile(write_wav(tmp_path / "nan.wav", y, subtype="FLOAT")).open()
    with pytest.raises(EdgeAVError, match="NaN"):
        src.window(us(1.0), SR)
    src.close()
    with pytest.raises(EdgeAVError, match="sample rate must be an integer >= 1000"):
        AudioFile(tmp_path / "a.wav", sample_rate=100)


def test_input_device_selection_by_index_and_name():
    devices = [
        {"name": "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "max_input_channels": 2},
        {"name": "HDMI 0 (hw:0,3)", "max_input_channels": 0},
        {"name": "USB PnP Sound Device: Audio (hw:1,0)", "max_input_channels": 1},
        {"name": "USB Camera: Audio (hw:2,0)", "max_input_channels": 2},
        {"name": "default", "max_input_channels": 32},
    ]
    assert resolve_input_device(devices, None, 4) == 4
    assert resolve_input_device(devices, "2", 4) == 2
    assert resolve_input_device(devices, "pnp", 4) == 2
    assert resolve_input_device(devices, "DEFAULT", 4) == 4
    with pytest.raises(EdgeAVError, match="'usb' is ambiguous: 2: USB PnP.*3: USB Camera"):
        resolve_input_device(devices, "usb", 4)
    with pytest.raises(EdgeAVError, match="no audio input device matches 'blue'"):
        resolve_input_device(devices, "blue", 4)
    with pytest.raises(EdgeAVError, match="device 1 .*HDMI.* has no input channels"):
        resolve_input_device(devices, 1, 4)
    with pytest.raises(EdgeAVError, match="index 9 does not exist"):
        resolve_input_device(devices, 9, 4)
    with pytest.raises(EdgeAVError, match="no audio input device found"):
        resolve_input_device([devices[1]], None, -1)
    assert choose_rate(lambda r: True, 16000, 48000.0) == 16000
    assert choose_rate(lambda r: r in (44100, 48000), 16000, 44100.0) == 44100
    assert choose_rate(lambda r: r == 32000, 16000, 48000.0) == 32000
    with pytest.raises(EdgeAVError, match="supports none of the rates"):
        choose_rate(lambda r: False, 16000, None)


def _input_devices() -> list:
    try:
        import sounddevice as sd

        return [d for d in sd.query_devices() if d["max_input_channels"] > 0]
    except Exception:
        return []


@pytest.mark.skipif(not _input_devices(), reason="no audio input device on this machine")
def test_microphone_captures_the_newest_window():
    mic = Microphone(None, sample_rate=SR).open()
    try:
        time.sleep(1.2)
        w = mic.window(0, SR)
        assert w.samples.shape == (SR,) and w.received is not None
        assert w.end >= 0.8
    finally:
        mic.close()


# Hides the system's PortAudio from ctypes.util.find_library, exactly what a machine without
# libportaudio2 looks like to sounddevice (its own import then raises OSError).
NO_PORTAUDIO = """
import ctypes.util
_find = ctypes.util.find_library
ctypes.util.find_library = lambda name: None if "portaudio" in name else _find(name)
"""


def test_portaudio_missing_is_a_clear_error(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(NO_PORTAUDIO)
    code = textwrap.dedent(
        """
        from edgeav.errors import EdgeAVError
        from edgeav.runtime.audio import import_sounddevice
        try:
            import_sounddevice()
        except EdgeAVError as exc:
            print(exc)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "libportaudio2" in proc.stdout and "--audio-file" in proc.stdout
