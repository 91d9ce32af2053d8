"""The ``vote`` strategy for code: the answers whose outputs agree on the problem's own examples.

Majority voting (self-consistency) compares final answers; for code the answer is a program, so
two answers agree when they return the same values on the same inputs (the idea of MBR-exec,
Shi et al. 2022, and of CodeT's dual agreement, Chen et al. 2022). The inputs are the problem's
own examples, read from the docstring of the function to write: calls such as
``f(3, [1, 2])`` (doctests, ``f(x) ==> y``, ``f(x) = y``), and ``For x = ..., y = ...`` or
``Input: x = ...`` lines, turned into calls. The expected outputs written next to them are NOT
used, and the problem's tests never are: selection sees only what a user would see.

Selection: every answer runs on the example calls in the sandbox; answers that do not run
(syntax error, timeout, memory, no code) drop out; the others are grouped by their outputs.
The group that wins has (1) not only exceptions as outputs, (2) the most answers, (3) the
earliest answer; its earliest answer is chosen. With no usable answer, the first answer is
chosen (it fails like the others). A problem without examples groups every answer that runs
together, so the first answer that runs is chosen.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

from council_agents.checks.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S
from council_agents.evals.humaneval import Problem
from council_agents.evals.sandbox import extract_code, run_examples

MAX_CALLS = 12


def _docstring_and_parameters(problem: Problem) -> tuple[str, list[str], int]:
    """The docstring of the function to write, its parameters and how many are required."""
    name = problem["entry_point"]
    try:
        tree = ast.parse(problem["prompt"] + "    pass\n")
    except SyntaxError:
        return "", [], 0
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            args = node.args
            params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
            required = len(args.posonlyargs + args.args) - len(args.defaults)
            return ast.get_docstring(node) or "", params, required
    return "", [], 0


def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _usable(expression: str, params: list[str], required: int) -> str | None:
    """``expression`` normalised, if it is a call with literal arguments that fit the
    parameters (``fib4(n - 1)`` in a definition is not an example).
    """
    try:
        call = ast.parse(expression, mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(call, ast.Call):
        return None
    given = len(call.args) + len(call.keywords)
    values = [*call.args, *(k.value for k in call.keywords)]
    if not required <= given <= len(params) or not all(_literal(v) for v in values):
        return None
    if any(k.arg not in params for k in call.keywords):
        return None
    return ast.unparse(call)


def _written_calls(doc: str, name: str, params: list[str], required: int) -> list[str]:
    """``name(...)`` expressions in the docstring: balanced, literal arguments that fit."""
    calls = []
    for match in re.finditer(rf"\b{re.escape(name)}\(", doc):
        depth = 0
        for end in range(match.end() - 1, len(doc)):
            if doc[end] in "([{":
                depth += 1
            elif doc[end] in ")]}":
                depth -= 1
                if depth == 0:
                    call = _usable(doc[match.start() : end + 1], params, required)
                    if call is not None:
                        calls.append(call)
                    break
    return calls


_ASSIGNED = re.compile(
    r"^\s*(?:For|Input:)\s+(\w+\s*=.*?)\s*(?:,?\s*the (?:output|result)\b.*)?$", re.M
)
_BARE_INPUT = re.compile(r"^\s*Input:\s*([^=\n]+?)\s*$", re.M)


def _described_calls(doc: str, name: str, params: list[str], required: int) -> list[str]:
    """Calls built from ``For x = 1, y = 2 the output ...`` and ``Input: x = 1`` lines."""
    calls = []
    for match in _ASSIGNED.finditer(doc):
        call = _usable(f"{name}({match.group(1).rstrip(', ')})", params, required)
        if call is None and len(params) == 1:  # the docstring names the argument otherwise
            value = match.group(1).split("=", 1)[1].rstrip(", ")
            call = _usable(f"{name}({value})", params, required)
        if call is not None:
            calls.append(call)
    if len(params) == 1:
        for match in _BARE_INPUT.finditer(doc):
            call = _usable(f"{name}({match.group(1)})", params, required)
            if call is not None:
                calls.append(call)
    return calls


def example_calls(problem: Problem) -> list[str]:
    """The example inputs of ``problem``'s docstring as calls of its entry point (at most 12,
    first seen first, no duplicates).
    """
    doc, params, required = _docstring_and_parameters(problem)
    name = problem["entry_point"]
    calls = _written_calls(doc, name, params, required) or _described_calls(
        doc, name, params, required
    )
    return list(dict.fromkeys(calls))[:MAX_CALLS]


def pick(outputs: Sequence[tuple[str, ...] | None]) -> int:
    """The index of the chosen answer, from each answer's outputs (None: it did not run)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, output in enumerate(outputs):
        if output is not None:
            groups.setdefault(output, []).append(index)
    if not groups:
        return 0

    def rank(item: tuple[tuple[str, ...], list[int]]) -> tuple[bool, int, int]:
        output, members = item
        only_exceptions = bool(output) and all(o.startswith("!") for o in output)
        return (only_exceptions, -len(members), members[0])

    return min(groups.items(), key=rank)[1][0]


async def choose(
    problem: Problem,
    answers: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> int:
    """The index of the answer the vote chooses (see the module docs)."""
    import asyncio

    calls = example_calls(problem)
    runs = await asyncio.gather(
        *(
            run_examples(
                problem,
                extract_code(answer, problem["entry_point"]),
                calls,
                timeout=timeout,
                memory_mb=memory_mb,
            )
            for answer in answers
        )
    )
    return pick([run.outputs if run.status == "passed" else None for run in runs])
