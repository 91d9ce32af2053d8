"""API keys for the served API: created, listed and revoked with ``council keys``.

A key reads ``ck_<id>_<secret>``: ``id`` (12 hex digits) names it in listings and revocations,
``secret`` is 32 random bytes from ``secrets`` (256 bits). Valkey keeps, per key, its owner, its
scopes, a label, when it was made, and the SHA-256 of the whole key, never the key itself; the
key is shown once, when it is created.

Why SHA-256 and not a slow hash (scrypt, argon2): slow hashes make guessing a *low-entropy*
password expensive. A 256-bit random secret cannot be guessed whatever the hash, so a fast hash
loses nothing, and checking a key on every request stays one ``HGET`` and one hash (microseconds).
A copy of Valkey's data gives no usable key; the comparison is constant-time.

Scopes: every key may run deliberations and read its owner's threads; ``council:admin``
(``--admin``) may also create and delete councils and assistants.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import valkey.asyncio as avalkey
from pydantic import BaseModel, Field

from council_agents.cli.render import say
from council_agents.core.limits import NAME_PATTERN
from council_agents.core.request import RequestError
from council_agents.core.settings import Settings
from council_agents.storage.councils import client_url

KEYS_HASH = "council:apikeys"
ADMIN_SCOPE = "council:admin"
PREFIX = "ck"
_TOKEN = re.compile(r"^ck_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


class KeyRecord(BaseModel):
    """What Valkey keeps about one key (its hash, never the key)."""

    key_id: str
    owner: str = Field(pattern=NAME_PATTERN)
    scopes: list[str] = Field(default_factory=list)
    label: str = ""
    created_at: str
    sha256: str = Field(repr=False)

    def public(self) -> dict[str, object]:
        """The record without its hash (what ``council keys list`` shows)."""
        return self.model_dump(exclude={"sha256"})


def digest(token: str) -> str:
    """The SHA-256 of a key, as stored."""
    return hashlib.sha256(token.encode()).hexdigest()


class KeyStore:
    """The API keys in one Valkey hash (``council:apikeys``: key id -> record)."""

    def __init__(self, url: str):
        self.client = avalkey.from_url(client_url(url))

    async def create(self, owner: str, scopes: list[str], label: str = "") -> tuple[str, KeyRecord]:
        """A new key for ``owner`` (returned once, with its record)."""
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
        await self.client.hset(KEYS_HASH, key_id, record.model_dump_json())  # type: ignore[misc]
        return token, record

    async def verify(self, token: str) -> KeyRecord | None:
        """The record of a valid, unrevoked key; None for anything else."""
        match = _TOKEN.match(token)
        if match is None:
            return None
        raw = await self.client.hget(KEYS_HASH, match.group(1))  # type: ignore[misc]
        if raw is None:
            return None
        record = KeyRecord.model_validate_json(raw)
        return record if hmac.compare_digest(record.sha256, digest(token)) else None

    async def list(self) -> list[KeyRecord]:
        """Every key's record, oldest first."""
        raw = await self.client.hgetall(KEYS_HASH)  # type: ignore[misc]
        records = [KeyRecord.model_validate_json(v) for v in raw.values()]
        return sorted(records, key=lambda r: (r.created_at, r.key_id))

    async def revoke(self, key_id: str) -> bool:
        """Forget a key (it stops working at once); False when there was none."""
        return bool(await self.client.hdel(KEYS_HASH, key_id))  # type: ignore[misc]

    async def count(self) -> int:
        """How many keys exist."""
        return int(await self.client.hlen(KEYS_HASH))  # type: ignore[misc]

    async def aclose(self) -> None:
        """Close the connections."""
        await self.client.aclose()


@contextmanager
def key_store_url() -> Iterator[str]:
    """The Valkey that holds the keys: ``VALKEY_URL``, else the one a running ``council serve``
    embeds in the data directory, else an embedded one started for this command."""
    from council_agents.server.services import running_services, services

    current = Settings.from_environment()
    if current.storage.valkey_url:
        yield current.storage.valkey_url
        return
    running = running_services(current.data_dir)
    if running and running.get("valkey_url"):
        yield str(running["valkey_url"])
        return
    with services(current, need_nats=False, announce=lambda _: None) as started:
        assert started.storage.valkey_url is not None
        yield started.storage.valkey_url


async def _create(store: KeyStore, args: argparse.Namespace) -> int:
    scopes = [ADMIN_SCOPE] if args.admin else []
    token, record = await store.create(args.owner, scopes, args.label or "")
    if args.json:
        print(json.dumps({"key": token, **record.public()}))
        return 0
    print(token)
    say(
        f"key {record.key_id} for {record.owner} (scopes: {', '.join(record.scopes) or 'none'}); "
        "it is shown only now: send it as `Authorization: Bearer <key>`"
    )
    return 0


async def _list(store: KeyStore, args: argparse.Namespace) -> int:
    records = await store.list()
    if args.json:
        print(json.dumps([r.public() for r in records]))
        return 0
    for r in records:
        scopes = ",".join(r.scopes) or "-"
        print(f"{r.key_id}  {r.owner:<20} {scopes:<14} {r.created_at}  {r.label}")
    return 0


async def _revoke(store: KeyStore, args: argparse.Namespace) -> int:
    if not await store.revoke(args.key_id):
        say(f"council: error: no key {args.key_id!r}")
        return 2
    say(f"key {args.key_id} revoked")
    return 0


async def _keys(args: argparse.Namespace, url: str) -> int:
    store = KeyStore(url)
    try:
        command = {"create": _create, "list": _list, "revoke": _revoke}[args.keys_cmd]
        return await command(store, args)
    finally:
        await store.aclose()


def cmd_keys(args: argparse.Namespace) -> int:
    """``council keys create|list|revoke``."""
    with key_store_url() as url:
        return asyncio.run(_keys(args, url))


def add_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``council keys``."""
    k = sub.add_parser("keys", help="API keys of the served API (create, list, revoke)")
    ks = k.add_subparsers(dest="keys_cmd", required=True)
    c = ks.add_parser("create", help="a new key, printed once on stdout")
    c.add_argument("--owner", required=True, help=f"who the key acts for ({NAME_PATTERN})")
    c.add_argument("--admin", action="store_true", help=f"grant {ADMIN_SCOPE} (manage councils)")
    c.add_argument("--label", help="a note shown in `council keys list`")
    c.add_argument("--json", action="store_true")
    ls = ks.add_parser("list", help="every key (id, owner, scopes; never the key)")
    ls.add_argument("--json", action="store_true")
    r = ks.add_parser("revoke", help="revoke a key by id (it stops working at once)")
    r.add_argument("key_id")
    k.set_defaults(func=cmd_keys)
