"""Two ``council eval`` runs side by side on the problems both ran (old figures beside new).

    python -m bench.side_by_side OLD/results.jsonl NEW/results.jsonl [--first 0 --last 7]

Per strategy: problems, passed, no answer, completion and prompt tokens and LLM calls per
problem, for each run, restricted to HumanEval/<first>..<last> (default: every problem both
runs have). A Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

Row = dict[str, Any]


def load(path: Path) -> list[Row]:
    """The records of a ``results.jsonl``."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def number(task_id: str) -> int:
    """``HumanEval/12`` -> 12."""
    return int(task_id.rsplit("/", 1)[1])


def figures(rows: list[Row], problems: set[int]) -> dict[str, dict[str, float]]:
    """Strategy -> its figures over ``problems``."""
    by: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if number(r["task_id"]) in problems:
            by[r["strategy"]].append(r)
    out = {}
    for strategy, rs in by.items():
        n = len(rs)
        out[strategy] = {
            "n": n,
            "passed": sum(bool(r["passed"]) for r in rs),
            "no answer": sum(not r.get("answered", True) for r in rs),
            "completion": round(sum(r["completion_tokens"] for r in rs) / n),
            "prompt": round(sum(r["prompt_tokens"] for r in rs) / n),
            "calls": round(sum(r["llm_calls"] for r in rs) / n, 1),
        }
    return out


def table(old: list[Row], new: list[Row], problems: set[int]) -> str:
    """The Markdown table."""
    a, b = figures(old, problems), figures(new, problems)
    keys = ("passed", "no answer", "completion", "prompt", "calls")
    head = ["strategy"] + [f"{side} {k}" for side in ("old", "new") for k in keys]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for strategy in sorted(set(a) | set(b)):
        cells = [strategy]
        for side in (a, b):
            got = side.get(strategy)
            for k in keys:
                if got is None:
                    cells.append("—")
                elif k == "passed":
                    cells.append(f"{got['passed']}/{got['n']}")
                else:
                    cells.append(f"{got[k]:g}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    ap = argparse.ArgumentParser(prog="python -m bench.side_by_side", description=__doc__)
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--first", type=int, default=None)
    ap.add_argument("--last", type=int, default=None)
    args = ap.parse_args(argv)
    old, new = load(args.old), load(args.new)
    both = {number(r["task_id"]) for r in old} & {number(r["task_id"]) for r in new}
    first = min(both) if args.first is None else args.first
    last = max(both) if args.last is None else args.last
    print(table(old, new, {p for p in both if first <= p <= last}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
