"""The events council publishes, as pydantic models: a contract of their own.

The completed event is also the graph's output (``core.state.OutputState.result``), which is
why its shape lives here with the other contracts; ``nodes.publish`` builds it from the state
and ``events.publisher`` sends it. Every event is validated by its model and serialised to JSON
before it leaves (the replaced system crashed here). Each carries ``schema_version``; their
JSON Schemas are generated into ``docs/events/`` (``council schemas``) and a test fails when
those files are stale.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from council_agents.core.terms import Aggregator, DecidedBy, Origin, Severity, Stage, StopReason


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


class _Model(BaseModel):
    """Strict: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Author(_Model):
    """Who wrote a proposal."""

    agent_id: str
    role: str


class Winner(_Model):
    """The winning proposal and its author."""

    author: Author
    content: str = Field(description="the winner's final proposal")


class RankEntry(_Model):
    """One proposal's place in the ranking."""

    rank: int = Field(ge=1)
    agent_id: str
    scores: dict[str, float] = Field(
        description="rubric criterion -> score 0..10, averaged over the judgements"
    )
    total: float = Field(description="weighted mean of the scores")
    borda: int = Field(0, description="peer-vote Borda points (1.1)")
    rationale: str


class DefectRecord(_Model):
    """One defect a critic found."""

    severity: Severity
    where: str
    what: str
    fix: str


class CritiqueReceived(_Model):
    """A critique a proposal received."""

    round: int = Field(ge=1)
    critic: str
    content: str
    defects: list[DefectRecord] = Field(default_factory=list, description="(1.1)")
    violations: list[str] = Field(default_factory=list, description="(1.1)")
    dropped: int = Field(
        0, ge=0, description="defects dropped: they quote text the proposal does not have (1.3)"
    )


class AgentRecord(_Model):
    """An agent (or judge) and its model."""

    agent_id: str
    model: str


class AssessmentRecord(_Model):
    """One judge's assessment of one proposal."""

    strengths: list[str]
    defects: list[str]
    scores: dict[str, int]
    verdict: str


class JudgementRecord(_Model):
    """One judgement (one presentation order), mapped back to agent ids."""

    judge: str
    model: str
    order: list[str] = Field(description="agents in the order shown (P1 first)")
    assessments: dict[str, AssessmentRecord]
    totals: dict[str, float]
    dropped: int = Field(
        0, ge=0, description="claims dropped: they quote text the proposal does not have (1.3)"
    )


class BallotRecord(_Model):
    """One agent's ranking of its peers."""

    voter: str
    ranking: list[str] = Field(description="peers, best first")
    reason: str


class OmissionRecord(_Model):
    """An agent left out of one task; the deliberation went on without it (1.2)."""

    stage: Stage
    round: int = Field(ge=0)
    agent_id: str = Field(description="the proposer, critic, author, voter or judge left out")
    subject: str | None = Field(
        None, description="critique: whose proposal; judge: the presentation (agent ids, in order)"
    )
    reason: str = Field(description="why its last attempt was rejected")
    attempts: int = Field(ge=0, description="attempts made")
    completion_tokens: int = Field(ge=0, description="what they cost")


class DecisionRecord(_Model):
    """How the decision was made (1.1; omissions 1.2; judges skipped, checks, claims 1.3)."""

    aggregator: Aggregator
    decided_by: DecidedBy
    judges: list[AgentRecord]
    judgements: list[JudgementRecord]
    judges_agree: bool | None = Field(
        description="every judgement put the same proposal first (None: fewer than two compared)"
    )
    rank_agreement: float | None = Field(
        description="mean Kendall's tau between the judgements' rankings"
    )
    votes: list[BallotRecord]
    borda: dict[str, int]
    vote_winner: str | None
    omissions: list[OmissionRecord] = Field(
        default_factory=list,
        description="agents left out of a task, their answers rejected after every retry (1.2)",
    )
    judges_skipped: str | None = Field(
        None,
        description="why the judges were not asked: with judge+vote the ballots come first, and "
        "when their first choices are unanimous the judges are skipped (1.3)",
    )
    failed_checks: dict[str, list[str]] = Field(
        default_factory=dict,
        description="agent -> the hard checks its final draft failed, with no LLM: it could not "
        "win while a draft that passed them existed (1.3)",
    )
    dropped_claims: int = Field(
        0,
        ge=0,
        description="critique defects and judges' claims dropped because the text they quote is "
        "not in the proposal they are about (1.3)",
    )


class ProposalRecord(_Model):
    """A proposal: every version and every critique it received."""

    author: Author
    versions: list[str] = Field(
        description="version 0 is the proposal, version k the k-th revision"
    )
    critiques_received: list[CritiqueReceived]


class TokenCount(_Model):
    """Calls and tokens."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


class Usage(TokenCount):
    """Calls and tokens in all, by stage and by agent."""

    by_stage: dict[str, TokenCount] = Field(default_factory=dict)
    by_agent: dict[str, TokenCount] = Field(default_factory=dict)


class PromptSetRecord(_Model):
    """Which prompt text the deliberation used (its prompt set's digest, ``council prompts
    check`` prints the same), and whether the set changed while it ran.
    """

    digest: str = Field(description="digest of the prompt set it started with (16 hex digits)")
    changed: bool = Field(description="the prompt set changed during the deliberation")
    digests: list[str] = Field(description="every prompt-set digest its calls read, in order")
    files: dict[str, str] = Field(
        description="prompt file rendered -> content hash (first 16 hex digits of its SHA-256)"
    )
    changed_files: list[str] = Field(
        default_factory=list, description="files whose content differed between its calls"
    )


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
    schema_version: Literal["1.3"] = "1.3"
    deliberation_id: str = Field(
        description="the server's id of the deliberation: its thread id (council deliberate, "
        "the worker's `plan.<story>.<plan>.<role>`, council eval) or `<thread>:<run>` (a run "
        "of the HTTP API); never chosen by a caller. The event's Nats-Msg-Id is "
        "`<deliberation_id>:completed`"
    )
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
    stop_reason: StopReason
    thread_id: str | None = Field(None, description="the thread it ran on (its checkpoints)")
    origin: Origin | None = Field(
        None,
        description="the door that started it: cli, http, planning (the worker), eval; story "
        "and task ids are the planning service's only when it is `planning`",
    )
    owner: str | None = Field(
        None, description="who started it over HTTP (an API key's owner or a JWT's subject)"
    )
    label: str | None = Field(
        None,
        description="the caller's own name for it (its input's `deliberation_id`), meaningful "
        "only with `owner`: never the deliberation's id",
    )
    prompts: PromptSetRecord | None = Field(
        None, description="the prompt set it used (optional: absent from earlier events)"
    )


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
