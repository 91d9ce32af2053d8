"""bench.eval_anatomy: stages counted from the council log, every draft scored, flips counted."""

from __future__ import annotations

import json
from pathlib import Path

from bench.eval_anatomy import anatomy
from council_agents.evals.humaneval import load_problems


def _call(did: str, stage: str, agent: str, round_: int, content: str, **kw: object) -> dict:
    return {
        "event": "llm.call",
        "deliberation_id": did,
        "stage": stage,
        "agent_id": agent,
        "round": round_,
        "content": content,
        "accepted": kw.get("accepted", True),
        "completion_tokens": kw.get("tokens", 10),
    }


def revision(proposal: str) -> str:
    """A revise answer as the stage accepts it."""
    return json.dumps({"addressed": [], "rejected": [], "proposal": proposal})


async def test_anatomy_scores_each_draft_and_counts_what_revisions_did(tmp_path: Path) -> None:
    problem = load_problems("test", limit=1)[0]
    good = f"```python\n{problem['prompt']}{problem['canonical_solution']}```"
    bad = f"```python\ndef {problem['entry_point']}(*args):\n    return None\n```"
    did = "eval-abcd1234.HumanEval-82.council1"
    calls = [
        _call(did, "propose", "agent-dev-001", 0, good),
        _call(did, "propose", "agent-dev-002", 0, bad),
        _call(did, "critique", "agent-dev-001", 1, "{", accepted=False, tokens=384),
        _call(did, "critique", "agent-dev-001", 1, "{}"),
        # a revision that drops the code, and one that fixes it
        _call(did, "revise", "agent-dev-001", 1, revision("Looks complete.")),
        _call(did, "revise", "agent-dev-002", 1, revision(good)),
        # another eval's deliberation in the same log is not counted
        _call("eval-ffff0000.HumanEval-82.council1", "propose", "agent-dev-001", 0, good),
    ]
    log = tmp_path / "council.jsonl"
    log.write_text("\n".join(json.dumps(c) for c in calls) + "\n", encoding="utf-8")
    out = tmp_path / "eval"
    out.mkdir()
    (out / "eval.json").write_text(json.dumps({"run_id": "abcd1234", "model": "m"}))
    result = {"task_id": problem["task_id"], "strategy": "council1", "passed": True}
    (out / "results.jsonl").write_text(json.dumps(result) + "\n")

    report = await anatomy(out, log)

    assert "| critique | 2 | 1 | 394 |" in report
    assert "| first answer | 2 | 2 | 1 |" in report
    assert "| revision 1 | 2 | 1 | 1 |" in report
    assert "pass -> fail 1, fail -> pass 1, pass -> pass 0, fail -> fail 0" in report
    assert "| **all** | 6 | 1 (16.7 %) | 434 |" in report
    # the first proposal defined the function and its revision dropped it; the second's too
    assert "that still define it: 1 of 2 (50.0 %)" in report
