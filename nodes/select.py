"""select: a judge scores every final proposal against the rubric (JSON-schema structured output).

The judge sees the proposals in an order shuffled by the deliberation id (position must not
decide) and answers a document with a score per proposal per criterion, a winner and a
justification. The ranking is by mean score; ties go to the judge's named winner, then to the
lower agent id, so the outcome is deterministic for a given judgement.
"""

from __future__ import annotations

import functools
import random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from graph import settings
from graph.routing import latest_drafts
from graph.state import CouncilState, Decision, RankEntry
from nodes import llm_client, prompt_files


@functools.lru_cache(maxsize=256)
def judgement_model(agent_ids: tuple[str, ...], criteria: tuple[str, ...]) -> type[BaseModel]:
    """The schema the judge must answer: every agent scored on every criterion."""
    forbid = ConfigDict(extra="forbid", populate_by_name=False)
    # integers: llama.cpp's grammar enforces integer bounds but not number bounds (seen: 100)
    scores: dict[str, Any] = {
        f"c{i}": (int, Field(ge=0, le=10, alias=name)) for i, name in enumerate(criteria)
    }
    criterion_scores = create_model("CriterionScores", __config__=forbid, **scores)
    proposal = create_model(
        "ProposalScore",
        __config__=forbid,
        scores=(criterion_scores, ...),
        rationale=(str, Field(min_length=1)),
    )
    per_agent: dict[str, Any] = {
        f"a{i}": (proposal, Field(alias=agent_id)) for i, agent_id in enumerate(agent_ids)
    }
    all_scores = create_model("Scores", __config__=forbid, **per_agent)
    return create_model(
        "Judgement",
        __config__=forbid,
        scores=(all_scores, ...),
        winner=(Literal[agent_ids], ...),  # type: ignore[valid-type, arg-type]
        justification=(str, Field(min_length=1)),
    )


def rank(judgement: dict[str, Any], agent_ids: list[str]) -> list[RankEntry]:
    """Every proposal, best mean score first (ties: the judge's winner, then the lower id)."""
    winner = judgement["winner"]
    rows = []
    for agent_id in agent_ids:
        scored = judgement["scores"][agent_id]
        total = round(sum(scored["scores"].values()) / len(scored["scores"]), 3)
        rows.append(
            RankEntry(
                rank=0,
                agent_id=agent_id,
                scores=scored["scores"],
                total=total,
                rationale=scored["rationale"],
            )
        )
    rows.sort(key=lambda r: (-r["total"], r["agent_id"] != winner, r["agent_id"]))
    for place, row in enumerate(rows, 1):
        row["rank"] = place
    return rows


async def select(state: CouncilState) -> dict[str, Any]:
    """The judge's ranking and the winner."""
    council = state["council"]
    finals = latest_drafts(state)
    ids = sorted(finals)
    order = ids[:]
    random.Random(state["deliberation_id"]).shuffle(order)
    model = judgement_model(tuple(ids), tuple(council["rubric"]))
    response_format = {
        "type": "json_schema",
        "json_schema": {
            "name": "judgement",
            "schema": model.model_json_schema(by_alias=True),
            "strict": True,
        },
    }
    proposals = "\n\n".join(
        f"## Proposal by {agent_id} (version {council['rounds']})\n{finals[agent_id]}"
        for agent_id in order
    )
    messages = prompt_files.messages(
        f"roles/{council['role'].lower()}",
        "select",
        role=council["role"],
        task=state["task"],
        constraints=council["constraints"] or "(none)",
        rubric=prompt_files.rubric_text(council["rubric"]),
        candidates=", ".join(order),
        proposals=proposals,
    )

    def validate(answer: str) -> dict[str, Any]:
        return model.model_validate_json(answer).model_dump(by_alias=True)

    current = settings.current()
    answer = await llm_client.call(
        current,
        council["judge"],
        messages,
        stage="select",
        round_=council["rounds"],
        deliberation_id=state["deliberation_id"],
        max_tokens=current.max_tokens["select"],
        response_format=response_format,
        validate=validate,
    )
    judgement = answer.parsed
    ranking = rank(judgement, ids)
    decision = Decision(
        winner=ranking[0]["agent_id"],
        judge_winner=judgement["winner"],
        justification=judgement["justification"],
        ranking=ranking,
        judge=council["judge"]["agent_id"],
        presented_order=order,
        stop_reason="rounds_completed",
    )
    return {"decision": decision, "calls": answer.records}
