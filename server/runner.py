"""Running one deliberation to its end (or its interrupt) on a checkpointer: CLI, worker, eval.

``Deliberations`` is one process's runner: its settings, its clients (``graph.builder.Clients``)
and the graph compiled once on its checkpointer. ``run`` starts a deliberation from a door's
admission, resumes one that stopped (with a human's answer when it waits for one), or re-reads
a finished one, and returns a typed ``Outcome``. A finished deliberation's values carry its
completed event as ``result`` (rebuilt from the state: the checkpoint does not keep it), and
retention applies as soon as it finishes (``server.retention.after_finish``); one whose
checkpoints retention removed is ``pruned``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command, StreamMode

from council_agents.core.context import Context
from council_agents.core.request import RequestError, with_admission, with_salt
from council_agents.core.settings import Settings
from council_agents.core.state import Admission, Council, CouncilState
from council_agents.graph.builder import Clients, Compiled, compile_graph
from council_agents.nodes.publish import completed_event
from council_agents.server import retention
from council_agents.storage.markers import done_marker
from council_agents.storage.saver import saver_client


def thread_config(thread_id: str) -> RunnableConfig:
    """The config that names a thread."""
    return {"configurable": {"thread_id": thread_id}}


@dataclass
class Outcome:
    """What became of a deliberation after ``run``."""

    status: Literal["completed", "replayed", "interrupted", "pruned"]
    """completed now; replayed: it had finished before (no LLM call); interrupted: waiting;
    pruned: it finished before and retention removed its checkpoints (see ``marker``)."""
    values: CouncilState
    """The state's values; once finished, with the completed event as ``result``."""
    pending: list[str] = field(default_factory=list)
    """Nodes waiting to run (interrupted)."""
    interrupts: list[Any] = field(default_factory=list)
    """What each interrupt asks (interrupted)."""
    marker: dict[str, Any] | None = None
    """pruned: when it finished and where its completed event is (stream, seq)."""


def finished_values(values: CouncilState) -> CouncilState:
    """``values`` with the completed event as ``result`` once the deliberation finished."""
    event = completed_event(values)
    if event is not None:
        values["result"] = event
    return values


class Deliberations:
    """One process's deliberations on one checkpointer (the graph compiled once)."""

    def __init__(
        self,
        settings: Settings,
        checkpointer: BaseCheckpointSaver[str],
        clients: Clients | None = None,
    ) -> None:
        self.settings = settings
        self.checkpointer = checkpointer
        self.clients = clients or Clients.of(settings)
        self.graph: Compiled = compile_graph(self.clients, checkpointer)

    async def council(self, thread_id: str) -> Council | None:
        """The council a deliberation was started with (None: no such deliberation)."""
        snap = await self.graph.aget_state(thread_config(thread_id))
        values = cast(CouncilState, snap.values or {})
        return values.get("council")

    async def run(
        self,
        thread_id: str,
        admission: Admission | None,
        *,
        answer: Any = None,
        salt: int | None = None,
        on_update: Callable[[str, Any], None] | None = None,
        stream_mode: Sequence[StreamMode] = ("updates", "custom"),
    ) -> Outcome:
        """Start, resume or re-read the deliberation on ``thread_id``.

        A finished thread is returned as it is. One that stopped part way (crash, error,
        interrupt) resumes from its last checkpoint: finished tasks are not run again; one that
        waits for a human is resumed with ``answer`` (``{"approved": true}`` or ``{"winner":
        ..., "reason": ...}``). ``admission`` (a door's, ``core.request.admit``) starts a
        thread that has no checkpoint yet, and is ignored otherwise. ``salt`` varies the
        sampling seeds of this try (default: none for a first try, a random one for a resume:
        an answer that was rejected is not asked for again with the same seed).
        """
        config = thread_config(thread_id)
        snap = await self.graph.aget_state(config)
        values = cast(CouncilState, snap.values or {})
        if values and not snap.next and values.get("published") is not None:
            return Outcome("replayed", finished_values(values))
        client = saver_client(self.checkpointer)
        marker = None if values or not client else await done_marker(client, thread_id)
        if marker is not None:
            return Outcome("pruned", cast(CouncilState, {}), marker=marker)
        start: Any
        if salt is None:
            salt = secrets.randbelow(2**31) if snap.next else 0
        config = with_salt(config, salt)
        if snap.next:
            waiting = any(task.interrupts for task in snap.tasks)
            start = Command(resume=answer) if waiting and answer is not None else None
        elif admission is None:
            raise RequestError("id", f"no deliberation {thread_id!r} to resume")
        else:
            start, config = admission["input"], with_admission(config, admission)
        stream = self.graph.astream(
            start,
            config,
            context=Context(),
            stream_mode=list(stream_mode),
            durability="sync",
        )
        async for mode, chunk in stream:
            if on_update is not None:
                on_update(mode, chunk)
        snap = await self.graph.aget_state(config)
        if snap.next:
            return Outcome(
                "interrupted",
                cast(CouncilState, snap.values),
                list(snap.next),
                [i.value for task in snap.tasks for i in task.interrupts],
            )
        await retention.after_finish(self.checkpointer, thread_id, self.settings)
        return Outcome("completed", finished_values(cast(CouncilState, snap.values)))

    async def close(self) -> None:
        """Close this event loop's event publisher."""
        await self.clients.events.close()
