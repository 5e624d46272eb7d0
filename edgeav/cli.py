"""The ``edgeav`` command line (typer + rich).

Each command lives in its own module under ``edgeav/commands/`` and is registered below. Command
modules import nothing heavy at module level, so ``edgeav --help`` starts fast and never imports
TensorFlow.
"""

from __future__ import annotations

import os
import sys

import typer

from edgeav import __version__, interrupts
from edgeav.errors import EdgeAVError

app = typer.Typer(
    name="edgeav",
    help=(
        "Fused audio+image classification from laptop to Raspberry Pi.\n\n"
        "Laptop: edgeav data -> edgeav train -> edgeav convert (one model.edgeav file). "
        "Device: edgeav run --camera 0 --mic. Both: edgeav bench."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": False}


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"edgeav {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Print the version and exit.",
    ),
    debug: bool = typer.Option(
        False,
        "--debug",
        help="Show full tracebacks for errors, and what native libraries (TensorFlow, LiteRT, "
        "ALSA, PortAudio, libcamera) print, which edgeav otherwise keeps out of its output.",
    ),
) -> None:
    _state["debug"] = debug
    if debug:
        from edgeav.native_stderr import show_native_output  # noqa: PLC0415

        show_native_output()


# --- commands (one module each) -------------------------------------------------------------
# Registration lines are added by each feature; keep one line per command, in workflow order.
from edgeav.commands import bench as _bench  # noqa: E402
from edgeav.commands import compare as _compare  # noqa: E402
from edgeav.commands import convert as _convert  # noqa: E402
from edgeav.commands import data as _data  # noqa: E402
from edgeav.commands import demo as _demo  # noqa: E402
from edgeav.commands import doctor as _doctor  # noqa: E402
from edgeav.commands import info as _info  # noqa: E402
from edgeav.commands import record as _record  # noqa: E402
from edgeav.commands import run as _run  # noqa: E402
from edgeav.commands import service as _service  # noqa: E402
from edgeav.commands import train as _train  # noqa: E402
from edgeav.commands import zoo as _zoo  # noqa: E402

app.command("data")(_data.data)
app.command("zoo")(_zoo.zoo)
app.command("train")(_train.train)
app.command("convert")(_convert.convert)
app.command("compare")(_compare.compare)
app.command("info")(_info.info)
app.command("record")(_record.record)
app.command("run")(_run.run)
app.command("service", context_settings=_service.CONTEXT_SETTINGS)(_service.service)
app.command("doctor")(_doctor.doctor)
app.command("bench")(_bench.bench)
app.command("demo")(_demo.demo)


def _exit_now(code: int) -> None:
    """Exit at once after an interrupt: outputs are already cleaned up by the unwinding, and
    the interpreter's normal shutdown takes seconds once TensorFlow is loaded."""
    interrupts.flush_streams()
    os._exit(code)


def _announce(code: int) -> None:
    """The last line after a signal (once, whoever gets there first: see interrupts)."""
    interrupts.flush_streams()
    interrupts.announce(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``edgeav`` console script: expected failures are one line, no traceback.

    SIGINT and SIGTERM end a command by unwinding it (so atomic outputs leave nothing behind)
    with exit status 130 and 143 (:mod:`edgeav.interrupts`).
    """
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    interrupts.install()
    try:
        app(args=argv, prog_name="edgeav", standalone_mode=True)
    except EdgeAVError as exc:
        _if_interrupted()
        if debug:
            raise
        typer.echo(f"edgeav: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:  # interrupts.Interrupted, or a Ctrl-C outside the handler
        _if_interrupted()
        code = getattr(exc, "exit_code", 130)
        _announce(code)
        _exit_now(code)
    except SystemExit as exc:
        _if_interrupted()  # typer turns Ctrl-C into Exit(130)
        if exc.code in (130, 143):  # `run` ends so on signals, after its summary
            _exit_now(exc.code)
        raise
    except Exception:
        _if_interrupted()  # a signal that surfaced as another exception (raised inside C code)
        raise


def _if_interrupted() -> None:
    """After SIGINT / SIGTERM: say so on one line and exit 130 / 143, whatever was raised."""
    code = interrupts.pending()
    if code is not None:
        _announce(code)
        _exit_now(code)
