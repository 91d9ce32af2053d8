"""Retention: how long a deliberation's checkpoints stay in Valkey, and what is left of them.

The Valkey saver (langgraph-checkpoint-aws 1.2) keeps, per thread (deliberation) ``T``:
``checkpoint:{T}::ID`` (the whole checkpoint, one per super-step), ``writes:{T}::ID`` (the
pending writes made from checkpoint ``ID``) and ``thread:{T}:`` (checkpoint ids, newest
first). Council adds ``council:lease:{T}`` (a worker is running it, ``server.lease``) and
``council:done:{T}``, the **done marker** written here (when it finished, where its completed
event is). ``{T}`` is a hash tag: a thread's keys share one slot, so one WATCH/MULTI/EXEC
changes them together, and nothing is changed if the thread moved on meanwhile.

Status, from the newest checkpoint and its pending writes alone (``status_of``):

| status | rule | resumable |
|---|---|---|
| ``waiting`` | a pending ``__interrupt__`` write (approval) | yes |
| ``failed`` | a pending ``__error__`` write (a stage failed after its retries) | yes |
| ``unfinished`` | next tasks, no error or interrupt: running, or its process died | yes |
| ``finished`` | no next task and ``published`` among the values (publish ran) | no |
| ``ended`` | no next task, nothing published (not produced by council's graph) | no |
| ``broken`` | its newest checkpoint is missing under its list | no |

The policy (``Policy``, from ``graph.settings``; the reasoning is in docs/STORAGE.md):

- **finished**: ``RETAIN_HISTORY`` after it finished, compacted to its final checkpoint (every
  draft, critique, call record and the decision; no earlier super-step, no pending write) and a
  done marker written; the final checkpoint expires ``RETAIN_FINISHED`` after the finish, the
  marker ``RETAIN_MARKER`` after it.
- **failed, waiting, unfinished**: deleted only when ``RETAIN_UNFINISHED`` is set and the
  newest checkpoint is older than that; never by default.
- a thread whose lease a worker holds, ``ended`` and ``broken`` ones: never touched.

Applied by the runner as soon as a deliberation finishes (``after_finish``, when
``RETAIN_HISTORY`` is 0), by ``sweeping`` in ``council serve`` and ``council worker`` every
``PRUNE_INTERVAL`` (one process at a time), and by ``council prune``. Each sweep's scan
also counts the retained deliberations and reads Valkey's memory for ``/metrics`` (the
``StorageCollector``) and ``/healthz`` (``health``), and warns above a share of ``maxmemory``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import math
import os
import socket
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
import valkey.asyncio as avalkey
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph_checkpoint_aws.checkpoint.valkey import AsyncValkeySaver
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector
from valkey.exceptions import WatchError

from council_agents.core.settings import Settings
from council_agents.storage.councils import client_url
from council_agents.storage.lease import lease_key

log = structlog.get_logger("council.retention")

Status = Literal["finished", "failed", "waiting", "unfinished", "ended", "broken"]
STATUSES: tuple[Status, ...] = ("finished", "failed", "waiting", "unfinished", "ended", "broken")
RESUMABLE: frozenset[Status] = frozenset({"failed", "waiting", "unfinished"})
Verb = Literal["keep", "compact", "expire", "delete"]

SERDE = JsonPlusSerializer()
TASKS_CHANNEL = "__pregel_tasks"
BRANCH_PREFIX = "branch:to:"
SWEEP_LOCK = "council:retention:sweep"
_BATCH = 500

ACTIONS = Counter(
    "council_retention_actions", "Retention applied to a deliberation's checkpoints", ["action"]
)


def thread_key(thread_id: str) -> str:
    """The saver's list of a thread's checkpoint ids (root namespace), newest first."""
    return f"thread:{{{thread_id}}}:"


def checkpoint_key(thread_id: str, checkpoint_id: str) -> str:
    """The saver's key of one checkpoint (root namespace)."""
    return f"checkpoint:{{{thread_id}}}::{checkpoint_id}"


def writes_key(thread_id: str, checkpoint_id: str) -> str:
    """The saver's key of the pending writes made from one checkpoint."""
    return f"writes:{{{thread_id}}}::{checkpoint_id}"


