"""Running code from answers: only here, only inside a real isolation tool.

``execute`` runs a Python program under Debian's **bubblewrap** (``bwrap``): a new user, PID,
IPC, UTS and network namespace (no network: only a loopback nothing listens on), a read-only
root (its own, remounted read-only: nothing but ``/tmp`` and its directory takes a write), a
read-only view of the system's libraries and of the Python installation and nothing else (not the
repository, not the data directory and its secrets, not ``/root`` or ``/home``), a private
``/tmp``, its own writable directory, an empty environment, and it dies with its parent. Inside,
resource limits bound what the code can take: address space (``RLIMIT_AS``), CPU time
(``RLIMIT_CPU``), the size of any file it writes (``RLIMIT_FSIZE``), no core dumps; a wall-clock
timeout kills its whole process group. Where ``bwrap`` is not installed, nothing runs:
``SandboxUnavailable`` says so in one line.

The outcome is one of ``passed`` (the program ran to its end, proven by a per-run nonce it prints
last), ``failed`` (an assertion failed), ``timeout``, ``memory`` or ``error`` (anything else: a
syntax error, an exception, an early ``exit()``, death by a signal).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["passed", "failed", "timeout", "memory", "error"]

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 1024
OUTPUT_LIMIT_BYTES = 1 << 20
"""``RLIMIT_FSIZE``: stdout, stderr and any file the code writes."""
REASON_CHARS = 300
INSIDE = "/sandbox"
"""The program's writable directory, as it sees it."""

# Exit codes of the runner (below) that tell the parent what happened.
_FAILED, _ERROR, _MEMORY, _EXITED, _OUTPUT = 11, 12, 13, 14, 15

# Runs in the child: set the limits, run solution.py under a name that is not __main__, classify
# the outcome by exit code, and print the nonce only when the program returned.
_RUNNER = r"""
import errno, os, resource, sys, traceback
nonce, memory, cpu, fsize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
def leave(code, reason):
    try:
        sys.stdout.flush()
    except OSError:
        pass
    try:
        line = "\n@@reason " + " ".join(reason.split())[:300] + "\n"
        os.write(2, line.encode("utf-8", "replace"))
    except OSError:
        pass
    os._exit(code)
try:
    with open("solution.py", encoding="utf-8") as f:
        source = f.read()
    exec(compile(source, "solution.py", "exec"), {"__name__": "solution"})
except MemoryError:
    os._exit(13)
except AssertionError as e:
    frame = traceback.extract_tb(e.__traceback__)[-1]
    leave(11, f"line {frame.lineno}: {frame.line or 'assert'}" + (f" ({e})" if str(e) else ""))
except OSError as e:
    if e.errno != errno.EFBIG:
        leave(12, f"{type(e).__name__}: {e}")
    leave(15, "output limit")
except SystemExit as e:
    leave(14, f"the code called exit({e.code!r}) before it finished")
except BaseException as e:
    leave(12, f"{type(e).__name__}: {e}")
try:
    sys.stdout.flush()
    os.write(1, ("\n" + nonce + "\n").encode())
except OSError:
    leave(15, "output limit")
os._exit(0)
"""


class SandboxUnavailable(RuntimeError):
    """No isolation tool here: code from answers is not run."""


@dataclass(frozen=True)
class Run:
    """What a program did in the sandbox."""

    status: Status
    reason: str
    """Why it did not pass (one line; empty when it passed)."""
    stdout: str
    """The tail of what it printed."""
    seconds: float


def bwrap() -> str:
    """The ``bwrap`` binary (``SandboxUnavailable`` when it is not installed)."""
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxUnavailable(
            "running code from answers needs bubblewrap (the bwrap command: "
            "apt-get install bubblewrap), and it is not installed here"
        )
    return found


def available() -> bool:
    """Whether code can be run here (``bwrap`` is installed)."""
    return shutil.which("bwrap") is not None


def _interpreter() -> tuple[str, str]:
    """The Python that runs inside (the installation itself, not a virtual environment) and the
    directory that holds it.
    """
    return os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix)


