"""The server-side merge of pending writes (graph/valkey_checkpointer.py) on a real valkey-server:
no write lost under parallel tasks, the saver's own merge rule, its own stored format."""

from __future__ import annotations

import asyncio
import uuid

from langgraph.checkpoint.base import empty_checkpoint
from langgraph_checkpoint_aws.checkpoint.valkey import AsyncValkeySaver
from valkey.asyncio import BlockingConnectionPool

from council_agents.storage.councils import client_url, valkey_saver
from council_agents.storage.saver import CouncilValkeySaver


async def _checkpoint(saver: AsyncValkeySaver, thread: str) -> dict:
    """A stored checkpoint on a new thread; its config is what writes attach to."""
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    return await saver.aput(config, empty_checkpoint(), {"step": 0}, {})


def _pending(tuple_) -> list[tuple[str, str, object]]:
    return sorted(tuple_.pending_writes, key=lambda w: (w[0], w[1], repr(w[2])))


async def test_parallel_tasks_lose_no_write(valkey_url):
    async with valkey_saver(valkey_url) as saver:
        assert isinstance(saver, CouncilValkeySaver)
        config = await _checkpoint(saver, f"t-{uuid.uuid4()}")
        tasks = [f"task-{i}" for i in range(40)]
        await asyncio.gather(
            *(
                saver.aput_writes(config, [("drafts", [{"n": i}]), ("calls", [i])], task)
                for i, task in enumerate(tasks)
            )
        )
        stored = await saver.aget_tuple(config)
    assert stored is not None
    assert len(stored.pending_writes) == 80
    assert {(t, c) for t, c, _ in stored.pending_writes} == {
        (task, channel) for task in tasks for channel in ("drafts", "calls")
    }
    assert ("task-7", "drafts", [{"n": 7}]) in stored.pending_writes


async def test_the_merge_rule_is_the_savers_own(valkey_url):
    """A replayed task's writes are kept once; a special write (error, interrupt) replaces."""
    pool = BlockingConnectionPool.from_url(client_url(valkey_url), max_connections=4)
    try:
        async with (
            valkey_saver(valkey_url) as ours,
            AsyncValkeySaver.from_pool(pool) as theirs,
        ):
            results = []
            for saver in (theirs, ours):
                config = await _checkpoint(saver, f"t-{uuid.uuid4()}")
                await saver.aput_writes(config, [("drafts", "first")], "a")
                await saver.aput_writes(config, [("drafts", "replayed")], "a")
                await saver.aput_writes(config, [("__error__", "boom")], "b")
                await saver.aput_writes(config, [("__error__", "boom again")], "b")
                await saver.aput_writes(config, [("calls", 1), ("calls", 2)], "c")
                await saver.aput_writes(config, [], "d")
                stored = await saver.aget_tuple(config)
                assert stored is not None
                results.append(_pending(stored))
    finally:
        await pool.aclose()
    assert results[0] == results[1]
    assert ("a", "drafts", "first") in results[1]
    assert ("b", "__error__", "boom again") in results[1]
    assert len(results[1]) == 4


async def test_either_saver_reads_what_the_other_wrote(valkey_url):
    pool = BlockingConnectionPool.from_url(client_url(valkey_url), max_connections=4)
    try:
        async with (
            valkey_saver(valkey_url) as ours,
            AsyncValkeySaver.from_pool(pool) as theirs,
        ):
            config = await _checkpoint(theirs, f"t-{uuid.uuid4()}")
            await theirs.aput_writes(config, [("drafts", {"text": "ünïcode / ok"})], "a")
            await ours.aput_writes(config, [("drafts", {"text": "b's"})], "b")
            await theirs.aput_writes(config, [("drafts", None)], "c")
            from_ours = await ours.aget_tuple(config)
            from_theirs = await theirs.aget_tuple(config)
    finally:
        await pool.aclose()
    assert from_ours is not None and from_theirs is not None
    assert _pending(from_ours) == _pending(from_theirs)
    assert ("a", "drafts", {"text": "ünïcode / ok"}) in from_ours.pending_writes
    assert ("c", "drafts", None) in from_ours.pending_writes
