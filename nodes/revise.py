"""revise: an author revises its own proposal from the critiques it received (in parallel)."""

from __future__ import annotations

from typing import Any

from graph.state import AgentTask, Critique, Draft
from nodes.agent_stage import run_agent


def critiques_text(critiques: list[Critique]) -> str:
    """The critiques as Markdown sections, one per critic."""
    return "\n\n".join(f"### From {c['critic']}\n{c['content']}" for c in critiques) or "(none)"


async def revise(task: AgentTask) -> dict[str, Any]:
    """The agent's version ``round``."""
    agent_id = task["agent"]["agent_id"]
    answer = await run_agent(
        task,
        "revise",
        author=agent_id,
        version=task["round"] - 1,
        proposal=task["proposal"],
        critiques=critiques_text(task.get("critiques", [])),
        round=task["round"],
    )
    draft = Draft(agent_id=agent_id, version=task["round"], content=answer.content)
    return {"drafts": [draft], "calls": answer.records}
