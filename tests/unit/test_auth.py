"""The fast tier of who may call and how council proves itself: scopes from a JWT's claims,
malformed API keys refused without a look-up, what counts as loopback, and the NATS credentials
file on every connection (the real-server tier is tests/integration/test_auth.py).
"""

from __future__ import annotations

from typing import Any

import nats

from council_agents.cli.commands import is_loopback
from council_agents.events import publisher as nats_publisher
from council_agents.server.auth import scopes_of
from council_agents.storage.apikeys import KeyStore


async def test_every_nats_connection_carries_the_credentials_file(monkeypatch, tmp_path):
    seen: dict[str, Any] = {}

    async def fake_connect(url: str, **options: Any) -> str:
        seen.update(options, url=url)
        return "connection"

    monkeypatch.setattr(nats, "connect", fake_connect)
    creds = tmp_path / "council.creds"
    assert await nats_publisher.connect("nats://h:4222", creds, name="x") == "connection"
    assert seen == {"url": "nats://h:4222", "name": "x", "user_credentials": str(creds)}


def test_scopes_come_from_the_usual_claims():
    assert scopes_of({"scope": "council:admin read"}) == ["council:admin", "read"]
    assert scopes_of({"scp": ["a"], "permissions": ["b"], "scopes": "c"}) == ["a", "b", "c"]
    assert scopes_of({"sub": "x"}) == []


async def test_malformed_keys_are_refused_without_a_lookup():
    store = KeyStore("valkey://127.0.0.1:9")  # nothing listens: a lookup would raise
    for token in ("", "ck_", "ck_xyz_abc", "ck_0123456789ab_" + "A" * 42, "Bearer ck_x"):
        assert await store.verify(token) is None


def test_only_loopback_counts_as_local():
    assert all(map(is_loopback, ("127.0.0.1", "::1", "localhost", "127.0.0.2")))
    assert not any(map(is_loopback, ("0.0.0.0", "::", "192.168.1.4", "example.org")))
