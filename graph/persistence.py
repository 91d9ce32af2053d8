"""Checkpoints in Valkey through ``AsyncValkeySaver`` (langgraph-checkpoint-aws).

``VALKEY_URL`` when set; otherwise one embedded valkey-server per process (``server.services``),
with its append-only file under ``COUNCIL_DATA_DIR``, stopped when the process exits.
``checkpointer()`` is what ``langgraph.json`` points the LangGraph server at: an async context
manager yielding the saver (the served graph is compiled without one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from langgraph_checkpoint_aws.checkpoint.valkey import AsyncValkeySaver


def valkey_url() -> str:
    """``VALKEY_URL``, or the URL of this process's embedded valkey-server (started once)."""
    url = os.environ.get("VALKEY_URL")
    if url:
        return url
    from server.services import embedded_valkey_url

    return embedded_valkey_url()


@contextlib.asynccontextmanager
async def valkey_saver(url: str) -> AsyncIterator[AsyncValkeySaver]:
    """A saver on a *blocking* pool: when every connection is busy (many parallel ``Send`` tasks
    writing at once) a write waits for a free connection instead of failing with
    "Too many connections", which the default pool of ``from_conn_string`` does."""
    from valkey.asyncio import BlockingConnectionPool

    size = int(os.environ.get("COUNCIL_VALKEY_POOL", 32))
    pool = BlockingConnectionPool.from_url(url.replace("valkey://", "redis://", 1), max_connections=size,
                                           timeout=30)
    try:
        async with AsyncValkeySaver.from_pool(pool) as saver:
            yield saver
    finally:
        await pool.aclose()


@contextlib.asynccontextmanager
async def checkpointer() -> AsyncIterator[AsyncValkeySaver]:
    """The saver the LangGraph server uses (see ``langgraph.json``)."""
    url = await asyncio.to_thread(valkey_url)  # may start a server: not on the event loop
    async with valkey_saver(url) as saver:
        yield saver
