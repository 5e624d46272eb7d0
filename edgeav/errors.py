"""The one error type for expected failures.

Anything a user can cause (a missing file, a bad bundle, a camera that does not exist, a value
out of range) raises :class:`EdgeAVError` (or a subclass) with a one-line message that names the
file, device or value. The CLI prints it on one line to stderr and exits with
:data:`EXIT_USER_ERROR`; a traceback is shown only with ``--debug``.
"""

from __future__ import annotations

#: Exit status for expected failures (distinct from 1 = crash, 2 = usage error).
EXIT_USER_ERROR = 3


class EdgeAVError(Exception):
    """An expected failure with a one-line, user-facing message."""

    exit_code: int = EXIT_USER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