def marker_key(thread_id: str) -> str:
    """The done marker of a finished deliberation, kept after its checkpoints."""
    return f"council:done:{{{thread_id}}}"


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


def span(seconds: float) -> str:
    """``90`` -> ``1.5m``: a duration as a person reads it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.3g}s"


# --- reading the saver's keys -------------------------------------------------------------


def decode_checkpoint(raw: bytes) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A stored checkpoint value as ``(stored JSON, checkpoint, metadata)``."""
    info = json.loads(raw)
    checkpoint = SERDE.loads_typed((info["type"], base64.b64decode(info["checkpoint"])))
    metadata = json.loads(base64.b64decode(info["metadata"]) or b"{}")
    return info, checkpoint, metadata


def decode_writes(raw: bytes | None) -> list[dict[str, Any]]:
    """Stored pending writes, each with its decoded ``value`` and ``stored`` (base64) length."""
    out = []
    for write in json.loads(raw) if raw else []:
        value = SERDE.loads_typed((write["type"], base64.b64decode(write["value"])))
        out.append({**write, "value": value, "stored": len(write["value"])})
    return out


def next_nodes(checkpoint: dict[str, Any]) -> list[str]:
    """Nodes LangGraph would run next from ``checkpoint`` (pending ``Send`` s and edges).

    The rule of ``langgraph.pregel._algo._triggers``: a node runs when one of its trigger
    channels (``branch:to:NODE``, or ``__start__``) holds a value whose version is newer than
    the one the node last saw. A consumed branch channel keeps a bumped version but no value.
    """
    values, versions = checkpoint["channel_values"], checkpoint["channel_versions"]
    seen = checkpoint.get("versions_seen", {})
    nodes = [getattr(send, "node", "?") for send in values.get(TASKS_CHANNEL) or []]
    for channel in values:
        if channel == "__start__":
            node = "__start__"
        elif channel.startswith(BRANCH_PREFIX):
            node = channel.removeprefix(BRANCH_PREFIX)
        else:
            continue
        if str(versions.get(channel, "")) > str(seen.get(node, {}).get(channel, "")):
            nodes.append(node)
    return nodes


def status_of(checkpoint: dict[str, Any], writes: list[dict[str, Any]]) -> Status:
    """A thread's status from its newest checkpoint and that checkpoint's pending writes."""
    channels = {write["channel"] for write in writes}
    if "__interrupt__" in channels:
        return "waiting"
    if "__error__" in channels:
        return "failed"
    if next_nodes(checkpoint):
        return "unfinished"
    return "finished" if "published" in checkpoint["channel_values"] else "ended"


@dataclass
class Thread:
    """What Valkey says about one deliberation (its root namespace)."""

    thread_id: str
    """The thread (deliberation) id."""
    status: Status
    """See the module's table."""
    checkpoints: int
    """Checkpoints in its list (1 once compacted)."""
    newest: str
    """The newest checkpoint's id: a change is applied only if it is still the newest."""
    updated_at: float | None = None
    """Unix time of the newest checkpoint (None: broken)."""
    finished_at: float | None = None
    """Unix time the completed event was built (finished threads)."""
    expires_at: float | None = None
    """When its checkpoints expire (None: never)."""
    lease: bool = False
    """A worker holds its lease (running it now)."""
    published: dict[str, Any] | None = None
    """Where its completed event is (stream, seq), when published."""
    next: list[str] = field(default_factory=list)
    """Nodes that would run next (resumable threads)."""
    error: str | None = None
    """The failed task's error, shortened."""

    @property
    def compacted(self) -> bool:
        """A finished thread reduced to its final checkpoint."""
        return self.status == "finished" and self.checkpoints == 1

    def age(self, now: float) -> float:
        """Seconds since it finished (finished) or since its newest checkpoint."""
        since = self.finished_at if self.finished_at is not None else self.updated_at
        return max(0.0, now - since) if since is not None else 0.0


def _finished_at(values: dict[str, Any], checkpoint: dict[str, Any]) -> float:
    """When a finished deliberation finished (for one finished before ``finished_at`` was
    kept: its newest checkpoint's time)."""
    when = values.get("finished_at") or checkpoint["ts"]
    return datetime.fromisoformat(when).timestamp()


