"""Retention: how long a deliberation's checkpoints stay in Valkey, applied and watched.

What is stored, how a thread's status is read and how it is compacted or deleted are
``storage``'s (``storage.checkpoints``, ``storage.compaction``, ``storage.markers``); this
module decides and applies:

- **the policy** (``Policy``, from the process settings ``COUNCIL_RETAIN_*``; the reasoning is
  in docs/STORAGE.md) and what it says for one thread (``decide`` -> ``Plan``):

  - **finished**: ``RETAIN_HISTORY`` after it finished, compacted to its final checkpoint
    (every draft, critique, call record and the decision; no earlier super-step, no pending
    write) and a done marker written; the final checkpoint expires ``RETAIN_FINISHED`` after
    the finish, the marker ``RETAIN_MARKER`` after it.
  - **failed, waiting, unfinished**: deleted only when ``RETAIN_UNFINISHED`` is set and the
    newest checkpoint is older than that; never by default.
  - a thread whose lease a worker holds, ``ended`` and ``broken`` ones: never touched.

- **the sweep** (``sweep``): the policy over every thread (or some), by the runner as soon as
  a deliberation finishes (``after_finish``, when ``RETAIN_HISTORY`` is 0), by ``sweeping``
  (a ``Sweeper``) in ``council serve`` and ``council worker`` every ``PRUNE_INTERVAL`` (one
  process at a time: ``storage.lease.take_sweep_lock``), and by ``council prune``.
- **what it leaves visible**: each periodic pass also counts the retained deliberations and
  reads Valkey's memory (a ``Survey``, kept by its ``Sweeper``) for ``/metrics`` (a
  ``StorageCollector`` bound to that ``Sweeper``, registered while it runs) and ``/healthz``
  (``health``), and warns above a share of ``maxmemory``. The served app's lifespan keeps
  its ``Sweeper`` on its door (``server.app``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
import valkey.asyncio as avalkey
from langgraph.checkpoint.base import BaseCheckpointSaver
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from council_agents.core.settings import Settings
from council_agents.storage import compaction
from council_agents.storage.checkpoints import (
    RESUMABLE,
    STATUSES,
    Status,
    Thread,
    read_thread,
    thread_bytes,
    thread_ids,
)
from council_agents.storage.lease import take_sweep_lock
from council_agents.storage.saver import connect, saver_client

log = structlog.get_logger("council.retention")

Verb = Literal["keep", "compact", "expire", "delete"]

ACTIONS = Counter(
    "council_retention_actions", "Retention applied to a deliberation's checkpoints", ["action"]
)


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


def span(seconds: float) -> str:
    """A duration as a person reads it.

    Args:
        seconds: The duration.

    Returns:
        E.g. ``1.5m`` for 90.
    """
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.3g}s"


# --- the policy -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """How long checkpoints stay; see the module docstring and docs/STORAGE.md."""

    history_s: float = 0.0
    """A finished deliberation's whole history, from the finish; then compacted."""
    finished_s: float | None = 24 * 3600.0
    """Its final checkpoint, from the finish (None: kept)."""
    unfinished_s: float | None = None
    """Failed, waiting and unfinished ones, from their newest checkpoint (None: kept)."""
    marker_s: float = 30 * 24 * 3600.0
    """The done marker, from the finish."""

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        """The policy of the process settings (``COUNCIL_RETAIN_*``).

        Args:
            settings: The process settings.

        Returns:
            The policy.
        """
        return cls(
            history_s=settings.retention.history_s,
            finished_s=settings.retention.finished_s,
            unfinished_s=settings.retention.unfinished_s,
            marker_s=settings.retention.marker_s,
        )


@dataclass(frozen=True)
class Plan:
    """What the policy says to do with one thread, and why."""

    verb: Verb
    """keep; compact (to its final checkpoint); expire (change when it expires); delete."""
    reason: str
    """Why, in a few words."""
    expire_at: float | None = None
    """Finished threads: when what is left expires (None: never)."""
    marker_until: float | None = None
    """Finished threads: when the done marker expires."""


def _same_time(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 2)


