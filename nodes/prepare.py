"""prepare: validate the input and fix the effective council for the whole deliberation."""

from __future__ import annotations

import time
from typing import Any

from langgraph.config import get_config
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict, Field, field_validator

from graph.context import (MAX_AGENTS, MAX_ROUNDS, MAX_TASK_CHARS, MIN_AGENTS, ROLES, AgentSpec, Context,
                           default_agents)
from graph.state import CouncilState


class DeliberationRequest(BaseModel):
    """A validated request; every error names the field and what is wrong with it."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=MAX_TASK_CHARS)
    role: str
    agents: int = Field(3, ge=MIN_AGENTS, le=MAX_AGENTS)
    rounds: int = Field(1, ge=0, le=MAX_ROUNDS)
    rubric: dict[str, str] = Field(min_length=1)
    constraints: str = ""
    story_id: str | None = None
    task_id: str | None = None

    @field_validator("task")
    @classmethod
    def _task_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("task is empty or only whitespace")
        return v.strip()

    @field_validator("role")
    @classmethod
    def _known_role(cls, v: str) -> str:
        up = v.strip().upper()
        if up not in ROLES:
            raise ValueError(f"unknown role {v!r}; known roles: {', '.join(ROLES)}")
        return up


def describe_validation_error(e: Exception) -> str:
    """One line per problem: ``field: message``."""
    errors = getattr(e, "errors", None)
    if not callable(errors):
        return str(e)
    out = []
    for err in errors():
        loc = ".".join(str(x) for x in err["loc"]) or "input"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "string_too_long":
            msg = f"task is {len(str(err.get('input', '')))} characters; the maximum is {MAX_TASK_CHARS}"
        out.append(f"{loc}: {msg}")
    return "; ".join(out)


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
    deliberation_id = state.get("deliberation_id") or get_config()["configurable"].get("thread_id") or ""
    return {"task": req.task, "role": req.role, "deliberation_id": str(deliberation_id),
            "council": build_council(req, runtime.context), "started_at": time.time()}
