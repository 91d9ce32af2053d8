"""critique: one peer critiques one proposal (every ordered pair of distinct agents, in parallel)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from nodes import llm, prompts
from nodes.common import AgentTask, announce, kept, shared_prompt_values


async def critique(t: AgentTask, runtime: Runtime[Context]) -> dict[str, Any]:
    c, agent = t["council"], t["agent"]
    msgs = prompts.messages(f"roles/{c['role'].lower()}", "critique", role=c["role"],
                            author=t["author"], version=t["round"] - 1, proposal=t["proposal"],
                            round=t["round"],
                            **shared_prompt_values(t))
    records = await llm.call(runtime.context, c, agent, stage="critique", round_=t["round"],
                             deliberation_id=t["deliberation_id"], messages=msgs,
                             max_tokens=runtime.context.max_tokens["critique"])
    announce("critique", t, records[-1])
    return {"critiques": [{"round": t["round"], "critic": agent["agent_id"], "author": t["author"],
                           "content": records[-1]["content"]}],
            "calls": kept(records)}
