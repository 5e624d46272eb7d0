"""``edgeav service``: the systemd unit it writes, checked by systemd's own ``systemd-analyze
verify`` (Debian package ``systemd``; skipped with the reason where it is missing), and the
``edgeav run`` options it refuses before anything is written."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeav.commands.service import quote

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _service(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeav", "service", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def _unit(text: str) -> dict[str, list[str]]:
    """``key -> [values]`` of a unit file (sections ignored, comments skipped)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_the_unit_runs_that_command_and_systemd_accepts_it(tmp_path):
    (tmp_path / "model.edgeav").write_bytes(b"a stand-in: the service only checks it exists")
    unit_path = tmp_path / "edgeav.service"
    proc = _service(
        "--model",
        "model.edgeav",
        "--camera",
        "0",
        "--mic",
        "--serve",
        "0.0.0.0:8080",
        "--threshold",
        "0.7",
        "--write",
        str(unit_path),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.strip() == f"edgeav: wrote {unit_path}"
    unit = _unit(unit_path.read_text())
    exe = str(Path(os.path.abspath(sys.executable)).with_name("edgeav"))
    assert unit["ExecStart"] == [
        f"{exe} run --model {tmp_path / 'model.edgeav'} --camera 0 --mic --serve 0.0.0.0:8080 "
        "--threshold 0.7"
    ]
    assert unit["User"] == [os.environ.get("SUDO_USER") or getpass.getuser()]
    assert unit["SupplementaryGroups"] == ["audio video"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["After"] == ["network-online.target sound.target"]
    assert unit["Wants"] == ["network-online.target"]
    assert unit["WorkingDirectory"] == [str(tmp_path)]
    assert unit["WantedBy"] == ["multi-user.target"]
    assert "reopens a camera or microphone" in unit_path.read_text()

    # printed without --write: the same unit on stdout
    printed = _service("--model", "model.edgeav", "--camera", "0", "--mic", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert _unit(printed.stdout)["Restart"] == ["on-failure"]
    secret = _service("--model", "model.edgeav", "--mic", "--token", "t0k", cwd=tmp_path)
    assert secret.returncode == 0 and "every local user can read a unit" in secret.stderr

    if SYSTEMD_ANALYZE is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    verify = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(unit_path)], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 on settings it ignores, so its output must name nothing in our file either
    assert verify.returncode == 0, verify.stderr
    assert unit_path.name not in verify.stdout + verify.stderr, verify.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--camra", "0"], "edgeav run would refuse these options: No such option: --camra"),
        (["--mic", "--rate", "fast"], "Invalid value for '--rate'"),
        (["--model", "missing.edgeav", "--mic"], "bundle missing.edgeav does not exist"),
        (["--serve", "8080"], "the service needs an input"),
        (["--mic", "--user", "no body"], "--user 'no body' is not a user name"),
    ],
)
def test_options_run_would_refuse_are_one_line_errors(tmp_path, args, message):
    (tmp_path / "model.edgeav").write_bytes(b"x")
    proc = _service(*args, "--write", "edgeav.service", cwd=tmp_path)
    assert proc.returncode == 3
    assert proc.stderr.startswith("edgeav: error: ") and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "edgeav.service").exists()


def test_exec_start_words_are_quoted_for_systemd():
    assert quote("/home/pi/model.edgeav") == "/home/pi/model.edgeav"
    assert quote("my model.edgeav") == '"my model.edgeav"'
    assert quote("100%") == '"100%%"'
    assert quote("$HOME") == '"$$HOME"'
    assert quote('say "hi"') == '"say \\"hi\\""'
