"""The checkpointer (langgraph-checkpoint-aws's saver as council runs it), and reaching Valkey.

- ``client_url`` and ``connect``: a Valkey URL (``valkey://``, ``valkeys://``, or the
  ``redis://`` schemes; credentials in it are honoured: ``valkey://user:pass@host:port``) as
  valkey-py takes it, and a client on it. Starting an embedded valkey-server belongs to
  ``server.services``.
- ``valkey_saver(url)``: the saver on a blocking connection pool (the served process's comes
  from ``server.served.checkpointer``); ``saver_client``: the Valkey client under a saver.
- ``CouncilValkeySaver``: pending writes in one round trip, never retried (below).

The keys the saver writes are spelled in ``storage.keys``; their values are read in
``storage.checkpoints``.

langgraph-checkpoint-aws keeps a checkpoint's pending writes in one JSON list per checkpoint
and adds to it with an optimistic lock: WATCH, GET the list, merge in Python, MULTI/SET/EXEC,
and start again when another task wrote in between. Every parallel ``Send`` task of a stage
writes to the same list as it finishes, so under load most of a deliberation's Valkey CPU went
into those three round trips per write, re-reading and re-encoding a list that grows with every
task, and into their retries.

``CouncilValkeySaver`` does the same merge inside Valkey, in one Lua script (``EVALSHA``):
atomic, one round trip, no retry, and the client sends only the new writes. The stored format
and the merge rule are the saver's own (``BaseValkeySaver._merge_writes``: a task's write at
``idx >= 0`` is kept once, a special write at ``idx < 0`` replaces its earlier value), so
checkpoints written by either saver read back the same way, and everything else (checkpoints,
reads, listing, TTL, deletion) is inherited unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import valkey.asyncio as avalkey
import valkey.exceptions
from langchain_core.runnables import RunnableConfig
from langgraph._internal._constants import CONFIG_KEY_CHECKPOINTER
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_config
from langgraph_checkpoint_aws.checkpoint.valkey import AsyncValkeySaver
from valkey.asyncio import BlockingConnectionPool

from council_agents.core.errors import StorageUnavailable
from council_agents.storage import keys


def client_url(url: str) -> str:
    """A Valkey URL as valkey-py takes it.

    Args:
        url: ``valkey://``, ``valkeys://`` (TLS), ``redis://`` or ``rediss://``.

    Returns:
        The same URL with valkey-py's scheme (``redis://``, ``rediss://``).
    """
    return url.replace("valkey://", "redis://", 1).replace("valkeys://", "rediss://", 1)


def connect(url: str) -> avalkey.Valkey:
    """An asyncio client on a Valkey URL (connections are opened on first use).

    Args:
        url: A Valkey URL (``client_url``).

    Returns:
        The client; close it with ``aclose()``.
    """
    client: avalkey.Valkey = avalkey.Valkey.from_url(client_url(url))  # unannotated return
    return client


MERGE_WRITES = """
local merged = {}
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, parsed = pcall(cjson.decode, raw)
  if ok and type(parsed) == 'table' then merged = parsed end
