"""Events council publishes, as pydantic models (the publisher is ``nodes.nats_publisher``).

Every event is validated by its model and serialised to JSON before it leaves (the replaced
system crashed here). Each carries ``schema_version``; their JSON Schemas are generated into
``docs/events/`` (``council schemas``) and a test fails when those files are stale.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from council_agents.core.state import CallRecord, CouncilState

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
    scores: dict[str, float] = Field(
        description="rubric criterion -> score 0..10, averaged over the judgements"
    )
    total: float = Field(description="weighted mean of the scores")
    borda: int = Field(0, description="peer-vote Borda points (1.1)")
    rationale: str


class DefectRecord(_Model):
    severity: Literal["blocker", "major", "minor"]
    where: str
    what: str
    fix: str


class CritiqueReceived(_Model):
    round: int = Field(ge=1)
    critic: str
    content: str
    defects: list[DefectRecord] = Field(default_factory=list, description="(1.1)")
    violations: list[str] = Field(default_factory=list, description="(1.1)")


class AgentRecord(_Model):
    agent_id: str
    model: str


class AssessmentRecord(_Model):
    strengths: list[str]
    defects: list[str]
    scores: dict[str, int]
    verdict: str


class JudgementRecord(_Model):
    judge: str
    model: str
    order: list[str] = Field(description="agents in the order shown (P1 first)")
    assessments: dict[str, AssessmentRecord]
    totals: dict[str, float]


class BallotRecord(_Model):
    voter: str
    ranking: list[str] = Field(description="peers, best first")
    reason: str


class DecisionRecord(_Model):
    """How the decision was made (1.1)."""

    aggregator: Literal["judge", "vote", "judge+vote"]
    decided_by: Literal["judges", "vote", "human"]
    judges: list[AgentRecord]
    judgements: list[JudgementRecord]
    judges_agree: bool | None = Field(description="both judgements put the same proposal first")
    rank_agreement: float | None = Field(description="Kendall's tau between the judgements")
    votes: list[BallotRecord]
    borda: dict[str, int]
    vote_winner: str | None


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
    schema_version: Literal["1.1"] = "1.1"
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
    rounds: int = Field(ge=0, description="critique/revise rounds run")
    max_rounds: int = Field(0, ge=0, description="the council's ceiling (1.1)")
    agents: list[AgentRecord] = Field(default_factory=list, description="and their models (1.1)")
    decision: DecisionRecord | None = Field(None, description="how it was decided (1.1)")
    approved_by_human: bool = Field(False, description="a human approved or overrode (1.1)")
    usage: Usage
    duration_ms: int = Field(ge=0)
    timestamp: datetime = Field(description="ISO 8601, UTC")
    stop_reason: Literal["converged", "budget", "rounds_completed", "human_override", "approved"]


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


def _decision_record(state: CouncilState) -> DecisionRecord:
    council, decision = state["council"], state["decision"]
    judgements = state.get("judgements", [])
    return DecisionRecord(
        aggregator=council["aggregator"],  # type: ignore[arg-type]
        decided_by=decision["decided_by"],  # type: ignore[arg-type]
        judges=[AgentRecord(agent_id=council["judge"]["agent_id"], model=council["judge"]["model"])]
        if judgements
        else [],
        judgements=[JudgementRecord.model_validate(j) for j in judgements],
        judges_agree=decision["judges_agree"],
        rank_agreement=decision["rank_agreement"],
        votes=[BallotRecord.model_validate(b) for b in state.get("ballots", [])],
        borda={r["agent_id"]: r["borda"] for r in decision["ranking"]},
        vote_winner=decision["vote_winner"],
    )


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
            CritiqueReceived(
                round=cr["round"],
                critic=cr["critic"],
                content=cr["content"],
                defects=[DefectRecord.model_validate(x) for x in cr.get("defects", [])],
                violations=cr.get("violations", []),
            )
        )
    keys = ("rank", "agent_id", "scores", "total", "borda", "rationale")
    ranking = [
        RankEntry.model_validate({k: r[k] for k in keys})  # type: ignore[literal-required]
        for r in d["ranking"]
    ]
    author = {a: Author(agent_id=a, role=role) for a in versions}
    return DeliberationCompleted(
        deliberation_id=state["deliberation_id"],
        story_id=state.get("story_id"),
        task_id=state.get("task_id"),
        role=role,
        task=state["task"],
        winner=Winner(author=author[d["winner"]], content=versions[d["winner"]][-1]),
        justification=d["justification"],
        ranking=ranking,
        proposals=[
            ProposalRecord(author=author[a], versions=v, critiques_received=received[a])
            for a, v in versions.items()
        ],
        decisions=[
            LegacyDecision(
                proposal=Winner(author=author[r.agent_id], content=versions[r.agent_id][-1]),
                checks=r.scores,
                score=r.total,
            )
            for r in ranking
        ],
        rounds=min(len(v) for v in versions.values()) - 1,
        max_rounds=c["rounds"],
        agents=[AgentRecord(agent_id=a["agent_id"], model=a["model"]) for a in c["agents"]],
        decision=_decision_record(state),
        usage=usage_of(state.get("calls", [])),
        duration_ms=max(0, int((now.timestamp() - state["started_at"]) * 1000)),
        approved_by_human=d.get("approved_by_human", False),
        timestamp=now,
        stop_reason=d["stop_reason"],  # type: ignore[arg-type]
    )
