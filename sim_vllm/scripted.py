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

from council_agents.evals.humaneval import Problem

BrokenKind = Literal["early_return", "raise"]
BROKEN_KINDS: tuple[BrokenKind, ...] = ("early_return", "raise")

_FIRST_STATEMENT = {"early_return": "return None", "raise": "raise NotImplementedError"}


def _indent_of_body(body: str) -> str:
    first = next(line for line in body.splitlines() if line.strip())
    return first[: len(first) - len(first.lstrip())]


def solution_code(problem: Problem, correct: bool = True, kind: BrokenKind = "early_return") -> str:
    """The whole function (prompt plus body): canonical, or broken as ``kind`` says."""
    body = problem["canonical_solution"]
    if not correct:
        if kind not in _FIRST_STATEMENT:
            raise ValueError(f"unknown broken kind {kind!r}: choose one of {BROKEN_KINDS}")
        body = f"{_indent_of_body(body)}{_FIRST_STATEMENT[kind]}\n{body}"
    return problem["prompt"] + body


def answer_text(problem: Problem, correct: bool = True, kind: BrokenKind = "early_return") -> str:
    """An answer as a model would give it: one sentence and the function in a python block."""
    code = solution_code(problem, correct, kind).strip("\n")
    return f"Here is the complete function.\n\n```python\n{code}\n```\n"


def broken_kind_for(problem: Problem) -> BrokenKind:
    """A deterministic broken kind per problem (alternating), so scripts vary without a seed."""
    return BROKEN_KINDS[problem["index"] % len(BROKEN_KINDS)]
