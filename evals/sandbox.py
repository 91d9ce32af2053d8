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
import os
from collections.abc import Iterable
from dataclasses import dataclass

from council_agents.checks.code import completed, extract_code
from council_agents.checks.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, Status, execute
from council_agents.evals.humaneval import Problem


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


def build_program(problem: Problem, code: str) -> str:
    """The program the child runs: prompt, the answer's code, the tests, ``check(entry)``."""
    entry = problem["entry_point"]
    return f"{completed(problem['prompt'], entry, code)}\n\n{problem['test']}\n\ncheck({entry})\n"


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
