"""``council worker``: deliberations from ``planning.plan.approved`` events, exactly once.

- One durable pull consumer (``orch-planning-plan-approved``) on ``PLANNING_EVENTS`` shared by
  every worker; each message is worked on by one worker at a time (``storage.lease``).
- One deliberation per role of the event, in parallel, within the worker's concurrency limit,
  by the stored council named after the role (``dev``, ``qa``, ...; edit it over HTTP): each is
  admitted (``core.request.admit``, one stored-council look-up) before its thread is created;
  a refusal publishes a failed event and terminates the message.
- The thread id comes from the event (story, plan, role): a redelivered event resumes its
  deliberations from their checkpoints; a finished one is re-published (JetStream drops the
  duplicate by ``Nats-Msg-Id``) and the message acked; one that retention pruned (its done
  marker remains, ``server.retention``) is acked without running again.
- Ack only after every role's completed event is acknowledged by JetStream; ``in_progress()``
  while deliberating; ``nak(delay)`` on failures (the checkpoint stays, the next delivery
  resumes); ``term()`` on poison messages and refused requests with an
  ``orchestration.deliberation.failed`` event; after ``max_deliver`` deliveries a failed event
  is published and the message terminated.
- SIGTERM/SIGINT: stop fetching, give running deliberations ``grace`` seconds, then stop them
  (finished LLM calls are checkpointed) and nak their messages for another worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import uuid
from datetime import UTC, datetime
from typing import Any

import nats
import nats.errors
import structlog
from langgraph.checkpoint.base import BaseCheckpointSaver
from nats.aio.msg import Msg

from council_agents.core.context import Context
from council_agents.core.errors import CouncilError, Kind
from council_agents.core.events import DeliberationCompleted, DeliberationFailed
from council_agents.core.metrics import refused
from council_agents.core.request import RequestError, admit
from council_agents.core.settings import Settings
from council_agents.core.state import Admission
from council_agents.events.planning import (
    DURABLE,
    PLANNING_STREAM,
    Envelope,
    PlanApproved,
    PoisonMessage,
    consumer_config,
    deliberation_input,
    parse_event,
    thread_id_for,
)
from council_agents.events.publisher import (
    COMPLETED_SUBJECT,
    FAILED_SUBJECT,
    completed_id,
    ensure_stream,
    failed_id,
)
from council_agents.events.publisher import connect as nats_connect
from council_agents.server import retention
from council_agents.server.runner import Deliberations, Outcome
from council_agents.storage.councils import CouncilStore
from council_agents.storage.lease import Lease, LeaseBusy
from council_agents.storage.saver import connect

log = structlog.get_logger("council.worker")


class Worker:
    """One worker process's consumer loop and message handlers."""

    def __init__(
        self,
        saver: BaseCheckpointSaver[str],
        settings: Settings,
        *,
        concurrency: int = 4,
        max_deliver: int = 5,
        ack_wait: float = 60.0,
        grace: float = 30.0,
        name: str | None = None,
    ):
        if not settings.storage.valkey_url or not settings.events.nats_url:
            raise ValueError("the worker needs both a Valkey and a NATS URL")
        self.settings = settings
        self.deliberations = Deliberations(settings, saver)
        self.events = self.deliberations.clients.events
        self.nats_url: str = settings.events.nats_url
        self.valkey = connect(settings.storage.valkey_url)
        self.store = CouncilStore(settings.storage.valkey_url)
        self.slots = asyncio.Semaphore(concurrency)
        self.concurrency = concurrency
        self.max_deliver, self.ack_wait, self.grace = max_deliver, ack_wait, grace
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.stopping = asyncio.Event()
        self.handlers: set[asyncio.Task[None]] = set()
        self.busy = 0

    async def setup(self) -> None:
        """Connect, ensure the streams and the durable consumer, and bind to it."""
        self.nc = await nats_connect(
            self.nats_url,
            self.settings.events.nats_creds,
            name=f"council-worker-{self.name}",
            max_reconnect_attempts=-1,
        )
        self.js = self.nc.jetstream(timeout=10)
        await ensure_stream(self.js, PLANNING_STREAM)
        await self.events.publisher().connect()  # the orchestrator stream
        cfg = consumer_config(self.ack_wait, self.max_deliver)
        try:
            await self.js.add_consumer(PLANNING_STREAM, cfg)
        except Exception as e:  # noqa: BLE001 - an existing consumer is used as it is
            log.warning("worker.consumer_exists", error=str(e))
        self.sub = await self.js.pull_subscribe_bind(DURABLE, stream=PLANNING_STREAM)

    async def run(self) -> None:
        """Fetch and handle messages until ``stopping`` is set, then shut down; retention
        sweeps in the background meanwhile (``server.retention.sweeping``).
        """
        async with retention.sweeping(self.settings, owner=self.name):
            await self._run()

    async def _run(self) -> None:
        await self.setup()
        log.info(
            "worker.started",
            worker=self.name,
            concurrency=self.concurrency,
            max_deliver=self.max_deliver,
        )
        while not self.stopping.is_set():
            free = self.concurrency - max(self.busy, len(self.handlers))
            if free <= 0:
                await asyncio.sleep(0.05)
                continue
            try:
                msgs = await self.sub.fetch(min(free, 10), timeout=1)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except Exception as e:  # noqa: BLE001 - connection trouble: keep trying
                log.warning("worker.fetch_failed", error=str(e))
                await asyncio.sleep(1)
                continue
            for msg in msgs:
                task = asyncio.create_task(self.handle(msg))
                self.handlers.add(task)
                task.add_done_callback(self.handlers.discard)
        await self.shutdown()

    async def shutdown(self) -> None:
        """Give running handlers ``grace`` seconds, cancel the rest, close connections."""
        log.info(
            "worker.stopping", worker=self.name, running=len(self.handlers), grace_s=self.grace
        )
        if self.handlers:
            _, pending = await asyncio.wait(set(self.handlers), timeout=self.grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=10)
        closing_all = (
            self.events.close(),
            self.nc.close(),
            self.valkey.aclose(),
            self.store.aclose(),
        )
        for closing in closing_all:
            try:
                await asyncio.wait_for(closing, timeout=5)
            except Exception as e:  # noqa: BLE001 - exiting anyway
                log.warning("worker.close_failed", error=f"{type(e).__name__}: {e}")
        log.info("worker.stopped", worker=self.name)

    async def _heartbeat(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(max(0.5, self.ack_wait / 3))
            try:
                await msg.in_progress()
            except Exception:  # noqa: BLE001
                return

    async def handle(self, msg: Msg) -> None:
        """Handle one message; whatever goes wrong, the message is handed back, never lost, and
        at its last delivery it is given up with a failed event, never dropped in silence.
        """
        try:
            await self._handle(msg)
        except Exception as e:  # noqa: BLE001
            log.exception("worker.handler_failed", worker=self.name, error=str(e))
            try:
                if msg.metadata.num_delivered >= self.max_deliver:
                    await self.fail_poison(
                        msg,
                        f"gave up after {self.max_deliver} deliveries: {type(e).__name__}: "
                        + " ".join(str(e).split())[:300],
                        kind="other",
                    )
                else:
                    await msg.nak(delay=1.0)
            except Exception:  # noqa: BLE001
                pass

    async def ack(self, msg: Msg) -> None:
        """Acknowledge a message whose deliberations are all published."""
        await msg.ack_sync()

    async def _handle(self, msg: Msg) -> None:
        delivered = msg.metadata.num_delivered
        try:
            event, env = parse_event(msg.data)
        except PoisonMessage as e:
            await self.fail_poison(msg, str(e))
            return
        roles = event.roles
        self.busy += len(roles)
        beat = asyncio.create_task(self._heartbeat(msg))
        try:
            results: list[Any] = await asyncio.gather(
                *(self.deliberate(event, role, env, delivered) for role in roles),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            results = [asyncio.CancelledError()]
        finally:
            beat.cancel()
            self.busy -= len(roles)
        errors = [
            (r, x) for r, x in zip(roles, results, strict=False) if isinstance(x, BaseException)
        ]
        if errors and all(isinstance(x, LeaseBusy) for _, x in errors):
            await msg.nak(delay=self.ack_wait / 2)  # in progress elsewhere: not a failure
            log.info(
                "worker.busy_elsewhere",
                worker=self.name,
                plan_id=event.plan_id,
                delivered=delivered,
            )
            return
        if not errors:
            await self.ack(msg)
            log.info(
                "worker.acked",
                worker=self.name,
                plan_id=event.plan_id,
                roles=roles,
                delivered=delivered,
            )
            return
        if any(isinstance(x, asyncio.CancelledError) for _, x in errors) or self.stopping.is_set():
            await msg.nak()  # shutting down: another worker resumes from the checkpoints
            log.info("worker.handed_back", worker=self.name, plan_id=event.plan_id)
            return
        refused = all(isinstance(x, RequestError) for _, x in errors)
        if refused or delivered >= self.max_deliver:
            for role, exc in errors:
                await self.publish_failed(event, role, exc, final=not refused)
            await msg.term()
            log.error(
                "worker.gave_up",
                worker=self.name,
                plan_id=event.plan_id,
                delivered=delivered,
                errors=[f"{r}: {x}" for r, x in errors],
            )
            return
        delay = min(60.0, 0.5 * 2 ** (delivered - 1))
        log.warning(
            "worker.retry_later",
            worker=self.name,
            plan_id=event.plan_id,
            delivered=delivered,
            delay_s=delay,
            errors=[f"{r}: {type(x).__name__}: {x}" for r, x in errors],
        )
        await msg.nak(delay=delay)

    async def admission(self, event: PlanApproved, role: str) -> Admission:
        """One role's deliberation admitted, by the stored council named after the role (one
        look-up); ``RequestError`` when it is refused.
        """
        stored = await self.store.get(role.lower())
        context = Context(council=role.lower())
        inp = deliberation_input(event, role)
        return admit(inp, context, stored, self.settings.llm, origin="planning")

    async def deliberate(
        self, event: PlanApproved, role: str, env: Envelope | None, delivered: int = 1
    ) -> Outcome:
        """One role's deliberation, admitted, then started, resumed or (finished before)
        re-published; the ``delivered``-th delivery asks with seeds of its own.
        """
        thread_id = thread_id_for(event, role)
        admission = await self.admission(event, role)
        holder = f"{self.name}:{uuid.uuid4().hex[:8]}"
        async with self.slots, Lease(self.valkey, thread_id, holder, ttl_s=self.ack_wait * 0.9):
            # a redelivery asks again with other seeds (the same ones gave what failed)
            salt = max(0, delivered - 1)
            outcome = await self.deliberations.run(thread_id, admission, salt=salt)
        if outcome.status == "interrupted":
            raise RuntimeError(f"deliberation {thread_id} is waiting at {outcome.pending}")
        if outcome.status == "pruned":  # finished and published long ago; nothing to redo
            log.info("worker.already_finished", thread_id=thread_id, marker=outcome.marker)
        if outcome.status == "replayed":  # a redelivery: JetStream drops the duplicate
            completed: DeliberationCompleted = outcome.values["result"]
            msg_id = completed_id(completed.deliberation_id)
            ack = await self.events.publish(COMPLETED_SUBJECT, completed, msg_id)
            log.info("worker.republished", thread_id=thread_id, duplicate=ack["duplicate"])
        return outcome

    async def publish_failed(
        self, event: PlanApproved, role: str, exc: BaseException, final: bool
    ) -> None:
        """``orchestration.deliberation.failed`` for one role of a plan."""
        thread_id = thread_id_for(event, role)
        failed = exc if isinstance(exc, CouncilError) else None
        reason = f"{type(exc).__name__}: {exc}"
        if final:
            reason += " (gave up after max_deliver deliveries)"
        ev = DeliberationFailed(
            deliberation_id=thread_id,
            story_id=event.story_id,
            task_id=event.task_id or event.plan_id,
            role=role,
            stage=failed.stage if failed else None,
            agent_id=failed.agent_id if failed else None,
            reason=reason,
            timestamp=datetime.now(UTC),
        )
        await self.events.publish(FAILED_SUBJECT, ev, failed_id(thread_id))

    async def fail_poison(self, msg: Msg, reason: str, kind: Kind = "input") -> None:
        """Publish why a message can never be processed (``kind``: ``input``, a malformed
        event; ``other``, one whose handling kept failing), and terminate it.
        """
        refused(kind)
        seq = msg.metadata.sequence.stream
        ev = DeliberationFailed(
            deliberation_id=f"poison.{PLANNING_STREAM}.{seq}",
            reason=f"malformed event: {reason}" if kind == "input" else reason,
            timestamp=datetime.now(UTC),
        )
        try:
            await self.events.publish(FAILED_SUBJECT, ev, f"poison:{PLANNING_STREAM}:{seq}")
        finally:
            await msg.term()
        log.error("worker.poison", worker=self.name, stream_seq=seq, reason=reason)


async def serve(saver: BaseCheckpointSaver[str], settings: Settings, **options: Any) -> None:
    """Run a worker until SIGTERM/SIGINT."""
    worker = Worker(saver, settings, **options)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stopping.set)
    await worker.run()