end
local at = {}
for i, w in ipairs(merged) do at[w.task_id .. '\\0' .. tostring(w.idx)] = i end
for _, w in ipairs(cjson.decode(ARGV[1])) do
  local key = w.task_id .. '\\0' .. tostring(w.idx)
  local i = at[key]
  if i == nil then
    merged[#merged + 1] = w
    at[key] = #merged
  elseif w.idx < 0 then
    merged[i] = w
  end
end
redis.call('SET', KEYS[1], cjson.encode(merged))
if ARGV[2] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return #merged
"""
"""Merge ``ARGV[1]`` (new writes, a JSON list) into the list at ``KEYS[1]``; ``ARGV[2]``: TTL
in seconds or empty. Mirrors ``BaseValkeySaver._merge_writes``."""


# langgraph-checkpoint-aws ships no type information (no py.typed): its classes are Any to mypy
class CouncilValkeySaver(AsyncValkeySaver):  # type: ignore[misc]
    """``AsyncValkeySaver`` with ``aput_writes`` as one server-side merge (see the module).

    Args:
        client: An asyncio Valkey client.
        **kwargs: ``AsyncValkeySaver``'s (``ttl``, ``serde``).
    """

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self._merge = client.register_script(MERGE_WRITES)

    async def aget_tuple(self, config: RunnableConfig) -> Any:
        """The thread's checkpoint (None: it has none), never None because Valkey failed.

        The library logs a failed read and answers None, as if the thread were new: a run would
        start the deliberation again, a resume would find nothing. Here a None is confirmed by a
        PING, so an unreachable Valkey raises instead.

        Args:
            config: The thread (and, optionally, the checkpoint).

        Returns:
            The ``CheckpointTuple``, or None when there is none.
        """
        found = await super().aget_tuple(config)
        if found is None:
            await self.client.ping()
        return found

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Add a task's writes to its checkpoint's pending writes, in one round trip.

        Args:
            config: The checkpoint's config (``thread_id``, ``checkpoint_ns``,
                ``checkpoint_id``).
            writes: The task's ``(channel, value)`` writes.
            task_id: The task.
            task_path: Unused (as in ``AsyncValkeySaver``).
        """
        if not writes:
            return
        configurable = config.get("configurable", {})
        key = keys.writes_key(
            str(configurable["thread_id"]),
            str(configurable["checkpoint_id"]),
            str(configurable.get("checkpoint_ns", "")),
        )
        new = orjson.dumps(self._serialize_writes_data(writes, task_id))
        ttl = str(int(self.ttl)) if self.ttl else ""
        await self._merge(keys=[key], args=[new, ttl])


@contextlib.asynccontextmanager
async def valkey_saver(url: str, pool_size: int = 32) -> AsyncIterator[CouncilValkeySaver]:
    """A saver on a *blocking* connection pool.

    When every connection is busy (many parallel ``Send`` tasks writing at once) a write waits
    for one instead of failing "Too many connections".

    Args:
        url: A Valkey URL (``client_url``).
        pool_size: The most connections open at once.

    Yields:
        The saver; its pool is closed after the block.
    """
    pool = BlockingConnectionPool.from_url(client_url(url), max_connections=pool_size, timeout=30)
    try:
        async with CouncilValkeySaver.from_pool(pool) as saver:
            yield saver
    finally:
        await pool.aclose()


def saver_client(saver: BaseCheckpointSaver[Any]) -> avalkey.Valkey | None:
    """The Valkey client under a Valkey saver.

    Args:
        saver: Any checkpointer.

    Returns:
        Its client, or None for a saver that does not keep its checkpoints in Valkey.
    """
    if not isinstance(saver, AsyncValkeySaver):
        return None
    client: avalkey.Valkey = saver.client
    return client


def shown(client: avalkey.Valkey) -> str:
    """Where a client connects, fit to print: ``valkey://:***@host:port`` (never a password).

    Args:
        client: A Valkey client.

    Returns:
        Its server's URL, password hidden.
    """
    kw = client.connection_pool.connection_kwargs
    if "path" in kw:
        return f"unix://{kw['path']}"
    secret = f"{kw.get('username') or ''}:***@" if kw.get("password") else ""
    return f"valkey://{secret}{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"


PING_TIMEOUT_S = 5.0
"""How long the check before a call waits for Valkey's answer."""


async def ensure_checkpointable(stage: str, agent_id: str, before: str) -> None:
    """Inside a graph run on a Valkey checkpointer: raise ``StorageUnavailable`` unless Valkey
    answers now. Called before every LLM call (``llm.client.LLM``'s guard, wired by
    ``graph.builder``) and before the completed event is published, so a run whose checkpoints
    cannot be written stops at once: no call whose answer nothing could save, no event for a
    state that was not saved. Outside a graph run, or on another checkpointer, nothing to check.

    Args:
        stage: The stage about to act (named by the error).
        agent_id: The agent about to call (``-``: none).
        before: What would come next (named by the error): ``its LLM call``, ``the event``.
    """
    try:
        config = get_config()
    except RuntimeError:  # not in a graph run (an eval's single answers): nothing to save to
        return
    saver = (config.get("configurable") or {}).get(CONFIG_KEY_CHECKPOINTER)
    client = saver_client(saver) if isinstance(saver, BaseCheckpointSaver) else None
    if client is None:
        return
    try:
        await asyncio.wait_for(client.ping(), timeout=PING_TIMEOUT_S)
    except (valkey.exceptions.ValkeyError, OSError, TimeoutError) as e:
        cause = f"{type(e).__name__}: {e}".rstrip(": ")
        raise StorageUnavailable(stage, agent_id, shown(client), cause, before) from e