def decide(thread: Thread, policy: Policy, now: float) -> Plan:
    """What ``policy`` says to do with ``thread`` at ``now``.

    Args:
        thread: The thread as read (``storage.checkpoints.read_thread``).
        policy: The policy.
        now: Unix time.

    Returns:
        The plan (``keep`` when nothing is to be done), with its reason.
    """
    if thread.lease:
        return Plan("keep", "a worker holds its lease")
    age = thread.age(now)
    if thread.status == "finished" and thread.finished_at is not None:
        finished = thread.finished_at
        expire_at = None if policy.finished_s is None else finished + policy.finished_s
        marker_until = finished + policy.marker_s
        if expire_at is not None and expire_at <= now:
            why = f"finished {span(age)} ago, retained {span(policy.finished_s or 0)}"
            return Plan("delete", why, expire_at, marker_until)
        until = f"expires {_iso(expire_at)}" if expire_at is not None else "kept"
        if not thread.compacted:
            if age < policy.history_s:
                return Plan("keep", f"history kept until {_iso(finished + policy.history_s)}")
            return Plan("compact", f"finished {span(age)} ago; {until}", expire_at, marker_until)
        if not _same_time(thread.expires_at, expire_at):
            return Plan("expire", f"compacted; now {until}", expire_at, marker_until)
        return Plan("keep", f"compacted; {until}")
    if thread.status in RESUMABLE:
        if policy.unfinished_s is None:
            return Plan("keep", f"{thread.status}, resumable (unfinished retention: never)")
        if age < policy.unfinished_s:
            return Plan("keep", f"{thread.status}, idle {span(age)}")
        why = f"{thread.status}, idle {span(age)} >= {span(policy.unfinished_s)}"
        return Plan("delete", why)
    return Plan("keep", f"{thread.status}: left for a person to look at")


async def apply(
    client: avalkey.Valkey, thread: Thread, plan: Plan, now: float, respect_lease: bool = True
) -> None:
    """Carry out ``plan`` on ``thread`` (nothing for ``keep``).

    A finished thread is compacted (or its expiry changed, or deleted) with its done marker
    (``storage.compaction.settle``); any other is deleted (``storage.compaction.delete``).

    Args:
        client: The Valkey holding the thread.
        thread: The thread the plan was made for.
        plan: What ``decide`` said.
        now: Unix time the plan was made at.
        respect_lease: Leave the thread when a worker holds its lease.

    Raises:
        storage.compaction.Changed: The thread moved on since it was read; left as it was.
    """
    if plan.verb == "keep":
        return
    if thread.status == "finished":
        await compaction.settle(
            client,
            thread,
            now,
            expire_at=plan.expire_at,
            marker_until=plan.marker_until,
            respect_lease=respect_lease,
        )
    else:
        await compaction.delete(client, thread, respect_lease)
    ACTIONS.labels(plan.verb).inc()
    log.info(
        f"retention.{plan.verb}",
        thread_id=thread.thread_id,
        status=thread.status,
        reason=plan.reason,
    )


# --- sweeping -------------------------------------------------------------------------------


@dataclass
class Action:
    """One thread as a sweep saw it, and what became of it."""

    thread_id: str
    status: Status
    age_s: float
    verb: Verb
    reason: str
    done: bool = False
    """The change was made (False: kept, dry run, or the thread moved on)."""
    error: str | None = None
    bytes_before: int | None = None
    bytes_after: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready.

        Returns:
            Every field.
        """
        return dataclasses.asdict(self)


@dataclass
class Sweep:
    """A pass over the threads: what was done, and what is retained afterwards."""

    at: float
    actions: list[Action]
    retained: dict[str, int]
    """Deliberations with checkpoints, by status, after the pass."""


async def sweep(
    client: avalkey.Valkey,
    policy: Policy,
    *,
    now: float | None = None,
    dry_run: bool = False,
    only: Iterable[str] | None = None,
    measure: bool = False,
) -> Sweep:
    """Apply ``policy`` to every thread, or only some.

    Args:
        client: The Valkey holding the threads.
        policy: The policy.
        now: Unix time to decide at (None: now).
        dry_run: Decide without changing anything.
        only: These thread ids instead of every thread in Valkey.
        measure: Add each changed thread's bytes before and after.

    Returns:
        What was seen and done, and what is retained afterwards.
    """
    now = time.time() if now is None else now
    retained: dict[str, int] = dict.fromkeys(STATUSES, 0)
    actions = []
    ids = list(only) if only is not None else [tid async for tid in thread_ids(client)]
    for tid in ids:
        try:
            thread = await read_thread(client, tid)
        except (ValueError, KeyError, TypeError) as e:  # not a checkpoint council can read
            log.warning("retention.unreadable", thread_id=tid, error=f"{type(e).__name__}: {e}")
            continue
        if thread is None:
            continue
        plan = decide(thread, policy, now)
        action = Action(tid, thread.status, round(thread.age(now), 1), plan.verb, plan.reason)
        if plan.verb != "keep" and measure:
            action.bytes_before = await thread_bytes(client, tid)
        if plan.verb != "keep" and not dry_run:
            try:
                await apply(client, thread, plan, now)
                action.done = True
            except compaction.Changed as e:
                action.error = str(e)
            if measure:
                action.bytes_after = await thread_bytes(client, tid)
        if not (action.done and plan.verb == "delete"):
            retained[thread.status] += 1
        actions.append(action)
    return Sweep(now, actions, retained)


async def after_finish(saver: BaseCheckpointSaver[Any], thread_id: str, settings: Settings) -> None:
    """Compact a deliberation that just finished in this process, when no history is kept.

    Only when the policy keeps none (``COUNCIL_RETAIN_HISTORY=0``) and the saver is Valkey's.
    Never fails the deliberation: a failure is logged, and the next sweep retries.

    Args:
        saver: The checkpointer it ran on.
        thread_id: The thread (deliberation) id.
        settings: The process settings (the policy).
    """
    client = saver_client(saver)
    policy = Policy.of(settings)
    if client is None or policy.history_s > 0:
        return
    try:
        thread = await read_thread(client, thread_id)
        if thread is None or thread.status != "finished":
            return
        thread = dataclasses.replace(thread, lease=False)  # the lease is this process's own
        now = time.time()
        await apply(client, thread, decide(thread, policy, now), now, respect_lease=False)
    except Exception as e:  # noqa: BLE001 - retention must not fail a finished deliberation
        log.warning("retention.after_finish_failed", thread_id=thread_id, error=repr(e))


# --- memory, metrics, health ----------------------------------------------------------------


@dataclass
class Memory:
    """Valkey's memory (``INFO memory``)."""

    used: int
    """``used_memory``."""
    limit: int
    """``maxmemory``, or the machine's memory when ``maxmemory`` is 0 (0: unknown)."""
    of: str
    """What ``limit`` is: ``maxmemory`` or ``system memory``."""

    @property
    def share(self) -> float:
        """``used / limit`` (0 when the limit is unknown)."""
        return self.used / self.limit if self.limit else 0.0


