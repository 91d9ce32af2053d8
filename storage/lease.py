"""Who may work on what: the per-thread lease, and the sweep lock.

JetStream may redeliver a message that is still being worked on (a stalled worker, a long
pause); the lease (``council:lease:{T}``, ``SET NX PX``, renewed while held, released only by
its holder) makes the second worker hand the message back instead of corrupting the thread.
Retention never touches a thread whose lease is held.

The sweep lock (``council:retention:sweep``, ``SET NX PX``, never released: it expires) lets one
process at a time apply the retention policy each interval; the others only count.
"""

from __future__ import annotations

import asyncio

import structlog
import valkey.asyncio as avalkey

from council_agents.storage.keys import SWEEP_LOCK_KEY, lease_key

log = structlog.get_logger("council.lease")

# valkey 6.2 annotates ``eval`` ``Awaitable[str] | str`` on the asyncio client too, which mypy
# will not await: those awaits carry ``type: ignore[misc]``.

_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)


class LeaseBusy(RuntimeError):
    """Another worker is deliberating on this thread right now."""


class Lease:
    """Held for the duration of an ``async with``; expires by itself if its holder dies.

    Args:
        client: The Valkey holding the thread.
        thread_id: The thread (deliberation) id.
        owner: Who holds it (stored as the lease's value).
        ttl_s: How long it lasts unless renewed (renewed every third of it while held).
    """

    def __init__(self, client: avalkey.Valkey, thread_id: str, owner: str, ttl_s: float):
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
                ttl = str(self.ttl_ms)  # sent as its digits either way
                await self.client.eval(_RENEW, 1, self.key, self.owner, ttl)  # type: ignore[misc]
            except Exception as e:  # noqa: BLE001 - the next renewal may work
                log.warning("lease.renew_failed", key=self.key, error=str(e))

    async def __aexit__(self, *exc: object) -> None:
        if self._renewer:
            self._renewer.cancel()
        try:
            await self.client.eval(_RELEASE, 1, self.key, self.owner)  # type: ignore[misc]
        except Exception as e:  # noqa: BLE001 - it expires by itself
            log.warning("lease.release_failed", key=self.key, error=str(e))


async def take_sweep_lock(client: avalkey.Valkey, owner: str, ttl_ms: int) -> bool:
    """Take the sweep lock for ``ttl_ms`` if no process holds it.

    Args:
        client: The Valkey the sweep applies to.
        owner: Who takes it (stored as its value).
        ttl_ms: How long it is held (it is never released).

    Returns:
        True when this call took it.
    """
    return bool(await client.set(SWEEP_LOCK_KEY, owner, nx=True, px=ttl_ms))
