"""Planning events the worker consumes: ``planning.plan.approved`` and its envelope.

An event is validated whole when it is parsed (``parse_event``: one that can never be processed
is poison); each of its roles' deliberations is then admitted by the worker with the same
request limits as every other door (``core.request.admit``) before its thread is created.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from council_agents.core.limits import MAX_ROUNDS
from council_agents.core.request import RequestError, load_json, one_line, parse_input
from council_agents.core.terms import ROLES
from council_agents.events.publisher import connect, ensure_stream

PLANNING_STREAM = "PLANNING_EVENTS"
PLAN_APPROVED = "planning.plan.approved"
DURABLE = "orch-planning-plan-approved"


class PlanApproved(BaseModel):
    """``planning.plan.approved``: what to deliberate on and for which roles."""

    model_config = ConfigDict(extra="ignore")
    story_id: str = Field(min_length=1, max_length=128)
    plan_id: str = Field(min_length=1, max_length=128)
    approved_by: str = Field(min_length=1, max_length=256)
    roles: list[str] = Field(min_length=1, max_length=len(ROLES))
    timestamp: datetime
    task: str | None = Field(None, description="the task to deliberate on (or `description`)")
    description: str | None = None
    constraints: str | None = None
    rubric: dict[str, str] | None = None
    rounds: int | None = Field(None, ge=0, le=MAX_ROUNDS)
    task_id: str | None = Field(None, max_length=128)

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        up = [r.strip().upper() for r in v]
        bad = [r for r, u in zip(v, up, strict=True) if u not in ROLES]
        if bad:
            raise ValueError(f"unknown role(s) {bad}; known roles: {', '.join(ROLES)}")
        return list(dict.fromkeys(up))

    @model_validator(mode="after")
    def _has_task(self) -> PlanApproved:
        text = (self.task or self.description or "").strip()
        if not text:
            raise ValueError("no task: the event needs a non-empty `task` or `description`")
        self.task = text
        return self


class Envelope(BaseModel):
    """The wrapper later planning versions put around payloads."""

    model_config = ConfigDict(extra="ignore")
    idempotency_key: str | None = None
    correlation_id: str | None = None
    event_type: str | None = None
    producer: str | None = None
    payload: dict[str, Any]


def consumer_config(ack_wait: float = 60.0, max_deliver: int = 5) -> ConsumerConfig:
    """The durable pull consumer every worker shares."""
    return ConsumerConfig(
        durable_name=DURABLE,
        filter_subject=PLAN_APPROVED,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=max_deliver,
        max_ack_pending=1000,
    )


class PoisonMessage(ValueError):
    """An event that can never be processed; its reason is published."""


def thread_id_for(event: PlanApproved, role: str) -> str:
    """The deliberation (thread) id of one role of a plan: stable across redeliveries."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{event.story_id}.{event.plan_id}")
    return f"plan.{safe}.{role.lower()}"[:128]


def deliberation_input(event: PlanApproved, role: str) -> dict[str, Any]:
    """The graph input of one role's deliberation."""
    inp: dict[str, Any] = {
        "task": event.task,
        "role": role,
        "story_id": event.story_id,
        "task_id": event.task_id or event.plan_id,
    }
    optional = {"rounds": event.rounds, "constraints": event.constraints, "rubric": event.rubric}
    return {**inp, **{k: v for k, v in optional.items() if v is not None}}


def parse_event(data: bytes) -> tuple[PlanApproved, Envelope | None]:
    """The event (and its envelope, if any); ``PoisonMessage`` names what is wrong."""
    try:
        doc = load_json(data, "event")
    except RequestError as e:  # malformed, or nested deeper than any event needs
        raise PoisonMessage(f"not JSON: {e.message}" if e.status == 400 else str(e)) from None
    if not isinstance(doc, dict):
        raise PoisonMessage(f"not a JSON object but {type(doc).__name__}")
    env = None
    try:
        if "payload" in doc and isinstance(doc["payload"], dict):
            env = Envelope.model_validate(doc)
            doc = env.payload
        event = PlanApproved.model_validate(doc)
    except ValidationError as e:
        raise PoisonMessage(str(one_line(e))) from None
    return event, env


def check_plan(data: bytes) -> PlanApproved:
    """What a worker would refuse of this event, refused now: its shape (``PoisonMessage``) and
    each role's input (``RequestError`` naming the field), for ``council publish-plan``.
    """
    event, _ = parse_event(data)
    for role in event.roles:
        parse_input(deliberation_input(event, role))
    return event


async def publish_plan(
    nats_url: str, event: dict[str, Any], msg_id: str | None = None, creds: Path | None = None
) -> dict[str, Any]:
    """Publish a ``planning.plan.approved`` event (checked first) to ``PLANNING_EVENTS``."""
    try:
        check_plan(json.dumps(event).encode())  # refuse to send what a worker would reject
    except RequestError as e:
        raise PoisonMessage(str(e)) from None
    nc = await connect(nats_url, creds)
    try:
        js = nc.jetstream()
        await ensure_stream(js, PLANNING_STREAM)
        payload = event.get("payload", event)
        key = (
            msg_id
            or event.get("idempotency_key")
            or (f"plan:{payload['story_id']}:{payload['plan_id']}")
        )
        ack = await js.publish(
            PLAN_APPROVED, json.dumps(event).encode(), headers={"Nats-Msg-Id": key}
        )
        return {"stream": ack.stream, "seq": ack.seq, "duplicate": bool(ack.duplicate)}
    finally:
        await nc.close()
