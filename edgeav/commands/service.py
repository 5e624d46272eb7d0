"""``edgeav service``: a systemd unit that runs an ``edgeav run`` command at boot.

Every option that is not the service's own is an ``edgeav run`` option: it is checked by
``run``'s own parser (a typo fails here, not at boot) and written into the unit's ``ExecStart``
after the absolute path of the ``edgeav`` executable that is running now (the venv's), with the
bundle's path made absolute and the current folder as ``WorkingDirectory`` so that other relative
paths mean what they mean here.

The unit restarts the command when it fails (``Restart=on-failure``) and orders it after the
network and the sound system; it does not wait for devices: once running, ``edgeav run`` reopens
a camera or microphone that stops delivering (and the MQTT client reconnects to its broker)
itself, and a device that cannot be opened at start makes it exit, so systemd starts it again a
few seconds later.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
from pathlib import Path

import typer

from edgeav.errors import EdgeAVError

#: Seconds systemd waits before starting a failed run again.
RESTART_SEC = 5
#: ``edgeav run``'s exit statuses on SIGINT / SIGTERM (``systemctl stop`` sends SIGTERM): a stop,
#: not a failure.
STOP_STATUSES = "130 143"
#: Options of ``edgeav run`` that name the bundle (made absolute in the unit).
MODEL_OPTIONS = ("--model", "-m")

_SAFE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def quote(arg: str) -> str:
    """``arg`` as one word of a systemd ``ExecStart=`` line (``%`` and ``$`` escaped, quoted
    when it holds anything but plain characters)."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if _SAFE.match(arg) and "%" not in arg:
        return text
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def edgeav_command() -> list[str]:
    """The absolute command that runs this edgeav: the console script when that is what is
    running (or the one beside this Python), else ``python -m edgeav``."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "edgeav" and argv0.exists():
        return [os.path.abspath(argv0)]
    beside = Path(os.path.abspath(sys.executable)).with_name("edgeav")
    if beside.exists():
        return [str(beside)]
    return [os.path.abspath(sys.executable), "-m", "edgeav"]


def _run_params(args: list[str]) -> dict:
    """``edgeav run``'s parsed options for ``args`` (its own parser: unknown options, bad values
    and missing values fail as they would in ``edgeav run``)."""
    from edgeav.cli import app  # noqa: PLC0415

    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    try:
        with command.make_context("edgeav run", list(args)) as ctx:
            return dict(ctx.params)
    except typer.Exit as exc:  # --help
        raise EdgeAVError("give `edgeav run` options, not --help, to `edgeav service`") from exc
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise EdgeAVError(f"edgeav run would refuse these options: {message}") from exc


def _absolute_model(args: list[str], model: Path) -> list[str]:
    """``args`` with the bundle's path absolute (``--model X``, ``-m X`` or ``--model=X``)."""
    absolute = os.path.abspath(model)
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg in MODEL_OPTIONS and i + 1 < len(args):
            out += [arg, absolute]
            i += 2
            continue
        if arg.startswith("--model="):
            arg = f"--model={absolute}"
        out.append(arg)
        i += 1
    if not any(a in MODEL_OPTIONS or a.startswith("--model=") for a in args):
        out = ["--model", absolute, *out]  # run's default, model.edgeav here
    return out


def unit_text(run_args: list[str], *, user: str, workdir: str, description: str) -> str:
    """The unit file for ``edgeav run <run_args>`` as ``user`` in ``workdir``."""
    exec_start = " ".join(quote(a) for a in [*edgeav_command(), "run", *run_args])
    return "\n".join(
        [
            "# Written by `edgeav service`. Install:",
            "#   sudo cp edgeav.service /etc/systemd/system/",
            "#   sudo systemctl daemon-reload && sudo systemctl enable --now edgeav",
            "#   journalctl -u edgeav -f",
            "[Unit]",
            f"Description={description}",
            "Wants=network-online.target",
            "After=network-online.target sound.target",
            "# No device ordering: edgeav run reopens a camera or microphone that stops delivering",
            "# (and reconnects to an MQTT broker) by itself; one that cannot be opened at start",
            f"# makes it exit, and Restart= below tries again every {RESTART_SEC} s.",
            "",
            "[Service]",
            "Type=simple",
            f"User={user}",
            "SupplementaryGroups=audio video",
            f"WorkingDirectory={quote(workdir)}",
            "Environment=PYTHONUNBUFFERED=1",
            f"ExecStart={exec_start}",
            "Restart=on-failure",
            f"RestartSec={RESTART_SEC}",
            "# systemctl stop sends SIGTERM: edgeav run prints its summary and exits 143",
            f"SuccessExitStatus={STOP_STATUSES}",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


def service(
    ctx: typer.Context,
    write: Path = typer.Option(
        None, "--write", "-w", help="Write the unit to this file instead of printing it."
    ),
    user: str = typer.Option(
        None,
        "--user",
        help="The account the service runs as (default: you, also under sudo). It gets the "
        "audio and video groups for the microphone and the camera.",
        show_default=False,
    ),
) -> None:
    """Print a systemd unit that runs `edgeav run` at boot, restarted when it fails.

    Every other option is an `edgeav run` option, checked now and written into the unit, e.g.:

    edgeav service --model model.edgeav --camera 0 --mic --serve 0.0.0.0:8080 --write edgeav.service

    then: sudo cp edgeav.service /etc/systemd/system/ && sudo systemctl daemon-reload && sudo systemctl enable --now edgeav
    """
    args = list(ctx.args)
    params = _run_params(args)
    model = Path(params["model"])
    if not model.is_file():
        raise EdgeAVError(f"bundle {model} does not exist (give --model PATH of the bundle)")
    if not (
        params.get("camera") or params.get("mic") or params.get("mic_device")
    ) and not params.get("audio_file"):
        raise EdgeAVError("the service needs an input: --camera and/or --mic (or --audio-file)")
    # under sudo, the person who ran it, not root
    user = user or os.environ.get("SUDO_USER") or getpass.getuser()
    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$", user):
        raise EdgeAVError(f"--user {user!r} is not a user name")
    text = unit_text(
        _absolute_model(args, model),
        user=user,
        workdir=os.getcwd(),
        description=f"edgeav run ({model.name})",
    )
    if any(a == "--token" or a.startswith("--token=") for a in args):
        typer.echo(
            "edgeav: warning: the unit holds --token, and every local user can read a unit "
            "(systemctl cat); keep the token in a root-only EnvironmentFile=, as EDGEAV_TOKEN=...",
            err=True,
        )
    if write is None:
        sys.stdout.write(text)
        return
    from edgeav.fileio import write_text_atomic  # noqa: PLC0415

    write_text_atomic(write, text)
    typer.echo(f"edgeav: wrote {write}", err=True)


#: Click settings for the command: unknown options are ``edgeav run``'s.
CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}
