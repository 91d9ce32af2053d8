"""Answers of known correctness for HumanEval problems, for the simulated vLLM and for tests.

A correct answer is the package's canonical solution (the prompt completed by its body) in a
``python`` block. A broken answer is derived from it so that it must fail the tests while it
still looks like an answer of about the same length:

- ``early_return``: the canonical body, preceded by ``return None`` (the rest is dead code);
- ``raise``: the canonical body, preceded by ``raise NotImplementedError``.

Both kinds fail every one of the 164 problems (``early_return`` as a failed assertion, or as an
error where the tests compute with the result; ``raise`` as an error):
``tests/unit/test_eval_scorer.py`` runs every broken variant through the sandbox to prove it.
"""

from __future__ import annotations

from typing import Literal

from council_agents.sim_vllm.problems import Problem

BrokenKind = Literal["early_return", "raise"]
BROKEN_KINDS: tuple[BrokenKind, ...] = ("early_return", "raise")

_FIRST_STATEMENT = {"early_return": "return None", "raise": "raise NotImplementedError"}


def _indent_of_body(body: str) -> str:
    first = next(line for line in body.splitlines() if line.strip())
    return first[: len(first) - len(first.lstrip())]


def solution_code(problem: Problem, correct: bool = True, kind: BrokenKind = "early_return") -> str:
    """The whole function (prompt plus body): canonical, or broken as ``kind`` says.

    Args:
        problem: The problem whose canonical solution is the starting point.
        correct: True for the canonical solution, False for a broken variant.
        kind: How a broken variant is broken (ignored when ``correct``).

    Returns:
        The prompt followed by the (possibly broken) body.

    Raises:
        ValueError: ``kind`` is not one of :data:`BROKEN_KINDS`.
    """
    body = problem["canonical_solution"]
    if not correct:
        if kind not in _FIRST_STATEMENT:
            raise ValueError(f"unknown broken kind {kind!r}: choose one of {BROKEN_KINDS}")
        body = f"{_indent_of_body(body)}{_FIRST_STATEMENT[kind]}\n{body}"
    return problem["prompt"] + body


def answer_text(problem: Problem, correct: bool = True, kind: BrokenKind = "early_return") -> str:
    """An answer as a model would give it: one sentence and the function in a python block.

    Args:
        problem: The problem answered.
        correct: Whether the function is the canonical solution or a broken variant.
        kind: How a broken variant is broken.

    Returns:
        The answer's text.
    """
    code = solution_code(problem, correct, kind).strip("\n")
    return f"Here is the complete function.\n\n```python\n{code}\n```\n"


def broken_kind_for(problem: Problem) -> BrokenKind:
    """A deterministic broken kind per problem (alternating), so scripts vary without a seed."""
    return BROKEN_KINDS[problem["index"] % len(BROKEN_KINDS)]
