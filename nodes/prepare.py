"""prepare: validate the input and fix the effective council for the whole deliberation."""

from __future__ import annotations

import time
from typing import Any

from langgraph.config import get_config
from langgraph.runtime import Runtime
from graph.context import AgentSpec, Context, default_agents
from graph.state import CouncilState, DeliberationRequest
from nodes.metrics import DELIBERATIONS_STARTED


def effective_request(state: CouncilState, ctx: Context) -> DeliberationRequest:
    n_agents = len(ctx.agent_specs) if ctx.agent_specs else ctx.agents
    return DeliberationRequest(
        task=state.get("task", ""), role=state.get("role") or ctx.role, agents=n_agents,
        rounds=state.get("rounds", ctx.rounds), rubric=state.get("rubric") or ctx.rubric,
        constraints="\n".join(x for x in (ctx.constraints, state.get("constraints", "")) if x),
        story_id=state.get("story_id"), task_id=state.get("task_id"))


def build_council(req: DeliberationRequest, ctx: Context) -> dict[str, Any]:
    if ctx.agent_specs:
        agents = [AgentSpec(**{**a, "role": req.role}) for a in ctx.agent_specs]
    else:
        agents = default_agents(req.role, req.agents, ctx.temperature)
    ids = [a.agent_id for a in agents]
    if len(set(ids)) != len(ids):
        raise ValueError(f"agent ids must be unique, got {ids}")
    return {
        "role": req.role, "rounds": req.rounds, "rubric": req.rubric, "constraints": req.constraints,
        "model": ctx.model, "base_url": ctx.base_url, "require_approval": ctx.require_approval,
        "agents": [dict(a.__dict__) for a in agents],
        "judge": {"agent_id": f"judge-{req.role.lower()}", "role": req.role, "model": None,
                  "temperature": ctx.judge_temperature, "seed": 7},
    }


async def prepare(state: CouncilState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Validate the input (clear errors name the field) and snapshot the council."""
    req = effective_request(state, runtime.context)
    DELIBERATIONS_STARTED.labels(req.role).inc()
    deliberation_id = state.get("deliberation_id") or get_config()["configurable"].get("thread_id") or ""
    return {"task": req.task, "role": req.role, "deliberation_id": str(deliberation_id),
            "council": build_council(req, runtime.context), "started_at": time.time()}
