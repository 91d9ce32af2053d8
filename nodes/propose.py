"""propose: one agent writes its proposal (one Send task per agent, all in parallel)."""

from __future__ import annotations

from council_agents.core.state import Draft, DraftUpdate, ProposeTask
from council_agents.llm.client import LLM
from council_agents.llm.stage import run_agent


async def propose(task: ProposeTask, *, llm: LLM) -> DraftUpdate:
    """The agent's version 0."""
    answer = await run_agent(llm, task, "propose")
    draft = Draft(agent_id=task["agent"]["agent_id"], version=0, content=answer.content)
    return DraftUpdate(drafts=[draft], calls=answer.records)
