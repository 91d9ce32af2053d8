"""critique: one peer critiques one proposal (the round's pairs, in parallel).

Every critic of a round reads the same prompt up to its last lines: the latest versions of
every agent still in, in the deliberation's fixed order under neutral labels; the label under
critique and the critic's own come last (the prefix cache serves the rest).

The critic answers a structured document (defects with severities, constraint violations), so
the council can tell when no blocker or major defect is left (``graph.routing``); the author
reads it rendered as text (``llm.prompt.critique_text``). With the council's ``quotes``
checker, a defect whose ``where`` quotes text the proposal does not have is dropped and counted
(``checks.quotes``; ``Critique.dropped``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from council_agents.checks import quotes
from council_agents.core.state import Critique, CritiqueTask, CritiqueUpdate, Defect
from council_agents.core.terms import Severity
from council_agents.llm.client import LLM
from council_agents.llm.stage import (
    LEFT_OUT,
    evidence_piece,
    labels_for,
    omission,
    proposals_piece,
    run_agent,
)


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DefectAnswer(_Doc):
    """One defect."""

    severity: Severity
    where: str = Field(max_length=200)
    what: str = Field(min_length=1, max_length=800)
    fix: str = Field(max_length=800)


class CritiqueAnswer(_Doc):
    """What a critic answers."""

    defects: list[DefectAnswer] = Field(max_length=12)
    violations: list[str] = Field(max_length=8)
    summary: str = Field(max_length=800)


def critique_inputs(task: CritiqueTask) -> dict[str, Any]:
    """The values and pieces of ``critique.md`` for ``task`` (``llm.stage.stage_prompt``'s
    keyword arguments): every latest version under its label, the one under review, the
    critic's own label, the evidence.
    """
    critic = task["agent"]["agent_id"]
    order = task.get("order") or [task["author"]]
    labels = {a: label for label, a in labels_for(order).items()}
    return {
        "author": task["author"],
        "version": task["round"] - 1,
        "round": task["round"],
        "label": labels[task["author"]],
        "own": labels.get(critic, "none of them"),
        "proposal": task["proposal"],
        "pieces": {
            "proposals": proposals_piece(
                order, task.get("proposals") or {task["author"]: task["proposal"]}
            ),
            "evidence": evidence_piece(task),  # shortened last
        },
    }


async def critique(task: CritiqueTask, *, llm: LLM) -> CritiqueUpdate:
    """The agent's critique of ``task["author"]``'s latest version (or, when the critic's
    answers are rejected after every retry, an omission: the author goes without it).
    """
    try:
        answer = await run_agent(
            llm, task, "critique", answer=CritiqueAnswer, **critique_inputs(task)
        )
    except LEFT_OUT as e:
        left = omission(task, "critique", e, subject=task["author"])
        return CritiqueUpdate(omissions=[left], calls=e.records)
    doc: CritiqueAnswer = answer.parsed
    return CritiqueUpdate(critiques=[grounded(task, doc)], calls=answer.records)


def grounded(task: CritiqueTask, doc: CritiqueAnswer) -> Critique:
    """The critique a critic answered, without the defects that quote text the proposal does
    not have (when the council checks quotes), and how many went.
    """
    critic = task["agent"]["agent_id"]
    checked = "quotes" in task["council"].get("checkers", [])
    kept = [d for d in doc.defects if not (checked and quotes.missing(d.where, task["proposal"]))]
    written = Critique(
        round=task["round"],
        critic=critic,
        author=task["author"],
        summary=doc.summary.strip(),
        defects=[Defect(severity=d.severity, where=d.where, what=d.what, fix=d.fix) for d in kept],
        violations=list(doc.violations),
    )
    if checked:
        written["dropped"] = len(doc.defects) - len(kept)
    return written
