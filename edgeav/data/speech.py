"""Spoken words from espeak-ng, driven through ctypes; the library comes from PyPI.

The PyPI package ``espeakng-loader`` ships ``libespeak-ng`` and its ``espeak-ng-data`` folder
(languages and 100+ voice variants), so no system package and no network are needed. A voice is
``<language>+<variant>`` (``en-us+m3``, ``en-gb-scotland+klatt``); rate (words per minute) and
pitch (0..100) are set per utterance. espeak-ng returns 16-bit mono samples at 22,050 Hz.

espeak-ng keeps state between utterances (the flutter oscillator, the noise generator), so the
samples of an utterance depend on everything synthesised before it in the same process, and
re-initialising the library does not reset that state. :func:`synthesize` therefore runs the
library in a fresh child process (``python -m edgeav.data.speech``) that synthesises one given
list of requests in order: the same list always gives the same samples, whatever the calling
process did before. espeak-ng seeds its noise generator (used by breathy voices such as ``f2`` and
``whisper``) from the clock, so each request carries its own seed, set before it is spoken. The library is initialised once per child and used from one thread.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeav.errors import EdgeAVError

#: English language ids of espeak-ng (the Shavian-script ``en-shaw`` is left out).
ENGLISH_LANGUAGES = (
    "en",
    "en-us",
    "en-029",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-gb-x-rp",
    "en-us-nyc",
)

#: Variants left out: ``fast`` is marked unstable in its own file (a test of the rate code, not a
#: voice).
EXCLUDED_VARIANTS = ("fast",)

#: Range (percent of the base voice, an adult man) of the first two formant frequencies, which
#: decide which vowel is heard. Women's formants lie about 15-20 % above men's and children's up to
#: about 50-60 % above, so 70-165 % spans human vocal tracts with a margin. A variant with F1 or
#: F2 outside it (``travis``: F1 at 50 %, ``kaukovalta``: F1 at 40 %) moves the vowels where no
#: person puts them, and is left out. Variants that only move, weaken or remove higher formants
#: (F3 at 9 % or 200 %, F3 absent) change the timbre, not the words, and are used.
HUMAN_FORMANT_RANGE = (70, 165)

#: The formants whose frequency :data:`HUMAN_FORMANT_RANGE` bounds.
VOWEL_FORMANTS = ("1", "2")

# espeak-ng constants (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE, _PITCH = 1, 3
RATE_RANGE = (80, 450)
PITCH_RANGE = (0, 100)

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _EspeakVoice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


@dataclass(frozen=True)
class SpeechRequest:
    """One utterance: ``text`` spoken by ``voice`` (``lang`` or ``lang+variant``)."""

    text: str
    voice: str
    rate: int = 175
    pitch: int = 50
    seed: int = 0  # seeds espeak-ng's noise generator (breathy voices such as f2, whisper)

    def __post_init__(self) -> None:
        if not RATE_RANGE[0] <= self.rate <= RATE_RANGE[1]:
            raise EdgeAVError(f"speech rate must be in {RATE_RANGE}, got {self.rate}")
        if not PITCH_RANGE[0] <= self.pitch <= PITCH_RANGE[1]:
            raise EdgeAVError(f"speech pitch must be in {PITCH_RANGE}, got {self.pitch}")


def _loader():
    try:
        import espeakng_loader  # noqa: PLC0415
    except ImportError as exc:
        raise EdgeAVError(
            "speech synthesis needs the PyPI package espeakng-loader, which is not installed "
            "(pip install 'edgeav[train]' or pip install espeakng-loader)"
        ) from exc
    return espeakng_loader


def data_path() -> Path:
    """The ``espeak-ng-data`` folder shipped by espeakng-loader."""
    try:
        path = Path(_loader().get_data_path())
    except RuntimeError as exc:
        raise EdgeAVError(f"espeakng-loader has no espeak-ng data: {exc}") from exc
    return path


def library_path() -> Path:
    """The ``libespeak-ng`` shared library shipped by espeakng-loader."""
    path = Path(_loader().get_library_path())
    if not path.is_file():
        raise EdgeAVError(f"espeakng-loader's library {path} is missing; reinstall espeakng-loader")
    return path


def available_languages() -> list[str]:
    """The English language ids whose files are present in the shipped data folder."""
    lang_dir = data_path() / "lang"
    present = set()
    for path in lang_dir.rglob("*"):
        if path.is_file():
            present.add(path.name.lower())
    return [lang for lang in ENGLISH_LANGUAGES if lang in present]


def all_variants() -> list[str]:
    """Every voice variant file in the shipped data folder (``voices/!v``), sorted."""
    folder = data_path() / "voices" / "!v"
    if not folder.is_dir():
        raise EdgeAVError(f"no voice variants in {folder}; reinstall espeakng-loader")
    names = [p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(names, key=str.lower)


def _formant_scales(path: Path) -> list[int]:
    """Frequency scales (percent) of formants 1 and 2 set by a variant file."""
    scales = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "formant" and parts[1] in VOWEL_FORMANTS:
            try:
                scales.append(int(parts[2]))
            except ValueError:
                continue
    return scales


def excluded_variants() -> dict[str, str]:
    """Variants left out, with the reason (see :data:`HUMAN_FORMANT_RANGE`)."""
    folder = data_path() / "voices" / "!v"
    lo, hi = HUMAN_FORMANT_RANGE
    out = {}
    for name in all_variants():
        if name in EXCLUDED_VARIANTS:
            out[name] = "marked unstable in its own file (a test of the rate code, not a voice)"
            continue
        odd = [f for f in _formant_scales(folder / name) if not lo <= f <= hi]
        if odd:
            out[name] = f"a vowel formant (F1/F2) at {odd[0]} % of the base voice's frequency"
    return out


def available_variants() -> list[str]:
    """Voice variants used for data (``m3``, ``f2``, ``klatt``, ``whisper``...), sorted."""
    excluded = excluded_variants()
    return [n for n in all_variants() if n not in excluded]


# --- in-process synthesis (used by the child process) -------------------------------------------


class Espeak:
    """espeak-ng loaded with ctypes and initialised once (synchronous mode, one thread)."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL(str(library_path()))
        except OSError as exc:
            raise EdgeAVError(f"cannot load libespeak-ng: {exc}") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_GetCurrentVoice.argtypes = []
        lib.espeak_GetCurrentVoice.restype = ctypes.POINTER(_EspeakVoice)
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        # espeak-ng >= 1.52 seeds its noise generator from the clock at initialisation; this
        # call (also >= 1.52) makes breathy voices reproducible.
        self._set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self._set_seed is not None:
            self._set_seed.argtypes = [ctypes.c_long]
            self._set_seed.restype = None
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        self._lib = lib
        data = str(data_path()).encode()
        self.sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT
        )
        if self.sample_rate <= 0:
            raise EdgeAVError(f"espeak-ng failed to initialise with data folder {data.decode()}")
        self.version = (lib.espeak_Info(None) or b"?").decode()
        self._chunks: list[np.ndarray] = []
        # The callback object must stay referenced as long as the library may call it.
        self._callback = _SynthCallback(self._on_samples)
        lib.espeak_SetSynthCallback(self._callback)
        self._variants = set(all_variants())

    def _on_samples(self, wav, numsamples, events) -> int:  # noqa: ARG002
        if numsamples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # 0 = continue

    def set_voice(self, voice: str) -> None:
        language, _, variant = voice.partition("+")
        if variant and variant not in self._variants:
            raise EdgeAVError(f"unknown espeak-ng voice variant {variant!r} in {voice!r}")
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EdgeAVError(f"unknown espeak-ng voice {voice!r}")
        current = self._lib.espeak_GetCurrentVoice()
        ident = current.contents.identifier if current else None
        # ``identifier`` is "<family>/<language file>[+<variant>]", e.g. "gmw/en-US+m3".
        got = ident.decode(errors="replace").rsplit("/", 1)[-1] if ident else ""
        if got.lower() != voice.lower():
            raise EdgeAVError(f"espeak-ng chose voice {got!r} for {voice!r}")

    def synth(self, request: SpeechRequest) -> np.ndarray:
        """int16 samples at :attr:`sample_rate` of one utterance."""
        self.set_voice(request.voice)
        self._lib.espeak_SetParameter(_RATE, int(request.rate), 0)
        self._lib.espeak_SetParameter(_PITCH, int(request.pitch), 0)
        if self._set_seed is not None:
            self._set_seed(int(request.seed))
        self._chunks = []
        text = request.text.encode("utf-8") + b"\0"
        err = self._lib.espeak_Synth(text, len(text), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise EdgeAVError(f"espeak-ng failed ({err}) on {request.text!r} with {request.voice}")
        self._lib.espeak_Synchronize()
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._chunks).astype(np.int16, copy=False)


