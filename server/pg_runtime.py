"""The HTTP API on PostgreSQL: langgraph-api with langgraph-runtime-pg (docs/DEPLOY.md).

``council serve --production`` with ``COUNCIL_HTTP_RUNTIME=postgres`` runs uvicorn on this
module's ``app`` instead of ``langgraph_api.server:app``. Threads, runs and assistants are rows
in PostgreSQL (a run is committed before its id is returned); several API replicas share one
database and claim runs with ``SELECT ... FOR UPDATE SKIP LOCKED``; a replica that dies stops
refreshing its runs' heartbeats in Valkey and another one re-queues them. Deliberations stay in
council's Valkey checkpointer (``LANGGRAPH_CHECKPOINTER``), as on the in-memory runtime.

langgraph-runtime-pg 0.11.1.post1 (MIT, github.com/langhost/langhost) needs two corrections to
serve council; both are applied here, before ``langgraph_api.server`` is imported, and nothing
else is changed:

1. With a custom HTTP app (``LANGGRAPH_HTTP``, council's routes) langgraph-api adds its
   ``EnsureStoreAccessible`` middleware to the whole app, so the ASGI *lifespan* message passes
   through it and asks the runtime for its store before the lifespan has opened the database:
   startup fails (uvicorn's default ``--lifespan auto`` even hides it and serves 500s). Reported
   upstream as langhost/langhost#17. Here the middleware lets non-HTTP scopes through.
2. A run's keyword arguments carry the authenticated user (``langgraph_auth_user``, a
   ``ProxyUser`` when authentication is custom, as council's is); the runtime's SQLAlchemy
   engine serializes its JSONB columns with the standard ``json`` module, which refuses it, so
   every run creation answers 500. Here the engine serializes with langgraph-api's own encoder
   (``langgraph_api.serde.json_dumpb``), which writes the user as its fields; the worker rebuilds
   the user from them (``langgraph_api.worker.set_auth_ctx_for_run``).
3. Every replica creates or migrates the schema at start (Alembic, the checkpointer's and the
   store's tables) without a lock: two replicas starting together on an empty database collide
   (``UniqueViolation`` on ``store_migrations_pkey``, seen here) and one exits. Here the start
   holds a PostgreSQL advisory lock, so replicas set the schema up one after the other.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import psycopg
from langgraph_api.middleware import ensure_store
from langgraph_api.serde import json_dumpb
from langgraph_runtime_pg import database, lifespan
from starlette.types import Receive, Scope, Send

SCHEMA_LOCK = 0x636F756E63696C  # pg_advisory_lock key: "council" in ASCII

_ensure_store_call = ensure_store.EnsureStoreAccessible.__call__


async def _http_only(
    self: ensure_store.EnsureStoreAccessible, scope: Scope, receive: Receive, send: Send
) -> None:
    if scope["type"] not in ("http", "websocket"):
        await self.app(scope, receive, send)
        return
    await _ensure_store_call(self, scope, receive, send)


def _json(value: Any) -> str:
    text: str = json_dumpb(value).decode()
    return text


_start_pool = lifespan.start_pool


async def _start_pool_locked() -> None:
    conn = await psycopg.AsyncConnection.connect(database.to_psycopg_uri(), autocommit=True)
    try:
        # polled, not waited for: a statement waiting on the lock holds a snapshot, and the
        # holder's CREATE INDEX CONCURRENTLY would wait for that snapshot (a deadlock, seen here)
        while True:
            cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (SCHEMA_LOCK,))
            if await cursor.fetchone() == (True,):
                break
            await asyncio.sleep(0.5)
        await _start_pool()
    finally:
        await conn.close()  # the session ends: the lock is released


ensure_store.EnsureStoreAccessible.__call__ = _http_only
database.create_async_engine = functools.partial(
    database.create_async_engine, json_serializer=_json
)
lifespan.start_pool = _start_pool_locked

from langgraph_api.server import app  # noqa: E402

__all__ = ["app"]
