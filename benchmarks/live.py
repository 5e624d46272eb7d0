"""``python -m edgeav.benchmarks.live BUNDLE``: accuracy and reaction time of a live microphone.

A private PulseAudio server (:mod:`edgeav.benchmarks.pulse`) stands in for the sound system: its
null sink's monitor is ALSA's default capture device, so edgeav's real
:class:`~edgeav.runtime.audio.Microphone` (PortAudio, ALSA, the pulse plugin) hears what
``paplay`` plays into the sink. The pipeline runs in this process, as ``edgeav run --mic`` does
(``open_pipeline`` with ``RunOptions(mic=True, rate=...)``), while the clips are played one at a
time, in a seeded random order, with ``--gap`` seconds of silence between them.

The clips: ``--wav FILE`` (repeatable) with ``--labels`` (a JSON list of class names, one per
file, or a JSON file holding that list), or ``--data DIR``: ``--per-class`` clips of each class
from a data set folder's ``<split>/audio/<class>/`` (default split: ``test-unseen`` if present,
else ``test``). Each file is played whole; its sound (the span of 10 ms frames within 35 dB of
its loudest and 10 dB above its noise floor) is found beforehand, so "the end of a clip" is the
end of the word, not of the silence or noise after it in the file.

What is measured, per play:

- **where it was heard**: the played clip is found in the captured audio by cross-correlation,
  which gives its first and last sample on the microphone's own sample clock;
- **when it ended**: the moment the word's last sample reached the microphone's callback. Here
  that is within a few milliseconds of the sound ending at the server (the first sample arrives
  a few milliseconds after ``paplay`` is started); PortAudio's stated input latency, the size of
  its buffer, is reported beside it, not added: on real hardware the driver's buffering comes on
  top;
- **reaction**: from then to the first prediction (wall clock, as the pipeline yields it) whose
  window ends after the clip began and whose label is the clip's; negative when a prediction
  named it before it ended;
- **decision**: the label given most often by the predictions whose windows hold part of the
  clip; the accuracy is the fraction of plays whose decision is the clip's class.

Also reported: how many predictions whose windows lie wholly in the silence between clips carry
a label (silence should give none).

Speed depends on the machine and the rate (``--rate``, default that of ``edgeav run --mic``); no
test asserts it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.benchmarks.report import run_and_report
from edgeav.errors import EdgeAVError
from edgeav.runtime.audio import Microphone

#: Gap between clips (seconds): more than a window, so each play is judged on its own.
GAP = 1.5
#: Frames (10 ms) of a clip kept: those within this many dB of its loudest and this many above
#: its noise floor (its 10th-percentile frame).
TRIM_DB, FLOOR_DB = 35.0, 10.0
#: A played clip whose best normalised correlation with the captured audio is below this was not
#: heard (dropped audio, a dead stream).
MIN_CORRELATION = 0.5
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


@dataclass
class Clip:
    label: str
    samples: np.ndarray  # float32 at the model's rate, the whole file
    source: str
    sound: tuple[int, int]  # the word: its first and last-but-one sample in ``samples``


@dataclass
class Play:
    """One clip played, and what the pipeline made of it."""

    label: str
    source: str
    seconds: float  # the file's length
    sound_seconds: float  # the word's
    heard: bool = False
    start: float | None = None  # the file, in stream seconds (the microphone's clock)
    end: float | None = None
    sound_end: float | None = None  # the word's end, in stream seconds
    decision: str | None = None
    correct: bool = False
    reaction: float | None = None  # seconds from the word's end to the first prediction naming it
    labels: dict[str, int] = field(default_factory=dict)  # predictions per label over the clip


class _RecordingMicrophone(Microphone):
    """The runtime's microphone, also keeping every sample it captured and when each block
    arrived (``blocks``: ``(time.monotonic(), samples written so far)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorded: list[np.ndarray] = []
        self.blocks: list[tuple[float, int]] = []
        self.input_latency = 0.0

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        before = self._buffer.total_written  # written only here, in PortAudio's thread
        super()._callback(indata, frames, time_info, status)
        after = self._buffer.total_written
        if after > before:
            with self._lock:
                self.recorded.append(self._buffer.latest(after - before).copy())
            self.blocks.append((time.monotonic(), after))

    def _start_stream(self) -> None:
        super()._start_stream()
        latency = getattr(self._stream, "latency", 0.0)  # PortAudio's input latency (seconds)
        self.input_latency = float(latency) if isinstance(latency, (int, float)) else 0.0


# -- clips ----------------------------------------------------------------------------------------


def sound_span(samples: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """``(first, end)`` sample of the 10 ms frames within :data:`TRIM_DB` of the loudest one and
    :data:`FLOOR_DB` above the noise floor: the word, without the silence or the background noise
    around it; ``(0, 0)`` for digital silence."""
    hop = max(1, sample_rate // 100)
    n = len(samples) // hop
    if n == 0:
        return 0, len(samples)
    frames = samples[: n * hop].reshape(n, hop).astype(np.float64)
    power = np.mean(frames**2, axis=1)
    if not np.any(power > 0):
        return 0, 0
    floor = np.percentile(power, 10)
    loud = np.flatnonzero(
        (power >= power.max() * 10 ** (-TRIM_DB / 10)) & (power >= floor * 10 ** (FLOOR_DB / 10))
    )
    if loud.size == 0:  # no frame stands out of the noise: all of it
        return 0, len(samples)
    return int(loud[0] * hop), int((loud[-1] + 1) * hop)


def _read(path: Path, sample_rate: int) -> np.ndarray:
    import soundfile as sf  # noqa: PLC0415

    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise EdgeAVError(f"cannot read {path}: {exc}") from exc
    samples = samples.mean(axis=1, dtype=np.float32)
    if rate != sample_rate:
        import soxr  # noqa: PLC0415

        samples = soxr.resample(samples, rate, sample_rate).astype(np.float32)
    return samples


def load_clips(
    wavs: list[Path], labels: list[str], classes: list[str], sample_rate: int
) -> list[Clip]:
    """The given files, labelled, read at ``sample_rate``, their sound located."""
    if len(wavs) != len(labels):
        raise EdgeAVError(f"{len(wavs)} --wav file(s) but {len(labels)} label(s) in --labels")
    clips = []
    for path, label in zip(wavs, labels, strict=True):
        if label not in classes:
            raise EdgeAVError(f"label {label!r} of {path} is not one of the bundle's {classes}")
        samples = _read(path, sample_rate)
        first, end = sound_span(samples, sample_rate)
        if end - first < sample_rate // 20:
            raise EdgeAVError(f"{path} holds no sound to play")
        clips.append(Clip(label, samples, str(path), (first, end)))
    return clips


def data_clips(
    folder: Path, split: str | None, per_class: int, classes: list[str], seed: int
) -> tuple[list[Path], list[str], str]:
    """``per_class`` files of each class from ``folder/<split>/audio/<class>/``."""
    names = [split] if split else ["test-unseen", "test"]
    chosen = next((n for n in names if (folder / n / "audio").is_dir()), None)
    if chosen is None:
        raise EdgeAVError(f"{folder} has no {' or '.join(n + '/audio' for n in names)} folder")
    rng = random.Random(seed)
    wavs, labels = [], []
    for label in classes:
        files = sorted(
            p
            for p in (folder / chosen / "audio" / label).glob("*")
            if p.suffix.lower() in AUDIO_SUFFIXES
        )
        for path in rng.sample(files, min(per_class, len(files))):
            wavs.append(path)
            labels.append(label)
    if not wavs:
        raise EdgeAVError(f"no audio clips of the bundle's classes in {folder / chosen / 'audio'}")
    return wavs, labels, chosen


def parse_labels(text: str) -> list[str]:
    """``--labels``: a JSON list, inline or in a file."""
    path = Path(text)
    with contextlib.suppress(OSError, ValueError):
        if path.is_file():
            text = path.read_text()
    try:
        labels = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EdgeAVError(f"--labels is not JSON: {exc}") from exc
    if not isinstance(labels, list) or not all(isinstance(x, (str, int)) for x in labels):
        raise EdgeAVError('--labels must be a JSON list of class names, e.g. ["3", "7"]')
    return [str(x) for x in labels]


# -- measuring ------------------------------------------------------------------------------------


def _locate(recording: np.ndarray, clip: np.ndarray, lo: int, hi: int) -> tuple[int, float]:
    """Where ``clip`` starts in ``recording[lo:hi]`` (best normalised cross-correlation)."""
    lo, hi = max(0, lo), min(len(recording), hi)
    region = recording[lo:hi].astype(np.float64)
    m = len(clip)
    if len(region) < m:
        return lo, 0.0
    n = 1 << int(np.ceil(np.log2(len(region) + m)))
    corr = np.fft.irfft(np.fft.rfft(region, n) * np.conj(np.fft.rfft(clip.astype(np.float64), n)))
    corr = corr[: len(region) - m + 1]
    power = np.concatenate([[0.0], np.cumsum(region**2)])
    energy = power[m:] - power[:-m]  # of each stretch of m samples
    score = corr / (np.sqrt(np.maximum(energy, 1e-12)) * np.linalg.norm(clip) + 1e-12)
    best = int(np.argmax(score))
    return lo + best, float(score[best])


def _sample_at(blocks: list[tuple[float, int]], t: float) -> int:
    """Samples written by wall time ``t`` (from the callback's arrival times)."""
    times = np.array([b[0] for b in blocks])
    counts = np.array([b[1] for b in blocks])
    return int(np.interp(t, times, counts))


def _arrival(blocks: list[tuple[float, int]], sample: int, rate: int) -> float:
    """Wall time at which sample number ``sample`` reached the callback."""
    counts = np.array([b[1] for b in blocks])
    j = min(int(np.searchsorted(counts, sample)), len(blocks) - 1)
    t, written = blocks[j]
    return t - (written - sample) / rate


def _judge(
    plays: list[Play],
    played: list[tuple[float, float]],
    clips: list[Clip],
    records: list[tuple[float, Any]],
    mic: _RecordingMicrophone,
    rate: int,
    window_s: float,
) -> None:
    recording = np.concatenate(mic.recorded) if mic.recorded else np.zeros(0, np.float32)
    for play, clip, (t0, t1) in zip(plays, clips, played, strict=True):
        lo = _sample_at(mic.blocks, t0) - rate // 2
        hi = _sample_at(mic.blocks, t1) + rate
        start, score = _locate(recording, clip.samples, lo, hi)
        if score < MIN_CORRELATION:
            continue
        end, sound_end = start + len(clip.samples), start + clip.sound[1]
        play.heard, play.start, play.end = True, start / rate, end / rate
        play.sound_end = sound_end / rate
        ended = _arrival(mic.blocks, sound_end, rate)
        over = [
            p
            for _, p in records
            if p.window is not None and play.start < p.window[1] <= play.end + window_s
        ]
        counts = Counter(p.label for p in over if p.label is not None)
        play.labels = dict(counts)
        if counts:
            play.decision = max(
                counts,
                key=lambda lab: (
                    counts[lab],
                    sum(p.confidence or 0 for p in over if p.label == lab),
                ),
            )
        play.correct = play.decision == play.label
        for wall, p in records:
            if p.window is not None and p.window[1] > play.start and p.label == play.label:
                if p.window[1] <= play.end + window_s + 1.0:  # not a later play of the same class
                    play.reaction = round(wall - ended, 4)
                break


def _silence_labels(
    plays: list[Play], records: list[tuple[float, Any]], window_s: float
) -> tuple[int, int]:
    """(predictions with a label, predictions) among those whose window lies wholly between two
    heard clips."""
    spans = sorted((p.start, p.end) for p in plays if p.heard)
    labelled = total = 0
    for (_, prev_end), (next_start, _) in zip(spans, spans[1:], strict=False):
        for _, p in records:
            if p.window is not None and p.window[0] >= prev_end and p.window[1] <= next_start:
                total += 1
                labelled += p.label is not None
    return labelled, total


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if values else None


def measure(
    bundle_path: Path,
    clips: list[Clip],
    *,
    repeats: int = 1,
    gap: float = GAP,
    rate: float | None = None,
    seed: int = 0,
    threads: int | None = None,
    smooth: int | None = None,
    threshold: float | None = None,
    log=lambda message: None,
) -> dict[str, Any]:
    """Play ``clips`` (each ``repeats`` times) into a private PulseAudio server while the
    pipeline listens through the real microphone path; see the module's docstring."""
    import soundfile as sf  # noqa: PLC0415

    from edgeav.benchmarks.pulse import PulseServer  # noqa: PLC0415
    from edgeav.bundle import read_bundle  # noqa: PLC0415
    from edgeav.commands.run import MIC_RATE  # noqa: PLC0415
    from edgeav.runtime.pipeline import RunOptions, open_pipeline  # noqa: PLC0415

    bundle = read_bundle(bundle_path)
    sample_rate = bundle.feature_config.sample_rate
    rate = MIC_RATE if rate is None else rate
    order = [c for c in clips for _ in range(repeats)]
    random.Random(seed).shuffle(order)
    plays = [
        Play(
            c.label,
            c.source,
            round(len(c.samples) / sample_rate, 3),
            round((c.sound[1] - c.sound[0]) / sample_rate, 3),
        )
        for c in order
    ]
    records: list[tuple[float, Any]] = []
    played: list[tuple[float, float]] = []
    failure: list[BaseException] = []
    with (
        tempfile.TemporaryDirectory(prefix="edgeav-live-") as tmp,
        PulseServer(Path(tmp) / "pulse") as pulse,
        pulse.applied(),
    ):
        wavs = []
        for i, clip in enumerate(order):
            wav = Path(tmp) / f"clip{i:03d}.wav"
            sf.write(wav, clip.samples, sample_rate, subtype="FLOAT")
            wavs.append(wav)
        if "sounddevice" in sys.modules:  # PortAudio read ALSA's configuration before ours
            sd = sys.modules["sounddevice"]
            sd._terminate()
            sd._initialize()
        mic = _RecordingMicrophone(None, sample_rate=sample_rate, log=log)
        options = RunOptions(mic=True, rate=rate, threads=threads, threshold=threshold)
        if smooth is not None:
            options = replace(options, smooth=smooth)
        with open_pipeline(bundle, options, audio=mic, log=log) as pipe:
            window_s = pipe.window / sample_rate

            def player() -> None:
                try:
                    deadline = time.monotonic() + 20
                    while mic.last_write is None or len(records) < 2:  # capturing, ticking
                        if time.monotonic() > deadline:
                            raise EdgeAVError("the microphone delivered nothing for 20 s")
                        time.sleep(0.05)
                    for k, wav in enumerate(wavs):
                        time.sleep(gap)
                        played.append(pulse.play(wav))
                        log(f"played {k + 1}/{len(wavs)}: {order[k].label} ({order[k].source})")
                    time.sleep(gap)
                except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                    failure.append(exc)
                finally:
                    pipe.stop()

            thread = threading.Thread(target=player, name="edgeav-live-player", daemon=True)
            thread.start()
            try:
                for prediction in pipe.run():
                    records.append((time.monotonic(), prediction))
            finally:
                pipe.stop()
                thread.join(timeout=30)
            summary = pipe.summary()
    if failure:
        raise failure[0]
    _judge(plays, played, order, records, mic, sample_rate, window_s)
    heard = [p for p in plays if p.heard]
    reactions = [p.reaction for p in heard if p.reaction is not None]
    silence_labelled, silence_total = _silence_labels(plays, records, window_s)
    per_class: dict[str, dict[str, int]] = {}
    for p in plays:
        row = per_class.setdefault(p.label, {"plays": 0, "correct": 0})
        row["plays"] += 1
        row["correct"] += p.correct
    return {
        "bundle": str(bundle_path),
        "classes": list(bundle.classes),
        "rate_hz": rate,
        "smooth": getattr(options, "smooth", 1),
        # the voice decides alone here: the bundle's audio threshold, or --threshold
        "threshold": pipe.decision["thresholds"]["audio"],
        "window_s": window_s,
        "gap_s": gap,
        "plays": len(plays),
        "heard": len(heard),
        "accuracy": round(sum(p.correct for p in plays) / len(plays), 4) if plays else None,
        "named": round(len(reactions) / len(plays), 4) if plays else None,
        "reaction_s": {
            "p50": _percentile(reactions, 50),
            "p95": _percentile(reactions, 95),
            "min": _percentile(reactions, 0),
            "max": _percentile(reactions, 100),
        },
        "input_latency_s": round(mic.input_latency, 4),
        "silence": {"predictions": silence_total, "labelled": silence_labelled},
        "per_class": per_class,
        "ticks": summary["ticks"],
        "ticks_skipped": summary["ticks_skipped"],
        "latency_ms": summary["latency_ms"],
        "backend": summary["backend"],
        "reopens": mic.reopens,
        "per_play": [asdict(p) for p in plays],
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_result(result: dict[str, Any]) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    console = Console()
    console.print(
        f"edgeav live microphone: {result['bundle']} ({result['backend']}, "
        f"{result['rate_hz']:g} Hz, {result['window_s']:g} s windows, smoothing over "
        f"{result['smooth']} tick(s), threshold {result['threshold']:.3f}; PulseAudio null sink -> "
        "ALSA -> PortAudio)",
        highlight=False,
    )
    table = Table(show_edge=False)
    table.add_column("class")
    table.add_column("plays", justify="right")
    table.add_column("correct", justify="right")
    for label, row in result["per_class"].items():
        table.add_row(label, str(row["plays"]), str(row["correct"]))
    console.print(table)
    reaction = result["reaction_s"]
    accuracy = result["accuracy"]
    console.print(
        f"accuracy {100 * accuracy:.1f} % of {result['plays']} plays "
        f"({result['heard']} found in the captured audio); named "
        f"{100 * result['named']:.1f} %; reaction p50 {_seconds(reaction['p50'])} s, "
        f"p95 {_seconds(reaction['p95'])} s (min {_seconds(reaction['min'])}, max "
        f"{_seconds(reaction['max'])}; from the word's last sample reaching the microphone; "
        f"PortAudio's stated input latency {result['input_latency_s']:.3f} s); labels in silence "
        f"{result['silence']['labelled']}/{result['silence']['predictions']}",
        highlight=False,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgeav.benchmarks.live",
        description="Accuracy and reaction time of `edgeav run --mic` on clips played into a "
        "private PulseAudio server (needs pulseaudio, pulseaudio-utils, libasound2-plugins).",
    )
    parser.add_argument("bundle", type=Path, help="model.edgeav")
    parser.add_argument(
        "--wav", type=Path, action="append", default=[], help="a clip to play (repeatable)"
    )
    parser.add_argument(
        "--labels", help="JSON list of the --wav files' classes (inline or a .json file)"
    )
    parser.add_argument("--data", type=Path, help="a data set folder to take clips from instead")
    parser.add_argument("--split", help="its split (default: test-unseen if present, else test)")
    parser.add_argument("--per-class", type=int, default=2, help="clips per class from --data")
    parser.add_argument("--repeats", type=int, default=1, help="plays of each clip (default 1)")
    parser.add_argument("--gap", type=float, default=GAP, help=f"seconds between clips ({GAP})")
    parser.add_argument(
        "--rate", type=float, help="predictions per second (default: edgeav run --mic's)"
    )
    parser.add_argument("--threads", type=int, help="interpreter threads")
    parser.add_argument(
        "--smooth", type=int, help="decide on the mean of the last N ticks (default: RunOptions')"
    )
    parser.add_argument(
        "--threshold", type=float, help="decision threshold (default: the bundle's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="order of the plays")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        if not args.quiet:
            print(f"edgeav: {message}", file=sys.stderr, flush=True)

    def run() -> dict:
        from edgeav.bundle import read_bundle  # noqa: PLC0415

        bundle = read_bundle(args.bundle)
        if "audio" not in bundle.modalities:
            raise EdgeAVError(f"{args.bundle} has no audio model")
        classes = list(bundle.classes)
        if args.wav:
            if args.data is not None:
                raise EdgeAVError("give either --wav/--labels or --data, not both")
            if args.labels is None:
                raise EdgeAVError("--wav needs --labels (a JSON list, one class per file)")
            wavs, labels = args.wav, parse_labels(args.labels)
        elif args.data is not None:
            wavs, labels, split = data_clips(
                args.data, args.split, args.per_class, classes, args.seed
            )
            log(f"{len(wavs)} clips from {args.data / split}")
        else:
            raise EdgeAVError("no clips: give --wav FILE ... --labels JSON, or --data DIR")
        if args.repeats < 1 or args.gap <= 0:
            raise EdgeAVError("--repeats must be >= 1 and --gap > 0")
        clips = load_clips(list(wavs), labels, classes, bundle.feature_config.sample_rate)
        return measure(
            args.bundle,
            clips,
            repeats=args.repeats,
            gap=args.gap,
            rate=args.rate,
            seed=args.seed,
            threads=args.threads,
            smooth=args.smooth,
            threshold=args.threshold,
            log=log,
        )

    return run_and_report(run, as_json=args.json, show=print_result)


if __name__ == "__main__":
    sys.exit(main())
