"""The fused-classification loop: :func:`open_pipeline` builds it, :meth:`Pipeline.step` is one tick.

A tick is a straight line: take the frame and the audio window for stream time ``t`` from the
sources, prepare them (image preprocessing from the bundle's
:class:`~edgeav.preprocess.ImageSpec`; the audio window through the bundle's front-end,
:class:`~edgeav.runtime.frontend.FrontEnd`: averaged features, log-mel frames or speech
embeddings), invoke each model, fuse (:func:`edgeav.fusion.fuse`)
and return a :class:`Prediction`. A modality whose input is absent, stale or silent is left out
of the fusion and flagged; the other decides alone.

**The decision.** Each model's probabilities are first tempered by the bundle's
:class:`~edgeav.calibration.Calibration` (fitted on held-out voices and writers), so a
confidence means about what it says. A modality whose tempered confidence is below its
``min_confidence`` (nothing in view, a window of noise) is left out too, flagged ``unsure``
(when every modality is unsure the record still shows the image's probabilities but names
nothing). The
fused probabilities are averaged over the last ``smooth`` ticks; below the decision threshold
the record names no label and ``reason`` says why. The bundle holds a threshold per set of
modalities used (:data:`~edgeav.calibration.USED_SETS`: a voice heard with nothing in view needs
less confidence than a frame read in silence, which lines and bricks can fool); ``threshold``
overrides them all.

**The clock.** Tick ``k`` is at stream time ``t_k = first + k * period`` with ``period = 1 /
rate`` and ``first = max(period, audio window)`` when audio is used (else ``period``), so every
tick describes ``[t_k - window, t_k)``. Files answer for exactly that time (see
:mod:`edgeav.runtime.sources`); live sources give their newest data. ``realtime`` only decides
whether the loop sleeps until each tick is due (skipping the ticks it is too late for) or runs
as fast as it can (``--no-realtime``, files only: deterministic).

The tick is serial; the interpreters' own threads (``threads``) are the parallelism. NumPy's
BLAS is held to one thread while a pipeline is open: its matrices are small, and a BLAS thread
pool would only compete with the interpreters for the device's cores.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.calibration import USED_SETS, fuse_tempered, used_key
from edgeav.candidates import pick
from edgeav.errors import EdgeAVError
from edgeav.parallel import one_blas_thread
from edgeav.runtime.interpreter import Model, load_interpreter
from edgeav.runtime.sources import AudioSource, Frame, FrameSource, Window

#: The modalities, in fusion order.
MODALITIES = ("image", "audio")
#: Stages timed on every tick, in milliseconds (``compute`` is everything after capture).
STAGES = ("capture", "preprocess", "image", "frontend", "audio", "fusion", "compute", "total")
NO_INPUT = "no input given: use --camera (index, video file or URL) and/or --mic / --audio-file"
#: Ticks kept for the summary's percentiles (fixed size: long runs do not grow memory).
TIMING_WINDOW = 4096


@dataclass(frozen=True)
class RunOptions:
    """What ``edgeav run`` is asked to do (every field is one of its options).

    Attributes:
        camera: ``--camera``: device index, ``picam[:N]``, video file or stream URL; None for
            no camera.
        camera_size: ``--camera-size``: (width, height) asked of a live camera (None: its own;
            640x480 for the camera module). camera_fps: ``--camera-fps``: frames a second asked.
        mic: ``--mic``: the default microphone. mic_device: ``--mic-device`` (implies mic).
        audio_file: ``--audio-file``: a WAV/FLAC file instead of the microphone.
        rate: ticks per second.
        threads: interpreter threads per model (None: the backend's default).
        realtime: False runs files on their own clock as fast as possible.
        duration: stop after the tick at ``t <= duration`` seconds.
        loop: restart files at their end.
        backend: force a TFLite backend (see :mod:`edgeav.runtime.interpreter`).
        stale_after: seconds after which a live source's newest data is stale (default
            ``max(1, 2 / rate)``).
        silence_dbfs: an audio window quieter than this (RMS, dB full scale) is silent.
        smooth: the decision is taken on the mean of the fused probabilities of the last
            ``smooth`` ticks that had any (overlapping windows hear one word several times).
        threshold: the decision names no label below this confidence, whichever modalities it
            used (None: the bundle's threshold for the modalities used).
        top_k: how many of the most likely labels each record lists.
    """

    camera: str | None = None
    camera_size: tuple[int, int] | None = None
    camera_fps: float | None = None
    mic: bool = False
    mic_device: str | None = None
    audio_file: Path | None = None
    rate: float = 1.0
    threads: int | None = None
    realtime: bool = True
    duration: float | None = None
    loop: bool = False
    backend: str | None = None
    stale_after: float | None = None
    silence_dbfs: float = -60.0
    smooth: int = 1
    threshold: float | None = None
    top_k: int = 3

    @property
    def wants_mic(self) -> bool:
        return self.mic or self.mic_device is not None


@dataclass
class Prediction:
    """One tick's result.

    Attributes:
        tick: its number, from 0. t: its stream time in seconds.
        label, confidence: the decision: the most likely label of the fused probabilities
            averaged over the last ``smooth`` ticks, and its probability. ``label`` is None when
            no modality could be used or the confidence is below the threshold.
        reason: why ``label`` is None (else None).
        top: the ``top_k`` most likely labels of the decision, ``[[label, p], ...]``.
        probs: ``image``, ``audio`` (tempered) and ``fused`` (this tick's own, not smoothed)
            probabilities as lists, each None if the modality did not run.
        present: modalities that had input this tick. used: modalities fused.
        flags: modality -> ``"absent"`` | ``"stale"`` | ``"silent"`` | ``"unsure"`` for those
            left out.
        frame: ``{"index", "t"}`` of the frame used, or None.
        window: ``[start, end]`` (seconds) of the audio window used, or None.
        timings_ms: milliseconds per stage of :data:`STAGES` that ran.
    """

    tick: int
    t: float
    label: str | None
    confidence: float | None
    reason: str | None
    top: list[list[Any]]
    probs: dict[str, list[float] | None]
    present: list[str]
    used: list[str]
    flags: dict[str, str]
    frame: dict[str, Any] | None
    window: list[float] | None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record ``edgeav run --json`` prints."""
        return asdict(self)


#: :meth:`Pipeline.set_decision`'s "leave the threshold as it is".
_UNCHANGED = object()


def _check_threshold(threshold: Any) -> float:
    number = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
    if not (number and 0.0 <= threshold <= 1.0):
        raise EdgeAVError(f"threshold must be a probability in [0, 1], got {threshold!r}")
    return float(threshold)


def _check_smooth(smooth: Any) -> int:
    if not (isinstance(smooth, int) and not isinstance(smooth, bool) and 1 <= smooth <= 100):
        raise EdgeAVError(f"smoothing must be 1..100 ticks, got {smooth!r}")
    return smooth


def _dbfs(samples: np.ndarray) -> float:
    """RMS level in dB full scale (-inf for digital silence)."""
    power = float(np.mean(np.square(samples, dtype=np.float64))) if samples.size else 0.0
    return 10.0 * math.log10(power) if power > 0 else -math.inf


class _Timings:
    """Per-stage latencies of the last :data:`TIMING_WINDOW` ticks (preallocated)."""

    def __init__(self) -> None:
        self._data = np.full((len(STAGES), TIMING_WINDOW), np.nan)
        self.count = 0

    def add(self, timings: dict[str, float]) -> None:
        col = self.count % TIMING_WINDOW
        for row, stage in enumerate(STAGES):
            self._data[row, col] = timings.get(stage, np.nan)
        self.count += 1

    def percentiles(self) -> dict[str, dict[str, float]]:
        out = {}
        for row, stage in enumerate(STAGES):
            values = self._data[row, : min(self.count, TIMING_WINDOW)]
            values = values[np.isfinite(values)]
            if values.size:
                p50, p95 = np.percentile(values, [50, 95])
                out[stage] = {"p50": round(float(p50), 3), "p95": round(float(p95), 3)}
        return out


class Pipeline:
    """Fused classification over a frame source and/or an audio source (already open).

    Args:
        bundle: a validated :class:`edgeav.bundle.Bundle`.
        frames, audio: the sources (either may be None, not both).
        options: rate, threads, realtime, duration, backend, stale_after, silence_dbfs (the
            source fields of :class:`RunOptions` are not used here).

    Raises:
        EdgeAVError: no source, a source the bundle has no model for, a live source without
            ``realtime``, a bad rate or duration, a model that does not load.
    """

    def __init__(
        self,
        bundle: Any,
        *,
        frames: FrameSource | None = None,
        audio: AudioSource | None = None,
        options: RunOptions | None = None,
    ) -> None:
        options = options or RunOptions()
        if frames is None and audio is None:
            raise EdgeAVError(NO_INPUT)
        rate = options.rate
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and 0 < rate <= 1000):
            raise EdgeAVError(f"tick rate must be a number in (0, 1000] Hz, got {rate!r}")
        duration = options.duration
        if duration is not None and not (math.isfinite(duration) and duration > 0):
            raise EdgeAVError(f"duration must be a positive number of seconds, got {duration!r}")
        name = str(getattr(bundle, "path", None) or "bundle")
        sources = {"image": frames, "audio": audio}
        for modality, source in sources.items():
            if source is not None and bundle.model_bytes(modality) is None:
                flag = "--camera" if modality == "image" else "--mic/--audio-file"
                raise EdgeAVError(f"{name} has no {modality} model; run without {flag}")
            if source is not None and source.live and not options.realtime:
                raise EdgeAVError(
                    f"--no-realtime needs file sources (a video file, --audio-file); "
                    f"{source.label} is live"
                )
        from edgeav.preprocess import image_candidates  # noqa: PLC0415

        self._candidates = image_candidates
        self.bundle, self.frames, self.audio, self.options = bundle, frames, audio, options
        self.classes = list(bundle.classes)
        self.image_spec, self.feature_config = bundle.image_spec, bundle.feature_config
        self.window = self.feature_config.window_samples
        self.period_us = int(round(1e6 / rate))
        first = self.period_us
        if audio is not None:
            first = max(first, int(round(self.window / self.feature_config.sample_rate * 1e6)))
        self.first_us = first
        self.stale_after = options.stale_after or max(1.0, 2.0 / rate)
        self.models: dict[str, Model] = {
            m: load_interpreter(
                bundle.model_bytes(m),
                options.threads,
                backend=options.backend,
                name=f"{name} {m} model",
                output=bundle.model_output(m),
            )
            for m, source in sources.items()
            if source is not None
        }
        self.frontend = None
        if audio is not None:
            from edgeav.runtime.frontend import FrontEnd  # noqa: PLC0415

            self.frontend = FrontEnd(
                bundle.audio_input,
                self.feature_config,
                bundle.frontend_models(),
                threads=options.threads,
            )
        self.backend = next(iter(self.models.values())).backend
        self.ticks = self.ticks_skipped = 0
        self.modality_counts = {
            m: {"used": 0, "absent": 0, "stale": 0, "silent": 0, "unsure": 0} for m in self.models
        }
        self.calibration = bundle.calibration
        #: The threshold set by --threshold or :meth:`set_decision` (None: the bundle's).
        self.threshold: float | None = (
            None if options.threshold is None else _check_threshold(options.threshold)
        )
        if not (isinstance(options.top_k, int) and 1 <= options.top_k <= len(self.classes)):
            raise EdgeAVError(
                f"top-k must be 1..{len(self.classes)} (the bundle's labels), got {options.top_k!r}"
            )
        self.end_reason = ""
        self._recent: deque[np.ndarray] = deque(maxlen=_check_smooth(options.smooth))
        # threshold and smoothing may be changed from another thread (set_decision); the models
        # may be invoked from another thread (classify): each under its lock
        self._decision_lock = threading.Lock()
        self._models_lock = threading.Lock()
        #: The newest tick's inputs (frame, audio window) and audio level (dBFS), for a reader
        #: such as the live page (:mod:`edgeav.runtime.serve`); replaced, never mutated.
        self.last_frame: Frame | None = None
        self.last_window: Window | None = None
        self.audio_level: float | None = None
        self._timings = _Timings()
        self._stop = threading.Event()
        self._started: float | None = None
        self._stopped: float | None = None

    def _flag(self, data: Frame | Window | None, now: float) -> str | None:
        """Why an input cannot be used (absent, stale), or None."""
        if data is None:
            return "absent"
        if data.received is not None and now - data.received > self.stale_after:
            return "stale"
        return None

    def step(self, t_us: int, *, now: float | None = None) -> Prediction | None:
        """One tick at stream time ``t_us`` (µs); None once a file source has ended."""
        clock = time.perf_counter
        timings: dict[str, float] = {}
        t0 = clock()
        now = time.monotonic() if now is None else now
        frame = self.frames.frame_at(t_us) if self.frames is not None else None
        window = self.audio.window(t_us, self.window) if self.audio is not None else None
        if any(s is not None and s.ended for s in (self.frames, self.audio)):
            return None
        t1 = clock()
        timings["capture"] = (t1 - t0) * 1e3
        level = None if window is None else _dbfs(window.samples)
        self.last_frame, self.last_window, self.audio_level = frame, window, level

        flags: dict[str, str] = {}
        for modality, data in (("image", frame), ("audio", window)):
            if modality in self.models and (flag := self._flag(data, now)):
                flags[modality] = flag
        present = [m for m in self.models if m not in flags]
        if "audio" in present and level < self.options.silence_dbfs:
            flags["audio"] = "silent"

        probs = self._probabilities(
            None if "image" in flags else getattr(frame, "image", None),
            None if "audio" in flags else getattr(window, "samples", None),
            timings,
        )
        t = clock()
        fused, used = self._combine(probs, flags)
        end = clock()
        timings["fusion"] = (end - t) * 1e3
        timings["compute"] = (end - t1) * 1e3
        timings["total"] = (end - t0) * 1e3
        return self._record(t_us, probs, fused, present, used, flags, frame, window, timings)

    def _probabilities(
        self, image: np.ndarray | None, samples: np.ndarray | None, timings: dict[str, float]
    ) -> dict[str, np.ndarray | None]:
        """Tempered probabilities per modality of a BGR ``image`` and an audio ``window``
        (either None: not run), timing each stage into ``timings``."""
        clock = time.perf_counter
        probs: dict[str, np.ndarray | None] = dict.fromkeys(MODALITIES)
        with self._models_lock:
            if "image" in self.models and image is not None:
                t = clock()
                x = self._candidates(image, self.image_spec, source_order="bgr")
                timings["preprocess"] = (clock() - t) * 1e3
                t = clock()
                # each candidate layout of the frame, the most confident reading kept
                p = pick(np.stack([self.models["image"].probabilities(c) for c in x])[None])[0]
                probs["image"] = self.calibration.apply("image", p)
                timings["image"] = (clock() - t) * 1e3
            if "audio" in self.models and samples is not None:
                t = clock()
                x = self.frontend(samples)
                timings["frontend"] = (clock() - t) * 1e3
                t = clock()
                p = self.models["audio"].probabilities(x)
                probs["audio"] = self.calibration.apply("audio", p)
                timings["audio"] = (clock() - t) * 1e3
        return probs

    def _combine(
        self, probs: dict[str, np.ndarray | None], flags: dict[str, str]
    ) -> tuple[np.ndarray | None, list[str]]:
        """Gate (adding ``unsure`` to ``flags``) and fuse: (fused probabilities, modalities used)."""
        fused, used, unsure = fuse_tempered(probs, self.calibration, self.bundle.fusion)
        flags.update(unsure)
        return fused, used

    def classify(
        self, image: np.ndarray | None = None, samples: np.ndarray | None = None
    ) -> Prediction:
        """The fused record of one BGR ``image`` and/or one audio window of exactly
        ``self.window`` samples at the bundle's rate, outside the tick loop (``tick`` -1).

        The same models, preprocessing, front-end, calibration, gate and threshold as a tick,
        without smoothing and without counting; safe to call from another thread while
        :meth:`run` ticks (a tick waits at most for one such call's inference).
        """
        if samples is not None and len(samples) != self.window:
            raise EdgeAVError(f"an audio window must be {self.window} samples, got {len(samples)}")
        clock = time.perf_counter
        t0 = clock()
        flags: dict[str, str] = {}
        for modality, data in (("image", image), ("audio", samples)):
            if modality in self.models and data is None:
                flags[modality] = "absent"
        present = [m for m in self.models if m not in flags]
        if "audio" in present and _dbfs(samples) < self.options.silence_dbfs:
            flags["audio"] = "silent"
        timings: dict[str, float] = {}
        probs = self._probabilities(
            None if "image" in flags else image, None if "audio" in flags else samples, timings
        )
        t = clock()
        fused, used = self._combine(probs, flags)
        end = clock()
        timings["fusion"] = (end - t) * 1e3
        timings["total"] = (end - t0) * 1e3
        with self._decision_lock:
            decided = self._decide(fused, fused, used, probs, flags)
        return Prediction(
            -1, 0.0, *decided, **self._describe(probs, fused, present, used, flags, timings)
        )

    def set_decision(self, *, threshold: Any = _UNCHANGED, smooth: int | None = None) -> None:
        """Change the decision threshold and/or the smoothing (ticks) from any thread; the next
        tick decides with them (a shorter smoothing keeps the newest ticks). ``threshold`` None
        goes back to the bundle's thresholds.

        Raises:
            EdgeAVError: a threshold outside [0, 1], a smoothing outside 1..100.
        """
        if threshold is not _UNCHANGED and threshold is not None:
            threshold = _check_threshold(threshold)
        smooth = None if smooth is None else _check_smooth(smooth)
        with self._decision_lock:
            if threshold is not _UNCHANGED:
                self.threshold = threshold
            if smooth is not None and smooth != self._recent.maxlen:
                self._recent = deque(self._recent, maxlen=smooth)

    @property
    def decision(self) -> dict[str, Any]:
        """The decision's settings now: ``threshold`` (the one set for every decision, or None:
        the bundle's), ``thresholds`` (the one in force per set of modalities used) and
        ``smooth``."""
        with self._decision_lock:
            if self.threshold is None:
                in_force = dict(self.calibration.threshold)
            else:
                in_force = dict.fromkeys(USED_SETS, self.threshold)
            return {
                "threshold": self.threshold,
                "thresholds": in_force,
                "smooth": self._recent.maxlen,
            }

    def _threshold_for(self, used: Any) -> float:
        if self.threshold is not None:
            return self.threshold
        return self.calibration.threshold_for(used)

    def _describe(self, probs, fused, present, used, flags, timings) -> dict[str, Any]:
        return {
            "probs": {
                m: None if p is None else [float(v) for v in p]
                for m, p in (*probs.items(), ("fused", fused))
            },
            "present": present,
            "used": used,
            "flags": flags,
            "frame": None,
            "window": None,
            "timings_ms": {k: round(v, 3) for k, v in timings.items()},
        }

    def _record(self, t_us, probs, fused, present, used, flags, frame, window, timings):
        for modality, counts in self.modality_counts.items():
            if modality in used:
                counts["used"] += 1
            elif modality in flags:
                counts[flags[modality]] += 1
        with self._decision_lock:
            decision = None
            if fused is not None and used:
                self._recent.append(fused)
                decision = np.mean(self._recent, axis=0) if len(self._recent) > 1 else fused
            elif fused is not None:  # every modality unsure: shown, never smoothed in or named
                decision = fused
            label, confidence, reason, top = self._decide(decision, fused, used, probs, flags)
        described = self._describe(probs, fused, present, used, flags, timings)
        described["frame"] = (
            None if frame is None else {"index": frame.index, "t": round(frame.t, 6)}
        )
        described["window"] = (
            None if window is None else [round(window.start, 6), round(window.end, 6)]
        )
        prediction = Prediction(
            self.ticks, round(t_us / 1e6, 6), label, confidence, reason, top, **described
        )
        self.ticks += 1
        self._timings.add(timings)
        return prediction

    def _decide(self, decision, fused, used, probs, flags):
        """(label, confidence, reason, top) of the ``decision`` probabilities."""
        label, confidence, reason, top = None, None, None, []
        if decision is None:
            reason = "no usable input: " + ", ".join(f"{m} {f}" for m, f in flags.items())
        else:
            order = np.argsort(-decision, kind="stable")
            best = int(order[0])
            confidence = float(decision[best])
            top = [
                [self.classes[i], round(float(decision[i]), 6)] for i in order[: self.options.top_k]
            ]
            if not used:
                reason = "unsure: " + ", ".join(
                    f"{m} {max(probs[m]):.2f} < {self.calibration.min_confidence[m]:.2f}"
                    for m in flags
                    if flags[m] == "unsure"
                )
            elif confidence >= (threshold := self._threshold_for(used)):
                label = self.classes[best]
            else:
                reason = (
                    f"uncertain: confidence {confidence:.2f} < {used_key(used)} threshold "
                    f"{threshold:.2f}"
                )
        return label, confidence, reason, top

    def run(self) -> Iterator[Prediction]:
        """One prediction per tick until a file ends, ``duration`` passes or :meth:`stop`."""
        self._started = time.monotonic()
        duration_us = None if self.options.duration is None else self.options.duration * 1e6
        k = 0
        try:
            while not self._stop.is_set():
                t_us = self.first_us + k * self.period_us
                if duration_us is not None and t_us > round(duration_us):
                    self.end_reason = "duration"
                    return
                if self.options.realtime:
                    delay = self._started + t_us / 1e6 - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        break
                    late = int((time.monotonic() - self._started) * 1e6 - t_us) // self.period_us
                    if late > 0:  # too slow for the rate: skip to the current tick
                        self.ticks_skipped += late
                        k += late
                        t_us = self.first_us + k * self.period_us
                prediction = self.step(t_us)
                if prediction is None:
                    self.end_reason = "end of input"
                    return
                yield prediction
                k += 1
            self.end_reason = self.end_reason or "stopped"
        finally:
            self._stopped = time.monotonic()

    def stop(self) -> None:
        """Ask :meth:`run` to end after the current tick (thread- and signal-safe)."""
        self._stop.set()

    def summary(self) -> dict[str, Any]:
        """Ticks, per-stage latency p50/p95 (ms), frames dropped, audio overflows, modality use."""
        started = self._started or time.monotonic()
        elapsed = (self._stopped or time.monotonic()) - started
        out: dict[str, Any] = {
            "ticks": self.ticks,
            "ticks_skipped": self.ticks_skipped,
            "seconds": round(elapsed, 3),
            "ticks_per_second": round(self.ticks / elapsed, 3) if elapsed > 0 else None,
            "end": self.end_reason or "stopped",
            "backend": self.backend,
            "threads": self.options.threads,
            "latency_ms": self._timings.percentiles(),
            "modalities": self.modality_counts,
            "frames_dropped": self.frames.frames_dropped if self.frames is not None else 0,
            "audio_overflows": self.audio.overflows if self.audio is not None else 0,
        }
        if self.frames is not None:
            out["camera"] = self.frames.stats()
        if self.audio is not None:
            out["audio"] = self.audio.stats()
        return out


def open_sources(
    bundle: Any, options: RunOptions, log: Callable[[str], None] | None = None
) -> tuple[FrameSource | None, AudioSource | None]:
    """The sources :class:`RunOptions` names, not yet opened."""
    from edgeav.runtime.audio import AudioFile, Microphone  # noqa: PLC0415
    from edgeav.runtime.camera import open_frame_source  # noqa: PLC0415

    if options.wants_mic and options.audio_file is not None:
        raise EdgeAVError("give either --mic or --audio-file, not both")
    if not options.realtime and options.wants_mic:
        raise EdgeAVError("--no-realtime needs file sources; use --audio-file, not --mic")
    frames = None
    if options.camera is not None:
        frames = open_frame_source(
            options.camera,
            loop=options.loop,
            log=log,
            size=options.camera_size,
            fps=options.camera_fps,
        )
        if frames.live and not options.realtime:
            raise EdgeAVError(f"--no-realtime needs file sources; {frames.label} is live")
    rate = bundle.feature_config.sample_rate if "audio" in bundle.modalities else 16000
    audio: AudioSource | None = None
    if options.audio_file is not None:
        audio = AudioFile(options.audio_file, sample_rate=rate, loop=options.loop)
    elif options.wants_mic:
        audio = Microphone(options.mic_device, sample_rate=rate, log=log)
    return frames, audio


@contextlib.contextmanager
def open_pipeline(
    bundle: Any,
    options: RunOptions,
    *,
    frames: FrameSource | None = None,
    audio: AudioSource | None = None,
    log: Callable[[str], None] | None = None,
) -> Iterator[Pipeline]:
    """Build the sources (those ``options`` names, or the ``frames``/``audio`` given), open
    them, build the :class:`Pipeline`, and close everything on exit.

    ``bundle`` is a :class:`~edgeav.bundle.Bundle` or the path of one. Used by ``edgeav run``,
    the demo, the benchmarks and the soak test alike.
    """
    if frames is None and audio is None:
        if options.camera is None and not options.wants_mic and options.audio_file is None:
            raise EdgeAVError(NO_INPUT)
    if not isinstance(bundle, (str, Path)):
        loaded = bundle
    else:
        from edgeav.bundle import read_bundle  # noqa: PLC0415

        loaded = read_bundle(bundle)
    if frames is None and audio is None:
        frames, audio = open_sources(loaded, options, log)
    pipeline = Pipeline(loaded, frames=frames, audio=audio, options=options)
    with contextlib.ExitStack() as stack:
        for source in (frames, audio):
            if source is not None:
                stack.callback(source.close)
                source.open()
        stack.enter_context(one_blas_thread())
        yield pipeline
