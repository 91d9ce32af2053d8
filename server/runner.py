"""Running one deliberation to its end (or its interrupt) on a checkpointer: CLI, worker, eval.

``run`` starts, resumes or re-reads the deliberation on a thread and returns a typed
``Outcome``; the graph runs under the given process settings (``graph.settings.using``).
A finished deliberation's values carry its completed event as ``result`` (rebuilt from the
state: the checkpoint does not keep it), and retention applies as soon as it finishes
(``server.retention.after_finish``); one whose checkpoints retention removed is ``pruned``.
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

from council_agents.core import settings as settings_mod
from council_agents.core.context import Context
from council_agents.core.settings import Settings
from council_agents.core.state import Council, CouncilState, InputState, OutputState
from council_agents.graph.builder import compile_graph
from council_agents.nodes.publish import completed_event
from council_agents.server import retention
from council_agents.storage.markers import done_marker
from council_agents.storage.saver import saver_client

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

    status: Literal["completed", "replayed", "interrupted", "pruned"]
    """completed now; replayed: it had finished before (no LLM call); interrupted: waiting;
    pruned: it finished before and retention removed its checkpoints (see ``marker``)."""
    values: dict[str, Any]
    """The state's values; once finished, with the completed event as ``result``."""
    pending: list[str] = field(default_factory=list)
    """Nodes waiting to run (interrupted)."""
    interrupts: list[Any] = field(default_factory=list)
    """What each interrupt asks (interrupted)."""
    marker: dict[str, Any] | None = None
    """pruned: when it finished and where its completed event is (stream, seq)."""


def finished_values(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the completed event as ``result`` once the deliberation finished."""
    event = completed_event(values)
    if event is not None:
        values["result"] = event.model_dump(mode="json")
    return values


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
        if snap.values and not snap.next and "published" in snap.values:
            return Outcome("replayed", finished_values(dict(snap.values)))
        client = saver_client(checkpointer)
        marker = None if snap.values or not client else await done_marker(client, thread_id)
        if marker is not None:
            return Outcome("pruned", {}, marker=marker)
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
    await retention.after_finish(checkpointer, thread_id, settings)
    return Outcome("completed", finished_values(dict(snap.values)))


async def stored_state_council(checkpointer: BaseCheckpointSaver, thread_id: str) -> Council | None:
    """The council a deliberation was started with (None: no such deliberation)."""
    snap = await graph_for(checkpointer).aget_state(thread_config(thread_id))
    council: Council | None = (snap.values or {}).get("council")
    return council
