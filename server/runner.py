"""Running one deliberation to its end (or its interrupt) on a checkpointer: CLI, worker, tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from graph.builder import compile_graph
from graph.context import Context
from nodes.llm import LLMUnreachable


async def preflight(ctx: Context, explicit_model: bool) -> Context:
    """Check the LLM answers at ``ctx.base_url``; adopt its model unless one was asked for."""
    url = ctx.base_url.rstrip("/") + "/models"
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.get(url, headers={"Authorization": f"Bearer {ctx.api_key()}"})
            r.raise_for_status()
            served = [m["id"] for m in r.json().get("data", [])]
    except (httpx.HTTPError, ValueError, KeyError) as e:
        raise LLMUnreachable("preflight", "-", f"cannot reach the LLM at {ctx.base_url} ({url}): {e}") from e
    if ctx.model not in served and served:
        if explicit_model:
            raise LLMUnreachable("preflight", "-", f"model {ctx.model!r} is not served at {ctx.base_url}; "
                                                   f"served: {', '.join(served)}")
        ctx.model = served[0]
    return ctx


_graphs: dict[int, Any] = {}


def graph_for(checkpointer: Any):
    """The compiled graph for a checkpointer (compiled once, not per deliberation)."""
    key = id(checkpointer)
    if key not in _graphs or _graphs[key][0] is not checkpointer:
        _graphs[key] = (checkpointer, compile_graph(checkpointer))
    return _graphs[key][1]


def thread_config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


async def run(checkpointer: Any, thread_id: str, inp: dict[str, Any] | None, ctx: Context,
              on_update: Callable[[str, Any], None] | None = None) -> dict[str, Any]:
    """Start, resume or re-read the deliberation on ``thread_id``; return its state values.

    A thread that already finished is returned as it is (no LLM call). One that stopped part
    way (crash, error, interrupt without answer) resumes from its last checkpoint: finished
    tasks are not run again. ``inp`` is only used when the thread has no checkpoint yet.
    """
    graph = graph_for(checkpointer)
    config = thread_config(thread_id)
    snap = await graph.aget_state(config)
    if snap.values and not snap.next and "result" in snap.values:
        return {**snap.values, "__replayed__": True}
    # A thread with a checkpoint continues from it; one with none (or only an input checkpoint
    # that never got going, e.g. a write that failed) starts from the input.
    start = None if snap.next else inp
    async for mode, chunk in graph.astream(start, config, context=ctx, stream_mode=["updates", "custom"],
                                           durability="sync"):
        if on_update is not None:
            on_update(mode, chunk)
    snap = await graph.aget_state(config)
    values = dict(snap.values)
    if snap.next:
        values["__pending__"] = list(snap.next)
        values["__interrupts__"] = [i.value for t in snap.tasks for i in t.interrupts]
    return values


async def stored_council(checkpointer: Any, thread_id: str) -> dict[str, Any] | None:
    snap = await graph_for(checkpointer).aget_state(thread_config(thread_id))
    return (snap.values or {}).get("council")
