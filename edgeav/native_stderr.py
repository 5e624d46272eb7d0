"""Capture what native code (LiteRT, the TFLite converter, TensorFlow) writes to fd 2.

Standard library only: the device runtime, the benchmarks and the converters share it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def captured_native_stderr() -> Iterator[list[str]]:
    """Redirect file descriptor 2 to a temporary file for the duration of the block.

    Yields a list that receives the captured non-blank lines when the block ends, so a failure
    can be reported in one line and a success stays quiet. Without a usable fd 2 nothing is
    captured and the list stays empty.
    """
    lines: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2: nothing to capture
        yield lines
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            lines.extend(line for line in text.splitlines() if line.strip())
