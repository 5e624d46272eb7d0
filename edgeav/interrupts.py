"""Ctrl-C and SIGTERM for the CLI: stop promptly, exit 130 / 143, never commit an output after.

:func:`install` (called by :func:`edgeav.cli.main`) handles both signals by raising
:class:`Interrupted` (a ``KeyboardInterrupt`` whose ``exit_code`` is 130 for SIGINT, 143 for
SIGTERM) in the main thread, so a command unwinds and its atomic outputs (:mod:`edgeav.fileio`)
delete their temporary files; a second signal ends the process at once. Two guards cover code
that does not unwind promptly -- third-party code that swallows the exception (TensorFlow's
import can), or a long native call:

- :func:`check` raises the pending interrupt again; :mod:`edgeav.fileio` calls it before it
  renames a finished temporary file, so an output is never committed after a signal;
- a watchdog thread, started by the first signal, removes the temporary files still registered
  (:func:`track`) and ends the process after :data:`GRACE` seconds if it is still running,
  saying why on the last line of stderr as the CLI would (:func:`announce`: once per process).

Standard library only (the device path imports :mod:`edgeav.fileio`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

#: Seconds a command has to unwind after a signal before the watchdog ends the process.
GRACE = 1.0

#: Exit status per signal (the shell's 128 + signal number).
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}

_pending: int | None = None
_temps: set[Path] = set()
_lock = threading.Lock()
_announced = False
_stderr_fd: int | None = None  # the process's stderr as install() found it (see announce)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised in the main thread so the command unwinds.

    Attributes:
        exit_code: 130 (SIGINT) or 143 (SIGTERM).
        reason: ``"SIGINT"`` or ``"SIGTERM"``.
    """

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signum)
        self.exit_code = EXIT_STATUS.get(signum, 128 + signum)
        self.reason = signal.Signals(signum).name


def pending() -> int | None:
    """The exit status of the signal received (130 / 143), or None."""
    return _pending


def check() -> None:
    """Raise the pending interrupt again (call before committing an output)."""
    if _pending is not None:
        raise Interrupted(_pending - 128)


def message(code: int | None = None) -> str:
    """The CLI's last line for a stop by signal: ``edgeav: interrupted`` or ``terminated``."""
    code = _pending if code is None else code
    return f"edgeav: {'interrupted' if code == EXIT_STATUS[signal.SIGINT] else 'terminated'}"


def announce(code: int | None = None) -> None:
    """Write :func:`message` to stderr, unless this process already has: the CLI's handlers and
    the watchdog may both get here. Flush Python's streams first if they should come before it.

    It goes past Python's buffers to a duplicate of file descriptor 2 taken by :func:`install`:
    while native code's output is captured (:mod:`edgeav.native_stderr`), fd 2 is a temporary
    file, and a watchdog that ends the process then must still reach the terminal.
    """
    global _announced
    with _lock:  # the flag and the write together: whoever sets it has written the line
        if _announced:
            return
        _announced = True
        with contextlib.suppress(OSError):
            os.write(2 if _stderr_fd is None else _stderr_fd, (message(code) + "\n").encode())


def flush_streams(timeout: float | None = None) -> None:
    """Flush stdout and stderr (errors ignored). With ``timeout``, in a helper thread, waiting
    at most that many seconds: another thread may hold a stream's lock while it writes into a
    full pipe, and the watchdog must still end the process."""

    def flush() -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()

    if timeout is None:
        flush()
        return
    t = threading.Thread(target=flush, name="edgeav-interrupt-flush", daemon=True)
    t.start()
    t.join(timeout)


def track(path: Path) -> None:
    """Register a temporary file or folder for removal if the watchdog has to end the process."""
    with _lock:
        _temps.add(Path(path))


def untrack(path: Path) -> None:
    with _lock:
        _temps.discard(Path(path))


def _remove_temps() -> None:
    with _lock:
        temps = list(_temps)
    for path in temps:
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink()


def _exit(code: int) -> None:
    """Remove the registered temporary files, say why, and end the process now."""
    _remove_temps()
    flush_streams(0.2)  # what the command printed, then why it stopped, last
    announce()
    os._exit(code)


def _watchdog() -> None:
    time.sleep(GRACE)
    _exit(_pending or 1)


def _handler(signum: int, frame: Any) -> None:
    global _pending
    if _pending is not None:  # a second signal: the user means it
        _exit(_pending)
    _pending = EXIT_STATUS.get(signal.Signals(signum), 128 + signum)
    threading.Thread(target=_watchdog, name="edgeav-interrupt", daemon=True).start()
    if frame is not None and _swallows_exceptions(frame.f_code):
        return  # raised here it would be printed and dropped; the watchdog ends the process
    raise Interrupted(signum)


def _swallows_exceptions(code: Any) -> bool:
    """Whether a signal landed in a callback whose exceptions Python prints as "Exception
    ignored" and drops: the import system's module-lock weakref callback, where a signal
    arriving during an import (TensorFlow's take seconds) would otherwise show a traceback."""
    return code.co_filename.startswith("<frozen importlib") and code.co_name == "cb"


def install() -> None:
    """Handle SIGINT and SIGTERM as described above (main thread only; elsewhere a no-op).

    SIGINT is handled even when the process started with it ignored (``cmd &`` in a script),
    so ``kill -INT`` stops any edgeav command.
    """
    global _stderr_fd
    with contextlib.suppress(ValueError):  # not the main thread
        for sig in EXIT_STATUS:
            signal.signal(sig, _handler)
    if _stderr_fd is None:
        with contextlib.suppress(OSError):
            _stderr_fd = os.dup(2)  # not inherited by child processes (PEP 446)
