"""The saver (storage/saver.py) on a real valkey-server: the server-side merge of pending writes
(no write lost under parallel tasks, the saver's own merge rule, its own stored format), and the
keys it writes are the ones storage/keys.py spells.
"""

from __future__ import annotations

import asyncio
import uuid

from langgraph.checkpoint.base import empty_checkpoint
from langgraph_checkpoint_aws.checkpoint.valkey import AsyncValkeySaver
from valkey.asyncio import BlockingConnectionPool

from council_agents.storage import keys
from council_agents.storage.saver import CouncilValkeySaver, client_url, valkey_saver


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


async def test_the_keys_the_saver_writes_are_the_ones_storage_spells(valkey_url):
    """storage/keys.py is the one place that spells the saver's keys: its functions give the
    saver's own for a real checkpoint, and those are the keys found in Valkey afterwards.
    """
    thread = f"t-{uuid.uuid4()}"
    pool = BlockingConnectionPool.from_url(client_url(valkey_url), max_connections=4)
    try:
        async with (
            valkey_saver(valkey_url) as ours,
            AsyncValkeySaver.from_pool(pool) as theirs,
        ):
            config = await _checkpoint(theirs, thread)
            checkpoint_id = config["configurable"]["checkpoint_id"]
            await theirs.aput_writes(config, [("drafts", "theirs")], "a")
            await ours.aput_writes(config, [("drafts", "ours")], "b")
            for saver in (theirs, ours):
                assert saver._make_thread_key(thread, "") == keys.thread_key(thread)
                assert saver._make_checkpoint_key(thread, "", checkpoint_id) == (
                    keys.checkpoint_key(thread, checkpoint_id)
                )
                assert saver._make_writes_key(thread, "", checkpoint_id) == (
                    keys.writes_key(thread, checkpoint_id)
                )
                assert saver._make_writes_key(thread, "sub", checkpoint_id) == (
                    keys.writes_key(thread, checkpoint_id, "sub")
                )
            stored = sorted(
                [k.decode() async for k in ours.client.scan_iter(match=f"*{{{thread}}}*")]
            )
            listed = [
                keys.thread_of_list(k.decode())
                async for k in ours.client.scan_iter(match=keys.THREADS_PATTERN, count=1000)
            ]
            kept = await ours.aget_tuple(config)
    finally:
        await pool.aclose()
    assert stored == sorted(
        [
            keys.checkpoint_key(thread, checkpoint_id),
            keys.thread_key(thread),
            keys.writes_key(thread, checkpoint_id),
        ]
    )
    assert [keys.kind_of(k) for k in stored] == ["checkpoint", "thread", "writes"]
    assert thread in listed
    assert kept is not None and len(kept.pending_writes) == 2  # one list, both savers' writes