async def memory(client: avalkey.Valkey) -> Memory:
    """Valkey's used memory and its limit.

    Args:
        client: The Valkey.

    Returns:
        Its ``INFO memory`` figures.
    """
    info = await client.info("memory")
    maxmemory = int(info.get("maxmemory", 0))
    if maxmemory:
        return Memory(int(info["used_memory"]), maxmemory, "maxmemory")
    return Memory(
        int(info["used_memory"]), int(info.get("total_system_memory", 0)), "system memory"
    )


def warn_if_high(used: Memory, settings: Settings) -> bool:
    """Log a warning when Valkey's memory passes ``COUNCIL_VALKEY_MEMORY_WARN``.

    Args:
        used: Valkey's memory.
        settings: The process settings (the threshold).

    Returns:
        True when it warned.
    """
    if used.limit and used.share >= settings.retention.valkey_memory_warn:
        log.warning(
            "valkey.memory_high",
            used_bytes=used.used,
            limit_bytes=used.limit,
            limit=used.of,
            share=round(used.share, 3),
            warn_at=settings.retention.valkey_memory_warn,
            hint="prune (council prune), shorten COUNCIL_RETAIN_*, or give Valkey more memory",
        )
        return True
    return False


@dataclass
class Survey:
    """A periodic sweep's figures, for /metrics and /healthz."""

    at: float
    retained: dict[str, int]
    memory: Memory


async def health(client: avalkey.Valkey, survey: Survey | None) -> dict[str, Any]:
    """``/healthz``'s storage entry: memory now, retained deliberations at the last sweep.

    Args:
        client: The Valkey.
        survey: The last sweep's figures (``Sweeper.last``; None: no sweep yet, or none here).

    Returns:
        ``{ok, used_memory, memory_limit, memory_share}`` (and ``retained``, ``swept_at``
        after a sweep), or ``{ok: False, error}`` when Valkey's memory cannot be read.
    """
    try:
        used = await memory(client)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    report: dict[str, Any] = {
        "ok": True,
        "used_memory": used.used,
        "memory_limit": used.limit,
        "memory_share": round(used.share, 4),
    }
    if survey is not None:
        report["retained"] = survey.retained
        report["swept_at"] = _iso(survey.at)
    return report


# --- the periodic sweep ---------------------------------------------------------------------


