"""judge: one judgement of every final proposal, under neutral labels, evidence before scores.

Two judge tasks run in parallel with opposite presentation orders (``graph.routing``); each
sees the proposals as P1, P2, ... in its order, writes each one's strengths and defects before
its scores, and is mapped back to agent ids here. ``select`` averages them. With the council's
``quotes`` checker, a strength or defect that quotes text its proposal does not have is dropped
and counted (``checks.quotes``; ``Judgement.dropped``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from council_agents.checks import quotes
from council_agents.core.state import Assessment, Criterion, Judgement, JudgementUpdate, ShowTask
from council_agents.llm.client import LLM
from council_agents.llm.stage import (
    LEFT_OUT,
    labels_for,
    omission,
    proposals_piece,
    run_agent,
    shown,
)


@functools.lru_cache(maxsize=256)
def judgement_model(labels: tuple[str, ...], criteria: tuple[str, ...]) -> type[BaseModel]:
    """The schema a judge answers: for every label, evidence first, then a score per criterion
    (integers: llama.cpp's grammar bounds integers, not numbers), then a verdict.
    """
    forbid = ConfigDict(extra="forbid", populate_by_name=False)
    per_criterion: dict[str, Any] = {
        f"c{i}": (int, Field(ge=0, le=10, alias=name)) for i, name in enumerate(criteria)
    }
    scores = create_model("Scores", __config__=forbid, **per_criterion)
    assessment = create_model(
        "Assessment",
        __config__=forbid,
        strengths=(list[str], Field(max_length=6)),
        defects=(list[str], Field(max_length=6)),
        scores=(scores, ...),
        verdict=(str, Field(min_length=1, max_length=600)),
    )
    per_label: dict[str, Any] = {
        f"p{i}": (assessment, Field(alias=label)) for i, label in enumerate(labels)
    }
    return create_model("Judgement", __config__=forbid, **per_label)


def weighted_total(scores: Mapping[str, float], rubric: Mapping[str, Criterion]) -> float:
    """The weighted mean of a proposal's scores."""
    weight = sum(rubric[name]["weight"] for name in scores)
    return round(sum(score * rubric[name]["weight"] for name, score in scores.items()) / weight, 3)


async def judge(task: ShowTask, *, llm: LLM) -> JudgementUpdate:
    """One judgement, mapped back to the agents (or, when the judge's answers are rejected
    after every retry, an omission: the other judgements and the vote decide).
    """
    council = task["council"]
    labels = labels_for(task["order"])
    model = judgement_model(tuple(labels), tuple(council["rubric"]))
    try:
        answer = await run_agent(
            llm,
            task,
            "judge",
            system="roles/judge",
            answer=model,
            labels=", ".join(labels),
            pieces={"proposals": proposals_piece(task["order"], shown(task))},
        )
    except LEFT_OUT as e:
        left = omission(task, "judge", e, subject=",".join(task["order"]))
        return JudgementUpdate(omissions=[left], calls=e.records)
    doc = answer.parsed.model_dump(by_alias=True)
    assessments: dict[str, Assessment] = {labels[label]: doc[label] for label in labels}
    dropped = 0
    if "quotes" in council.get("checkers", []):
        texts = shown(task)
        for agent_id, assessment in assessments.items():
            assessment["strengths"], gone = quotes.grounded(
                assessment["strengths"], texts[agent_id]
            )
            assessment["defects"], also = quotes.grounded(assessment["defects"], texts[agent_id])
            dropped += gone + also
    judgement = Judgement(
        judge=task["agent"]["agent_id"],
        model=task["agent"]["model"],
        order=task["order"],
        assessments=assessments,
        totals={a: weighted_total(s["scores"], council["rubric"]) for a, s in assessments.items()},
    )
    if "quotes" in council.get("checkers", []):
        judgement["dropped"] = dropped
    return JudgementUpdate(judgements=[judgement], calls=answer.records)
