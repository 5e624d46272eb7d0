"""Collect your own samples on the device: paired camera frames and audio clips, written into the
data-set folder ``edgeav train`` reads.

One sample is one camera frame and one clip of ``seconds`` of audio (16 kHz mono), taken from the
same sources ``edgeav run`` uses (:mod:`edgeav.runtime.camera`, :mod:`edgeav.runtime.audio`) and
written as ``DATA/image/<label>/<stem>.png`` and ``DATA/audio/<label>/<stem>.wav``; the same stem
pairs them. That flat layout is one ``edgeav train`` accepts as it is: it splits it into
train/val/test itself, deterministically by file name (:func:`edgeav.data.loader.scan_dataset`).

**The clock** is ``edgeav run``'s: sample ``k`` is taken at stream time ``t_k = first + k *
every``, its clip is the audio of ``[t_k - seconds, t_k)`` and its frame the one on screen just
before ``t_k``. With a live source (camera, stream, microphone) the loop waits for each ``t_k``
in real time and ``first = countdown + seconds``: a countdown, then "now" at ``t_k - seconds``,
when the person speaks and shows. With files only there is no waiting and no countdown
(``first = seconds``): the files are cut into samples on their own clock.

**Files are never overwritten and never half-written.** New stems continue the numbering of the
label's folders (``0001``, ``0002``, ...). Each file is written under a hidden temporary name
(which the data loader skips) and linked to its final name only if that name is still free;
the two files of a pair are committed together with SIGINT/SIGTERM held back for those few
microseconds, so Ctrl-C leaves whole pairs only.
"""

from __future__ import annotations

import contextlib
import errno
import io
import math
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeav import interrupts
from edgeav.errors import EdgeAVError
from edgeav.runtime.sources import AudioSource, FrameSource

#: The clips' sample rate (what ``edgeav train`` resamples to anyway).
SAMPLE_RATE = 16000
#: How often the waiting loop reports (countdown and audio level), per second.
UPDATES_PER_SECOND = 10
#: Seconds of audio the level meter measures.
LEVEL_SECONDS = 0.1
#: Seconds to wait for a live source's data (first, or fresh again) before giving up.
FIRST_DATA_TIMEOUT = 5.0
#: A live frame or clip older than this (seconds) is not recorded: it would pair old with new.
STALE_AFTER = 1.0
#: Label names: a folder name that is safe everywhere (no separators, not hidden).
LABEL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_+=,.-]{0,63}$")
MODALITY_DIRS = ("image", "audio")


@dataclass(frozen=True)
class RecordOptions:
    """What ``edgeav record`` is asked to do.

    Attributes:
        label: the class (folder name) the samples belong to; ``none`` for nothing-in-view and
            room noise (not a class: training teaches the models to be unsure on it).
        count: samples to take. every: seconds between samples. seconds: length of each clip.
        countdown: seconds before the first sample (live sources only).
    """

    label: str
    count: int = 10
    every: float = 2.0
    seconds: float = 1.0
    countdown: float = 3.0


@dataclass(frozen=True)
class Sample:
    """One pair written: its stem, files (None for a modality not recorded), audio level."""

    index: int
    stem: str
    t: float
    image: Path | None
    audio: Path | None
    level_dbfs: float | None
    peak_dbfs: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sample": self.index,
            "stem": self.stem,
            "t": round(self.t, 3),
            "image": None if self.image is None else str(self.image),
            "audio": None if self.audio is None else str(self.audio),
            "level_dbfs": _round(self.level_dbfs),
            "peak_dbfs": _round(self.peak_dbfs),
        }


@dataclass(frozen=True)
class Waiting:
    """A report while waiting for sample ``index`` (0-based): ``phase`` is ``"countdown"`` before
    its clip starts, ``"recording"`` during it; ``left`` seconds until the phase ends."""

    index: int
    phase: str
    left: float
    level_dbfs: float | None


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 1)


def dbfs(samples: np.ndarray) -> float:
    """RMS level in dB full scale (-inf for digital silence)."""
    power = float(np.mean(np.square(samples, dtype=np.float64))) if samples.size else 0.0
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def check_options(options: RecordOptions) -> None:
    """Raise :class:`EdgeAVError` for a bad label, count or timing (before any source opens)."""
    if not LABEL.match(options.label) or options.label in MODALITY_DIRS:
        raise EdgeAVError(
            f"label {options.label!r} cannot be a folder name: use letters, digits and _ - . "
            f"(not starting with . or -), not 'image' or 'audio'"
        )
    if not (isinstance(options.count, int) and 1 <= options.count <= 100_000):
        raise EdgeAVError(f"--count must be 1..100000 samples, got {options.count!r}")
    if not (math.isfinite(options.seconds) and 0.1 <= options.seconds <= 30):
        raise EdgeAVError(f"--seconds must be 0.1..30 s of audio, got {options.seconds!r}")
    if not (math.isfinite(options.every) and options.seconds <= options.every <= 3600):
        raise EdgeAVError(
            f"--every must be at least the clip's length ({options.seconds:g} s, --seconds) and "
            f"at most 3600 s, got {options.every!r}"
        )
    if not (math.isfinite(options.countdown) and 0 <= options.countdown <= 600):
        raise EdgeAVError(f"--countdown must be 0..600 s, got {options.countdown!r}")


