"""Run an answer's code against a problem's tests in a separate, limited process.

The program that runs is the problem's prompt up to the stub of the function to write (its
imports and helper functions), the answer's code, the problem's tests and
``check(<entry point>)``. If the answer's code does not define the entry point, it is taken as
the body that completes the whole prompt (as HumanEval's own harness does). The program runs
under ``python -I`` in a child process, one per answer, started with asyncio so many answers are
scored in parallel (at most ``concurrency`` at once). The outcome is one of:

- ``passed``: every test ran and none failed;
- ``failed``: a test's assertion failed (the reason names the assertion);
- ``timeout``: the wall-clock limit passed (or the CPU-time limit, a backstop);
- ``memory``: the memory limit was reached (``MemoryError`` under ``RLIMIT_AS``);
- ``error``: anything else: no code, a syntax error, an exception, an early ``exit()``, death
  by a signal. Only ``passed`` counts as solved.

What this isolation protects against (the accidents of model-written code):

- hangs and slow code: a wall-clock timeout kills the child's whole process group, and
  ``RLIMIT_CPU`` stops a busy child even if the parent is stalled;
- runaway memory: ``RLIMIT_AS`` caps the child's address space, so it gets ``MemoryError`` (or
  dies) instead of pushing the machine into swap or the OOM killer;
- runaway output: ``RLIMIT_FSIZE`` caps any file it writes, stdout and stderr go to capped
  files, and only their tail is read back;
- stray files: the child runs in a fresh temporary directory that is deleted afterwards;
- leaked secrets through the environment: the child gets a minimal environment (``PATH``,
  ``HOME``/``TMPDIR`` pointing at its directory, ``LANG``, one BLAS/OpenMP thread), not the
  parent's (no API keys, no ``COUNCIL_*``), and ``-I`` ignores every ``PYTHON*`` variable and
  the user's site-packages;
- reading input: stdin is ``/dev/null``, so ``input()`` fails at once instead of waiting;
- the scorer itself: an exception, crash or ``os._exit`` in the child cannot take the eval down,
  and a child that exits early with status 0 is not counted as passed (the runner prints a
  per-run nonce only after ``check`` returned);
- leftover processes it started in its own session: the whole process group is killed when the
  run ends.

What it does NOT protect against (it is not a security sandbox; run untrusted or adversarial
code in a throwaway VM or container, e.g. with gVisor, nsjail or firejail, instead):

- the network: the child can open any connection the machine can;
- reading files: it runs as the same user and can read whatever that user can, including
  ``/proc/<pid>/environ`` of other processes of that user (so a secret in the parent's
  environment is hidden from ``os.environ`` only, not from a determined reader), key files and
  the rest of the file system;
- writing or deleting files outside its directory through absolute paths;
- processes that leave its process group (``setsid``) or daemonise, fork bombs (``RLIMIT_NPROC``
  does not bind root), signals to other processes of the same user;
- kernel or interpreter exploits; CPU contention (a loaded machine makes slow code time out
  sooner, so keep ``concurrency`` at or below the core count).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from council_agents.evals.humaneval import Problem

Status = Literal["passed", "failed", "timeout", "memory", "error"]

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 1024
OUTPUT_LIMIT_BYTES = 1 << 20  # RLIMIT_FSIZE: stdout, stderr and any file the code writes
REASON_CHARS = 300

# Exit codes of the runner (below) that tell the parent what happened.
_FAILED, _ERROR, _MEMORY, _EXITED, _OUTPUT = 11, 12, 13, 14, 15

# Runs in the child: set the limits, run solution.py under a name that is not __main__, classify
# the outcome by exit code, and print the nonce only when check() returned.
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
    leave(14, f"the code called exit({e.code!r}) before the tests finished")
except BaseException as e:
    leave(12, f"{type(e).__name__}: {e}")
try:
    sys.stdout.flush()
    os.write(1, ("\n" + nonce + "\n").encode())
except OSError:
    leave(15, "output limit")
os._exit(0)
"""

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


@dataclass(frozen=True)
class Outcome:
    """The result of running one answer against one problem's tests."""

    status: Status
    reason: str
    seconds: float

    @property
    def passed(self) -> bool:
        """Whether the problem counts as solved."""
        return self.status == "passed"


def extract_code(answer: str, entry_point: str | None = None) -> str:
    """The code in an answer: a fenced block, preferably a python one defining the entry point.

    Order of preference: a python (or unlabelled) block that defines ``entry_point``, any block
    that defines it, the first python or unlabelled block, the first block, the raw answer (an
    answer with no fence at all is taken as code). An unclosed final fence (a cut-off answer)
    still counts as a block.
    """
    blocks: list[tuple[str, str]] = [(lang.lower(), body) for lang, body in _FENCE.findall(answer)]
    if not blocks:
        return answer.strip("\n")
    pythonic = [body for lang, body in blocks if lang in ("", "python", "py", "python3")]
    if entry_point:
        defining = [body for body in pythonic if defines(body, entry_point)]
        defining = defining or [body for _, body in blocks if defines(body, entry_point)]
        if defining:
            return defining[0]
    return (pythonic or [blocks[0][1]])[0]


def defines(code: str, name: str) -> bool:
    """Whether ``code`` has a ``def name(`` (or ``async def``) at any indentation."""
    return (
        re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", code, re.MULTILINE)
        is not None
    )


