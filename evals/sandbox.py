"""Run an answer's code against a problem's tests, inside the sandbox (``checks.sandbox``).

The program that runs is the problem's prompt up to the stub of the function to write (its
imports and helper functions), the answer's code, the problem's tests and
``check(<entry point>)``. If the answer's code does not define the entry point, it is taken as
the body that completes the whole prompt (as HumanEval's own harness does). Each program runs
under bubblewrap (no network, a read-only view of the Python installation and nothing of the
machine's files, a private /tmp, resource limits, a wall-clock timeout), one per answer, started
with asyncio so many answers are scored in parallel (at most ``concurrency`` at once). The
outcome is one of ``passed`` (every test ran and none failed), ``failed`` (a test's assertion
failed; the reason names it), ``timeout``, ``memory`` or ``error`` (no code, a syntax error, an
exception, an early ``exit()``, death by a signal). Only ``passed`` counts as solved; a child
that exits early with status 0 is not (the runner prints a per-run nonce only after ``check``
returned). Without bubblewrap nothing runs (``checks.sandbox.SandboxUnavailable``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from council_agents.checks.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, Status, execute
from council_agents.evals.humaneval import Problem

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
    run = await execute(build_program(problem, code), timeout, memory_mb)
    return Outcome(run.status, run.reason, run.seconds)


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
    run = await execute(program, timeout, memory_mb)
    if run.status != "passed":
        return Examples(run.status, run.reason, ())
    marks = [line for line in run.stdout.splitlines() if line.startswith("@@outputs ")]
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
