"""Checkpoints in Valkey through ``AsyncValkeySaver`` (langgraph-checkpoint-aws).

``VALKEY_URL`` when set; otherwise an embedded valkey-server (``server.services``) with its
append-only file under ``COUNCIL_DATA_DIR``. ``checkpointer()`` is also what ``langgraph.json``
points the LangGraph server at.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from langgraph_checkpoint_aws.checkpoint.valkey import AsyncValkeySaver


@contextlib.asynccontextmanager
async def valkey_saver(url: str) -> AsyncIterator[AsyncValkeySaver]:
    async with AsyncValkeySaver.from_conn_string(url) as saver:
        yield saver


@contextlib.asynccontextmanager
async def checkpointer() -> AsyncIterator[AsyncValkeySaver]:
    """Saver on ``VALKEY_URL``, or on an embedded valkey-server started for as long as it is used."""
    url = os.environ.get("VALKEY_URL")
    if url:
        async with valkey_saver(url) as saver:
            yield saver
        return
    from server.services import EmbeddedValkey, data_dir

    with EmbeddedValkey(data_dir() / "valkey") as v:
        async with valkey_saver(v.url) as saver:
            yield saver
