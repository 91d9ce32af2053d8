"""The deliberation's state: small, typed, and every field documented.

Lists grow through ``operator.add`` so parallel ``Send`` tasks of one stage each add their own
result; nothing a finished task wrote is lost when a sibling fails.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, NotRequired, Required, TypedDict

from pydantic import BaseModel, ConfigDict, Field, field_validator

from graph.context import MAX_AGENTS, MAX_ROUNDS, MAX_TASK_CHARS, MIN_AGENTS, ROLES


class InputState(TypedDict, total=False):
    """What a caller gives to start a deliberation."""

    task: Required[str]
    """The software task to deliberate on (non-empty, at most ``MAX_TASK_CHARS``)."""
    role: str
    """Council role: DEV, QA, ARCHITECT, DEVOPS or DATA (default: the context's role)."""
    rounds: int
    """Critique/revise rounds (default: the context's rounds)."""
    constraints: str
    """Extra constraints for this task, added to the context's."""
    rubric: dict[str, str]
    """Criteria for this task (default: the context's rubric)."""
    story_id: str | None
    """Planning story this task belongs to, if any."""
    task_id: str | None
    """Planning task id, if any."""
    deliberation_id: str
    """Id of this deliberation (default: the thread id)."""


class Draft(TypedDict):
    """One version of an agent's proposal: version 0 is the proposal, k the k-th revision."""

    agent_id: str
    version: int
    content: str


class Critique(TypedDict):
    """A peer's critique of one proposal version."""

    round: int
    critic: str
    author: str
    content: str


class CouncilState(InputState, total=False):
    """The whole deliberation, as checkpointed after every super-step."""

    council: dict[str, Any]
    """The effective council, fixed when the deliberation starts: role, agents, rounds, rubric,
    constraints, model. Resuming uses it, whatever the resuming process's context says."""
    started_at: float
    """Unix time the deliberation started."""
    drafts: Annotated[list[Draft], operator.add]
    """Every proposal and revision."""
    critiques: Annotated[list[Critique], operator.add]
    """Every critique."""
    calls: Annotated[list[dict[str, Any]], operator.add]
    """Every finished LLM call: agent, stage, round, content, reasoning, usage, latency."""
    decision: dict[str, Any]
    """Select's outcome: ranking, winner, justification (and any human override)."""
    result: dict[str, Any]
    """The completed event, as published."""
    published: dict[str, Any]
    """JetStream's acknowledgement of the completed event (stream, seq, duplicate)."""


class OutputState(TypedDict, total=False):
    """What a caller gets back."""

    deliberation_id: str
    decision: dict[str, Any]
    result: dict[str, Any]
    published: NotRequired[dict[str, Any]]


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
