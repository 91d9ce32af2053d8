"""Reading the saver's checkpoints: the stored value format, a thread's status, its size.

A checkpoint (``storage.keys.checkpoint_key``) is stored by langgraph-checkpoint-aws 1.2 as
JSON ``{thread_id, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata}`` where
``checkpoint`` is the serializer's bytes (msgpack) and ``metadata`` JSON, both base64; the
pending writes made from it (``storage.keys.writes_key``) as a JSON list of ``{task_id, idx,
channel, type, value}``, ``value`` base64. This module alone decodes them (and re-encodes a
checkpoint for ``storage.compaction``).

A thread's status, from its newest checkpoint and that checkpoint's pending writes alone
(``status_of``):

| status | rule | resumable |
|---|---|---|
| ``waiting`` | a pending ``__interrupt__`` write (approval) | yes |
| ``failed`` | a pending ``__error__`` write (a stage failed after its retries) | yes |
| ``unfinished`` | next tasks, no error or interrupt: running, or its process died | yes |
| ``finished`` | no next task and ``published`` among the values (publish ran) | no |
| ``ended`` | no next task, nothing published (not produced by council's graph) | no |
| ``broken`` | its newest checkpoint is missing under its list | no |

A compacted finished thread (one checkpoint and a done marker, ``storage.markers``) is read
from its list and marker alone, without decoding the checkpoint.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import valkey.asyncio as avalkey
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from council_agents.storage import keys, markers

Status = Literal["finished", "failed", "waiting", "unfinished", "ended", "broken"]
STATUSES: tuple[Status, ...] = ("finished", "failed", "waiting", "unfinished", "ended", "broken")
RESUMABLE: frozenset[Status] = frozenset({"failed", "waiting", "unfinished"})

SERDE = JsonPlusSerializer()
"""The saver's serializer (its default), for the ``checkpoint`` and write ``value`` bytes."""
TASKS_CHANNEL = "__pregel_tasks"
BRANCH_PREFIX = "branch:to:"


def text(raw: bytes | str) -> str:
    """A key or value as read from Valkey (bytes), as a string.

    Args:
        raw: What the client returned.

    Returns:
        The UTF-8 text.
    """
    return raw.decode() if isinstance(raw, bytes) else raw


