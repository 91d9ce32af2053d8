"""``AsyncValkeySaver`` whose pending writes cost one round trip and never retry.

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

from collections.abc import Sequence
from typing import Any

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph_checkpoint_aws.checkpoint.valkey import AsyncValkeySaver

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


class CouncilValkeySaver(AsyncValkeySaver):
    """``AsyncValkeySaver`` with ``aput_writes`` as one server-side merge (see the module)."""

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self._merge = client.register_script(MERGE_WRITES)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Add a task's writes to its checkpoint's pending writes, in one round trip."""
        if not writes:
            return
        configurable = config.get("configurable", {})
        key = self._make_writes_key(
            str(configurable["thread_id"]),
            str(configurable.get("checkpoint_ns", "")),
            str(configurable["checkpoint_id"]),
        )
        new = orjson.dumps(self._serialize_writes_data(writes, task_id))
        ttl = str(int(self.ttl)) if self.ttl else ""
        await self._merge(keys=[key], args=[new, ttl])