def label_folders(data: Path, label: str) -> tuple[Path, Path]:
    """``(DATA/image/<label>, DATA/audio/<label>)``, not created yet (:func:`commit_pair` creates
    a folder with its first file: an empty class folder would stop ``edgeav train``).

    Raises:
        EdgeAVError: ``data`` is a file or holds split folders (``train/image/...``; record into
            a flat folder: ``edgeav train`` splits it).
    """
    if data.exists() and not data.is_dir():
        raise EdgeAVError(f"data folder {data} is a file")
    if data.is_dir():
        splits = sorted(
            d.name
            for d in data.iterdir()
            if d.is_dir()
            and d.name not in MODALITY_DIRS
            and any((d / m).is_dir() for m in MODALITY_DIRS)
        )
        if splits:
            raise EdgeAVError(
                f"{data} holds split folders ({', '.join(splits)}); record into a folder of "
                f"{data.name}/image/<label> and {data.name}/audio/<label> only (edgeav train "
                f"splits it itself)"
            )
    return data / "image" / label, data / "audio" / label


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeAVError(f"cannot create {folder}: {exc.strerror or exc}") from exc
    if not os.access(folder, os.W_OK):
        raise EdgeAVError(f"cannot write {folder}: not writable")


def next_number(folders: tuple[Path, ...]) -> int:
    """One more than the largest numeric stem in ``folders`` (1 when there is none)."""
    largest = 0
    for folder in folders:
        if folder.is_dir():
            for entry in folder.iterdir():
                if entry.stem.isdigit() and not entry.name.startswith("."):
                    largest = max(largest, int(entry.stem))
    return largest + 1


def encode_png(image: np.ndarray) -> bytes:
    from edgeav.runtime.camera import import_cv2  # noqa: PLC0415

    ok, data = import_cv2().imencode(".png", image)
    if not ok:
        raise EdgeAVError(f"cannot encode a frame of shape {image.shape} as PNG")
    return data.tobytes()


