"""A per-thread lease in Valkey, so that two workers never run one deliberation at once.

JetStream may redeliver a message that is still being worked on (a stalled worker, a long
pause); the lease (``SET NX PX``, renewed while held, released only by its holder) makes the
second worker hand the message back instead of corrupting the thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

log = structlog.get_logger("council.lease")

_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)


def lease_key(thread_id: str) -> str:
    """The lease's key: in the thread's hash slot (``{thread_id}``), beside its checkpoints."""
    return f"council:lease:{{{thread_id}}}"


class LeaseBusy(RuntimeError):
    """Another worker is deliberating on this thread right now."""


class Lease:
    """Held for the duration of an ``async with``; expires by itself if its holder dies."""

    def __init__(self, client: Any, thread_id: str, owner: str, ttl_s: float):
        self.client, self.key, self.owner = client, lease_key(thread_id), owner
        self.ttl_ms = max(1000, int(ttl_s * 1000))
        self._renewer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Lease:
        if not await self.client.set(self.key, self.owner, nx=True, px=self.ttl_ms):
            raise LeaseBusy(f"{self.key} is held by {await self.client.get(self.key)!r}")
        self._renewer = asyncio.create_task(self._renew())
        return self

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                await self.client.eval(_RENEW, 1, self.key, self.owner, self.ttl_ms)
            except Exception as e:  # noqa: BLE001 - the next renewal may work
                log.warning("lease.renew_failed", key=self.key, error=str(e))

    async def __aexit__(self, *exc: object) -> None:
        if self._renewer:
            self._renewer.cancel()
        try:
            await self.client.eval(_RELEASE, 1, self.key, self.owner)
        except Exception as e:  # noqa: BLE001 - it expires by itself
            log.warning("lease.release_failed", key=self.key, error=str(e))
