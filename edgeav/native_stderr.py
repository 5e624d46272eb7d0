"""Capture what native code (TensorFlow, LiteRT, the TFLite converter, libcamera, PortAudio/ALSA)
writes to file descriptor 2, so that edgeav's own output stays readable.

Native libraries print straight to fd 2, below Python's ``sys.stderr``: TensorFlow's absl and
CUDA lines on import, LiteRT's ``INFO: Created TensorFlow Lite XNNPACK delegate``, ALSA's
``ALSA lib pcm.c:...`` when PortAudio probes devices. edgeav runs such calls inside
:func:`captured_native_stderr`: a success stays quiet, a failure is reported in one edgeav line
built from the captured text. With ``edgeav --debug`` (:func:`show_native_output`) the captured
text is written to stderr after the block as well, so nothing is hidden from someone debugging.

Standard library only: the device runtime, the benchmarks and the converters share it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

_show = {"native": False}


def show_native_output(show: bool = True) -> None:
    """Pass captured native text on to stderr too (``edgeav --debug``); process-wide."""
    _show["native"] = bool(show)


def showing_native_output() -> bool:
    """True under ``edgeav --debug``: native text is shown as well as captured."""
    return _show["native"]


@contextlib.contextmanager
def captured_native_stderr() -> Iterator[list[str]]:
    """Redirect file descriptor 2 to a temporary file for the duration of the block.

    Yields a list that receives the captured non-blank lines when the block ends, so a failure
    can be reported in one line and a success stays quiet. Under :func:`show_native_output`
    the captured text is also written to stderr when the block ends. Without a usable fd 2
    nothing is captured and the list stays empty.
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
            data = tmp.read()
            text = data.decode("utf-8", "replace")
            lines.extend(line for line in text.splitlines() if line.strip())
            if data and _show["native"]:
                with contextlib.suppress(OSError):
                    os.write(2, data)
