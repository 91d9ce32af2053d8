"""revise: an author revises its own proposal from the critiques it received (in parallel).

The author answers which defects it addressed and how, which it rejected and why, then the
full revised proposal (a structured document).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from council_agents.core.state import Change, Draft, DraftUpdate, ReviseTask
from council_agents.llm.client import LLM
from council_agents.llm.prompt import Critiques, Oldest
from council_agents.llm.stage import run_agent


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


async def revise(task: ReviseTask, *, llm: LLM) -> DraftUpdate:
    """The agent's version ``round``."""
    agent_id = task["agent"]["agent_id"]
    answer = await run_agent(
        llm,
        task,
        "revise",
        answer=RevisionAnswer,
        author=agent_id,
        version=task["round"] - 1,
        round=task["round"],
        pieces={  # shortened in this order when the context window needs it
            "critiques": Critiques(task["critiques"]),
            "proposal": Oldest("proposal under revision", task["proposal"]),
        },
    )
    doc: RevisionAnswer = answer.parsed
    draft = Draft(
        agent_id=agent_id,
        version=task["round"],
        content=doc.proposal.strip(),
        addressed=[Change(defect=c.defect, response=c.response) for c in doc.addressed],
        rejected=[Change(defect=c.defect, response=c.response) for c in doc.rejected],
    )
    return DraftUpdate(drafts=[draft], calls=answer.records)
