"""Events council publishes, as pydantic models (the publisher is ``nodes.nats_publisher``).

Every event is validated by its model and serialised to JSON before it leaves (the replaced
system crashed here). Each carries ``schema_version``; their JSON Schemas are generated into
``docs/events/`` (``council schemas``) and a test fails when those files are stale.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from graph.state import CallRecord, CouncilState

SCHEMA_VERSION = "1.0"
COMPLETED_SUBJECT = "orchestration.deliberation.completed"
FAILED_SUBJECT = "orchestration.deliberation.failed"
STREAM = "ORCHESTRATOR_EVENTS"


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Author(_Model):
    agent_id: str
    role: str


class Winner(_Model):
    author: Author
    content: str = Field(description="the winner's final proposal")


class RankEntry(_Model):
    rank: int = Field(ge=1)
    agent_id: str
    scores: dict[str, float] = Field(description="rubric criterion -> score 0..10")
    total: float = Field(description="mean of the scores")
    rationale: str


class CritiqueReceived(_Model):
    round: int = Field(ge=1)
    critic: str
    content: str


class ProposalRecord(_Model):
    author: Author
    versions: list[str] = Field(
        description="version 0 is the proposal, version k the k-th revision"
    )
    critiques_received: list[CritiqueReceived]


class TokenCount(_Model):
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


class Usage(TokenCount):
    by_stage: dict[str, TokenCount] = Field(default_factory=dict)
    by_agent: dict[str, TokenCount] = Field(default_factory=dict)


class LegacyDecision(_Model):
    """The replaced system's decision shape, kept for its consumers."""

    proposal: Winner
    checks: dict[str, float]
    score: float


class DeliberationCompleted(_Model):
    """Published on ``orchestration.deliberation.completed`` when a deliberation finishes."""

    event_type: Literal["orchestration.deliberation.completed"] = (
        "orchestration.deliberation.completed"
    )
    schema_version: Literal["1.0"] = "1.0"
    deliberation_id: str
    story_id: str | None
    task_id: str | None
    role: str
    task: str
    winner: Winner
    justification: str
    ranking: list[RankEntry]
    proposals: list[ProposalRecord]
    decisions: list[LegacyDecision] = Field(description="ranked, in the replaced system's shape")
    rounds: int = Field(ge=0)
    usage: Usage
    duration_ms: int = Field(ge=0)
    timestamp: datetime = Field(description="ISO 8601, UTC")
    stop_reason: Literal["rounds_completed", "approved", "human_override"]


class DeliberationFailed(_Model):
    """Published on ``orchestration.deliberation.failed`` when a deliberation cannot finish."""

    event_type: Literal["orchestration.deliberation.failed"] = "orchestration.deliberation.failed"
    schema_version: Literal["1.0"] = "1.0"
    deliberation_id: str
    story_id: str | None = None
    task_id: str | None = None
    role: str | None = None
    stage: str | None = Field(None, description="stage that failed, if any")
    agent_id: str | None = None
    reason: str
    timestamp: datetime


EVENT_MODELS: dict[str, type[BaseModel]] = {
    "deliberation.completed": DeliberationCompleted,
    "deliberation.failed": DeliberationFailed,
}


def usage_of(calls: list[CallRecord]) -> Usage:
    """Tokens and calls, in all and by stage and agent."""
    u = Usage()
    for c in calls:
        for bucket in (
            u,
            u.by_stage.setdefault(c["stage"], TokenCount()),
            u.by_agent.setdefault(c["agent_id"], TokenCount()),
        ):
            bucket.calls += 1
            bucket.prompt_tokens += c.get("prompt_tokens", 0)
            bucket.completion_tokens += c.get("completion_tokens", 0)
            bucket.cached_tokens += c.get("cached_tokens", 0) or 0
    return u


def build_completed(state: CouncilState, now: datetime | None = None) -> DeliberationCompleted:
    """The completed event of a finished deliberation's state."""
    now = now or utcnow()
    c, d = state["council"], state["decision"]
    role = c["role"]
    versions: dict[str, list[str]] = {}
    for dr in sorted(state.get("drafts", []), key=lambda x: (x["agent_id"], x["version"])):
        versions.setdefault(dr["agent_id"], []).append(dr["content"])
    received: dict[str, list[CritiqueReceived]] = {a: [] for a in versions}
    for cr in sorted(state.get("critiques", []), key=lambda x: (x["round"], x["critic"])):
        received.setdefault(cr["author"], []).append(
            CritiqueReceived(round=cr["round"], critic=cr["critic"], content=cr["content"])
        )
    ranking = [
        RankEntry.model_validate(
            {k: r[k] for k in ("rank", "agent_id", "scores", "total", "rationale")}
        )
        for r in d["ranking"]
    ]
    ranked_ids = [d["winner"]] + [r.agent_id for r in ranking if r.agent_id != d["winner"]]
    by_id = {r.agent_id: r for r in ranking}
    return DeliberationCompleted(
        deliberation_id=state["deliberation_id"],
        story_id=state.get("story_id"),
        task_id=state.get("task_id"),
        role=role,
        task=state["task"],
        winner=Winner(
            author=Author(agent_id=d["winner"], role=role), content=versions[d["winner"]][-1]
        ),
        justification=d["justification"],
        ranking=ranking,
        proposals=[
            ProposalRecord(
                author=Author(agent_id=a, role=role), versions=v, critiques_received=received[a]
            )
            for a, v in versions.items()
        ],
        decisions=[
            LegacyDecision(
                proposal=Winner(author=Author(agent_id=a, role=role), content=versions[a][-1]),
                checks=by_id[a].scores,
                score=by_id[a].total,
            )
            for a in ranked_ids
        ],
        rounds=c["rounds"],
        usage=usage_of(state.get("calls", [])),
        duration_ms=max(0, int((now.timestamp() - state["started_at"]) * 1000)),
        timestamp=now,
        stop_reason=d.get("stop_reason", "rounds_completed"),  # type: ignore[arg-type]
    )
