"""The fused-classification loop: one prediction record per tick.

Each tick takes the newest camera frame and the last audio window, prepares both (image
preprocessing from the bundle's :class:`~edgeav.preprocess.ImageSpec`, audio features from its
:class:`~edgeav.features.FeatureConfig`), invokes the two models, fuses their probabilities
(:func:`edgeav.fusion.fuse`) and yields a record (see :meth:`Pipeline.step`). A modality whose
input is absent, stale or silent is left out of the fusion and flagged; the other decides alone.

**The clock.** Tick ``k`` happens at stream time ``t_k = first + k * period`` where ``period =
1 / rate`` and ``first = max(period, audio window)`` when audio is used (else ``period``), so
every tick describes the interval ``[t_k - window, t_k)``: its audio is exactly that interval
and its frame is the one on screen just before ``t_k`` (the newest frame a live camera would
hold at that instant).

- Real time (default): ``t`` is seconds since the start on the monotonic clock; the loop sleeps
  until each tick is due and skips ticks it is too late for, so it never lags behind the
  live streams.
- ``realtime=False`` (``--no-realtime``, file sources only): ``t`` is the files' own clock (video
  timestamps, audio sample counts, in integer microseconds); ticks run as fast as possible and
  the results are deterministic.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError
from edgeav.runtime.affinity import Pinned, pin_tick, process_cpus, tick_cpus
from edgeav.runtime.camera import Camera
from edgeav.runtime.interpreter import Model, load_interpreter
from edgeav.runtime.microphone import AudioFile, Microphone
from edgeav.runtime.worker import Worker

#: Stages timed on every tick (milliseconds in the record's ``timings_ms``).
STAGES = ("capture", "preprocess", "features", "image", "audio", "fusion", "compute", "total")
#: Ticks kept for the summary's percentiles (a fixed-size window: long runs do not grow memory).
TIMING_WINDOW = 4096


def window_samples(config: Any) -> int:
    """Samples in one feature window of a :class:`~edgeav.features.FeatureConfig`."""
    for name in ("window_samples", "n_samples"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    for name in ("window_seconds", "duration", "seconds", "window"):
        value = getattr(config, name, None)
        if isinstance(value, (int, float)) and value > 0:
            return int(round(float(value) * config.sample_rate))
    return int(config.sample_rate)  # the documented default: 1 s windows


def _dbfs(window: np.ndarray) -> float:
    """RMS level of ``window`` in dB full scale (-inf for digital silence)."""
    x = np.asarray(window, dtype=np.float32)
    # Not np.dot: OpenBLAS runs a 16,000-sample float32 dot on two threads (CPU/wall 1.95 here),
    # taking a core the camera and audio threads need for a saving of 5 µs.
    power = float(np.add.reduce(np.square(x))) / max(x.size, 1)
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
        n = min(self.count, TIMING_WINDOW)
        out = {}
        for row, stage in enumerate(STAGES):
            values = self._data[row, :n]
            values = values[np.isfinite(values)]
            if values.size:
                p50, p95 = np.percentile(values, [50, 95])
                out[stage] = {"p50": round(float(p50), 3), "p95": round(float(p95), 3)}
        return out


class Pipeline:
    """Fused classification over a camera and/or an audio source.

    Args:
        bundle: a :class:`edgeav.bundle.Bundle`.
        camera: a :class:`~edgeav.runtime.camera.Camera` (opened or not), or None.
        audio: a :class:`~edgeav.runtime.microphone.Microphone` or
            :class:`~edgeav.runtime.microphone.AudioFile`, or None.
        rate: ticks per second.
        threads: interpreter threads per model (None: the backend's default).
        realtime: False runs on the files' own clocks as fast as possible (file sources only).
        duration: stop after this many seconds: the last tick is the one at ``t <= duration``
            (``t`` is wall-clock time since the start, or stream time without ``realtime``).
        stale_after: seconds after which a live source's newest data counts as stale
            (default: ``max(1, 2 * period)``).
        silence_dbfs: an audio window quieter than this (RMS, dB full scale) counts as silent.
        backend: force a TFLite backend (see :mod:`edgeav.runtime.interpreter`).
        overlap: run the image model's invoke on a worker thread while the tick's thread
            computes the audio branch (features, audio model); the results are the same either
            way. None (default): when both models are used and the process may use at least
            two CPUs. False runs the branches one after the other on one thread.
        pin: when the branches overlap, pin the thread that runs the ticks and the worker to
            two different CPUs (the last two the process may use, not two SMT threads of one
            core; see :mod:`edgeav.runtime.affinity`). The tick's thread gets its CPUs back at
            :meth:`close`. False leaves thread placement to the OS.
        log: called with one-line messages.

    Raises:
        EdgeAVError: no modality, a modality the bundle has no model for, a live source without
            ``realtime``, a bundle whose model shapes disagree with its specs.
    """

    def __init__(
        self,
        bundle: Any,
        *,
        camera: Camera | None = None,
        audio: Microphone | AudioFile | None = None,
        rate: float = 1.0,
        threads: int | None = None,
        realtime: bool = True,
        duration: float | None = None,
        stale_after: float | None = None,
        silence_dbfs: float = -60.0,
        backend: str | None = None,
        overlap: bool | None = None,
        pin: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if camera is None and audio is None:
            raise EdgeAVError(
                "no input given: use --camera (index, video file or URL) and/or "
                "--mic / --audio-file"
            )
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and 0 < rate <= 1000):
            raise EdgeAVError(f"tick rate must be a number in (0, 1000] Hz, got {rate!r}")
        if duration is not None and not (math.isfinite(duration) and duration > 0):
            raise EdgeAVError(f"duration must be a positive number of seconds, got {duration!r}")
        self.bundle = bundle
        self.camera = camera
        self.audio = audio
        self.realtime = realtime
        self.duration = duration
        self.silence_dbfs = float(silence_dbfs)
        self._log = log or (lambda message: None)
        self.classes = list(bundle.classes)
        label = str(getattr(bundle, "path", None) or "bundle")
        for modality, source in (("image", camera), ("audio", audio)):
            if source is not None and bundle.model_bytes(modality) is None:
                flag = "--camera" if modality == "image" else "--mic/--audio-file"
                raise EdgeAVError(f"{label} has no {modality} model; run without {flag}")
        if not realtime:
            live = [s.label for s in (camera, audio) if s is not None and not _is_file(s)]
            if live:
                raise EdgeAVError(
                    f"--no-realtime needs file sources (a video file, --audio-file); "
                    f"{live[0]} is live"
                )
        self.image_spec = bundle.image_spec
        self.feature_config = bundle.feature_config
        self.fusion_weights = bundle.fusion
        self.window = window_samples(self.feature_config)
        self.window_seconds = self.window / self.feature_config.sample_rate
        self.period_us = int(round(1e6 / rate))
        first = self.period_us
        if audio is not None:
            first = max(first, int(round(self.window_seconds * 1e6)))
        self.first_us = first
        self.stale_after = stale_after if stale_after is not None else max(1.0, 2.0 / rate)

        from edgeav.features import extract  # noqa: PLC0415
        from edgeav.fusion import fuse  # noqa: PLC0415
        from edgeav.preprocess import preprocess_image  # noqa: PLC0415

        self._extract, self._fuse, self._preprocess = extract, fuse, preprocess_image
        self.models: dict[str, Model] = {}
        for modality, source in (("image", camera), ("audio", audio)):
            if source is not None:
                self.models[modality] = load_interpreter(
                    bundle.model_bytes(modality),
                    threads,
                    backend=backend,
                    name=f"{label} {modality} model",
                    output=bundle.model_output(modality),
                )
        self._check_shapes(label)
        self.backend = next(iter(self.models.values())).backend
        self.threads = threads
        self._timings = _Timings()
        #: The frame and audio window of the latest tick (for benchmarks and debugging).
        self.last_inputs: tuple[Any, np.ndarray | None] = (None, None)
        self.ticks = 0
        self.ticks_skipped = 0
        self.modality_counts = {
            m: {"used": 0, "absent": 0, "stale": 0, "silent": 0} for m in self.models
        }
        self._started: float | None = None
        self._stopped: float | None = None
        self._stop = threading.Event()
        self.end_reason = ""
        #: whether the two branches of a tick run on two threads (see ``overlap``)
        self.overlap = len(self.models) == 2 and (
            process_cpus() >= 2 if overlap is None else bool(overlap)
        )
        self.pin = bool(pin)
        #: (tick thread's CPU, worker's CPU) once an overlapped tick has pinned them, else None
        self.pinned_cpus: tuple[int, int] | None = None
        #: whether the tick and its worker spin at their hand-overs (see edgeav.runtime.worker)
        self.spin = False
        self._pinned: Pinned | None = None  # undone by close()
        self._worker: Worker | None = None  # started by the first overlapped tick

    def _check_shapes(self, label: str) -> None:
        n = len(self.classes)
        if "image" in self.models:
            model = self.models["image"]
            if model.input_shape[1:] != tuple(self.image_spec.shape):
                raise EdgeAVError(
                    f"{label}: image model input {model.input_shape[1:]} does not match the "
                    f"image spec {tuple(self.image_spec.shape)}"
                )
        if "audio" in self.models:
            model = self.models["audio"]
            if model.input_shape[1:] != (self.feature_config.dim,):
                raise EdgeAVError(
                    f"{label}: audio model input {model.input_shape[1:]} does not match the "
                    f"feature size ({self.feature_config.dim},)"
                )
        for modality, model in self.models.items():
            if model.output_shape[-1] != n:
                raise EdgeAVError(
                    f"{label}: {modality} model has {model.output_shape[-1]} outputs but the "
                    f"bundle lists {n} classes"
                )

    # --- sources ------------------------------------------------------------------------------

    def open(self, origin: float | None = None) -> Pipeline:
        """Open the sources (and start the live readers in real time, sharing ``origin``)."""
        for source in (self.camera, self.audio):
            if source is None:
                continue
            if self.realtime:
                if isinstance(source, Microphone):
                    if source._stream is None:
                        source.open()
                else:
                    source.start(origin)
            elif isinstance(source, Camera):
                if source._cap is None:
                    source.open()
            elif source._file is None:
                source.open()
        return self

    def close(self) -> None:
        """Stop the sources and release the devices (idempotent)."""
        self._stop.set()
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        if self._pinned is not None:
            self._pinned.undo()
            self._pinned = None
        if self._stopped is None and self._started is not None:
            self._stopped = time.monotonic()
        for source in (self.camera, self.audio):
            if source is not None:
                source.close()

    def stop(self) -> None:
        """Ask :meth:`run` to end after the current tick (thread- and signal-safe)."""
        self._stop.set()

    # --- one tick -----------------------------------------------------------------------------

    def _start_worker(self) -> None:
        """The invoke worker; with ``pin``, it and the calling (tick) thread on two CPUs."""
        cpus = tick_cpus() if self.pin else None
        self._worker = Worker("edgeav-image-invoke", cpu=cpus[1] if cpus else None)
        if cpus is not None and self._worker.cpu is not None:
            self._pinned = pin_tick(cpus[0], self._worker.native_id, cpus[1])
            if self._pinned is None:  # the worker was given this thread's CPUs instead
                self._worker.cpu = None
        if self._pinned is not None:
            self.pinned_cpus = self._pinned.cpus
        # Spinning at the hand-overs pays only with each thread on a CPU of its own: unpinned,
        # a spinning thread can hold the very CPU the other one needs.
        self._worker.spin = self.spin = self._worker.spin and self._pinned is not None

    def _invoke_timed(self, model: Model) -> float:
        """``model.invoke()`` (on the worker thread); its milliseconds."""
        t0 = time.perf_counter()
        model.invoke()
        return (time.perf_counter() - t0) * 1e3

    def step(self, t_us: int, *, now: float | None = None) -> dict[str, Any] | None:
        """Run one tick at stream time ``t_us`` (µs); None once a file source has ended.

        The record: ``tick``, ``t`` (s), ``label`` and ``confidence`` (None when no modality
        could be used), ``probs`` (``image``/``audio``/``fused`` lists or None), ``present``
        (modalities with input this tick), ``used`` (modalities fused), ``flags`` (modality ->
        "absent" | "stale" | "silent" for those left out), ``frame`` (index and time of the
        frame used), ``timings_ms`` (per stage; ``compute`` is everything after capture).
        """
        extract, fuse = self._extract, self._fuse
        clock = time.perf_counter
        timings: dict[str, float] = {}
        t0 = clock()
        if self._worker is not None and self.overlap:
            self._worker.arm()  # it spins, awake, while this tick captures and preprocesses
        now = time.monotonic() if now is None else now
        flags: dict[str, str] = {}
        frame = None
        window = None
        # capture
        if self.camera is not None:
            if self.realtime:
                frame = self.camera.latest()
                if self.camera.ended and self.camera.is_file:
                    return None
                if frame is None:
                    flags["image"] = "absent"
                elif now - frame.received > self.stale_after:
                    flags["image"] = "stale"
            else:
                frame = self.camera.frame_at(t_us, microseconds=True)
                if self.camera.ended:
                    return None
                if frame is None:
                    flags["image"] = "absent"
        if self.audio is not None:
            if self.realtime:
                if isinstance(self.audio, Microphone):
                    self.audio.poll()
                elif self.audio.ended:
                    if getattr(self.audio, "error", None) is not None:
                        raise self.audio.error  # e.g. NaN samples: bad input, not an end
                    return None
                window = self.audio.window(self.window, min_fill=0.5)
                if window is None:
                    flags["audio"] = "absent"
                elif (
                    self.audio.last_write is None or now - self.audio.last_write > self.stale_after
                ):
                    flags["audio"] = "stale"
            else:
                if not self.audio.advance_to(t_us, microseconds=True):
                    return None
                window = self.audio.window(self.window)
                if window is None:
                    flags["audio"] = "absent"
        t1 = clock()
        timings["capture"] = (t1 - t0) * 1e3
        self.last_inputs = (frame, window)

        probs: dict[str, np.ndarray | None] = {"image": None, "audio": None}
        present = []
        use_image = "image" in self.models and "image" not in flags
        use_audio = "audio" in self.models and "audio" not in flags
        if use_image:
            present.append("image")
        if use_audio:
            present.append("audio")
            if _dbfs(window) < self.silence_dbfs:
                flags["audio"] = "silent"
                use_audio = False
        # The image model's invoke runs on the worker's core while this thread computes the
        # audio branch; everything that needs the GIL stays on this thread.
        overlap = use_image and use_audio and self.overlap
        if overlap and self._worker is None:
            self._start_worker()
        if self._worker is not None:
            # An invoke left running by an error or an interrupted wait ends before the image
            # model is touched again (close() likewise waits for it).
            self._worker.drain()
        if use_image:
            t2 = clock()
            x = self._preprocess(frame.image, self.image_spec, source_order="bgr")
            t3 = clock()
            timings["preprocess"] = (t3 - t2) * 1e3
            image_model = self.models["image"]
            if overlap:
                image_model.set_input(x)
                self._worker.submit(self._invoke_timed, image_model)
                t_set = (clock() - t3) * 1e3
            else:
                probs["image"] = image_model.probabilities(x)
                timings["image"] = (clock() - t3) * 1e3
        if use_audio:
            t3 = clock()
            features = extract(window, self.feature_config)
            t4 = clock()
            timings["features"] = (t4 - t3) * 1e3
            probs["audio"] = self.models["audio"].probabilities(features)
            timings["audio"] = (clock() - t4) * 1e3
        if overlap:
            invoke_ms = self._worker.result()
            t4 = clock()
            probs["image"] = image_model.to_probabilities(image_model.get_output())
            # the image stage's own work: input, invoke (on the worker), output
            timings["image"] = t_set + invoke_ms + (clock() - t4) * 1e3
        t5 = clock()
        # fusion
        fused, used = None, []
        if probs["image"] is not None or probs["audio"] is not None:
            fused, used = fuse(probs, self.fusion_weights)
        t6 = clock()
        timings["fusion"] = (t6 - t5) * 1e3
        timings["compute"] = (t6 - t1) * 1e3
        timings["total"] = (t6 - t0) * 1e3

        for modality in self.models:
            if modality in used:
                self.modality_counts[modality]["used"] += 1
            elif modality in flags:
                self.modality_counts[modality][flags[modality]] += 1
        record: dict[str, Any] = {
            "tick": self.ticks,
            "t": round(t_us / 1e6, 6),
            "label": None,
            "confidence": None,
            "probs": {
                m: (None if p is None else [float(v) for v in p])
                for m, p in (("image", probs["image"]), ("audio", probs["audio"]), ("fused", fused))
            },
            "present": present,
            "used": used,
            "flags": flags,
            "frame": None if frame is None else {"index": frame.index, "t": round(frame.t, 6)},
            "timings_ms": {k: round(v, 3) for k, v in timings.items()},
        }
        if fused is not None:
            best = int(np.argmax(fused))
            record["label"] = self.classes[best]
            record["confidence"] = float(fused[best])
        self.ticks += 1
        self._timings.add(timings)
        return record

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> Iterator[dict[str, Any]]:
        """Yield one record per tick until a file source ends, ``duration`` passes or :meth:`stop`."""
        self._started = time.monotonic()
        self.open(self._started)
        k = 0
        try:
            while not self._stop.is_set():
                t_us = self.first_us + k * self.period_us
                if self.duration is not None and t_us > round(self.duration * 1e6):
                    self.end_reason = "duration"
                    return
                if self.realtime:
                    due = self._started + t_us / 1e6
                    delay = due - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        break
                    late = int((time.monotonic() - due) * 1e6) // self.period_us
                    if late > 0:  # too slow for the rate: skip to the current tick
                        self.ticks_skipped += late
                        k += late
                        t_us = self.first_us + k * self.period_us
                record = self.step(t_us)
                if record is None:
                    self.end_reason = "end of input"
                    return
                yield record
                k += 1
            self.end_reason = self.end_reason or "stopped"
        finally:
            self._stopped = time.monotonic()

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
            "threads": self.threads,
            "overlap": self.overlap,
            "pinned_cpus": list(self.pinned_cpus) if self.pinned_cpus else None,
            "spin": self.spin,
            "latency_ms": self._timings.percentiles(),
            "modalities": self.modality_counts,
            "frames_dropped": self.camera.frames_dropped if self.camera is not None else 0,
            "audio_overflows": self.audio.overflows if self.audio is not None else 0,
        }
        if self.camera is not None:
            out["camera"] = self.camera.stats()
        if self.audio is not None:
            out["audio"] = self.audio.stats()
        return out


def _is_file(source: Any) -> bool:
    return isinstance(source, AudioFile) or (isinstance(source, Camera) and source.is_file)


def open_sources(
    *,
    camera: str | int | None,
    mic: bool,
    mic_device: str | None,
    audio_file: str | Path | None,
    sample_rate: int,
    buffer_seconds: float,
    loop: bool,
    realtime: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[Camera | None, Microphone | AudioFile | None]:
    """Open the sources named by ``edgeav run``'s options (live readers start in :meth:`Pipeline.run`)."""
    if (mic or mic_device is not None) and audio_file is not None:
        raise EdgeAVError("give either --mic or --audio-file, not both")
    cam = Camera(camera, loop=loop, log=log) if camera is not None else None
    if not realtime:
        if cam is not None and not cam.is_file:
            raise EdgeAVError(f"--no-realtime needs file sources; {cam.label} is live")
        if mic or mic_device is not None:
            raise EdgeAVError("--no-realtime needs file sources; use --audio-file, not --mic")
    if cam is not None:
        cam.open()
    audio: Microphone | AudioFile | None = None
    try:
        if audio_file is not None:
            audio = AudioFile(
                audio_file, sample_rate=sample_rate, seconds=buffer_seconds, loop=loop, log=log
            ).open()
        elif mic or mic_device is not None:
            audio = Microphone(
                mic_device, sample_rate=sample_rate, seconds=buffer_seconds, log=log
            ).open()
    except BaseException:
        if cam is not None:
            cam.close()
        raise
    return cam, audio
