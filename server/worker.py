"""``council worker``: deliberations from ``planning.plan.approved`` events, exactly once.

- One durable pull consumer (``orch-planning-plan-approved``) on ``PLANNING_EVENTS`` shared by
  every worker; each message is worked on by one worker at a time.
- One deliberation per role of the event, in parallel, within the worker's concurrency limit.
- The thread id comes from the event (story, plan, role): a redelivered event resumes its
  deliberations from their checkpoints; a finished one is re-published (JetStream drops the
  duplicate by ``Nats-Msg-Id``) and the message acked.
- Ack only after every role's completed event is acknowledged by JetStream; ``in_progress()``
  while deliberating; ``nak(delay)`` on failures (the checkpoint stays, the next delivery
  resumes); ``term()`` on poison messages with an ``orchestration.deliberation.failed`` event;
  after ``max_deliver`` deliveries a failed event is published and the message terminated.
- SIGTERM/SIGINT: stop fetching, give running deliberations ``grace`` seconds, then stop them
  (finished LLM calls are checkpointed) and nak their messages for another worker.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from graph.context import ROLES, Context
from graph.state import describe_validation_error
from nodes.events import (COMPLETED_SUBJECT, FAILED_SUBJECT, DeliberationCompleted, DeliberationFailed, Publisher,
                          ensure_stream)

log = structlog.get_logger("council.worker")

PLANNING_STREAM = "PLANNING_EVENTS"
PLAN_APPROVED = "planning.plan.approved"
DURABLE = "orch-planning-plan-approved"


class PlanApproved(BaseModel):
    """``planning.plan.approved``: what to deliberate on and for which roles."""

    model_config = ConfigDict(extra="ignore")
    story_id: str = Field(min_length=1)
    plan_id: str = Field(min_length=1)
    approved_by: str = Field(min_length=1)
    roles: list[str] = Field(min_length=1)
    timestamp: datetime
    task: str | None = Field(None, description="the task to deliberate on (or `description`)")
    description: str | None = None
    constraints: str | None = None
    rubric: dict[str, str] | None = None
    rounds: int | None = Field(None, ge=0, le=5)
    task_id: str | None = None

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        up = [r.strip().upper() for r in v]
        bad = [r for r, u in zip(v, up) if u not in ROLES]
        if bad:
            raise ValueError(f"unknown role(s) {bad}; known roles: {', '.join(ROLES)}")
        return list(dict.fromkeys(up))

    @model_validator(mode="after")
    def _has_task(self) -> "PlanApproved":
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


class PoisonMessage(ValueError):
    """An event that can never be processed; its reason is published."""


def parse_event(data: bytes) -> tuple[PlanApproved, Envelope | None]:
    import json

    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise PoisonMessage(f"not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise PoisonMessage(f"not a JSON object but {type(doc).__name__}")
    env = None
    if "payload" in doc and isinstance(doc["payload"], dict):
        env = Envelope.model_validate(doc)
        doc = env.payload
    try:
        return PlanApproved.model_validate(doc), env
    except ValidationError as e:
        raise PoisonMessage(describe_validation_error(e)) from None


def thread_id_for(event: PlanApproved, role: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{event.story_id}.{event.plan_id}")
    return f"plan.{safe}.{role.lower()}"


class LeaseBusy(RuntimeError):
    """Another worker is deliberating on this thread right now."""


class Lease:
    """A per-thread lease in Valkey (SET NX PX, renewed while held), so that two workers never run
    the same deliberation at once, even when JetStream redelivers a message that is still being
    worked on (a stalled worker, a long pause)."""

    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
    _RENEW = ("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
              "end return 0")

    def __init__(self, client: Any, thread_id: str, owner: str, ttl_s: float):
        self.client, self.key, self.owner = client, f"council:lease:{{{thread_id}}}", owner
        self.ttl_ms = max(1000, int(ttl_s * 1000))
        self._renewer: asyncio.Task | None = None

    async def __aenter__(self) -> "Lease":
        if not await self.client.set(self.key, self.owner, nx=True, px=self.ttl_ms):
            raise LeaseBusy(f"{self.key} is held by {await self.client.get(self.key)!r}")
        self._renewer = asyncio.create_task(self._renew())
        return self

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                await self.client.eval(self._RENEW, 1, self.key, self.owner, self.ttl_ms)
            except Exception as e:  # noqa: BLE001 - the next renewal may work
                log.warning("worker.lease_renew_failed", key=self.key, error=str(e))

    async def __aexit__(self, *exc: object) -> None:
        if self._renewer:
            self._renewer.cancel()
        try:
            await self.client.eval(self._RELEASE, 1, self.key, self.owner)
        except Exception as e:  # noqa: BLE001 - it expires by itself
            log.warning("worker.lease_release_failed", key=self.key, error=str(e))


class Worker:
    def __init__(self, saver: Any, nats_url: str, ctx: Context, *, valkey_url: str, concurrency: int = 4,
                 max_deliver: int = 5, ack_wait: float = 60.0, grace: float = 30.0,
                 name: str | None = None):
        import valkey.asyncio as avalkey

        self.saver, self.nats_url, self.ctx = saver, nats_url, ctx
        self.valkey = avalkey.from_url(valkey_url.replace("valkey://", "redis://", 1))
        self.slots = asyncio.Semaphore(concurrency)
        self.concurrency = concurrency
        self.max_deliver, self.ack_wait, self.grace = max_deliver, ack_wait, grace
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.stopping = asyncio.Event()
        self.handlers: set[asyncio.Task] = set()
        self.publisher = Publisher.for_url(nats_url)
        self.busy = 0

    async def setup(self):
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig

        self.nc = await nats.connect(self.nats_url, name=f"council-worker-{self.name}", max_reconnect_attempts=-1)
        self.js = self.nc.jetstream(timeout=10)
        await ensure_stream(self.js, PLANNING_STREAM)
        await self.publisher._connect()  # orchestrator stream
        cfg = ConsumerConfig(durable_name=DURABLE, filter_subject=PLAN_APPROVED, ack_policy=AckPolicy.EXPLICIT,
                             ack_wait=self.ack_wait, max_deliver=self.max_deliver, max_ack_pending=1000)
        try:
            await self.js.add_consumer(PLANNING_STREAM, cfg)
        except Exception as e:  # noqa: BLE001 - an existing consumer with other settings is used as is
            log.warning("worker.consumer_exists", error=str(e))
        self.sub = await self.js.pull_subscribe_bind(DURABLE, stream=PLANNING_STREAM)

    async def run(self) -> None:
        await self.setup()
        log.info("worker.started", worker=self.name, concurrency=self.concurrency, max_deliver=self.max_deliver)
        import nats.errors

        while not self.stopping.is_set():
            free = self.concurrency - max(self.busy, len(self.handlers))
            if free <= 0:
                await asyncio.sleep(0.05)
                continue
            try:
                msgs = await self.sub.fetch(min(free, 10), timeout=1)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            except Exception as e:  # noqa: BLE001 - connection trouble: keep trying
                log.warning("worker.fetch_failed", error=str(e))
                await asyncio.sleep(1)
                continue
            for msg in msgs:
                t = asyncio.create_task(self.handle(msg))
                self.handlers.add(t)
                t.add_done_callback(self.handlers.discard)
        await self.shutdown()

    async def shutdown(self) -> None:
        log.info("worker.stopping", worker=self.name, running=len(self.handlers), grace_s=self.grace)
        if self.handlers:
            _, pending = await asyncio.wait(set(self.handlers), timeout=self.grace)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=10)
        for closing in (Publisher.close_all(), self.nc.close(), self.valkey.aclose()):
            try:
                await asyncio.wait_for(closing, timeout=5)
            except Exception as e:  # noqa: BLE001 - exiting anyway
                log.warning("worker.close_failed", error=f"{type(e).__name__}: {e}")
        log.info("worker.stopped", worker=self.name)

    async def _heartbeat(self, msg) -> None:
        while True:
            await asyncio.sleep(max(0.5, self.ack_wait / 3))
            try:
                await msg.in_progress()
            except Exception:  # noqa: BLE001
                return

    async def handle(self, msg) -> None:
        try:
            await self._handle(msg)
        except Exception as e:  # noqa: BLE001 - never lose a message silently: hand it back
            log.exception("worker.handler_failed", worker=self.name, error=str(e))
            try:
                await msg.nak(delay=1.0)
            except Exception:  # noqa: BLE001
                pass

    async def _handle(self, msg) -> None:
        meta = msg.metadata
        delivered = meta.num_delivered
        try:
            event, env = parse_event(msg.data)
        except PoisonMessage as e:
            await self.fail_poison(msg, str(e))
            return
        roles = event.roles
        self.busy += len(roles)
        beat = asyncio.create_task(self._heartbeat(msg))
        try:
            results = await asyncio.gather(*(self.deliberate(event, r, env) for r in roles), return_exceptions=True)
        except asyncio.CancelledError:
            results = [asyncio.CancelledError()]
        finally:
            beat.cancel()
            self.busy -= len(roles)
        errors = [(r, x) for r, x in zip(roles, results) if isinstance(x, BaseException)]
        if errors and all(isinstance(x, LeaseBusy) for _, x in errors):
            await msg.nak(delay=self.ack_wait / 2)  # in progress elsewhere: not a failure
            log.info("worker.busy_elsewhere", worker=self.name, plan_id=event.plan_id, delivered=delivered)
            return
        if not errors:
            if os.environ.get("COUNCIL_TEST_KILL_BEFORE_ACK") == "1":  # test hook: crash between publish and ack
                os.kill(os.getpid(), signal.SIGKILL)
            await msg.ack_sync()
            log.info("worker.acked", worker=self.name, plan_id=event.plan_id, roles=roles, delivered=delivered)
            return
        if any(isinstance(x, asyncio.CancelledError) for _, x in errors) or self.stopping.is_set():
            await msg.nak()  # shutting down: another worker resumes from the checkpoints
            log.info("worker.handed_back", worker=self.name, plan_id=event.plan_id)
            return
        if delivered >= self.max_deliver:
            for role, exc in errors:
                await self.publish_failed(event, role, exc, final=True)
            await msg.term()
            log.error("worker.gave_up", worker=self.name, plan_id=event.plan_id, delivered=delivered,
                      errors=[f"{r}: {x}" for r, x in errors])
            return
        delay = min(60.0, 0.5 * 2 ** (delivered - 1))
        log.warning("worker.retry_later", worker=self.name, plan_id=event.plan_id, delivered=delivered,
                    delay_s=delay, errors=[f"{r}: {type(x).__name__}: {x}" for r, x in errors])
        await msg.nak(delay=delay)

    async def deliberate(self, event: PlanApproved, role: str, env: Envelope | None) -> dict[str, Any]:
        from server.runner import run

        thread_id = thread_id_for(event, role)
        async with self.slots, Lease(self.valkey, thread_id, f"{self.name}:{uuid.uuid4().hex[:8]}",
                                     ttl_s=self.ack_wait * 0.9):
            snap_values = await run(self.saver, thread_id, {
                "task": event.task, "role": role, "story_id": event.story_id,
                "task_id": event.task_id or event.plan_id, "deliberation_id": thread_id,
                **({"rounds": event.rounds} if event.rounds is not None else {}),
                **({"constraints": event.constraints} if event.constraints else {}),
                **({"rubric": event.rubric} if event.rubric else {})}, self.ctx)
        if snap_values.get("__pending__"):
            raise RuntimeError(f"deliberation {thread_id} is waiting at {snap_values['__pending__']}")
        # Finished before (a redelivery): publish again; JetStream drops it as a duplicate.
        if snap_values.get("__replayed__"):
            ack = await self.publisher.publish(COMPLETED_SUBJECT, DeliberationCompleted.model_validate(
                snap_values["result"]), f"{thread_id}:completed")
            log.info("worker.republished", thread_id=thread_id, duplicate=ack["duplicate"])
        return snap_values

    async def publish_failed(self, event: PlanApproved, role: str, exc: BaseException, final: bool) -> None:
        from nodes.llm import CouncilError

        thread_id = thread_id_for(event, role)
        ev = DeliberationFailed(
            deliberation_id=thread_id, story_id=event.story_id, task_id=event.task_id or event.plan_id, role=role,
            stage=getattr(exc, "stage", None) if isinstance(exc, CouncilError) else None,
            agent_id=getattr(exc, "agent_id", None) if isinstance(exc, CouncilError) else None,
            reason=f"{type(exc).__name__}: {exc}" + (" (gave up after max_deliver deliveries)" if final else ""),
            timestamp=datetime.now(UTC))
        await self.publisher.publish(FAILED_SUBJECT, ev, f"{thread_id}:failed")

    async def fail_poison(self, msg, reason: str) -> None:
        seq = msg.metadata.sequence.stream
        ev = DeliberationFailed(deliberation_id=f"poison.{PLANNING_STREAM}.{seq}", reason=f"malformed event: {reason}",
                                timestamp=datetime.now(UTC))
        try:
            await self.publisher.publish(FAILED_SUBJECT, ev, f"poison:{PLANNING_STREAM}:{seq}")
        finally:
            await msg.term()
        log.error("worker.poison", worker=self.name, stream_seq=seq, reason=reason)


async def serve(saver: Any, nats_url: str, ctx: Context, **kw: Any) -> None:
    """Run a worker until SIGTERM/SIGINT."""
    w = Worker(saver, nats_url, ctx, **kw)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, w.stopping.set)
    await w.run()


async def publish_plan(nats_url: str, event: dict[str, Any], msg_id: str | None = None) -> dict[str, Any]:
    """Publish a ``planning.plan.approved`` event (validated first) to ``PLANNING_EVENTS``."""
    import json

    import nats

    parse_event(json.dumps(event).encode())  # refuse to send what a worker would reject
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, PLANNING_STREAM)
        payload = event.get("payload", event)
        ack = await js.publish(PLAN_APPROVED, json.dumps(event).encode(), headers={
            "Nats-Msg-Id": msg_id or event.get("idempotency_key") or f"plan:{payload['story_id']}:{payload['plan_id']}"})
        return {"stream": ack.stream, "seq": ack.seq, "duplicate": bool(ack.duplicate)}
    finally:
        await nc.close()
