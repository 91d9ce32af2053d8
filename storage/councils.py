"""Valkey: the checkpointer (``AsyncValkeySaver``) and the stored councils.

Everything here takes a URL (credentials in it are honoured: ``valkey://user:pass@host:port``);
starting an embedded valkey-server belongs to ``server.services``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import valkey.asyncio as avalkey
from langgraph_checkpoint_aws.checkpoint.valkey import AsyncValkeySaver
from valkey.asyncio import BlockingConnectionPool

from council_agents.core.request import CouncilSpec, default_council
from council_agents.core.terms import ROLES
from council_agents.storage.saver import CouncilValkeySaver

COUNCILS_KEY = "council:councils"


def client_url(url: str) -> str:
    """valkey-py speaks ``redis://``; accept ``valkey://`` too."""
    return url.replace("valkey://", "redis://", 1).replace("valkeys://", "rediss://", 1)


@contextlib.asynccontextmanager
async def valkey_saver(url: str, pool_size: int = 32) -> AsyncIterator[AsyncValkeySaver]:
    """A saver on a *blocking* pool: when every connection is busy (many parallel ``Send``
    tasks writing at once) a write waits for one instead of failing "Too many connections"."""
    pool = BlockingConnectionPool.from_url(client_url(url), max_connections=pool_size, timeout=30)
    try:
        async with CouncilValkeySaver.from_pool(pool) as saver:
            yield saver
    finally:
        await pool.aclose()


class CouncilStore:
    """Named councils in one Valkey hash; the five built-in ones are stored on first use."""

    def __init__(self, url: str):
        self.client = avalkey.from_url(client_url(url))
        self._seeded = False

    async def _seed(self) -> None:
        if self._seeded:
            return
        defaults = {c.name: c.model_dump_json() for c in map(default_council, ROLES)}
        if not await self.client.exists(COUNCILS_KEY):
            await self.client.hset(COUNCILS_KEY, mapping=defaults)  # type: ignore[misc]
        self._seeded = True

    async def list(self) -> list[CouncilSpec]:
        """Every stored council, by name."""
        await self._seed()
        raw = await self.client.hgetall(COUNCILS_KEY)  # type: ignore[misc]
        return sorted(
            (CouncilSpec.model_validate_json(v) for v in raw.values()), key=lambda c: c.name
        )

    async def get(self, name: str) -> CouncilSpec | None:
        """The council called ``name``, if stored."""
        await self._seed()
        raw = await self.client.hget(COUNCILS_KEY, name)  # type: ignore[misc]
        return CouncilSpec.model_validate_json(raw) if raw else None

    async def create(self, council: CouncilSpec) -> bool:
        """Store ``council``; False when one of that name exists already."""
        await self._seed()
        stored = await self.client.hsetnx(
            COUNCILS_KEY,
            council.name,  # type: ignore[misc]
            council.model_dump_json(),
        )
        return bool(stored)

    async def delete(self, name: str) -> bool:
        """Remove the council called ``name``; False when there was none."""
        await self._seed()
        return bool(await self.client.hdel(COUNCILS_KEY, name))  # type: ignore[misc]

    async def ping(self) -> bool:
        """True when Valkey answers."""
        return bool(await self.client.ping())  # type: ignore[misc]

    async def aclose(self) -> None:
        """Close the connections."""
        await self.client.aclose()
