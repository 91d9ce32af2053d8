"""revise: an author revises its own proposal from the critiques it received (in parallel).

The author answers which defects it addressed and how, which it rejected and why, then the
full revised proposal (a structured document).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from graph.state import AgentTask, Change, Critique, Draft
from nodes.agent_stage import run_agent


class ChangeAnswer(BaseModel):
    """One defect and the author's response to it."""

    model_config = ConfigDict(extra="forbid")
    defect: str = Field(max_length=800)
    response: str = Field(max_length=800)


class RevisionAnswer(BaseModel):
    """What an author answers."""

    model_config = ConfigDict(extra="forbid")
    addressed: list[ChangeAnswer] = Field(max_length=24)
    rejected: list[ChangeAnswer] = Field(max_length=24)
    proposal: str = Field(min_length=1)


def critiques_text(critiques: list[Critique]) -> str:
    """The critiques as the author reads them, one section per critic."""
    return "\n\n".join(c["content"] for c in critiques) or "(none)"


async def revise(task: AgentTask) -> dict[str, Any]:
    """The agent's version ``round``."""
    agent_id = task["agent"]["agent_id"]
    answer = await run_agent(
        task,
        "revise",
        answer=RevisionAnswer,
        author=agent_id,
        version=task["round"] - 1,
        proposal=task["proposal"],
        critiques=critiques_text(task.get("critiques", [])),
        round=task["round"],
    )
    doc: RevisionAnswer = answer.parsed
    draft = Draft(
        agent_id=agent_id,
        version=task["round"],
        content=doc.proposal.strip(),
        addressed=[Change(defect=c.defect, response=c.response) for c in doc.addressed],
        rejected=[Change(defect=c.defect, response=c.response) for c in doc.rejected],
    )
    return {"drafts": [draft], "calls": answer.records}
