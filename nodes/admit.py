"""admit: the door's admission becomes the deliberation's state (no I/O, nothing to fail on).

Every door admits a request once (``core.request.admit``: the validated input and the
effective council) and hands the result to the graph in the run's configuration; this first
node writes it into the state, so everything after it (and any resume) reads the council from
the checkpoint, never by resolving the request again.

The deliberation's id is the server's, never a caller's (its completed event's ``Nats-Msg-Id``
is ``<id>:completed``, so whoever could choose it could take over another deliberation's
event): the thread id for the doors that own their thread ids and run one deliberation per
thread (``council deliberate``, the worker's ``plan.<story>.<plan>.<role>``, ``council eval``),
and ``<thread>:<run>`` for a run of the LangGraph server, whose run id the server generates, so
every run that starts a deliberation on a thread starts a new one with its own event. A
caller's ``deliberation_id`` is kept as the ``label``. A later deliberation on a thread clears
the one before it (``core.state.Admitted``).
"""

from __future__ import annotations

from typing import cast

from langchain_core.runnables import RunnableConfig
from langgraph.types import Overwrite

from council_agents.core.request import RequestError, admission_of
from council_agents.core.state import Admitted, CouncilState


def deliberation_id(config: RunnableConfig) -> str:
    """The server's id of the deliberation a run starts: ``<thread>:<run>`` when the LangGraph
    server runs it (it sets ``run_id``; a caller cannot), else the thread id.
    """
    configurable = config.get("configurable") or {}
    thread_id = str(configurable.get("thread_id") or "")
    run_id = configurable.get("run_id")
    return f"{thread_id}:{run_id}" if run_id else thread_id


async def admit(state: CouncilState, config: RunnableConfig) -> Admitted:
    """The admitted input (defaults filled), the effective council, and the server's id."""
    admission = admission_of(config)
    if admission is None:
        raise RequestError(
            "input",
            "this run was not admitted: start deliberations through council's doors "
            "(council deliberate, the HTTP API, planning events)",
        )
    given = admission["input"]
    admitted = cast(Admitted, dict(given))  # the input's fields; its id is the server's:
    admitted["council"] = admission["council"]
    admitted["deliberation_id"] = deliberation_id(config)
    admitted["thread_id"] = str((config.get("configurable") or {}).get("thread_id") or "")
    admitted["label"] = admission.get("label", given.get("deliberation_id"))
    admitted["origin"] = admission.get("origin")
    admitted["owner"] = admission.get("owner")
    if state.get("council") is not None:  # a deliberation ran on this thread before
        admitted.setdefault("story_id", None)
        admitted.setdefault("task_id", None)
        for listed in (
            "drafts",
            "critiques",
            "calls",
            "judgements",
            "ballots",
            "evidence",
            "omissions",
        ):
            admitted[listed] = Overwrite([])
        admitted["decision"] = admitted["published"] = admitted["finished_at"] = None
    return admitted
