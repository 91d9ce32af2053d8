"""revise: an author revises its own proposal from the critiques it received (all in parallel)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from nodes import llm, prompts
from nodes.common import AgentTask, announce, kept, shared_prompt_values


def critiques_text(critiques: list[dict[str, Any]]) -> str:
    return "\n\n".join(f"### From {c['critic']}\n{c['content']}" for c in critiques) or "(none)"


async def revise(t: AgentTask, runtime: Runtime[Context]) -> dict[str, Any]:
    c, agent = t["council"], t["agent"]
    msgs = prompts.messages(f"roles/{c['role'].lower()}", "revise", role=c["role"],
                            author=agent["agent_id"], version=t["round"] - 1, proposal=t["proposal"],
                            critiques=critiques_text(t["critiques"]),
                            round=t["round"], **shared_prompt_values(t))
    records = await llm.call(runtime.context, c, agent, stage="revise", round_=t["round"],
                             deliberation_id=t["deliberation_id"], messages=msgs,
                             max_tokens=runtime.context.max_tokens["revise"])
    announce("revise", t, records[-1])
    return {"drafts": [{"agent_id": agent["agent_id"], "version": t["round"], "content": records[-1]["content"]}],
            "calls": kept(records)}
