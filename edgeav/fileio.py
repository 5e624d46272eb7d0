"""Atomic outputs: write to a temporary name in the same folder, then rename.

An interrupted or failed write leaves nothing behind under the final name and never a
half-written file next to it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgeav import interrupts
from edgeav.errors import EdgeAVError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_parent(path: Path) -> Path:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise EdgeAVError(f"cannot write {path}: folder {parent} does not exist")
    if not parent.is_dir():
        raise EdgeAVError(f"cannot write {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise EdgeAVError(f"cannot write {path}: folder {parent} is not writable")
    return parent


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``.

    On any exception the temporary file is removed and the exception propagates; an
    ``OSError`` (disk full, permission denied) becomes an :class:`EdgeAVError` naming ``path``.
    """
    path = Path(path)
    parent = _check_parent(path)
    if path.exists() and not path.is_file():  # never rename over /dev/full, a FIFO or a folder
        raise EdgeAVError(f"cannot write {path}: it exists and is not a regular file")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    interrupts.track(tmp)
    try:
        yield tmp
        if tmp.exists():
            # mkstemp creates 0600; give the output the usual permissions (0666 & ~umask).
            os.chmod(tmp, 0o666 & ~_umask())
        interrupts.check()  # never commit an output after Ctrl-C / SIGTERM
        os.replace(tmp, path)
    except OSError as exc:
        raise EdgeAVError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        interrupts.untrack(tmp)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (fsync'd before the rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise EdgeAVError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success move it to ``path``.

    With ``overwrite`` an existing ``path`` is replaced only after the new one is complete.
    """
    path = Path(path)
    parent = _check_parent(path)
    if path.exists() and not overwrite:
        raise EdgeAVError(f"{path} already exists; choose another name or remove it")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=parent))
    interrupts.track(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        interrupts.check()  # never commit an output after Ctrl-C / SIGTERM
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        raise EdgeAVError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        interrupts.untrack(tmp)


def cache_dir(kind: str) -> Path:
    """``$EDGEAV_CACHE/<kind>`` if set, else ``~/.cache/edgeav/<kind>`` (not created here)."""
    root = os.environ.get("EDGEAV_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "edgeav"
    return base / kind
