"""approve: optional human approval before publishing (LangGraph ``interrupt``).

Runs only when the council requires approval. The interrupt carries the ranked candidates; the
client resumes with ``{"approved": true}`` or ``{"winner": "<agent id>", "reason": "..."}``.
It is its own node so that resuming never repeats the judges' calls. An approval keeps the
decision (and its stop reason) and records ``approved_by_human``; an override names the human
as the decider.
"""

from __future__ import annotations

from langgraph.types import interrupt

from council_agents.core.state import CouncilState, Decision, DecisionUpdate


async def approve(state: CouncilState) -> DecisionUpdate:
    """The decision, approved or overridden by a human."""
    d = state["decision"]
    answer = interrupt(
        {
            "question": "approve the winner, or name another with a reason",
            "winner": d["winner"],
            "justification": d["justification"],
            "ranking": d["ranking"],
        }
    )
    if not isinstance(answer, dict):
        raise ValueError(
            f"approval must be an object like {{'approved': true}} or "
            f"{{'winner': id, 'reason': text}}, got {answer!r}"
        )
    if answer.get("approved") is True and not answer.get("winner"):
        return DecisionUpdate(decision={**d, "approved_by_human": True})
    winner, reason = answer.get("winner"), (answer.get("reason") or "").strip()
    ids = [r["agent_id"] for r in d["ranking"]]
    if winner not in ids:
        raise ValueError(f"winner must be one of {ids}, got {winner!r}")
    if not reason:
        raise ValueError("an override needs a non-empty reason")
    overridden: Decision = {
        **d,
        "winner": winner,
        "justification": f"Human override: {reason}",
        "machine_justification": d["justification"],
        "decided_by": "human",
        "approved_by_human": True,
        "stop_reason": "human_override",
    }
    return DecisionUpdate(decision=overridden)