def command(workdir: str, argv: list[str]) -> list[str]:
    """The ``bwrap`` command line that runs ``argv`` with ``workdir`` as ``/sandbox``."""
    _, prefix = _interpreter()
    cmd = [bwrap(), "--unshare-all", "--die-with-parent", "--new-session"]
    for path in ("/usr", "/bin", "/lib", "/lib64", "/etc/alternatives"):
        cmd += ["--ro-bind-try", path, path]
    cmd += ["--ro-bind", prefix, prefix, "--bind", workdir, INSIDE, "--chdir", INSIDE]
    cmd += ["--tmpfs", "/tmp", "--dev", "/dev", "--proc", "/proc", "--clearenv"]
    cmd += [
        "--remount-ro",
        "/",
    ]  # the sandbox's own root too: only /tmp and its directory take writes
    for name, value in _environment().items():
        cmd += ["--setenv", name, value]
    return [*cmd, "--", *argv]


def _environment() -> dict[str, str]:
    # One BLAS/OpenMP thread: numerical libraries otherwise reserve address space per core,
    # which RLIMIT_AS counts.
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": INSIDE,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }


def _tail(path: Path, size: int = 4096) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _reason_from(stderr: str) -> str:
    marks = [line for line in stderr.splitlines() if line.startswith("@@reason ")]
    if marks:
        return marks[-1].removeprefix("@@reason ")
    lines = [line for line in stderr.splitlines() if line.strip()]
    return " ".join(lines[-1].split())[:REASON_CHARS] if lines else ""


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _classify(
    code: int | None, stdout: str, stderr: str, nonce: str, memory_mb: int
) -> tuple[Status, str]:
    reason = _reason_from(stderr)
    if code == 0:
        if stdout.rstrip("\n").endswith(nonce):
            return "passed", ""
        return "error", "the process exited with status 0 before it finished"
    if code == _FAILED:
        return "failed", reason or "an assertion failed"
    if code == _MEMORY:
        return "memory", f"memory limit ({memory_mb} MiB) reached: MemoryError"
    if code == _OUTPUT:
        return "error", f"output limit ({OUTPUT_LIMIT_BYTES} bytes) reached"
    if code in (_ERROR, _EXITED):
        return "error", reason or "an exception"
    if code is not None and code < 0:
        sig = signal.Signals(-code)
        if sig == signal.SIGXCPU:
            return "timeout", "CPU-time limit reached"
        if sig == signal.SIGXFSZ:
            return "error", f"output limit ({OUTPUT_LIMIT_BYTES} bytes) reached"
        return "error", f"killed by {sig.name}" + (f": {reason}" if reason else "")
    return "error", f"exit status {code}" + (f": {reason}" if reason else "")


async def execute(
    program: str, timeout: float = DEFAULT_TIMEOUT_S, memory_mb: int = DEFAULT_MEMORY_MB
) -> Run:
    """Run ``program`` (Python source) in the sandbox (see the module docs)."""
    argv_bwrap = bwrap()  # refused before anything is written
    started = time.perf_counter()
    nonce = secrets.token_hex(16)
    interpreter, _ = _interpreter()
    with tempfile.TemporaryDirectory(prefix="council-run-", ignore_cleanup_errors=True) as workdir:
        work = Path(workdir)
        (work / "solution.py").write_text(program, encoding="utf-8")
        limits = [nonce, str(memory_mb << 20), str(int(timeout) + 1), str(OUTPUT_LIMIT_BYTES)]
        argv = command(workdir, [interpreter, "-I", "-c", _RUNNER, *limits])
        argv[0] = argv_bwrap
        with (work / ".stdout").open("wb") as out, (work / ".stderr").open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env={"PATH": os.defpath},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        try:
            returncode: int | None = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            returncode = None
        finally:
            _kill_group(proc.pid)  # the sandbox and everything in it
            if proc.returncode is None:
                await proc.wait()
        elapsed = time.perf_counter() - started
        if returncode is None:
            return Run("timeout", f"no result within {timeout:g} s", "", elapsed)
        stdout = _tail(work / ".stdout", 1 << 16)
        status, reason = _classify(returncode, stdout, _tail(work / ".stderr"), nonce, memory_mb)
        return Run(status, reason, stdout, elapsed)
