#!/usr/bin/env python3
"""Prepare (once, cached) an emulated Raspberry Pi user space for the device-path tests.

``make pi-setup`` (part of ``make test``) builds the cache; the session fixture in
``tests/test_pi.py`` uses it and installs edgeav's own wheel for each run::

    python tests/pi/setup_sysroot.py prepare               # build the cache (make pi-setup)
    python tests/pi/setup_sysroot.py --work DIR            # use it, install edgeav into DIR; JSON
    python tests/pi/setup_sysroot.py run [--cpu cortex-a76] -- -m edgeav info model.edgeav

Steps (each skipped when its result is already cached):

1. finds Debian's ``qemu-user-static`` and ``mmdebstrap`` (``make deb-test`` installs them);
2. builds an arm64 Debian 12 (bookworm) sysroot with ``python3.11`` and ``libportaudio2`` with
   ``mmdebstrap --variant=extract`` (extraction only, so no binfmt is needed) from the machine's
   configured Debian sources, into a temporary folder renamed when complete, and places a
   Raspberry Pi 4 ``/proc/cpuinfo`` in it (qemu-user reads ``<QEMU_LD_PREFIX>/proc/cpuinfo``
   first; Debian's qemu 7.2 otherwise passes the host's x86 one through and LiteRT's CPU
   detection crashes);
3. downloads the aarch64 wheels of edgeav's base dependencies and ``runtime`` extra (pinned to
   the versions installed in the Python that runs this script, so both sides of a comparison use
   the same libraries) into a wheelhouse keyed by a hash of pyproject.toml and the requirements;
4. (``--work``, not cached: the sources change) builds edgeav's pure-Python wheel as ``make
   wheel`` does and follows the README's Pi steps with it under emulation: a venv, then
   ``pip install "edgeav-….whl[runtime]"`` (see :func:`install_edgeav`).

The cache lives in ``$EDGEAV_PI_CACHE`` (default ``/var/cache/edgeav-pi``), outside the repository,
so a session and a later CI run on the same machine share it. A lock serialises concurrent runs.

Exit status: 0 ready (JSON on stdout), 77 cannot be done here (reason on stderr: the tests skip),
anything else a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SHIM_DIR = HERE / "shim"
CPUINFO = HERE / "cpuinfo-pi4"
CACHE = Path(os.environ.get("EDGEAV_PI_CACHE", "/var/cache/edgeav-pi"))

SUITE = "bookworm"
INCLUDE = ("python3.11", "python3.11-venv", "libportaudio2")
PYTHON = "/usr/bin/python3.11"
PY_VERSION = "3.11"
#: Bump when the sysroot recipe changes (invalidates the cached sysroot).
SYSROOT_RECIPE = 4
#: Bookworm's glibc is 2.36: any manylinux tag up to that runs on a Pi with 64-bit Raspberry Pi OS.
PLATFORMS = (
    "manylinux2014_aarch64",
    *(f"manylinux_2_{v}_aarch64" for v in range(17, 37)),
    "linux_aarch64",
)
CPUS = ("cortex-a72", "cortex-a76")  # Raspberry Pi 4, Raspberry Pi 5
SKIP = 77


class Skip(Exception):
    """This machine cannot run the emulated device tests (the reason says why)."""


def log(msg: str) -> None:
    print(f"[pi] {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, text=True, capture_output=True, **kw)


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


# --- 1. tools -------------------------------------------------------------------------------


def ensure_tools() -> dict[str, str]:
    """Find qemu-aarch64-static and mmdebstrap (``make deb-test`` installs them)."""
    wanted = {"qemu-aarch64-static": "qemu-user-static", "mmdebstrap": "mmdebstrap"}
    missing = [pkg for exe, pkg in wanted.items() if shutil.which(exe) is None]
    if missing:
        raise Skip(
            f"{' and '.join(missing)} not installed (`make deb-test` installs them, as root)"
        )
    return {exe: shutil.which(exe) for exe in wanted}  # type: ignore[misc]


# --- 2. sysroot -----------------------------------------------------------------------------


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas, cur, key = [], {}, None
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if cur:
                stanzas.append(cur)
            cur, key = {}, None
        elif raw[0] in " \t" and key:
            cur[key] += " " + raw.strip()
        elif ":" in raw:
            key, value = raw.split(":", 1)
            key = key.strip().lower()
            cur[key] = value.strip()
    return stanzas


def debian_sources() -> list[str]:
    """One-line ``deb`` entries for bookworm from the machine's apt configuration.

    Reads /etc/apt/sources.list, /etc/apt/sources.list.d/*.list and *.sources (deb822); keeps the
    entries of Debian's bookworm suites. When the machine runs another release, its Debian
    archive URIs are reused with bookworm's suites; with no Debian source at all, deb.debian.org.
    """
    entries: list[tuple[str, list[str], list[str], str]] = []  # (uri, suites, components, opts)
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for path in files:
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                m = re.match(r"\s*deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)", line)
                if m:
                    opts = (m.group(1) or "").strip()[1:-1].strip()
                    entries.append((m.group(2), [m.group(3)], m.group(4).split(), opts))
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        with contextlib.suppress(OSError):
            for st in _deb822_stanzas(path.read_text()):
                if "deb" not in st.get("types", "").split() or st.get("enabled", "yes") == "no":
                    continue
                opts = (
                    f"signed-by={st['signed-by']}"
                    if st.get("signed-by", "").startswith("/")
                    else ""
                )
                for uri in st.get("uris", "").split():
                    entries.append(
                        (
                            uri,
                            st.get("suites", "").split(),
                            st.get("components", "main").split(),
                            opts,
                        )
                    )
    lines = []
    for uri, suites, comps, opts in entries:
        for suite in suites:
            if suite == SUITE or suite.startswith(SUITE + "-"):
                lines.append(_deb_line(uri, suite, comps, opts))
    if not lines:  # another release: same Debian mirrors, bookworm suites
        for uri, suites, _comps, opts in entries:
            if suites and re.search(r"/debian/?$", uri):
                lines += [_deb_line(uri, s, ["main"], opts) for s in (SUITE, f"{SUITE}-updates")]
            elif suites and re.search(r"/debian-security/?$", uri):
                lines.append(_deb_line(uri, f"{SUITE}-security", ["main"], opts))
    if not lines:
        lines = [_deb_line("http://deb.debian.org/debian", SUITE, ["main"], "")]
    return list(dict.fromkeys(lines))


def _deb_line(uri: str, suite: str, comps: list[str], opts: str) -> str:
    comps = [c for c in comps if c == "main"] or ["main"]  # python3.11 and PortAudio are in main
    return f"deb {'[' + opts + '] ' if opts else ''}{uri} {suite} {' '.join(comps)}"


def _key(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def ensure_sysroot(tools: dict[str, str], build: bool = True) -> Path:
    sources = debian_sources()
    # Not keyed by the mirror URIs (a mirror change needs no rebuild), only by what goes in.
    key = _key(SUITE, "arm64", *INCLUDE, str(SYSROOT_RECIPE))
    root = CACHE / f"sysroot-{SUITE}-arm64-{key}"
    if not (root / ".edgeav-complete").exists():
        if not build:
            raise Skip(f"no emulated Pi sysroot in {CACHE}: `make pi-setup` builds it")
        if os.geteuid() != 0:
            raise Skip(
                f"no cached sysroot in {CACHE} and not root (mmdebstrap --mode=root needs it)"
            )
        tmp = Path(tempfile.mkdtemp(prefix=".sysroot-", dir=CACHE))
        tmp.rmdir()  # mmdebstrap wants to create (or find empty) the target
        log(f"building arm64 {SUITE} sysroot ({', '.join(INCLUDE)}) from {len(sources)} source(s)")
        t0 = time.monotonic()
        cmd = [
            tools["mmdebstrap"],
            "--mode=root",
            "--variant=extract",
            "--arch=arm64",
            f"--include={','.join(INCLUDE)}",
            "--quiet",
            SUITE,
            str(tmp),
            *sources,
        ]
        res = _run(cmd)
        if res.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            msg = _tail(res.stderr or res.stdout)
            if any(s in msg for s in ("Could not resolve", "Failed to fetch", "Temporary failure")):
                raise Skip(f"mmdebstrap could not reach the Debian mirror: {msg}")
            raise RuntimeError(f"mmdebstrap failed ({res.returncode}): {msg}")
        if not (tmp / PYTHON.lstrip("/")).exists():
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(f"mmdebstrap produced no {PYTHON}")
        (tmp / "proc").mkdir(exist_ok=True)
        shutil.copyfile(CPUINFO, tmp / "proc" / "cpuinfo")
        # Debian byte-compiles the standard library when installing (py3compile); extraction
        # does not, and emulated start-up would recompile it every time. The bytecode is the
        # same on every architecture, so the host's 3.11 can do it.
        if sys.version_info[:2] == tuple(map(int, PY_VERSION.split("."))):
            stdlib = tmp / "usr" / "lib" / f"python{PY_VERSION}"
            _run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(stdlib)])
        info = {
            "suite": SUITE,
            "include": INCLUDE,
            "sources": sources,
            "seconds": time.monotonic() - t0,
        }
        (tmp / ".edgeav-complete").write_text(json.dumps(info, indent=1) + "\n")
        if root.exists():  # a stale, incomplete one
            shutil.rmtree(root)
        tmp.rename(root)
        for stale in CACHE.glob(f"sysroot-{SUITE}-arm64-*"):
            if stale != root:
                shutil.rmtree(stale, ignore_errors=True)
        log(f"sysroot ready in {time.monotonic() - t0:.1f} s: {root}")
    cpuinfo = root / "proc" / "cpuinfo"
    if not cpuinfo.exists() or cpuinfo.read_bytes() != CPUINFO.read_bytes():
        cpuinfo.parent.mkdir(exist_ok=True)
        shutil.copyfile(CPUINFO, cpuinfo)
    return root


# --- 3. wheels ------------------------------------------------------------------------------


def requirements(pyproject: Path) -> list[str]:
    """Base dependencies + the ``runtime`` extra, evaluated for aarch64 Linux CPython 3.11, each
    pinned to the version installed here when there is one (same libraries on both sides)."""
    from importlib import metadata

    import tomllib

    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip always carries one
        from pip._vendor.packaging.requirements import Requirement

    project = tomllib.loads(pyproject.read_text())["project"]
    env = {
        "platform_machine": "aarch64",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "python_version": PY_VERSION,
        "python_full_version": PY_VERSION + ".2",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }
    out = []
    for text in [*project.get("dependencies", []), *project["optional-dependencies"]["runtime"]]:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            version = None
        if version and req.specifier.contains(version, prereleases=True):
            out.append(f"{req.name}=={version}")
        else:
            out.append(f"{req.name}{req.specifier}")
    return sorted(out, key=str.lower)


def _pip(*args: str) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check"])


def _platform_args() -> list[str]:
    args = [
        "--only-binary=:all:",
        "--python-version",
        PY_VERSION,
        "--implementation",
        "cp",
        "--abi",
        "cp311",
    ]
    for p in PLATFORMS:
        args += ["--platform", p]
    return args


def _index_reachable() -> bool:
    """Can pip fetch anything for aarch64 at all? (flatbuffers: a small pure-Python wheel.)"""
    with tempfile.TemporaryDirectory() as scratch:
        res = _pip("download", "-q", "--no-deps", *_platform_args(), "-d", scratch, "flatbuffers")
    return res.returncode == 0


def ensure_wheels(build: bool = True) -> tuple[Path, list[str], list[str]]:
    """The cached folder of aarch64 wheels for the base dependencies and the runtime extra: the
    wheelhouse the emulated ``pip install`` uses instead of the package index."""
    reqs = requirements(REPO / "pyproject.toml")
    key = _key((REPO / "pyproject.toml").read_bytes(), *reqs, *PLATFORMS)
    wheels = CACHE / f"wheels-{key}"
    done = wheels / ".edgeav-complete"
    if done.exists():
        meta = json.loads(done.read_text())
        return wheels, meta["requirements"], meta["wheels"]
    if not build:
        raise Skip(f"no aarch64 wheels for this pyproject.toml in {CACHE}: `make pi-setup`")
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=".wheels-", dir=CACHE))
    log(f"downloading aarch64 wheels: {' '.join(reqs)}")
    res = _pip("download", "-q", *_platform_args(), "-d", str(tmp), *reqs)
    if res.returncode != 0 and not _index_reachable():
        shutil.rmtree(tmp, ignore_errors=True)
        raise Skip(
            "cannot download the aarch64 wheels (package index unreachable): "
            + _tail(res.stderr, 2)
        )
    if res.returncode != 0 and "No matching distribution" in res.stderr:
        # A version installed here may have no aarch64 wheel: let pip choose (the device's truth).
        loose = [re.sub(r"==.*", "", r) for r in reqs]
        log(f"pinned set has no aarch64 wheels ({_tail(res.stderr, 2)}); retrying unpinned")
        for partial in tmp.iterdir():
            partial.unlink()
        res = _pip("download", "-q", *_platform_args(), "-d", str(tmp), *loose)
    if res.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(
            f"pip download of the aarch64 runtime wheels failed: {_tail(res.stderr)}"
        )
    files = sorted(p.name for p in tmp.glob("*.whl"))
    meta = {"requirements": reqs, "wheels": files, "seconds": time.monotonic() - t0}
    done = tmp / ".edgeav-complete"
    done.write_text(json.dumps(meta, indent=1) + "\n")
    if wheels.exists():
        shutil.rmtree(wheels)
    tmp.rename(wheels)
    for old in [*CACHE.glob("wheels-*"), *CACHE.glob("site-*")]:  # older keys: dead weight
        if old != wheels:
            shutil.rmtree(old, ignore_errors=True)
    log(f"aarch64 wheels ready in {time.monotonic() - t0:.1f} s: {wheels}")
    return wheels, reqs, files


# --- 4. edgeav itself -----------------------------------------------------------------------


def build_wheel(work: Path) -> Path:
    """edgeav's pure-Python wheel, built as ``make wheel`` builds it (``pip wheel --no-deps``),
    from a clean copy of the working tree so nothing is written into the repo."""
    src = work / "edgeav-src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "*.so")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for d in sorted(set(pyproject["tool"]["setuptools"]["package-dir"].values())):
        shutil.copytree(REPO / d, src / d, ignore=ignore)
    res = _pip("wheel", "-q", "--no-deps", "-w", str(work), str(src))
    shutil.rmtree(src, ignore_errors=True)
    built = sorted(work.glob("edgeav-*-py3-none-any.whl"))
    if res.returncode != 0 or len(built) != 1:
        raise RuntimeError(f"building the edgeav wheel failed: {_tail(res.stderr)}")
    return built[0]


def install_edgeav(work: Path, tools: dict[str, str], sysroot: Path, wheels: Path) -> Path:
    """The README's Pi steps under emulation: a venv, then ``pip install "EDGEAV.whl[runtime]"``
    (from the cached wheelhouse instead of the index). Returns the venv's python.

    ``python -m venv`` runs ``ensurepip`` by re-executing the venv's interpreter, which only
    works through binfmt_misc; without it the venv is made ``--without-pip`` and the same pip
    Debian's ``python3.11-venv`` would bootstrap (its bundled wheel) runs the install."""
    wheel = build_wheel(work)
    venv = work / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    env = {"QEMU_LD_PREFIX": str(sysroot), "QEMU_CPU": CPUS[0], "PATH": "/usr/bin:/bin"}
    qemu = tools["qemu-aarch64-static"]
    res = _run([qemu, str(sysroot / PYTHON.lstrip("/")), "-m", "venv", "--without-pip", str(venv)],
               env=env)  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(f"python3.11 -m venv failed under emulation: {_tail(res.stderr)}")
    pips = sorted((sysroot / "usr/share/python-wheels").glob("pip-*.whl"))
    if not pips:
        raise RuntimeError("the sysroot has no bundled pip wheel (python3.11-venv)")
    python = venv / "bin" / f"python{PY_VERSION}"
    cmd = [qemu, str(python), f"{pips[-1]}/pip", "install", "-q", "--disable-pip-version-check"]
    cmd += ["--no-index", "--find-links", str(wheels), f"{wheel}[runtime]"]
    res = _run(cmd, env=env, cwd=work)
    if res.returncode != 0:
        raise RuntimeError(f"pip install of {wheel.name}[runtime] failed: {_tail(res.stderr)}")
    return python


# --- all together ---------------------------------------------------------------------------


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    try:
        fh = open(CACHE / ".lock", "a")
    except OSError as exc:
        raise Skip(
            f"the cache folder {CACHE} is not writable: {exc} (set EDGEAV_PI_CACHE)"
        ) from exc
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, f))
                total += st.st_size
    return total


def prepare(work: Path | None, build: bool = True) -> dict:
    """The emulated Pi's paths. ``build``: make the cached sysroot and wheels when missing (else
    skip); ``work``: also install edgeav's wheel there (None: the cache only)."""
    t0 = time.monotonic()
    if sys.platform != "linux":
        raise Skip(f"qemu-user needs Linux, not {sys.platform}")
    try:
        CACHE.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Skip(f"cannot create the cache folder {CACHE}: {exc} (set EDGEAV_PI_CACHE)") from exc
    steps = {}

    def step(name: str, t: float) -> float:
        now = time.monotonic()
        steps[name] = round(now - t, 1)
        return now

    with _locked():
        t = step("lock", t0)
        tools = ensure_tools()
        t = step("tools", t)
        sysroot = ensure_sysroot(tools, build)
        t = step("sysroot", t)
        wheels_dir, reqs, wheels = ensure_wheels(build)
        t = step("wheels", t)
    python = install_edgeav(work, tools, sysroot, wheels_dir) if work is not None else None
    step("venv", t)
    site = None if python is None else python.parent.parent / "lib" / f"python{PY_VERSION}"
    return {
        "qemu": tools["qemu-aarch64-static"],
        "sysroot": str(sysroot),
        "python": str(python or sysroot / PYTHON.lstrip("/")),
        "site": str(site) if site else None,  # the venv's site-packages live under it
        "shim": str(SHIM_DIR),
        "requirements": reqs,
        "wheels": wheels,
        "sizes_mb": {
            "sysroot": round(_du(sysroot) / 2**20, 1),
            "wheels": round(_du(wheels_dir) / 2**20, 1),
            "venv": round(_du(site) / 2**20, 1) if site else None,
        },
        "seconds": round(time.monotonic() - t0, 1),
        "steps_seconds": steps,
    }


def emulated_env(info: dict, cpu: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for ``[info["qemu"], info["python"], ...]`` on the given emulated CPU."""
    base = os.environ if base is None else base
    env = {
        k: v for k, v in base.items() if k in ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TERM")
    }
    env.update(
        QEMU_LD_PREFIX=info["sysroot"],
        QEMU_CPU=cpu,
        EDGEAV_PI_SYSROOT=info["sysroot"],
        PYTHONPATH=info["shim"],
        PYTHONNOUSERSITE="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=None, help="where edgeav's own wheel is installed")
    sub = ap.add_subparsers(dest="cmd")
    sub.add_parser("prepare", help="build the cached sysroot and wheels only (make pi-setup)")
    run = sub.add_parser("run", help="run the emulated python3.11 with the given arguments")
    run.add_argument("--cpu", default=CPUS[0], help=f"QEMU_CPU (default {CPUS[0]})")
    run.add_argument("args", nargs=argparse.REMAINDER)
    ns = ap.parse_args(argv)
    work = ns.work or Path(tempfile.gettempdir()) / "edgeav-pi-work"
    try:
        if ns.cmd == "prepare":
            info = prepare(None, build=True)
        else:
            info = prepare(work, build=ns.cmd == "run")
    except Skip as exc:
        print(f"skip: {exc}", file=sys.stderr)
        return SKIP
    if ns.cmd == "run":
        args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
        cmd = [info["qemu"], info["python"], *args]
        return subprocess.run(cmd, env=emulated_env(info, ns.cpu)).returncode
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
