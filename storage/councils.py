"""Stored councils, by name.

One Valkey hash (``storage.keys.COUNCILS_KEY``: council name -> ``CouncilSpec`` JSON); the
five built-in ones (one per role) are stored on first use.
"""

from __future__ import annotations

from council_agents.core.request import CouncilSpec, default_council
from council_agents.core.terms import ROLES
from council_agents.storage.keys import COUNCILS_KEY
from council_agents.storage.saver import connect

# valkey 6.2 annotates hash commands ``Awaitable[T] | T`` on the asyncio client too, which
# mypy will not await: those awaits carry ``type: ignore[misc]``.


class CouncilStore:
    """Named councils in one Valkey hash; the five built-in ones are stored on first use.

    Args:
        url: A Valkey URL (``storage.saver.client_url``).
    """

    def __init__(self, url: str):
        self.client = connect(url)
        self._seeded = False

    async def _seed(self) -> None:
        if self._seeded:
            return
        defaults = {c.name: c.model_dump_json() for c in map(default_council, ROLES)}
        if not await self.client.exists(COUNCILS_KEY):
            await self.client.hset(COUNCILS_KEY, mapping=defaults)  # type: ignore[misc]
        self._seeded = True

    async def list(self) -> list[CouncilSpec]:
        """Every stored council.

        Returns:
            The councils, by name.
        """
        await self._seed()
        raw = await self.client.hgetall(COUNCILS_KEY)  # type: ignore[misc]
        return sorted(
            (CouncilSpec.model_validate_json(v) for v in raw.values()), key=lambda c: c.name
        )

    async def get(self, name: str) -> CouncilSpec | None:
        """The council called ``name``.

        Args:
            name: A council name.

        Returns:
            The council, or None when none of that name is stored.
        """
        await self._seed()
        raw = await self.client.hget(COUNCILS_KEY, name)  # type: ignore[misc]
        return CouncilSpec.model_validate_json(raw) if raw else None

    async def create(self, council: CouncilSpec) -> bool:
        """Store ``council``.

        Args:
            council: The council to store.

        Returns:
            False when one of that name exists already (nothing is changed).
        """
        await self._seed()
        value = council.model_dump_json()
        stored = await self.client.hsetnx(COUNCILS_KEY, council.name, value)  # type: ignore[misc]
        return bool(stored)

    async def delete(self, name: str) -> bool:
        """Remove the council called ``name``.

        Args:
            name: A council name.

        Returns:
            False when there was none.
        """
        await self._seed()
        return bool(await self.client.hdel(COUNCILS_KEY, name))  # type: ignore[misc]

    async def ping(self) -> bool:
        """Whether Valkey answers.

        Returns:
            True when it does.
        """
        return bool(await self.client.ping())

    async def aclose(self) -> None:
        """Close the connections."""
        await self.client.aclose()


async def stored_council(url: str | None, name: str | None) -> CouncilSpec | None:
    """The stored council ``name``.

    Args:
        url: The Valkey holding the councils.
        name: A council name (None: no council asked for).

    Returns:
        The council, or None when no name is given or none of that name is stored.

    Raises:
        RuntimeError: A name is given but no URL.
    """
    if name is None:
        return None
    if not url:
        raise RuntimeError(f"council {name!r} cannot be looked up: VALKEY_URL is not set")
    store = CouncilStore(url)
    try:
        return await store.get(name)
    finally:
        await store.aclose()