def decode_checkpoint(raw: bytes | str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A stored checkpoint value, decoded.

    Args:
        raw: The value of a ``checkpoint:`` key.

    Returns:
        ``(stored JSON, checkpoint, metadata)``: the stored object as it is (base64 fields
        left encoded, for ``encode_checkpoint``), the checkpoint and its metadata.
    """
    info: dict[str, Any] = json.loads(raw)
    checkpoint: dict[str, Any] = SERDE.loads_typed(
        (info["type"], base64.b64decode(info["checkpoint"]))
    )
    metadata: dict[str, Any] = json.loads(base64.b64decode(info["metadata"]) or b"{}")
    return info, checkpoint, metadata


def encode_checkpoint(info: dict[str, Any]) -> str:
    """A stored checkpoint object (as ``decode_checkpoint`` returned it) as a value to store.

    Args:
        info: The stored JSON object, possibly changed (e.g. its parent cleared).

    Returns:
        The compact JSON the saver reads back.
    """
    return json.dumps(info, separators=(",", ":"))


def serialized_size(info: dict[str, Any]) -> int:
    """Bytes of the serializer's output inside a stored checkpoint (before base64).

    Args:
        info: The stored JSON object (``decode_checkpoint``'s first item).

    Returns:
        The length of the decoded ``checkpoint`` field.
    """
    return len(base64.b64decode(info["checkpoint"]))


def decode_writes(raw: bytes | str | None) -> list[dict[str, Any]]:
    """Stored pending writes, decoded.

    Args:
        raw: The value of a ``writes:`` key (None: no writes).

    Returns:
        Each write as stored, with its decoded ``value`` and ``stored``, the length of its
        stored (base64) value.
    """
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

    Args:
        checkpoint: A decoded checkpoint.

    Returns:
        The node names, one per pending ``Send`` and per triggered channel.
    """
    values, versions = checkpoint["channel_values"], checkpoint["channel_versions"]
    seen = checkpoint.get("versions_seen", {})
    nodes = [str(getattr(send, "node", "?")) for send in values.get(TASKS_CHANNEL) or []]
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
    """A thread's status (see the module's table).

    Args:
        checkpoint: Its newest checkpoint, decoded.
        writes: That checkpoint's pending writes (``decode_writes``; only ``channel`` is read).

    Returns:
        The status.
    """
    channels = {write["channel"] for write in writes}
    if "__interrupt__" in channels:
        return "waiting"
    if "__error__" in channels:
        return "failed"
    if next_nodes(checkpoint):
        return "unfinished"
    published = checkpoint["channel_values"].get("published")
    return "finished" if published is not None else "ended"


def finished_at(values: dict[str, Any], checkpoint: dict[str, Any]) -> float:
    """When a finished deliberation finished.

    Args:
        values: Its final checkpoint's channel values.
        checkpoint: That checkpoint.

    Returns:
        Unix time of ``finished_at`` among the values (for one finished before it was kept:
        the checkpoint's time).
    """
    when = values.get("finished_at") or checkpoint["ts"]
    return datetime.fromisoformat(when).timestamp()


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
        """Seconds since it finished (finished) or since its newest checkpoint.

        Args:
            now: Unix time.

        Returns:
            The age, never negative (0 when unknown).
        """
        since = self.finished_at if self.finished_at is not None else self.updated_at
        return max(0.0, now - since) if since is not None else 0.0


def checkpoint_ids(raw_ids: list[Any]) -> list[str]:
    """A thread's list as read (``LRANGE``), newest first, each id once.

    Args:
        raw_ids: The list's items.

    Returns:
        The checkpoint ids.
    """
    return list(dict.fromkeys(text(x) for x in raw_ids))


async def read_thread(client: avalkey.Valkey, thread_id: str) -> Thread | None:
    """The status of one thread.

    Args:
        client: The Valkey holding it.
        thread_id: The thread (deliberation) id.

    Returns:
        What Valkey says about it, or None when it has no checkpoint.
    """
    pipe = client.pipeline(transaction=False)
    pipe.lrange(keys.thread_key(thread_id), 0, -1)
    pipe.pttl(keys.thread_key(thread_id))
    pipe.exists(keys.lease_key(thread_id))
    pipe.get(keys.marker_key(thread_id))
    raw_ids, pttl, lease, raw_marker = await pipe.execute()
    ids = checkpoint_ids(raw_ids)
    if not ids:
        return None
    expires_at = time.time() + pttl / 1000 if pttl > 0 else None
    marker = markers.decode(raw_marker)
    if marker and len(ids) == 1:  # compacted: the marker says all that is needed
        finished = markers.finished_at(marker)
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
    pipe.get(keys.checkpoint_key(thread_id, ids[0]))
    pipe.get(keys.writes_key(thread_id, ids[0]))
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
        finished_at=finished_at(values, checkpoint) if status == "finished" else None,
        expires_at=expires_at,
        lease=bool(lease),
        published=values.get("published") if status == "finished" else None,
        next=next_nodes(checkpoint),
        error=error,
    )


async def thread_ids(client: avalkey.Valkey) -> AsyncIterator[str]:
    """Every thread with checkpoints in this Valkey (a SCAN of the saver's thread lists).

    Args:
        client: The Valkey to scan.

    Yields:
        Thread ids, in SCAN order.
    """
    async for key in client.scan_iter(match=keys.THREADS_PATTERN, count=1000):
        yield keys.thread_of_list(text(key))


async def thread_bytes(client: avalkey.Valkey, thread_id: str) -> int:
    """Bytes Valkey holds for a thread's checkpoints (``MEMORY USAGE`` of each key).

    Args:
        client: The Valkey holding it.
        thread_id: The thread (deliberation) id.

    Returns:
        The sum over its list, checkpoints and writes keys (not its marker or lease).
    """
    # valkey 6.2 annotates LRANGE ``Awaitable[list] | list`` on the asyncio client too
    raw_ids = await client.lrange(keys.thread_key(thread_id), 0, -1)  # type: ignore[misc]
    names = [keys.thread_key(thread_id)]
    for cid in checkpoint_ids(raw_ids):
        names += [keys.checkpoint_key(thread_id, cid), keys.writes_key(thread_id, cid)]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.memory_usage(name, samples=0)
    return sum(used or 0 for used in await pipe.execute())
