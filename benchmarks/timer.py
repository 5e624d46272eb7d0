"""Time one ``.tflite`` model on LiteRT: the figures TFLite's own ``benchmark_model`` reports.

``time_tflite`` loads the model (init time), runs it once (first inference), runs ``warmup`` more
times, then ``runs`` timed invocations, and reports mean / std / min / max / p50 / p90 / p99 of
the timed runs together with the memory (RSS) that loading and running added. Inputs are random
data of the model's own shapes and types, set once before the runs, so only ``invoke()`` is timed
(as ``benchmark_model`` does).

NumPy and the interpreter only: this module runs on the device, without TensorFlow. The
interpreter is ``ai_edge_litert`` (LiteRT), falling back to ``tflite_runtime``; the result says
which one ran.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeav.errors import EdgeAVError
from edgeav.native_stderr import captured_native_stderr

_MB = 1024.0 * 1024.0


# --- memory -------------------------------------------------------------------------------------


def rss_bytes() -> int | None:
    """Current resident set size of this process, or None when it cannot be read."""
    try:
        import psutil  # noqa: PLC0415

        return int(psutil.Process().memory_info().rss)
    except Exception:  # noqa: BLE001 - psutil absent or refused: fall back to /proc
        pass
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _peak_bytes() -> int | None:
    """Peak resident set size of this process so far (VmHWM, else getrusage's ru_maxrss)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource  # noqa: PLC0415

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(maxrss) if sys.platform == "darwin" else int(maxrss) * 1024
    except (ImportError, OSError):
        return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (Linux >= 4.0); True when it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / _MB, 2)


# --- interpreter --------------------------------------------------------------------------------


def _interpreter_class() -> tuple[type, str]:
    """The LiteRT interpreter class and the backend's name (never tf.lite: no TensorFlow)."""
    from edgeav.runtime.interpreter import _interpreter_class as backend_class  # noqa: PLC0415

    for name in ("ai_edge_litert", "tflite_runtime"):
        try:
            return backend_class(name), name
        except ImportError:
            continue
    raise EdgeAVError(
        "no TFLite interpreter: install the runtime extra: pip install 'edgeav[runtime]'"
    )