# --- the child process --------------------------------------------------------------------------

_HEADER = struct.Struct("<ii")  # sample rate, version length (then the version bytes)
_CLIP = struct.Struct("<i")  # number of samples (then the int16 samples), -1 = error


def _child_main() -> int:
    """Read requests as JSON from stdin, write the clips to stdout (see :func:`synthesize`)."""
    requests = [SpeechRequest(**r) for r in json.load(sys.stdin)]
    out = sys.stdout.buffer
    try:
        engine = Espeak()
    except EdgeAVError as exc:
        print(str(exc), file=sys.stderr)
        return 3
    version = engine.version.encode()
    out.write(_HEADER.pack(engine.sample_rate, len(version)) + version)
    for request in requests:
        try:
            samples = engine.synth(request)
        except EdgeAVError as exc:
            print(str(exc), file=sys.stderr)
            out.write(_CLIP.pack(-1))
            out.flush()
            return 3
        out.write(_CLIP.pack(samples.size))
        out.write(samples.astype("<i2").tobytes())
    out.flush()
    return 0


def _read_exact(stream, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise EOFError
    return data


@dataclass
class SynthesisInfo:
    sample_rate: int
    version: str


def synthesize(
    requests: Sequence[SpeechRequest],
    on_start: Callable[[SynthesisInfo], None] | None = None,
) -> Iterator[np.ndarray]:
    """Synthesise ``requests`` in order in a fresh child process; yield int16 clips as they come.

    The same list of requests gives the same samples on every call. ``on_start`` is called with
    the sample rate (22,050 Hz) and espeak-ng version before the first clip.
    """
    payload = json.dumps(
        [
            {"text": r.text, "voice": r.voice, "rate": r.rate, "pitch": r.pitch, "seed": r.seed}
            for r in requests
        ]
    ).encode()
    env = dict(os.environ)
    env.pop("ESPEAK_DATA_PATH", None)

    def started(rate: int, version: str) -> None:
        if on_start is not None:
            on_start(SynthesisInfo(rate, version))

    yield from run_child("edgeav.data.speech", [], payload, len(requests), env, started, "speech")


def run_child(
    module: str,
    args: list[str],
    payload: bytes,
    count: int,
    env: dict[str, str],
    on_start: Callable[[int, str], None] | None,
    name: str,
    stop: threading.Event | None = None,
) -> Iterator[np.ndarray]:
    """Run ``python -m module args`` with ``payload`` on stdin and yield its ``count`` int16 clips.

    The child's protocol: a header (sample rate, version string), then each clip as its length
    and 16-bit samples; a negative length or an early end is a failure, reported with the last
    line of the child's stderr. ``stop`` set ends the iteration (the child is killed).
    """
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
        env=env,
    )
    finished = False
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(payload)
        proc.stdin.close()
        try:
            rate, vlen = _HEADER.unpack(_read_exact(proc.stdout, _HEADER.size))
            version = _read_exact(proc.stdout, vlen).decode()
            if on_start is not None:
                on_start(rate, version)
            for _ in range(count):
                if stop is not None and stop.is_set():
                    return  # the child is killed below
                (n,) = _CLIP.unpack(_read_exact(proc.stdout, _CLIP.size))
                if n < 0:
                    raise EOFError
                yield np.frombuffer(_read_exact(proc.stdout, 2 * n), dtype="<i2").astype(np.int16)
        except EOFError:
            proc.wait(timeout=60)
            errors.seek(0)
            err = errors.read().decode(errors="replace").strip().splitlines()
            raise EdgeAVError(
                f"{name} synthesis failed: {err[-1] if err else f'exit status {proc.returncode}'}"
            ) from None
        finished = True
    finally:
        if not finished and proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
        errors.close()


if __name__ == "__main__":
    sys.exit(_child_main())
