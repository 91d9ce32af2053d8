"""API keys of the served API.

They are kept in one Valkey hash (``storage.keys.APIKEYS_KEY``: key id -> record); ``council
keys`` (``cli.keys``) creates, lists and revokes them, ``server.auth`` verifies them.

A key reads ``ck_<id>_<secret>``: ``id`` (12 hex digits) names it in listings and revocations,
``secret`` is 32 random bytes from ``secrets`` (256 bits). Valkey keeps, per key, its owner, its
scopes, a label, when it was made, and the SHA-256 of the whole key, never the key itself; the
key is shown once, when it is created.

Why SHA-256 and not a slow hash (scrypt, argon2): slow hashes make guessing a *low-entropy*
password expensive. A 256-bit random secret cannot be guessed whatever the hash, so a fast hash
loses nothing, and checking a key on every request stays one ``HGET`` and one hash (microseconds).
A copy of Valkey's data gives no usable key; the comparison is constant-time.

Scopes: every key may run deliberations and read its owner's threads; ``council:admin``
(``ADMIN_SCOPE``, ``council keys create --admin``) may also create and delete councils and
assistants.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from council_agents.core.limits import NAME_PATTERN
from council_agents.core.request import RequestError
from council_agents.storage.keys import APIKEYS_KEY
from council_agents.storage.saver import connect

ADMIN_SCOPE = "council:admin"
"""The scope that may manage councils and assistants."""
PREFIX = "ck"
_TOKEN = re.compile(r"^ck_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")

# valkey 6.2 annotates hash commands ``Awaitable[T] | T`` on the asyncio client too, which
# mypy will not await: those awaits carry ``type: ignore[misc]``.


class KeyRecord(BaseModel):
    """What Valkey keeps about one key (its hash, never the key)."""

    key_id: str
    owner: str = Field(pattern=NAME_PATTERN)
    scopes: list[str] = Field(default_factory=list)
    label: str = ""
    created_at: str
    sha256: str = Field(repr=False)

    def public(self) -> dict[str, object]:
        """The record without its hash (what ``council keys list`` shows).

        Returns:
            Its fields but ``sha256``.
        """
        return self.model_dump(exclude={"sha256"})


def digest(token: str) -> str:
    """The SHA-256 of a key, as stored.

    Args:
        token: A whole key (``ck_<id>_<secret>``).

    Returns:
        Its SHA-256, in hex.
    """
    return hashlib.sha256(token.encode()).hexdigest()


class KeyStore:
    """The API keys in one Valkey hash (``council:apikeys``: key id -> record).

    Args:
        url: A Valkey URL (``storage.saver.client_url``).
    """

    def __init__(self, url: str):
        self.client = connect(url)

    async def create(self, owner: str, scopes: list[str], label: str = "") -> tuple[str, KeyRecord]:
        """A new key.

        Args:
            owner: Who the key acts for (``NAME_PATTERN``).
            scopes: Its scopes (``ADMIN_SCOPE`` or none).
            label: A note shown in listings.

        Returns:
            The key (returned only now) and its record.

        Raises:
            RequestError: ``owner`` is not a valid name.
        """
        if not re.match(NAME_PATTERN, owner):
            raise RequestError("--owner", f"{owner!r} does not match {NAME_PATTERN}")
        key_id = secrets.token_hex(6)
        token = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        record = KeyRecord(
            key_id=key_id,
            owner=owner,
            scopes=sorted(set(scopes)),
            label=label,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            sha256=digest(token),
        )
        await self.client.hset(APIKEYS_KEY, key_id, record.model_dump_json())  # type: ignore[misc]
        return token, record

    async def verify(self, token: str) -> KeyRecord | None:
        """The record of a valid, unrevoked key.

        Args:
            token: What a caller sent.

        Returns:
            Its record, or None for anything else.
        """
        match = _TOKEN.match(token)
        if match is None:
            return None
        raw = await self.client.hget(APIKEYS_KEY, match.group(1))  # type: ignore[misc]
        if raw is None:
            return None
        record = KeyRecord.model_validate_json(raw)
        return record if hmac.compare_digest(record.sha256, digest(token)) else None

    async def list(self) -> list[KeyRecord]:
        """Every key's record.

        Returns:
            The records, oldest first.
        """
        raw = await self.client.hgetall(APIKEYS_KEY)  # type: ignore[misc]
        records = [KeyRecord.model_validate_json(v) for v in raw.values()]
        return sorted(records, key=lambda r: (r.created_at, r.key_id))

    async def revoke(self, key_id: str) -> bool:
        """Forget a key (it stops working at once).

        Args:
            key_id: The key's id.

        Returns:
            False when there was none.
        """
        return bool(await self.client.hdel(APIKEYS_KEY, key_id))  # type: ignore[misc]

    async def count(self) -> int:
        """How many keys exist.

        Returns:
            The number of keys.
        """
        return int(await self.client.hlen(APIKEYS_KEY))  # type: ignore[misc]

    async def aclose(self) -> None:
        """Close the connections."""
        await self.client.aclose()
