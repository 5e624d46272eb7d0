"""The CLI's entry point: version, help, and that help never imports TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgeav import __version__


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_help_imports_no_tensorflow():
    code = (
        "import sys, json\n"
        "from edgeav.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    code = e.code\n"
        "heavy = [m for m in ('tensorflow', 'tf_keras', 'librosa', 'tensorflow_model_optimization') if m in sys.modules]\n"
        "print(json.dumps({'code': code, 'heavy': heavy}))\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "heavy": []}
    assert "Commands" in proc.stdout


def test_version_via_module():
    proc = subprocess.run(
        [sys.executable, "-m", "edgeav", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"edgeav {__version__}"


def test_the_device_path_imports_nothing_heavy():
    code = (
        "import sys, edgeav.runtime.pipeline, edgeav.runtime.camera, edgeav.runtime.audio\n"
        "import edgeav.runtime.interpreter, edgeav.bundle, edgeav.features, edgeav.fusion\n"
        "import edgeav.commands.run, edgeav.commands.doctor, edgeav.runtime.doctor\n"
        "import edgeav.runtime.picamera, edgeav.runtime.device_checks\n"
        "import edgeav.commands.record, edgeav.commands.service\n"
        "import edgeav.runtime.mqtt, edgeav.runtime.record, edgeav.locate\n"
        "heavy = [m for m in ('tensorflow', 'tf_keras', 'librosa', 'sounddevice', 'cv2', "
        "'picamera2') "
        "if m in sys.modules]\n"
        "print(heavy)\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.slow  # imports TensorFlow twice: 5-15 s
def test_zoo_keeps_tensorflows_native_lines_out_of_stderr():
    """TensorFlow prints absl/CUDA lines to fd 2 while it loads; ``edgeav zoo`` (which builds a
    model with it) prints only its table, and ``--debug`` shows what was kept out."""
    args = [sys.executable, "-m", "edgeav", "zoo", "resnet-sep-tiny", "--json"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["name"] == "resnet-sep-tiny"
    assert proc.stderr == ""
    debug = subprocess.run(args[:3] + ["--debug"] + args[3:], capture_output=True, text=True)
    assert debug.returncode == 0 and json.loads(debug.stdout) == json.loads(proc.stdout)
    # the TensorFlow installed here prints absl's "All log messages before absl::InitializeLog()
    # is called are written to STDERR" while it loads: there was something to keep out
    assert "absl" in debug.stderr, debug.stderr


def test_every_command_explains_itself():
    """``edgeav <command> --help`` renders for every command (rich markup in a help text, such
    as a ``[/prefix]``, would crash it)."""
    code = (
        "import json, typer\n"
        "from edgeav.cli import app, main\n"
        "out = {}\n"
        "for name in typer.main.get_command(app).commands:\n"
        "    try:\n        main([name, '--help'])\n    except SystemExit as e:\n"
        "        out[name] = e.code\n"
        "print(json.dumps(out))\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    codes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"run", "record", "service", "doctor", "train"} <= set(codes)
    assert set(codes.values()) == {0}, codes


def test_train_help_states_the_image_inputs_train_uses():
    from typer.testing import CliRunner

    from edgeav.cli import app
    from edgeav.train import IMAGE_INPUTS

    result = CliRunner().invoke(app, ["train", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())
    camera, mnist = IMAGE_INPUTS["camera"], IMAGE_INPUTS["mnist"]
    assert f"{camera['size']} (grey, the digit found on its sheet" in text
    assert f"{mnist['size']} (colour, centre crop)" in text
