"""select: a judge scores every final proposal against the rubric (JSON-schema structured output).

The judge sees the proposals in an order shuffled by the deliberation id (position must not
decide), answers a document with a score per proposal per criterion, a winner and a
justification. The ranking is by mean score; ties go to the judge's named winner, then to the
lower agent id, so the outcome is deterministic for a given judgement.
"""

from __future__ import annotations

import functools
import random
from typing import Any, Literal

from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict, Field, create_model

from graph.context import Context
from graph.state import CouncilState
from nodes import llm, prompts
from nodes.common import kept
from nodes.prompts import rubric_text


def latest_drafts(state: CouncilState) -> dict[str, str]:
    """Each agent's newest version (ties impossible: one draft per agent and version)."""
    best: dict[str, tuple[int, str]] = {}
    for d in state.get("drafts", []):
        if d["agent_id"] not in best or d["version"] > best[d["agent_id"]][0]:
            best[d["agent_id"]] = (d["version"], d["content"])
    return {a: v[1] for a, v in best.items()}


def judgement_model(agent_ids: list[str], criteria: list[str]) -> type[BaseModel]:
    """The schema the judge must answer: every agent scored on every criterion."""
    return _judgement_model(tuple(agent_ids), tuple(criteria))


@functools.lru_cache(maxsize=256)
def _judgement_model(agent_ids: tuple[str, ...], criteria: tuple[str, ...]) -> type[BaseModel]:
    forbid = ConfigDict(extra="forbid", populate_by_name=False)
    crit = create_model("CriterionScores", __config__=forbid, **{
        # integers: llama.cpp's grammar enforces integer bounds but not number bounds (seen: 100)
        f"c{i}": (int, Field(ge=0, le=10, alias=name)) for i, name in enumerate(criteria)})
    proposal = create_model("ProposalScore", __config__=forbid, scores=(crit, ...),
                            rationale=(str, Field(min_length=1)))
    scores = create_model("Scores", __config__=forbid, **{
        f"a{i}": (proposal, Field(alias=aid)) for i, aid in enumerate(agent_ids)})
    return create_model("Judgement", __config__=forbid, scores=(scores, ...),
                        winner=(Literal[tuple(agent_ids)], ...),  # type: ignore[valid-type]
                        justification=(str, Field(min_length=1)))


def rank(judgement: dict[str, Any], agent_ids: list[str]) -> list[dict[str, Any]]:
    winner = judgement["winner"]
    rows = []
    for aid in agent_ids:
        s = judgement["scores"][aid]
        total = round(sum(s["scores"].values()) / len(s["scores"]), 3)
        rows.append({"agent_id": aid, "scores": s["scores"], "total": total, "rationale": s["rationale"]})
    rows.sort(key=lambda r: (-r["total"], r["agent_id"] != winner, r["agent_id"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


async def select(state: CouncilState, runtime: Runtime[Context]) -> dict[str, Any]:
    c = state["council"]
    finals = latest_drafts(state)
    ids = sorted(finals)
    order = ids[:]
    random.Random(state["deliberation_id"]).shuffle(order)
    criteria = list(c["rubric"])
    model = judgement_model(ids, criteria)
    schema = model.model_json_schema(by_alias=True)
    response_format = {"type": "json_schema",
                       "json_schema": {"name": "judgement", "schema": schema, "strict": True}}
    version = c["rounds"]
    msgs = prompts.messages(
        f"roles/{c['role'].lower()}", "select", role=c["role"], task=state["task"],
        constraints=c["constraints"] or "(none)", rubric=rubric_text(c["rubric"]), candidates=", ".join(order),
        proposals="\n\n".join(f"## Proposal by {aid} (version {version})\n{finals[aid]}" for aid in order))

    def validate(answer: str) -> dict[str, Any]:
        return model.model_validate_json(answer).model_dump(by_alias=True)

    records = await llm.call(runtime.context, c, c["judge"], stage="select", round_=c["rounds"],
                             deliberation_id=state["deliberation_id"], messages=msgs,
                             max_tokens=runtime.context.max_tokens["select"],
                             response_format=response_format, validate=validate)
    judgement = records[-1]["parsed"]
    ranking = rank(judgement, ids)
    return {"decision": {"winner": ranking[0]["agent_id"], "judge_winner": judgement["winner"],
                         "justification": judgement["justification"], "ranking": ranking,
                         "judge": c["judge"]["agent_id"], "presented_order": order,
                         "stop_reason": "rounds_completed"},
            "calls": kept(records)}
