"""propose: one agent writes its proposal (one Send task per agent, all in parallel).

A proposer whose answers are rejected after every retry is left out of the deliberation (an
omission); the council goes on while at least two proposals remain (``graph.routing``).
"""

from __future__ import annotations

from council_agents.core.state import Draft, DraftUpdate, ProposeTask
from council_agents.llm.client import LLM
from council_agents.llm.stage import LEFT_OUT, omission, run_agent


async def propose(task: ProposeTask, *, llm: LLM) -> DraftUpdate:
    """The agent's version 0."""
    try:
        answer = await run_agent(llm, task, "propose")
    except LEFT_OUT as e:
        return DraftUpdate(omissions=[omission(task, "propose", e)], calls=e.records)
    draft = Draft(agent_id=task["agent"]["agent_id"], version=0, content=answer.content)
    return DraftUpdate(drafts=[draft], calls=answer.records)
