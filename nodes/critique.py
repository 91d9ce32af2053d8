"""critique: one peer critiques one proposal (every ordered pair of agents, in parallel)."""

from __future__ import annotations

from typing import Any

from graph.state import AgentTask, Critique
from nodes.agent_stage import run_agent


async def critique(task: AgentTask) -> dict[str, Any]:
    """The agent's critique of ``task["author"]``'s latest version."""
    answer = await run_agent(
        task,
        "critique",
        author=task["author"],
        version=task["round"] - 1,
        proposal=task["proposal"],
        round=task["round"],
    )
    written = Critique(
        round=task["round"],
        critic=task["agent"]["agent_id"],
        author=task["author"],
        content=answer.content,
    )
    return {"critiques": [written], "calls": answer.records}