async def read_thread(client: avalkey.Valkey, thread_id: str) -> Thread | None:
    """The status of one thread, or None when it has no checkpoint."""
    pipe = client.pipeline(transaction=False)
    pipe.lrange(thread_key(thread_id), 0, -1)
    pipe.pttl(thread_key(thread_id))
    pipe.exists(lease_key(thread_id))
    pipe.get(marker_key(thread_id))
    raw_ids, pttl, lease, raw_marker = await pipe.execute()
    ids = list(dict.fromkeys(_text(x) for x in raw_ids))
    if not ids:
        return None
    expires_at = time.time() + pttl / 1000 if pttl > 0 else None
    marker = json.loads(raw_marker) if raw_marker else None
    if marker and len(ids) == 1:  # compacted: the marker says all that is needed
        finished = datetime.fromisoformat(marker["finished_at"]).timestamp()
        return Thread(
            thread_id,
            "finished",
            1,
            ids[0],
            updated_at=finished,
            finished_at=finished,
            expires_at=expires_at,
            lease=bool(lease),
            published=marker.get("published"),
        )
    pipe = client.pipeline(transaction=False)
    pipe.get(checkpoint_key(thread_id, ids[0]))
    pipe.get(writes_key(thread_id, ids[0]))
    raw, raw_writes = await pipe.execute()
    if raw is None:  # expired or deleted under its list
        return Thread(thread_id, "broken", len(ids), ids[0], None, None, expires_at, bool(lease))
    _, checkpoint, _ = decode_checkpoint(raw)
    writes = decode_writes(raw_writes)
    status = status_of(checkpoint, writes)
    values = checkpoint["channel_values"]
    error = next((repr(w["value"])[:300] for w in writes if w["channel"] == "__error__"), None)
    return Thread(
        thread_id,
        status,
        len(ids),
        ids[0],
        updated_at=datetime.fromisoformat(checkpoint["ts"]).timestamp(),
        finished_at=_finished_at(values, checkpoint) if status == "finished" else None,
        expires_at=expires_at,
        lease=bool(lease),
        published=values.get("published") if status == "finished" else None,
        next=next_nodes(checkpoint),
        error=error,
    )


async def thread_ids(client: avalkey.Valkey) -> AsyncIterator[str]:
    """Every thread with checkpoints in this Valkey (SCAN of the saver's thread lists)."""
    async for key in client.scan_iter(match="thread:{*}:", count=1000):
        name = _text(key)
        yield name[len("thread:{") : -len("}:")]


async def thread_bytes(client: avalkey.Valkey, thread_id: str) -> int:
    """Bytes Valkey holds for a thread's checkpoints (``MEMORY USAGE`` of each key)."""
    raw_ids = await client.lrange(thread_key(thread_id), 0, -1)  # type: ignore[misc]
    keys = [thread_key(thread_id)]
    ids = [_text(x) for x in raw_ids]
    for cid in dict.fromkeys(ids):
        keys += [checkpoint_key(thread_id, cid), writes_key(thread_id, cid)]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return sum(used or 0 for used in await pipe.execute())


async def done_marker(client: avalkey.Valkey, thread_id: str) -> dict[str, Any] | None:
    """The done marker of a finished deliberation (finished_at, published), if kept."""
    raw = await client.get(marker_key(thread_id))
    return json.loads(raw) if raw else None


def saver_client(saver: BaseCheckpointSaver) -> avalkey.Valkey | None:
    """The Valkey client of a Valkey saver (None for any other saver)."""
    return saver.client if isinstance(saver, AsyncValkeySaver) else None


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
        """The policy of the process settings (``COUNCIL_RETAIN_*``)."""
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
    """What ``policy`` says to do with ``thread`` at ``now`` (unix time)."""
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


# --- changing a thread ----------------------------------------------------------------------


class Changed(RuntimeError):
    """The thread changed (a new checkpoint, a worker's lease) since it was read: it is left
    as it was, and the next sweep looks again."""


def _chunks(keys: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(keys), _BATCH):
        yield keys[start : start + _BATCH]


