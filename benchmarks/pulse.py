"""A private PulseAudio server that a live microphone can be tested against: a null sink whose
monitor is the default source, ALSA's default device routed to it, WAVs played into it.

Used by the live-microphone test and by :mod:`edgeav.benchmarks.live`. Everything lives in one
folder: the server's runtime, state and home directories, its script, a client configuration
(no autospawn) and cookie, and an ALSA configuration that appends ``pcm.!default`` (type
``pulse``, from libasound2-plugins) to the system's ``alsa.conf``. Clients find them through
environment variables (:attr:`PulseServer.env`), so the user's ``~/.asoundrc``,
``~/.config/pulse`` and ``/etc`` are never written or relied on. Works as root (the server warns
and runs) and as a user.

Needs the Debian packages ``pulseaudio``, ``pulseaudio-utils`` and ``libasound2-plugins``;
:meth:`PulseServer.start` raises :class:`PulseUnavailable` with the reason when the server
cannot start.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from edgeav.errors import EdgeAVError

#: The Debian packages the harness needs.
PACKAGES = "pulseaudio pulseaudio-utils libasound2-plugins"
#: The system's ALSA configuration, which ours is appended to.
SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
#: Where Debian-like systems keep ALSA's pulse plugin.
ALSA_PULSE_PLUGIN = "/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so"
SINK = "edgeav_sink"

# The server's flags: in the foreground (its process is ours to stop), exiting by itself two
# minutes after its last client left (a server orphaned by a killed test does not linger), a
# per-user instance even as root, no default script (-n) but ours (-F), no pid file (several may
# run at once), no real-time scheduling (not available in containers), no shared memory (all over
# the socket: nothing to set up in /dev/shm), warnings and errors only.
SERVER_FLAGS = (
    "--daemonize=no",
    "--exit-idle-time=120",
    "--system=false",
    "-n",
    "--use-pid-file=no",
    "--realtime=no",
    "--high-priority=no",
    "--disable-shm=yes",
    "--log-level=notice",
)


class PulseUnavailable(EdgeAVError):
    """The PulseAudio server cannot start here (the message says why)."""


class PulseServer:
    """A PulseAudio server in ``folder`` (created if missing; a temporary folder if None).

    Args:
        folder: its directory.
        rate, channels: the null sink's format (a microphone's usual 48 kHz mono by default).

    Use as a context manager (start, then stop), or call :meth:`start` / :meth:`stop`;
    :meth:`kill` and :meth:`start` again simulate a crashed and restarted sound server.
    """

    def __init__(self, folder: str | Path | None = None, *, rate: int = 48000, channels: int = 1):
        self._tmp = None if folder is not None else tempfile.TemporaryDirectory(prefix="pulse-")
        self.folder = Path(folder if folder is not None else self._tmp.name).resolve()
        self.rate, self.channels = rate, channels
        self.process: subprocess.Popen | None = None
        self.starts = 0

    # -- files and environment -----------------------------------------------------------------

    @property
    def socket(self) -> Path:
        return self.folder / "run" / "native"

    @property
    def log_file(self) -> Path:
        return self.folder / "pulse.log"

    @property
    def env(self) -> dict[str, str]:
        """Variables that point a client (libpulse, ALSA, PortAudio) at this server only."""
        return {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_CLIENTCONFIG": str(self.folder / "client.conf"),
            "PULSE_COOKIE": str(self.folder / "cookie"),
            "PULSE_RUNTIME_PATH": str(self.folder / "run"),
            "ALSA_CONFIG_PATH": f"{SYSTEM_ALSA_CONF}:{self.folder / 'asound.conf'}",
        }

    def client_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) with :attr:`env` applied."""
        return {**(os.environ if base is None else base), **self.env}

    @contextlib.contextmanager
    def applied(self) -> Iterator[PulseServer]:
        """Set :attr:`env` in this process for the block (for PortAudio in this process: enter
        it before sounddevice is first imported, which reads ALSA's configuration)."""
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            yield self
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _write_files(self) -> None:
        for sub in ("run", "state", "home"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        server = f"unix:{self.socket}"
        (self.folder / "server.pa").write_text(
            ".fail\n"
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}\n"
            f"load-module module-null-sink sink_name={SINK} rate={self.rate} "
            f"channels={self.channels}\n"
            f"set-default-sink {SINK}\n"
            f"set-default-source {SINK}.monitor\n"
        )
        (self.folder / "client.conf").write_text("autospawn = no\n")
        (self.folder / "asound.conf").write_text(
            f'pcm.!default {{ type pulse server "{server}" }}\n'
            f'ctl.!default {{ type pulse server "{server}" }}\n'
        )

    # -- the server ----------------------------------------------------------------------------

    @staticmethod
    def missing() -> str | None:
        """Why the harness cannot work on this machine, or None."""
        for tool in ("pulseaudio", "pactl", "paplay"):
            if shutil.which(tool) is None:
                return f"{tool} is not installed (Debian: apt install {PACKAGES})"
        if not SYSTEM_ALSA_CONF.is_file():
            return f"ALSA's configuration {SYSTEM_ALSA_CONF} is missing"
        if not glob.glob(ALSA_PULSE_PLUGIN):
            return f"ALSA's pulse plugin is not installed (Debian: apt install {PACKAGES})"
        return None

    def start(self, timeout: float = 15.0) -> PulseServer:
        """Start the server and wait until its null sink is the default; :class:`PulseUnavailable`
        with the reason if it cannot."""
        if self.running:
            return self
        reason = self.missing()
        if reason:
            raise PulseUnavailable(reason)
        self._write_files()
        if self.socket.exists():
            if self._ready():
                raise PulseUnavailable(
                    f"another PulseAudio server already listens on {self.socket}"
                )
            self.socket.unlink()  # left by a server that was killed
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PULSE_", "DBUS_")) and k not in ("DISPLAY", "ALSA_CONFIG_PATH")
        }
        env.update(
            HOME=str(self.folder / "home"),  # the server's cookie and daemon.conf lookups
            XDG_CONFIG_HOME=str(self.folder / "home"),
            XDG_RUNTIME_DIR=str(self.folder / "run"),
            PULSE_RUNTIME_PATH=str(self.folder / "run"),
            PULSE_STATE_PATH=str(self.folder / "state"),
        )
        log = open(self.log_file, "ab")  # noqa: SIM115 - the server's stderr for its lifetime
        try:
            self.process = subprocess.Popen(
                ["pulseaudio", *SERVER_FLAGS, "-F", str(self.folder / "server.pa")],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a Ctrl-C meant for the test does not reach it first
            )
        except OSError as exc:
            raise PulseUnavailable(f"cannot run pulseaudio: {exc}") from exc
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PulseUnavailable(
                    f"pulseaudio exited with status {self.process.returncode}: {self._log_tail()}"
                )
            if self.socket.exists() and self._ready():
                self.starts += 1
                return self
            time.sleep(0.05)
        self.stop()
        raise PulseUnavailable(f"pulseaudio did not get ready in {timeout:g} s: {self._log_tail()}")

    def _ready(self) -> bool:
        proc = subprocess.run(
            ["pactl", "info"],
            env=self.client_env(),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return proc.returncode == 0 and f"Default Source: {SINK}.monitor" in proc.stdout

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        errors = [line for line in lines if line.startswith("E:")]
        return " | ".join((errors or lines)[-3:]) or "no log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """End the server at once (SIGKILL), as a crash would; its clients' streams die."""
        if self.running:
            self.process.kill()
        if self.process is not None:
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s)."""
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.process is not None:
            self.process.wait(timeout=10)
            self.process = None

    def restart(self) -> PulseServer:
        self.kill()
        return self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> PulseServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- playing -------------------------------------------------------------------------------

    def play(self, wav: str | Path, timeout: float = 120.0) -> tuple[float, float]:
        """Play a WAV into the null sink with ``paplay``; returns its ``time.monotonic()`` start
        and end (paplay ends when the server has played the last sample)."""
        start = time.monotonic()
        proc = subprocess.run(
            ["paplay", "--client-name=edgeav-test", f"--device={SINK}", str(wav)],
            env=self.client_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        end = time.monotonic()
        if proc.returncode != 0:
            raise EdgeAVError(f"paplay {wav} failed: {proc.stderr.strip() or proc.returncode}")
        return start, end