class Sweeper:
    """Applies the policy every ``PRUNE_INTERVAL``; one process at a time (the sweep lock).

    Args:
        client: The Valkey to sweep.
        settings: The process settings (policy, interval, memory threshold).
        owner: Who sweeps (the sweep lock's value).
    """

    def __init__(self, client: avalkey.Valkey, settings: Settings, owner: str):
        self.client, self.settings, self.owner = client, settings, owner
        self.last: Survey | None = None
        """The last pass's figures (None before the first)."""

    async def once(self, apply_policy: bool = True) -> Sweep:
        """One pass: apply the policy (when this process gets the lock), count, read memory.

        Args:
            apply_policy: Try to apply the policy (False: only count).

        Returns:
            What the pass saw and did; its figures become ``last``.
        """
        interval_ms = max(1000, int(self.settings.retention.prune_interval_s * 900))
        if apply_policy:
            apply_policy = await take_sweep_lock(self.client, self.owner, interval_ms)
        started = time.monotonic()
        result = await sweep(self.client, Policy.of(self.settings), dry_run=not apply_policy)
        used = await memory(self.client)
        self.last = Survey(result.at, result.retained, used)
        done = [a.verb for a in result.actions if a.done]
        log.info(
            "retention.swept",
            applied=apply_policy,
            retained=result.retained,
            actions={verb: done.count(verb) for verb in ("compact", "expire", "delete")},
            used_memory=used.used,
            took_s=round(time.monotonic() - started, 3),
        )
        warn_if_high(used, self.settings)
        return result

    async def run(self, stopping: asyncio.Event) -> None:
        """Count at once, then sweep every interval until ``stopping`` is set.

        Args:
            stopping: Set to stop.
        """
        first = True
        while not stopping.is_set():
            try:
                await self.once(apply_policy=not first)
            except Exception as e:  # noqa: BLE001 - Valkey trouble: try again next time
                log.warning("retention.sweep_failed", error=f"{type(e).__name__}: {e}")
            first = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.settings.retention.prune_interval_s)


class StorageCollector(Collector):
    """``/metrics``: Valkey memory and retained deliberations, as of a sweeper's last pass.

    Args:
        sweeper: The sweeper whose ``last`` survey is exported.
    """

    def __init__(self, sweeper: Sweeper):
        self.sweeper = sweeper

    def describe(self) -> Iterable[Metric]:
        """The metric families, without samples.

        Returns:
            The families.
        """
        return list(self._families(None))

    def collect(self) -> Iterable[Metric]:
        """The figures of the sweeper's last pass (none before it).

        Returns:
            The families.
        """
        return list(self._families(self.sweeper.last))

    @staticmethod
    def _families(survey: Survey | None) -> Iterator[Metric]:
        retained = GaugeMetricFamily(
            "council_retained_deliberations",
            "Deliberations with checkpoints in Valkey, by status, at the last retention sweep",
            labels=["status"],
        )
        used = GaugeMetricFamily(
            "council_valkey_used_memory_bytes", "Valkey used_memory at the last retention sweep"
        )
        limit = GaugeMetricFamily(
            "council_valkey_memory_limit_bytes",
            "Valkey maxmemory (the machine's memory when maxmemory is 0) at the last sweep",
        )
        at = GaugeMetricFamily(
            "council_retention_sweep_timestamp_seconds", "Unix time of the last retention sweep"
        )
        if survey is not None:
            for status, count in survey.retained.items():
                retained.add_metric([status], count)
            used.add_metric([], survey.memory.used)
            limit.add_metric([], survey.memory.limit)
            at.add_metric([], survey.at)
        yield from (retained, used, limit, at)


@contextlib.contextmanager
def exported(sweeper: Sweeper) -> Iterator[StorageCollector | None]:
    """Export a sweeper's figures on this process's ``/metrics`` for the block.

    Args:
        sweeper: The sweeper.

    Yields:
        Its collector, registered; None when another sweeper of this process exports
        already (one set of storage figures per process).
    """
    collector = StorageCollector(sweeper)
    try:
        REGISTRY.register(collector)
    except ValueError:  # the same metric names, registered by another sweeper
        log.warning("retention.metrics_exported_already", owner=sweeper.owner)
        yield None
        return
    try:
        yield collector
    finally:
        REGISTRY.unregister(collector)


@contextlib.asynccontextmanager
async def sweeping(settings: Settings, owner: str | None = None) -> AsyncIterator[Sweeper | None]:
    """Run the periodic sweep in the background for the duration of the block.

    Its figures are exported on ``/metrics`` meanwhile (``exported``).

    Args:
        settings: The process settings (Valkey, policy, interval).
        owner: Who sweeps (default: host and process id).

    Yields:
        The sweeper, or None (and nothing runs) when there is no Valkey URL or
        ``COUNCIL_PRUNE_INTERVAL`` is 0.
    """
    if not settings.storage.valkey_url or settings.retention.prune_interval_s <= 0:
        yield None
        return
    client = connect(settings.storage.valkey_url)
    stopping = asyncio.Event()
    sweeper = Sweeper(client, settings, owner or f"{socket.gethostname()}-{os.getpid()}")
    task = asyncio.create_task(sweeper.run(stopping))
    try:
        with exported(sweeper):
            yield sweeper
    finally:
        stopping.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=10)
        await client.aclose()