def _random_input(shape: np.ndarray, dtype: type, rng: np.random.Generator) -> np.ndarray:
    shape = tuple(int(d) if int(d) > 0 else 1 for d in shape)  # dynamic dims (-1) -> 1
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = max(info.min, -128), min(info.max, 127)
        return rng.integers(low, high + 1, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    raise EdgeAVError(f"cannot make a random input of type {dtype} for the model")


def _summary(times_ms: np.ndarray) -> dict[str, float]:
    if times_ms.size == 0:
        raise EdgeAVError("no timed runs: --runs must be at least 1")
    return {
        "mean_ms": float(times_ms.mean()),
        "std_ms": float(times_ms.std()),
        "min_ms": float(times_ms.min()),
        "max_ms": float(times_ms.max()),
        "p50_ms": float(np.percentile(times_ms, 50)),
        "p90_ms": float(np.percentile(times_ms, 90)),
        "p99_ms": float(np.percentile(times_ms, 99)),
    }


def time_tflite(
    model: bytes | str | os.PathLike[str],
    *,
    runs: int = 50,
    warmup: int = 5,
    threads: int | None = None,
    max_seconds: float | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time a ``.tflite`` model (bytes or a path) on LiteRT; return the figures as a dict.

    Args:
        model: the flatbuffer's bytes, or the path of a ``.tflite`` file.
        runs: timed invocations (at least 1).
        warmup: untimed invocations after the first one (``benchmark_model``'s warm-up runs).
        threads: the interpreter's ``num_threads`` (None: the interpreter's default).
        max_seconds: stop the timed runs early once this much time has been spent on them
            (``benchmark_model``'s ``max_secs``), after at least 3 runs, and the warm-up once
            it has taken a quarter of that (after at least 1 run); ``runs`` and ``warmup`` in
            the result are the numbers actually done.
        seed: seed of the random inputs.

    Returns a dict with ``backend``, ``threads``, ``size_bytes``, ``inputs`` (shape, dtype of each),
    ``init_ms`` (interpreter creation and tensor allocation), ``first_ms`` (first inference),
    ``warmup`` and ``warmup_mean_ms``, ``runs``, ``times_ms`` (every timed run), ``mean_ms``,
    ``std_ms``, ``min_ms``, ``max_ms``, ``p50_ms``, ``p90_ms``, ``p99_ms``, and memory in MB:
    ``init_rss_mb`` and ``overall_rss_mb`` (RSS added after loading / after all runs, as
    ``benchmark_model``'s "memory footprint delta") and ``peak_rss_mb`` (peak RSS above the RSS
    before loading; ``peak_rss_exact`` is False when the kernel's peak counter could not be reset,
    in which case it is a lower bound).
    """
    if runs < 1:
        raise EdgeAVError(f"runs must be at least 1, got {runs}")
    if warmup < 0:
        raise EdgeAVError(f"warmup must be 0 or more, got {warmup}")
    if threads is not None and threads < 1:
        raise EdgeAVError(f"threads must be at least 1, got {threads}")

    if isinstance(model, bytes | bytearray | memoryview):
        data, name = bytes(model), "<model bytes>"
    else:
        path = Path(model)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise EdgeAVError(f"cannot read {path}: {exc.strerror or exc}") from exc
        name = str(path)

    interpreter_cls, backend = _interpreter_class()
    rng = np.random.default_rng(seed)

    rss_before = rss_bytes()
    peak_before = _peak_bytes()
    peak_exact = _reset_peak()

    try:
        with captured_native_stderr() as native_log:
            t0 = time.perf_counter()
            interpreter = interpreter_cls(model_content=data, num_threads=threads)
            interpreter.allocate_tensors()
            init_ms = (time.perf_counter() - t0) * 1e3
    except (ValueError, RuntimeError) as exc:
        errors = [line for line in native_log if "ERROR" in line]
        detail = (errors[0] if errors else str(exc).strip().splitlines()[0]).strip()
        raise EdgeAVError(f"cannot load {name} as a TFLite model: {detail}") from exc
    rss_init = rss_bytes()

    inputs = []
    resized = False
    for detail in interpreter.get_input_details():
        value = _random_input(detail["shape"], detail["dtype"], rng)
        if tuple(value.shape) != tuple(detail["shape"]):
            interpreter.resize_tensor_input(detail["index"], value.shape)
            resized = True
        inputs.append((detail["index"], value))
    if resized:
        interpreter.allocate_tensors()
    for index, value in inputs:
        interpreter.set_tensor(index, value)

    invoke = interpreter.invoke
    t0 = time.perf_counter()
    try:
        invoke()
    except (ValueError, RuntimeError) as exc:
        raise EdgeAVError(f"cannot run {name}: {exc}") from exc
    first_ms = (time.perf_counter() - t0) * 1e3

    warm = np.empty(warmup)
    warmed = 0
    for i in range(warmup):
        t0 = time.perf_counter()
        invoke()
        warm[i] = time.perf_counter() - t0
        warmed = i + 1
        if max_seconds is not None and warm[:warmed].sum() >= max_seconds / 4:
            break
    warm = warm[:warmed]

    times = np.empty(runs)
    spent = 0.0
    done = 0
    for i in range(runs):
        t0 = time.perf_counter()
        invoke()
        times[i] = dt = time.perf_counter() - t0
        done = i + 1
        spent += dt
        if max_seconds is not None and done >= 3 and spent >= max_seconds:
            break
    times_ms = times[:done] * 1e3

    rss_after = rss_bytes()
    peak_after = _peak_bytes()
    if peak_after is not None and rss_before is not None:
        base = rss_before if peak_exact else max(rss_before, peak_before or 0)
        peak_added = max(0, peak_after - base)
    else:
        peak_added = None
    del interpreter

    def delta(value: int | None) -> int | None:
        return None if value is None or rss_before is None else value - rss_before

    result: dict[str, Any] = {
        "backend": backend,
        "threads": threads,
        "size_bytes": len(data),
        "inputs": [
            {"shape": [int(d) for d in v.shape], "dtype": np.dtype(v.dtype).name} for _, v in inputs
        ],
        "init_ms": init_ms,
        "first_ms": first_ms,
        "warmup": int(warmed),
        "warmup_mean_ms": float(warm.mean() * 1e3) if warmed else None,
        "runs": int(done),
        "times_ms": [float(t) for t in times_ms],
    }
    result.update(_summary(times_ms))
    result.update(
        {
            "init_rss_mb": _mb(delta(rss_init)),
            "overall_rss_mb": _mb(delta(rss_after)),
            "peak_rss_mb": _mb(peak_added),
            "peak_rss_exact": bool(peak_exact),
        }
    )
    return result


def time_tflite_in_subprocess(
    path: str | os.PathLike[str],
    *,
    runs: int = 50,
    warmup: int = 5,
    threads: int | None = None,
    max_seconds: float | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """:func:`time_tflite` in a fresh Python process, as ``benchmark_model`` runs one model.

    Each model then starts from the same state: its init time includes the interpreter's
    process-wide start-up, and the memory it adds is not hidden by memory an earlier model (or
    TensorFlow) freed. The child imports NumPy and the interpreter only.
    """
    import json  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    cmd = [sys.executable, "-m", "edgeav.benchmarks.timer", os.fspath(path)]
    cmd += ["--runs", str(runs), "--warmup", str(warmup), "--json-times"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    if max_seconds is not None:
        cmd += ["--max-seconds", repr(float(max_seconds))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise EdgeAVError(f"timing {path} took longer than {timeout:.0f} s") from exc
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("edgeav: error:")]
        detail = (errors or lines or [f"exit status {proc.returncode}"])[-1]
        raise EdgeAVError(f"timing {path} failed: {detail.removeprefix('edgeav: error: ')}")
    try:
        return json.loads(proc.stdout)
    except ValueError as exc:
        raise EdgeAVError(f"timing {path} printed no result") from exc


def main(argv: list[str] | None = None) -> int:
    """Time one .tflite model on LiteRT and print the figures as JSON."""
    import argparse  # noqa: PLC0415
    import json  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="python -m edgeav.benchmarks.timer", description=main.__doc__
    )
    parser.add_argument("model", help="the .tflite file")
    parser.add_argument("--runs", type=int, default=50, help="timed runs (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up runs (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads")
    parser.add_argument(
        "--max-seconds", type=float, default=None, help="stop timing after this long"
    )
    parser.add_argument("--json-times", action="store_true", help="include every run's time")
    args = parser.parse_args(argv)
    try:
        result = time_tflite(
            args.model,
            runs=args.runs,
            warmup=args.warmup,
            threads=args.threads,
            max_seconds=args.max_seconds,
        )
    except EdgeAVError as exc:
        print(f"edgeav: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not args.json_times:
        result.pop("times_ms")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