async def _watched_ids(pipe: Any, thread: Thread, respect_lease: bool) -> list[str]:
    """WATCH the thread's list and lease, then check it is still as it was read."""
    await pipe.watch(thread_key(thread.thread_id), lease_key(thread.thread_id))
    if respect_lease and await pipe.exists(lease_key(thread.thread_id)):
        raise Changed(f"{thread.thread_id}: a worker took its lease")
    raw_ids = await pipe.lrange(thread_key(thread.thread_id), 0, -1)
    ids = list(dict.fromkeys(_text(x) for x in raw_ids))
    if not ids or ids[0] != thread.newest:
        raise Changed(f"{thread.thread_id}: a checkpoint was added or removed meanwhile")
    return ids


async def settle(
    client: avalkey.Valkey, thread: Thread, plan: Plan, now: float, respect_lease: bool = True
) -> None:
    """Apply ``plan`` to a finished thread: compact it to its final checkpoint (parent cleared,
    every older checkpoint and every pending write deleted), expire what is left at
    ``plan.expire_at`` (deleted now if that is past), and write the done marker. One
    transaction under WATCH: a thread that moved on is left as it was (``Changed``)."""
    tid = thread.thread_id
    async with client.pipeline(transaction=True) as pipe:
        ids = await _watched_ids(pipe, thread, respect_lease)
        final = checkpoint_key(tid, ids[0])
        raw = await pipe.get(final)
        if raw is None:
            raise Changed(f"{tid}: its final checkpoint is missing")
        info, checkpoint, _ = decode_checkpoint(raw)
        if status_of(checkpoint, decode_writes(await pipe.get(writes_key(tid, ids[0])))) != (
            "finished"
        ):
            raise Changed(f"{tid} is no longer finished")
        values = checkpoint["channel_values"]
        marker = {
            "deliberation_id": values.get("deliberation_id", tid),
            "finished_at": _iso_exact(_finished_at(values, checkpoint)),
            "published": values.get("published") or None,
        }
        doomed = [checkpoint_key(tid, cid) for cid in ids[1:]]
        doomed += [writes_key(tid, cid) for cid in ids]
        pipe.multi()
        for chunk in _chunks(doomed):
            pipe.delete(*chunk)
        if plan.expire_at is not None and plan.expire_at <= now:
            pipe.delete(final, thread_key(tid))
        else:
            info["parent_checkpoint_id"] = None  # nothing points at a deleted checkpoint
            pipe.set(final, json.dumps(info, separators=(",", ":")), keepttl=True)
            pipe.ltrim(thread_key(tid), 0, 0)
            for key in (final, thread_key(tid)):
                if plan.expire_at is None:
                    pipe.persist(key)
                else:
                    pipe.expireat(key, math.ceil(plan.expire_at))
        if plan.marker_until is not None and plan.marker_until > now:
            pipe.set(marker_key(tid), json.dumps(marker), exat=math.ceil(plan.marker_until))
        try:
            await pipe.execute()
        except WatchError:
            raise Changed(f"{tid} changed while being compacted; left as it was") from None