def build_program(problem: Problem, code: str) -> str:
    """The program the child runs: prompt, the answer's code, the tests, ``check(entry)``."""
    return f"{_defined(problem, code)}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def _clean_env(workdir: str) -> dict[str, str]:
    # One BLAS/OpenMP thread: numerical libraries otherwise reserve address space per core,
    # which RLIMIT_AS counts, and the scorer already runs one child per core.
    return {
        "PATH": os.defpath,
        "HOME": workdir,
        "TMPDIR": workdir,
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
        return "error", "the process exited with status 0 before the tests finished"
    if code == _FAILED:
        return "failed", reason or "a test's assertion failed"
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


def _defined(problem: Problem, code: str) -> str:
    """The prompt's context (imports, helper functions) and the answer's code, which defines the
    entry point (a whole function) or completes the prompt (a body).
    """
    prompt, entry = problem["prompt"], problem["entry_point"]
    if not defines(code, entry):
        return prompt + code
    # A whole function: keep what the prompt has before its stub and let the code stand for it.
    stubs = list(
        re.finditer(rf"^(?:async[ \t]+)?def[ \t]+{re.escape(entry)}[ \t]*\(", prompt, re.MULTILINE)
    )
    return (prompt[: stubs[-1].start()] if stubs else prompt + "\n\n") + code


async def _execute(program: str, timeout: float, memory_mb: int) -> tuple[Status, str, str, float]:
    """Run ``program`` in a limited child (see module docs): status, reason, stdout's tail and
    seconds. ``passed`` means the program ran to its end.
    """
    started = time.perf_counter()
    nonce = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="council-eval-", ignore_cleanup_errors=True) as workdir:
        work = Path(workdir)
        (work / "solution.py").write_text(program, encoding="utf-8")
        with (work / ".stdout").open("wb") as out, (work / ".stderr").open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-c",
                _RUNNER,
                nonce,
                str(memory_mb << 20),
                str(int(timeout) + 1),
                str(OUTPUT_LIMIT_BYTES),
                cwd=workdir,
                env=_clean_env(workdir),
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
            _kill_group(proc.pid)  # the child's own children too
            if proc.returncode is None:
                await proc.wait()
        elapsed = time.perf_counter() - started
        if returncode is None:
            return "timeout", f"no result within {timeout:g} s", "", elapsed
        stdout = _tail(work / ".stdout", 1 << 16)
        status, reason = _classify(returncode, stdout, _tail(work / ".stderr"), nonce, memory_mb)
        return status, reason, stdout, elapsed


async def run_tests(
    problem: Problem,
    code: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> Outcome:
    """Run ``code`` against ``problem``'s tests in a limited child process (see module docs)."""
    if not code.strip():
        return Outcome("error", "the answer has no code", 0.0)
    status, reason, _, elapsed = await _execute(build_program(problem, code), timeout, memory_mb)
    return Outcome(status, reason, elapsed)


# Evaluates each example call and prints the outputs' reprs (exceptions as "!Name") as one JSON
# line; sets are shown sorted (string hashing differs between processes).
_EXAMPLES = """

def _council_outputs(calls):
    import json

    def shown(value):
        if isinstance(value, (set, frozenset)):
            try:
                return type(value).__name__ + repr(sorted(value))
            except TypeError:
                pass
        return repr(value)[:300]

    outputs = []
    for call in calls:
        try:
            outputs.append(shown(eval(call)))
        except Exception as e:
            outputs.append("!" + type(e).__name__)
    print("\\n@@outputs " + json.dumps(outputs))


_council_outputs({calls!r})
"""


@dataclass(frozen=True)
class Examples:
    """What one answer's code returned on a problem's example inputs."""

    status: Status
    """``passed`` when the code ran through every call (each may have raised)."""
    reason: str
    outputs: tuple[str, ...]
    """Per call, the result's ``repr`` or ``!ExceptionName`` (empty unless ``passed``)."""


async def run_examples(
    problem: Problem,
    code: str,
    calls: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> Examples:
    """Run ``code`` on ``calls`` (Python expressions such as ``f(1, 2)``) in a limited child,
    never on the problem's tests: what the vote strategy compares answers by.
    """
    if not code.strip():
        return Examples("error", "the answer has no code", ())
    program = _defined(problem, code) + _EXAMPLES.format(calls=list(calls))
    status, reason, stdout, _ = await _execute(program, timeout, memory_mb)
    if status != "passed":
        return Examples(status, reason, ())
    marks = [line for line in stdout.splitlines() if line.startswith("@@outputs ")]
    if not marks:
        return Examples("error", "the outputs were not printed", ())
    return Examples("passed", "", tuple(json.loads(marks[-1].removeprefix("@@outputs "))))


async def score_answer(
    problem: Problem,
    answer: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> Outcome:
    """Extract the code from a model's ``answer`` and run it against ``problem``'s tests."""
    return await run_tests(
        problem, extract_code(answer, problem["entry_point"]), timeout=timeout, memory_mb=memory_mb
    )


async def score_many(
    pairs: Iterable[tuple[Problem, str]],
    *,
    concurrency: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> list[Outcome]:
    """Score (problem, answer) pairs in parallel, at most ``concurrency`` (default: cores) at once.

    Outcomes come back in the order of ``pairs``.
    """
    gate = asyncio.Semaphore(concurrency or os.cpu_count() or 2)

    async def one(problem: Problem, answer: str) -> Outcome:
        async with gate:
            return await score_answer(problem, answer, timeout=timeout, memory_mb=memory_mb)

    return list(await asyncio.gather(*(one(p, a) for p, a in pairs)))


def score_answer_sync(
    problem: Problem,
    answer: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> Outcome:
    """:func:`score_answer` for callers without an event loop."""
    return asyncio.run(score_answer(problem, answer, timeout=timeout, memory_mb=memory_mb))
