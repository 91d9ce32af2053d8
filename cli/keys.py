"""``council keys create|list|revoke``: the API keys of the served API (``storage.apikeys``).

    council keys create --owner NAME [--admin] [--label TEXT] [--json]
    council keys list [--json]
    council keys revoke KEY_ID

The keys are in ``VALKEY_URL``, else in the Valkey a running ``council serve`` embeds in the
data directory, else in an embedded one started for this command. A new key is printed once,
on stdout; Valkey keeps only its SHA-256.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager

from council_agents.cli.render import say
from council_agents.core.limits import NAME_PATTERN
from council_agents.core.settings import Settings
from council_agents.server.services import running_services, services
from council_agents.storage.apikeys import ADMIN_SCOPE, KeyStore


@contextmanager
def key_store_url() -> Iterator[str]:
    """The Valkey that holds the keys.

    Yields:
        ``VALKEY_URL``, else the URL of the one a running ``council serve`` embeds in the data
        directory, else that of an embedded one started for the block.
    """
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
    """``council keys create|list|revoke``.

    Args:
        args: The parsed command line.

    Returns:
        The exit code.
    """
    with key_store_url() as url:
        return asyncio.run(_keys(args, url))


def add_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``council keys``.

    Args:
        sub: The ``council`` command's subcommands.
    """
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
