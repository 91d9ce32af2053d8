"""admit: the door's admission becomes the deliberation's state (no I/O, nothing to fail on).

Every door admits a request once (``core.request.admit``: the validated input and the
effective council) and hands the result to the graph in the run's configuration; this first
node writes it into the state, so everything after it (and any resume) reads the council from
the checkpoint, never by resolving the request again.
"""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig

from council_agents.core.request import RequestError, admission_of
from council_agents.core.state import Admitted, CouncilState


async def admit(state: CouncilState, config: RunnableConfig) -> Admitted:
    """The admitted input (defaults filled) and the effective council."""
    admission = admission_of(config)
    if admission is None:
        raise RequestError(
            "input",
            "this run was not admitted: start deliberations through council's doors "
            "(council deliberate, the HTTP API, planning events)",
        )
    thread_id = str((config.get("configurable") or {}).get("thread_id") or "")
    admitted = Admitted(**admission["input"], council=admission["council"])
    admitted.setdefault("deliberation_id", thread_id)
    return admitted
