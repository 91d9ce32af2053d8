"""publish (terminal): the completed event, validated, to JetStream with ``Nats-Msg-Id``.

The event is a function of the state and of the time it was built (``finished_at``), so the
checkpoint keeps only those: ``completed_event`` rebuilds the same event from a finished
deliberation's values (the runner, the worker's republish, ``council resume``). The
deliberation counts as completed when JetStream acknowledges the event as new; a failed publish
raises ``PublishFailed`` naming the NATS URL, and the deliberation resumes here.
"""

from __future__ import annotations

from datetime import datetime

import nats.errors
import structlog

from council_agents.core import metrics
from council_agents.core.errors import PublishFailed
from council_agents.core.events import (
    AgentRecord,
    Author,
    BallotRecord,
    CritiqueReceived,
    DecisionRecord,
    DefectRecord,
    DeliberationCompleted,
    JudgementRecord,
    LegacyDecision,
    OmissionRecord,
    PromptSetRecord,
    ProposalRecord,
    RankEntry,
    TokenCount,
    Usage,
    Winner,
    utcnow,
)
from council_agents.core.progress import prompt_provenance
from council_agents.core.settings import display_url
from council_agents.core.state import CallRecord, CouncilState, PublishAck, Published
from council_agents.events.publisher import COMPLETED_SUBJECT, Events, completed_id
from council_agents.llm.prompt import critique_text
from council_agents.storage.saver import ensure_checkpointable

log = structlog.get_logger("council.publish")


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
    """How the decision was made, as the event records it."""
    council, decision = state["council"], state["decision"]
    judgements = state.get("judgements", [])
    return DecisionRecord(
        aggregator=council["aggregator"],
        decided_by=decision["decided_by"],
        judges=[AgentRecord(agent_id=council["judge"]["agent_id"], model=council["judge"]["model"])]
        if judgements
        else [],
        judgements=[JudgementRecord.model_validate(j) for j in judgements],
        judges_agree=decision["judges_agree"],
        rank_agreement=decision["rank_agreement"],
        votes=[BallotRecord.model_validate(b) for b in state.get("ballots", [])],
        borda={r["agent_id"]: r["borda"] for r in decision["ranking"]},
        vote_winner=decision["vote_winner"],
        omissions=[OmissionRecord.model_validate(o) for o in state.get("omissions", [])],
        judges_skipped=decision.get("judges_skipped"),
        failed_checks=decision.get("failed_checks", {}),
        dropped_claims=decision.get("dropped_claims", 0),
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
                content=critique_text(cr),
                defects=[DefectRecord.model_validate(x) for x in cr["defects"]],
                violations=cr["violations"],
                dropped=cr.get("dropped", 0),
            )
        )
    ranking = [RankEntry.model_validate(r) for r in d["ranking"]]
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
        stop_reason=d["stop_reason"],
        thread_id=state.get("thread_id"),
        origin=state.get("origin"),
        owner=state.get("owner"),
        label=state.get("label"),
        prompts=_prompts_record(state),
    )


def _prompts_record(state: CouncilState) -> PromptSetRecord | None:
    """The prompt set the deliberation used, as the event records it."""
    provenance = prompt_provenance(state)
    return None if provenance is None else PromptSetRecord.model_validate(provenance)


def completed_event(values: CouncilState) -> DeliberationCompleted | None:
    """The completed event of a finished deliberation's values, as it was published (None
    before it finished).
    """
    if values.get("finished_at") is None:  # not finished (or a later deliberation runs)
        return None
    return build_completed(values, now=datetime.fromisoformat(values["finished_at"]))


async def publish(state: CouncilState, *, events: Events) -> Published:
    """The completed event, and where JetStream stored it: only while the state that decided
    it can still be saved (``storage.saver.ensure_checkpointable``).
    """
    await ensure_checkpointable("publish", "-", "the event")
    now = utcnow()
    event = build_completed(state, now=now)
    seconds = event.duration_ms / 1000
    if events.url is None:
        log.warning(
            "event.not_published",
            deliberation_id=event.deliberation_id,
            reason="no NATS server configured (NATS_URL unset)",
        )
        metrics.completed(event.role, seconds)
        return _published(state, event, {}, now)
    try:
        ack = await events.publish(COMPLETED_SUBJECT, event, completed_id(event.deliberation_id))
    except (nats.errors.Error, OSError, TimeoutError) as e:
        cause = f"{type(e).__name__}: {e}".rstrip(": ")
        raise PublishFailed(display_url(events.url), cause) from e
    log.info("event.published", deliberation_id=event.deliberation_id, **ack)
    if not ack["duplicate"]:
        metrics.completed(event.role, seconds)
    return _published(state, event, ack, now)


def _published(
    state: CouncilState, event: DeliberationCompleted, ack: PublishAck, now: datetime
) -> Published:
    """The update of publish: the event, where it went, when, and the prompt set the calls used."""
    update = Published(result=event, published=ack, finished_at=now.isoformat())
    provenance = prompt_provenance(state)
    if provenance is not None:
        update["prompts"] = provenance
    return update
