"""Running one deliberation to its end (or its interrupt) on a checkpointer: CLI, worker, eval.

``run`` starts, resumes or re-reads the deliberation on a thread and returns a typed
``Outcome``; the graph runs under the given process settings (``graph.settings.using``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StreamMode

from graph import settings as settings_mod
from graph.builder import compile_graph
from graph.context import Context
from graph.settings import Settings
from graph.state import Council, CouncilState, InputState, OutputState

Compiled = CompiledStateGraph[CouncilState, Context, InputState, OutputState]
_graphs: weakref.WeakKeyDictionary[BaseCheckpointSaver, Compiled] = weakref.WeakKeyDictionary()


def graph_for(checkpointer: BaseCheckpointSaver) -> Compiled:
    """The compiled graph on a checkpointer (compiled once, not per deliberation)."""
    if checkpointer not in _graphs:
        _graphs[checkpointer] = compile_graph(checkpointer)
    return _graphs[checkpointer]


def thread_config(thread_id: str) -> RunnableConfig:
    """The config that names a thread."""
    return {"configurable": {"thread_id": thread_id}}


@dataclass
class Outcome:
    """What became of a deliberation after ``run``."""

    status: Literal["completed", "replayed", "interrupted"]
    """completed now; replayed: it had finished before (no LLM call); interrupted: waiting."""
    values: dict[str, Any]
    """The state's values."""
    pending: list[str] = field(default_factory=list)
    """Nodes waiting to run (interrupted)."""
    interrupts: list[Any] = field(default_factory=list)
    """What each interrupt asks (interrupted)."""


async def run(
    checkpointer: BaseCheckpointSaver,
    thread_id: str,
    inp: dict[str, Any] | None,
    context: Context | None,
    settings: Settings,
    on_update: Callable[[str, Any], None] | None = None,
    stream_mode: Sequence[StreamMode] = ("updates", "custom"),
) -> Outcome:
    """Start, resume or re-read the deliberation on ``thread_id``.

    A finished thread is returned as it is. One that stopped part way (crash, error, interrupt
    without answer) resumes from its last checkpoint: finished tasks are not run again.
    ``inp`` is only used when the thread has no checkpoint to continue from.
    """
    graph = graph_for(checkpointer)
    config = thread_config(thread_id)
    with settings_mod.using(settings):
        snap = await graph.aget_state(config)
        if snap.values and not snap.next and "result" in snap.values:
            return Outcome("replayed", dict(snap.values))
        start = None if snap.next else inp
        stream = graph.astream(
            cast(InputState | None, start),
            config,
            context=context or Context(),
            stream_mode=list(stream_mode),
            durability="sync",
        )
        async for mode, chunk in stream:
            if on_update is not None:
                on_update(mode, chunk)
        snap = await graph.aget_state(config)
    if snap.next:
        return Outcome(
            "interrupted",
            dict(snap.values),
            list(snap.next),
            [i.value for task in snap.tasks for i in task.interrupts],
        )
    return Outcome("completed", dict(snap.values))


async def stored_state_council(checkpointer: BaseCheckpointSaver, thread_id: str) -> Council | None:
    """The council a deliberation was started with (None: no such deliberation)."""
    snap = await graph_for(checkpointer).aget_state(thread_config(thread_id))
    council: Council | None = (snap.values or {}).get("council")
    return council
