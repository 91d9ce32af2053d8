"""critique: one peer critiques one proposal (every ordered pair of agents, in parallel).

The critic answers a structured document (defects with severities, constraint violations), so
the council can tell when no blocker or major defect is left (``graph.routing``); the author
reads it rendered as text.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from council_agents.core.state import AgentTask, Critique, Defect
from council_agents.llm.context_window import Oldest
from council_agents.llm.stage import run_agent


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DefectAnswer(_Doc):
    """One defect."""

    severity: Literal["blocker", "major", "minor"]
    where: str = Field(max_length=200)
    what: str = Field(min_length=1, max_length=800)
    fix: str = Field(max_length=800)


class CritiqueAnswer(_Doc):
    """What a critic answers."""

    defects: list[DefectAnswer] = Field(max_length=12)
    violations: list[str] = Field(max_length=8)
    summary: str = Field(max_length=800)


def render(critic: str, answer: CritiqueAnswer) -> str:
    """The critique as the author reads it."""
    lines = [f"### From {critic}", answer.summary.strip() or "(no summary)"]
    for v in answer.violations:
        lines.append(f"- **constraint violated**: {v}")
    for d in answer.defects:
        fix = f" Suggested fix: {d.fix}" if d.fix.strip() else ""
        lines.append(f"- **{d.severity}** ({d.where or 'general'}): {d.what}{fix}")
    if not answer.defects and not answer.violations:
        lines.append("- no defects found")
    return "\n".join(lines)


async def critique(task: AgentTask) -> dict[str, Any]:
    """The agent's critique of ``task["author"]``'s latest version."""
    critic = task["agent"]["agent_id"]
    answer = await run_agent(
        task,
        "critique",
        answer=CritiqueAnswer,
        author=task["author"],
        version=task["round"] - 1,
        round=task["round"],
        pieces={"proposal": Oldest("proposal under critique", task["proposal"])},
    )
    doc: CritiqueAnswer = answer.parsed
    written = Critique(
        round=task["round"],
        critic=critic,
        author=task["author"],
        content=render(critic, doc),
        defects=[
            Defect(severity=d.severity, where=d.where, what=d.what, fix=d.fix) for d in doc.defects
        ],
        violations=list(doc.violations),
    )
    return {"critiques": [written], "calls": answer.records}
