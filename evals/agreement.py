"""The ``vote`` strategy for code: the answers whose outputs agree on the problem's own examples.

Majority voting (self-consistency) compares final answers; for code the answer is a program, so
two answers agree when they return the same values on the same inputs. Reading the examples,
running them in the sandbox and grouping the outputs is the product's code checker
(``checks.code``: ``example_calls``, ``run_examples``, ``pick``); the eval uses it on a
HumanEval problem. The expected outputs written next to the examples are NOT used, and the
problem's tests never are: selection sees only what a user would see.

Selection: every answer runs on the example calls in the sandbox; answers that do not run
(syntax error, timeout, memory, no code) drop out; the others are grouped by their outputs.
The group that wins has (1) not only exceptions as outputs, (2) the most answers, (3) the
earliest answer; its earliest answer is chosen. With no usable answer, the first answer is
chosen (it fails like the others). A problem without examples groups every answer that runs
together, so the first answer that runs is chosen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from council_agents.checks import code
from council_agents.checks.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S
from council_agents.evals.humaneval import Problem


def example_calls(problem: Problem) -> list[str]:
    """The example inputs of ``problem``'s docstring as calls (``checks.code.example_calls``)."""
    return code.example_calls(problem["prompt"], problem["entry_point"])


async def choose(
    problem: Problem,
    answers: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> int:
    """The index of the answer the vote chooses (see the module docs)."""
    prompt, entry = problem["prompt"], problem["entry_point"]
    calls = example_calls(problem)
    runs = await asyncio.gather(
        *(
            code.run_examples(
                prompt,
                entry,
                code.extract_code(answer, entry),
                calls,
                timeout=timeout,
                memory_mb=memory_mb,
            )
            for answer in answers
        )
    )
    return code.pick([run.outputs if run.status == "passed" else None for run in runs])
