"""Changing a thread's stored checkpoints: compaction to the final one, and deletion.

Both are one transaction on the thread's keys (one hash slot, ``storage.keys``): WATCH its
list and lease, re-read the list, check the thread is still as it was read, then MULTI/EXEC.
A thread that moved on meanwhile (a new checkpoint, a worker's lease, an edit from Studio) is
left exactly as it was: ``Changed`` is raised and the caller looks again later. What to do and
when (the policy) is ``server.retention``'s; this module only carries it out.

The saver's own ``adelete_thread`` is not used: it runs ``KEYS thread:{T}:*``, which blocks
Valkey for a scan of the whole keyspace.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import valkey.asyncio as avalkey
from valkey.exceptions import WatchError

from council_agents.storage import keys, markers
from council_agents.storage.checkpoints import (
    Thread,
    checkpoint_ids,
    decode_checkpoint,
    decode_writes,
    encode_checkpoint,
    finished_at,
    status_of,
)

_BATCH = 500
"""Keys per ``DEL``."""


class Changed(RuntimeError):
    """The thread changed (a new checkpoint, a worker's lease) since it was read.

    It is left as it was, and the next sweep looks again.
    """


def _chunks(names: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(names), _BATCH):
        yield names[start : start + _BATCH]


async def _watched_ids(pipe: Any, thread: Thread, respect_lease: bool) -> list[str]:
    """WATCH the thread's list and lease, then check it is still as it was read."""
    tid = thread.thread_id
    await pipe.watch(keys.thread_key(tid), keys.lease_key(tid))
    if respect_lease and await pipe.exists(keys.lease_key(tid)):
        raise Changed(f"{tid}: a worker took its lease")
    ids = checkpoint_ids(await pipe.lrange(keys.thread_key(tid), 0, -1))
    if not ids or ids[0] != thread.newest:
        raise Changed(f"{tid}: a checkpoint was added or removed meanwhile")
    return ids


async def settle(
    client: avalkey.Valkey,
    thread: Thread,
    now: float,
    *,
    expire_at: float | None,
    marker_until: float | None,
    respect_lease: bool = True,
) -> None:
    """Compact a finished thread to its final checkpoint and write its done marker.

    The final checkpoint's parent is cleared; every older checkpoint and every pending write
    is deleted; what is left expires at ``expire_at`` (deleted now if that is past, kept when
    None); the marker (``storage.markers``) is written to expire at ``marker_until`` (not
    written if that is past). One transaction under WATCH.

    Args:
        client: The Valkey holding the thread.
        thread: The thread as read (``storage.checkpoints.read_thread``), finished.
        now: Unix time the decision was made at.
        expire_at: When the final checkpoint and the list expire (None: never).
        marker_until: When the done marker expires (None: no marker).
        respect_lease: Leave the thread when a worker holds its lease (False: the lease is
            the caller's own).

    Raises:
        Changed: The thread moved on since it was read, or is no longer finished; nothing
            was changed.
    """
    tid = thread.thread_id
    async with client.pipeline(transaction=True) as pipe:
        ids = await _watched_ids(pipe, thread, respect_lease)
        final = keys.checkpoint_key(tid, ids[0])
        raw = await pipe.get(final)
        if raw is None:
            raise Changed(f"{tid}: its final checkpoint is missing")
        info, checkpoint, _ = decode_checkpoint(raw)
        pending = decode_writes(await pipe.get(keys.writes_key(tid, ids[0])))
        if status_of(checkpoint, pending) != "finished":
            raise Changed(f"{tid} is no longer finished")
        values = checkpoint["channel_values"]
        marker = markers.marker_of(tid, values, finished_at(values, checkpoint))
        doomed = [keys.checkpoint_key(tid, cid) for cid in ids[1:]]
        doomed += [keys.writes_key(tid, cid) for cid in ids]
        # valkey 6.2 leaves Pipeline.multi unannotated
        pipe.multi()  # type: ignore[no-untyped-call]
        for chunk in _chunks(doomed):
            pipe.delete(*chunk)
        if expire_at is not None and expire_at <= now:
            pipe.delete(final, keys.thread_key(tid))
        else:
            info["parent_checkpoint_id"] = None  # nothing points at a deleted checkpoint
            pipe.set(final, encode_checkpoint(info), keepttl=True)
            pipe.ltrim(keys.thread_key(tid), 0, 0)
            for name in (final, keys.thread_key(tid)):
                if expire_at is None:
                    pipe.persist(name)
                else:
                    pipe.expireat(name, math.ceil(expire_at))
        if marker_until is not None and marker_until > now:
            pipe.set(keys.marker_key(tid), markers.encode(marker), exat=math.ceil(marker_until))
        try:
            await pipe.execute()
        except WatchError:
            raise Changed(f"{tid} changed while being compacted; left as it was") from None


async def delete(client: avalkey.Valkey, thread: Thread, respect_lease: bool = True) -> None:
    """Delete every checkpoint, pending write and the list of a thread (no marker).

    One transaction under WATCH.

    Args:
        client: The Valkey holding the thread.
        thread: The thread as read (``storage.checkpoints.read_thread``).
        respect_lease: Leave the thread when a worker holds its lease.

    Raises:
        Changed: The thread moved on since it was read; nothing was deleted.
    """
    tid = thread.thread_id
    async with client.pipeline(transaction=True) as pipe:
        ids = await _watched_ids(pipe, thread, respect_lease)
        doomed = [
            name
            for cid in ids
            for name in (keys.checkpoint_key(tid, cid), keys.writes_key(tid, cid))
        ]
        pipe.multi()  # type: ignore[no-untyped-call]  # valkey 6.2: unannotated
        for chunk in _chunks(doomed + [keys.thread_key(tid)]):
            pipe.delete(*chunk)
        try:
            await pipe.execute()
        except WatchError:
            raise Changed(f"{tid} changed while being deleted; left as it was") from None