def encode_wav(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    import soundfile  # noqa: PLC0415

    buf = io.BytesIO()
    clipped = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
    soundfile.write(buf, clipped, sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _write_temp(folder: Path, name: str, data: bytes) -> Path:
    """``data`` in a hidden temporary file in ``folder`` (fsync'd), tracked for the watchdog."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    interrupts.track(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
    except OSError as exc:
        _discard(tmp)
        raise EdgeAVError(f"cannot write {folder / name}: {exc.strerror or exc}") from exc
    return tmp


def _discard(tmp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    interrupts.untrack(tmp)


#: ``link()`` errors of file systems without hard links (FAT on a USB stick: EPERM).
NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


def _link(tmp: Path, final: Path) -> bool:
    """Give the file ``tmp`` the name ``final`` too, unless ``final`` exists (then False). A hard
    link is atomic and never replaces; where the file system has none (FAT), check, then rename
    (``tmp`` is then gone; :func:`_undo` renames it back)."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
        if final.exists():
            return False
        os.rename(tmp, final)
    return True


def _undo(tmp: Path, final: Path) -> None:
    """Take back a :func:`_link`: ``final`` goes, ``tmp`` stays (renamed back if it was moved)."""
    if tmp.exists():
        final.unlink()
    else:
        os.rename(final, tmp)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends (main thread; elsewhere nothing to hold)."""
    held = {signal.SIGINT, signal.SIGTERM}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def commit_pair(
    folders: tuple[Path, Path], number: int, files: dict[str, tuple[str, bytes]]
) -> tuple[str, dict[str, Path]]:
    """Write ``files`` (``modality -> (suffix, bytes)``) under the first free stem from
    ``number`` on, both or none; ``(stem, {modality: path})``."""
    folder_of = dict(zip(MODALITY_DIRS, folders, strict=True))
    for m in files:
        _make_folder(folder_of[m])
    temps = {
        m: _write_temp(folder_of[m], f"{number:04d}{sfx}", data) for m, (sfx, data) in files.items()
    }
    try:
        for attempt in range(1000):
            stem = f"{number + attempt:04d}"
            finals = {m: folder_of[m] / f"{stem}{files[m][0]}" for m in files}
            if any(p.exists() for p in finals.values()):
                continue
            done: list[Path] = []
            with _signals_held():
                interrupts.check()  # never commit after Ctrl-C / SIGTERM
                try:
                    for m, final in finals.items():
                        if not _link(temps[m], final):
                            break
                        done.append(final)
                except OSError as exc:
                    for m, path in zip(finals, done, strict=False):
                        _undo(temps[m], path)
                    raise EdgeAVError(f"cannot write {final}: {exc.strerror or exc}") from exc
                if len(done) == len(finals):
                    return stem, finals
                # another writer took this stem meanwhile: take ours back, try the next
                for m, path in zip(finals, done, strict=False):
                    _undo(temps[m], path)
        raise EdgeAVError(f"no free file name after {number + 999:04d} in {folders[0]}")
    finally:
        for tmp in temps.values():
            _discard(tmp)


class Recorder:
    """Takes :class:`RecordOptions`' samples from open sources into ``data``.

    Args:
        data: the data-set folder. options: what to record.
        frames, audio: open sources (either may be None, not both); audio at :data:`SAMPLE_RATE`.
        clock: ``time.monotonic`` (the tests' stand-in clock must be as monotonic).
    """

    def __init__(
        self,
        data: Path,
        options: RecordOptions,
        *,
        frames: FrameSource | None = None,
        audio: AudioSource | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_options(options)
        if frames is None and audio is None:
            raise EdgeAVError(
                "no input given: use --camera (index, video file or URL) and/or --mic / --audio-file"
            )
        self.data, self.options, self.frames, self.audio = data, options, frames, audio
        self.live = any(s is not None and s.live for s in (frames, audio))
        self.folders = label_folders(data, options.label)
        self._clock = clock
        self._window = int(round(options.seconds * SAMPLE_RATE))
        first = options.seconds + (options.countdown if self.live else 0.0)
        self._first_us = int(round(first * 1e6))
        self._every_us = int(round(options.every * 1e6))
        self.ended = False  # a file ran out before ``count`` samples
        self.written = 0

    def _level(self, t_us: int) -> float | None:
        if self.audio is None:
            return None
        window = self.audio.window(t_us, int(LEVEL_SECONDS * SAMPLE_RATE))
        return None if window is None else dbfs(window.samples)

    def _wait_until(self, start: float, index: int, t_us: int) -> Iterator[Waiting]:
        """Reports until wall time ``start + t_us`` (live sources only)."""
        cue_us = t_us - self._window * 1_000_000 // SAMPLE_RATE
        step = 1.0 / UPDATES_PER_SECOND
        while True:
            elapsed_us = int((self._clock() - start) * 1e6)
            if elapsed_us >= t_us:
                return
            phase, until = ("countdown", cue_us) if elapsed_us < cue_us else ("recording", t_us)
            yield Waiting(index, phase, (until - elapsed_us) / 1e6, self._level(elapsed_us))
            time.sleep(min(step, max(0.0, (until - elapsed_us) / 1e6)))

    def _capture(self, t_us: int) -> tuple[Any, Any] | None:
        """The frame and window for ``t_us``; None when a file source has ended. A live source
        that has not delivered yet, or whose newest data is older than :data:`STALE_AFTER` (a
        camera being reopened), is waited for, :data:`FIRST_DATA_TIMEOUT` at most."""
        deadline = self._clock() + FIRST_DATA_TIMEOUT
        while True:
            frame = self.frames.frame_at(t_us) if self.frames is not None else None
            window = self.audio.window(t_us, self._window) if self.audio is not None else None
            if any(s is not None and s.ended for s in (self.frames, self.audio)):
                return None
            now = time.monotonic()
            missing = [
                s
                for s, d in ((self.frames, frame), (self.audio, window))
                if s is not None
                and (d is None or (d.received is not None and now - d.received > STALE_AFTER))
            ]
            if not missing:
                return frame, window
            if not self.live:
                raise EdgeAVError(f"{missing[0].label} has nothing at {t_us / 1e6:.2f} s to record")
            if self._clock() > deadline:
                raise EdgeAVError(
                    f"{missing[0].label} delivered nothing new to record for "
                    f"{FIRST_DATA_TIMEOUT:g} s"
                )
            time.sleep(0.05)

    def samples(self) -> Iterator[Waiting | Sample]:
        """Record; yields :class:`Waiting` reports (live sources) and each :class:`Sample` as it
        is written. Ends after ``count`` samples, or early with :attr:`ended` set when a file
        runs out."""
        start = self._clock()
        number = next_number(self.folders)
        for k in range(self.options.count):
            t_us = self._first_us + k * self._every_us
            if self.live:
                yield from self._wait_until(start, k, t_us)
            captured = self._capture(t_us)
            if captured is None:
                self.ended = True
                return
            frame, window = captured
            files: dict[str, tuple[str, bytes]] = {}
            level = peak = None
            if frame is not None:
                files["image"] = (".png", encode_png(frame.image))
            if window is not None:
                files["audio"] = (".wav", encode_wav(window.samples))
                level = dbfs(window.samples)
                top = float(np.max(np.abs(window.samples))) if window.samples.size else 0.0
                peak = 20.0 * math.log10(top) if top > 0 else -math.inf
            stem, paths = commit_pair(self.folders, number, files)
            number = int(stem) + 1
            self.written += 1
            yield Sample(k, stem, t_us / 1e6, paths.get("image"), paths.get("audio"), level, peak)


def folder_counts(data: Path) -> dict[str, dict[str, int]]:
    """``{label: {"image": n, "audio": n}}`` of a flat data folder (visible files only)."""
    counts: dict[str, dict[str, int]] = {}
    for modality in MODALITY_DIRS:
        root = data / modality
        if not root.is_dir():
            continue
        for folder in sorted(
            p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            n = sum(1 for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
            counts.setdefault(folder.name, {"image": 0, "audio": 0})[modality] = n
    return counts
