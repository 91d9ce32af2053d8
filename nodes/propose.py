"""propose: one agent writes its proposal (one Send task per agent, all in parallel)."""

from __future__ import annotations

from typing import Any

from council_agents.core.state import AgentTask, Draft
from council_agents.llm.stage import run_agent


async def propose(task: AgentTask) -> dict[str, Any]:
    """The agent's version 0."""
    answer = await run_agent(task, "propose")
    draft = Draft(agent_id=task["agent"]["agent_id"], version=0, content=answer.content)
    return {"drafts": [draft], "calls": answer.records}
