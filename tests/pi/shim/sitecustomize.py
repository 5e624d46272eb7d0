"""Test-harness shim, loaded by the emulated aarch64 Python only (never part of edgeav).

Under qemu-user, ``ctypes.util.find_library`` runs the host's x86 ``/sbin/ldconfig -p`` and so
answers from the host's x86 libraries: a library that only the aarch64 sysroot has (PortAudio on a
host without ``libportaudio2``) is "not found", and one that only the host has is "found" and then
fails to load. On a real Pi, ldconfig lists the aarch64 libraries. This replaces ``find_library``
with a search of the sysroot's aarch64 library folders (``EDGEAV_PI_SYSROOT``, set by
``tests/pi/setup_sysroot.py``) that returns the soname, as the real one does. It must run before
``sounddevice`` is imported (sounddevice binds ``find_library`` at import time), hence
sitecustomize.
"""

from __future__ import annotations

import ctypes.util
import os
import re

_SYSROOT = os.environ.get("EDGEAV_PI_SYSROOT", "/")
_LIB_DIRS = (
    "usr/local/lib",
    "lib/aarch64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
    "lib",
    "usr/lib",
)


def find_library(name: str) -> str | None:
    """``ctypes.util.find_library`` answered from the sysroot's aarch64 folders only."""
    pattern = re.compile(rf"lib{re.escape(name)}\.so(\.[0-9]+)*$")
    for rel in _LIB_DIRS:
        folder = os.path.join(_SYSROOT, rel)
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        hits = [n for n in names if pattern.match(n)]
        if hits:
            # Prefer the soname (libfoo.so.2) over the dev link (libfoo.so) or the full version.
            versioned = [n for n in hits if n.count(".") == 2] or hits
            return min(versioned, key=len)
    return None


ctypes.util.find_library = find_library
