"""Where a council eval's deliberations gain or lose: every draft scored, every stage counted.

    python -m bench.eval_anatomy --out DIR [--log FILE]

Reads an eval's ``eval.json`` and ``results.jsonl`` (``council eval --out DIR``) and the council
log its deliberations wrote (default ``COUNCIL_DATA_DIR/logs/council.jsonl``, where every LLM
call is logged with its full content at INFO). For each council strategy it prints, per stage,
the calls, the attempts rejected (cut at ``max_tokens`` or not matching the answer's schema)
and the completion tokens; then it scores every accepted draft (first answers and each round's
revisions) against the problem's tests in the eval's sandbox, and counts how many drafts still
contain the function, how many pass, and how often a revision turned a passing draft into a
failing one or the reverse. The anatomy tables in docs/EVAL.md come from it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from council_agents.checks.code import defines, extract_code
from council_agents.core.settings import Settings
from council_agents.evals.harness import thread_id
from council_agents.evals.humaneval import load_problems
from council_agents.evals.report import read_results
from council_agents.evals.sandbox import score_many
from council_agents.evals.strategies import STRATEGIES
from council_agents.nodes.revise import CHANGES, UNCHANGED

STAGES = ("propose", "critique", "revise", "vote", "judge")


def draft_text(stage: str, content: str) -> str | None:
    """The proposal an accepted propose or revise answer carries, else None. A revision is
    plain text before ``=== CHANGES ===`` (``UNCHANGED``: None, no new draft); logs of the
    protocol before it hold a JSON document whose ``proposal`` is the draft.
    """
    if stage == "propose":
        return content
    if stage != "revise":
        return None
    try:
        legacy = json.loads(content)
    except ValueError:
        legacy = None
    if isinstance(legacy, dict):
        proposal = legacy.get("proposal")
        return proposal if isinstance(proposal, str) else None
    if content.strip().upper().startswith(UNCHANGED):
        return None
    marker = CHANGES.search(content)
    return (content[: marker.start()] if marker else content).strip() or None


def read_calls(log: Path, threads: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """The ``llm.call`` records of the deliberations in ``threads`` (thread id -> (task id,
    strategy)), each with its ``task_id`` and ``strategy`` added.
    """
    calls = []
    with log.open(encoding="utf-8") as lines:
        for line in lines:
            if '"llm.call"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            where = threads.get(str(record.get("deliberation_id")))
            if record.get("event") == "llm.call" and where is not None:
                record["task_id"], record["strategy"] = where
                calls.append(record)
    return calls


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def _previous(
    drafts: dict[tuple[str, str, int], str], task: str, agent: str, version: int
) -> str | None:
    """The newest accepted draft of ``agent`` before ``version`` (a refused or unchanged
    revision left the one before it standing).
    """
    for v in range(version - 1, -1, -1):
        if (task, agent, v) in drafts:
            return drafts[(task, agent, v)]
    return None


async def anatomy(out_dir: Path, log: Path) -> str:
    """The report, as Markdown."""
    run = json.loads((out_dir / "eval.json").read_text(encoding="utf-8"))
    results = read_results(out_dir / "results.jsonl")
    problems = {p["task_id"]: p for p in load_problems("all")}
    threads = {  # the finished council deliberations
        thread_id(run["run_id"], problems[r["task_id"]], r["strategy"]): (
            r["task_id"],
            r["strategy"],
        )
        for r in results
        if r["strategy"] in STRATEGIES and STRATEGIES[r["strategy"]].kind == "council"
    }
    by_strategy: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in read_calls(log, threads):
        by_strategy[call["strategy"]].append(call)

    out = [f"Eval {run['run_id']} ({run.get('model')}, {out_dir}); log {log}", ""]
    for strategy, records in sorted(by_strategy.items()):
        n = len({c["task_id"] for c in records})
        out += [f"### {strategy} ({n} problems)", ""]
        out += ["| stage | calls | rejected | completion tokens |", "|---|---:|---:|---:|"]
        for stage in STAGES:
            mine = [c for c in records if c["stage"] == stage]
            if mine:
                rejected = sum(1 for c in mine if not c.get("accepted", True))
                tokens = sum(int(c.get("completion_tokens") or 0) for c in mine)
                out.append(f"| {stage} | {len(mine)} | {rejected} | {tokens} |")
        refused = sum(1 for c in records if not c.get("accepted", True))
        every = sum(int(c.get("completion_tokens") or 0) for c in records)
        out.append(
            f"| **all** | {len(records)} | {refused} ({_share(refused, len(records))}) | {every} |"
        )
        # the drafts: (task, agent, version) -> text; accepted answers only
        drafts: dict[tuple[str, str, int], str] = {}
        for c in records:
            if c.get("accepted", True) and c["stage"] in ("propose", "revise"):
                text = draft_text(c["stage"], c.get("content") or "")
                if text is not None:
                    drafts[(c["task_id"], c["agent_id"], int(c.get("round") or 0))] = text
        keys = sorted(drafts)
        outcomes = await score_many([(problems[k[0]], drafts[k]) for k in keys])
        passed = {k: o.passed for k, o in zip(keys, outcomes, strict=True)}
        kept: Counter[int] = Counter()
        total: Counter[int] = Counter()
        won: Counter[int] = Counter()
        for k in keys:
            version = k[2]
            total[version] += 1
            won[version] += passed[k]
            entry = problems[k[0]]["entry_point"]
            kept[version] += defines(extract_code(drafts[k], entry), entry)
        out += [
            "",
            "| draft | drafts | define the function | pass the tests |",
            "|---|---:|---:|---:|",
        ]
        for version in sorted(total):
            name = "first answer" if version == 0 else f"revision {version}"
            out.append(f"| {name} | {total[version]} | {kept[version]} | {won[version]} |")
        flips: Counter[tuple[bool, bool]] = Counter()
        still = [0, 0]  # revisions whose previous version defined the function: define it too
        for task, agent, version in keys:
            before = passed.get((task, agent, version - 1))
            if version and before is not None:
                flips[(before, passed[(task, agent, version)])] += 1
            previous = _previous(drafts, task, agent, version)
            entry = problems[task]["entry_point"]
            if version and previous is not None and defines(extract_code(previous, entry), entry):
                still[0] += 1
                still[1] += defines(extract_code(drafts[(task, agent, version)], entry), entry)
        out += [
            "",
            f"Revisions: pass -> fail {flips[(True, False)]}, fail -> pass "
            f"{flips[(False, True)]}, pass -> pass {flips[(True, True)]}, fail -> fail "
            f"{flips[(False, False)]}. Revisions of a draft that defined the function that still "
            f"define it: {still[1]} of {still[0]} ({_share(still[1], still[0])}).",
            "",
        ]
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(
        prog="python -m bench.eval_anatomy", description=(__doc__ or "").split("\n\n")[0]
    )
    ap.add_argument("--out", type=Path, required=True, help="the eval's results directory")
    ap.add_argument("--log", type=Path, default=None, help="the council log (JSON lines)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, print the report."""
    args = parse_args(argv)
    log = args.log or Settings.from_environment().data_dir / "logs" / "council.jsonl"
    if not (args.out / "eval.json").exists() or not log.exists():
        print(f"need {args.out / 'eval.json'} and {log}", file=sys.stderr)
        return 2
    print(asyncio.run(anatomy(args.out, log)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