def _iso_exact(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat()


async def delete(client: avalkey.Valkey, thread: Thread, respect_lease: bool = True) -> None:
    """Delete every checkpoint, pending write and the list of a thread (no marker): one
    transaction under WATCH, so a thread that moved on is left as it was (``Changed``)."""
    tid = thread.thread_id
    async with client.pipeline(transaction=True) as pipe:
        ids = await _watched_ids(pipe, thread, respect_lease)
        doomed = [key for cid in ids for key in (checkpoint_key(tid, cid), writes_key(tid, cid))]
        pipe.multi()
        for chunk in _chunks(doomed + [thread_key(tid)]):
            pipe.delete(*chunk)
        try:
            await pipe.execute()
        except WatchError:
            raise Changed(f"{tid} changed while being deleted; left as it was") from None


async def apply(
    client: avalkey.Valkey, thread: Thread, plan: Plan, now: float, respect_lease: bool = True
) -> None:
    """Carry out ``plan`` (anything but keep) on ``thread``."""
    if plan.verb == "keep":
        return
    if thread.status == "finished":
        await settle(client, thread, plan, now, respect_lease)
    else:
        await delete(client, thread, respect_lease)
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
        """JSON-ready."""
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
    """Apply ``policy`` to every thread (or ``only`` these) at ``now``; ``dry_run`` decides
    without changing anything; ``measure`` adds each changed thread's bytes before/after."""
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
            except Changed as e:
                action.error = str(e)
            if measure:
                action.bytes_after = await thread_bytes(client, tid)
        if not (action.done and plan.verb == "delete"):
            retained[thread.status] += 1
        actions.append(action)
    return Sweep(now, actions, retained)


async def after_finish(saver: BaseCheckpointSaver, thread_id: str, settings: Settings) -> None:
    """Right after a deliberation finished in this process: compact it now when the policy
    keeps no history (``COUNCIL_RETAIN_HISTORY=0``). Never fails the deliberation: the next
    sweep retries."""
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
    """Valkey's used memory and its limit."""
    info = await client.info("memory")
    maxmemory = int(info.get("maxmemory", 0))
    if maxmemory:
        return Memory(int(info["used_memory"]), maxmemory, "maxmemory")
    return Memory(
        int(info["used_memory"]), int(info.get("total_system_memory", 0)), "system memory"
    )


def warn_if_high(used: Memory, settings: Settings) -> bool:
    """Log a warning when Valkey's memory passes ``COUNCIL_VALKEY_MEMORY_WARN``; True if so."""
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
    """The last sweep's figures, for /metrics and /healthz."""

    at: float
    retained: dict[str, int]
    memory: Memory


_last: Survey | None = None


def last_survey() -> Survey | None:
    """This process's last survey (None before the first sweep)."""
    return _last


class StorageCollector(Collector):
    """``/metrics``: Valkey memory and retained deliberations, as of this process's last sweep."""

    def describe(self) -> Iterable[Metric]:
        """The metric families (without samples)."""
        return list(self._families(None))

    def collect(self) -> Iterable[Metric]:
        """The figures of the last sweep (none before it)."""
        return list(self._families(_last))

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


COLLECTOR = StorageCollector()
with contextlib.suppress(ValueError):  # registered once per process, however often imported
    REGISTRY.register(COLLECTOR)


async def health(client: avalkey.Valkey) -> dict[str, Any]:
    """``/healthz``'s storage entry: memory now, retained deliberations at the last sweep."""
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
    if _last is not None:
        report["retained"] = _last.retained
        report["swept_at"] = _iso(_last.at)
    return report


# --- the periodic sweep ---------------------------------------------------------------------


class Sweeper:
    """Applies the policy every ``PRUNE_INTERVAL``; one process at a time (a Valkey lock)."""

    def __init__(self, client: avalkey.Valkey, settings: Settings, owner: str):
        self.client, self.settings, self.owner = client, settings, owner

    async def once(self, apply_policy: bool = True) -> Sweep:
        """One pass: apply the policy (when this process gets the lock), count, read memory."""
        global _last
        interval_ms = max(1000, int(self.settings.retention.prune_interval_s * 900))
        if apply_policy:
            apply_policy = bool(
                await self.client.set(SWEEP_LOCK, self.owner, nx=True, px=interval_ms)
            )
        started = time.monotonic()
        result = await sweep(self.client, Policy.of(self.settings), dry_run=not apply_policy)
        used = await memory(self.client)
        _last = Survey(result.at, result.retained, used)
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
        """Count at once, then sweep every interval until ``stopping`` is set."""
        first = True
        while not stopping.is_set():
            try:
                await self.once(apply_policy=not first)
            except Exception as e:  # noqa: BLE001 - Valkey trouble: try again next time
                log.warning("retention.sweep_failed", error=f"{type(e).__name__}: {e}")
            first = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.settings.retention.prune_interval_s)


@contextlib.asynccontextmanager
async def sweeping(settings: Settings, owner: str | None = None) -> AsyncIterator[None]:
    """Run the periodic sweep in the background for the duration of the block (nothing when
    there is no Valkey URL or ``COUNCIL_PRUNE_INTERVAL`` is 0)."""
    if not settings.storage.valkey_url or settings.retention.prune_interval_s <= 0:
        yield
        return
    client = avalkey.from_url(client_url(settings.storage.valkey_url))
    stopping = asyncio.Event()
    owner = owner or f"{socket.gethostname()}-{os.getpid()}"
    task = asyncio.create_task(Sweeper(client, settings, owner).run(stopping))
    try:
        yield
    finally:
        stopping.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=10)
        await client.aclose()
