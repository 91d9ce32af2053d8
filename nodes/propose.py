"""propose: one agent writes its proposal (one Send task per agent, all in parallel)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from nodes import llm, prompts
from nodes.common import AgentTask, announce, kept, shared_prompt_values


async def propose(t: AgentTask, runtime: Runtime[Context]) -> dict[str, Any]:
    c, agent = t["council"], t["agent"]
    msgs = prompts.messages(f"roles/{c['role'].lower()}", "propose", role=c["role"], **shared_prompt_values(t))
    records = await llm.call(runtime.context, c, agent, stage="propose", round_=0,
                             deliberation_id=t["deliberation_id"], messages=msgs,
                             max_tokens=runtime.context.max_tokens["propose"])
    announce("propose", t, records[-1])
    return {"drafts": [{"agent_id": agent["agent_id"], "version": 0, "content": records[-1]["content"]}],
            "calls": kept(records)}
