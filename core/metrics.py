"""Prometheus metrics of deliberations and LLM calls.

Deliberations are counted, not attempts:

- ``council_deliberations_started_total{role}``: when ``prepare`` fixes the council (once per
  deliberation: a resumed one does not prepare again);
- ``council_deliberations_completed_total{role}``: when JetStream acknowledges the completed
  event as new (a re-publish of a finished deliberation is acknowledged as a duplicate and not
  counted again; without ``NATS_URL`` the event is not published and the deliberation counts
  when ``publish`` ends);
- ``council_deliberations_failed_total{kind, stage}``: every failure, once per failed run:
  ``kind`` is what failed (``input``: refused at the door or in ``prepare``; ``llm``;
  ``valkey``; ``nats``; ``other``), ``stage`` where (``door``, ``prepare``, ``propose`` ...,
  ``publish``, ``checkpoint``). The graph counts its own failures (``FailureCounter``, one per
  failed run whichever door started it); the doors count the requests they refuse (``refused``).
  A run counts once: one that published its event and then failed (its last checkpoint could
  not be written) is completed, not failed too. A deliberation that fails, is resumed and
  completes counts once in each. A worker's trouble
  outside a graph run (its Valkey lease, re-publishing a finished deliberation) is logged and
  the message redelivered, not counted here.

Served at ``/metrics`` by ``council serve`` and by ``council worker --metrics-port``.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from prometheus_client import Counter, Histogram

from council_agents.core.errors import describe
from council_agents.core.state import CallRecord

DELIBERATIONS_STARTED = Counter(
    "council_deliberations_started", "Deliberations started (once each)", ["role"]
)
DELIBERATIONS_COMPLETED = Counter(
    "council_deliberations_completed",
    "Deliberations whose completed event JetStream acknowledged (once each)",
    ["role"],
)
DELIBERATIONS_FAILED = Counter(
    "council_deliberations_failed",
    "Failed runs and refused requests, by what failed (kind) and where (stage)",
    ["kind", "stage"],
)
DELIBERATION_SECONDS = Histogram(
    "council_deliberation_duration_seconds",
    "Start to publish",
    ["role"],
    buckets=(1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600),
)
LLM_CALLS = Counter("council_llm_calls", "Finished LLM calls", ["role", "stage", "accepted"])
LLM_TOKENS = Counter("council_llm_tokens", "LLM tokens", ["role", "stage", "kind"])
LLM_SECONDS = Histogram(
    "council_llm_call_seconds",
    "LLM call latency",
    ["role", "stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120),
)


def observe_call(record: CallRecord) -> None:
    """Count a finished LLM call."""
    role, stage = record["role"], record["stage"]
    LLM_CALLS.labels(role, stage, str(bool(record.get("accepted"))).lower()).inc()
    LLM_TOKENS.labels(role, stage, "prompt").inc(record.get("prompt_tokens", 0))
    LLM_TOKENS.labels(role, stage, "completion").inc(record.get("completion_tokens", 0))
    LLM_SECONDS.labels(role, stage).observe(record.get("latency_s", 0))


def refused(kind: str = "input") -> None:
    """Count a request a door refused before any run was created."""
    DELIBERATIONS_FAILED.labels(kind, "door").inc()


def completed(role: str, seconds: float) -> None:
    """Count a deliberation whose event was acknowledged (once: not for a duplicate)."""
    DELIBERATIONS_COMPLETED.labels(role).inc()
    DELIBERATION_SECONDS.labels(role).observe(seconds)


class FailureCounter(AsyncCallbackHandler):
    """Counts each failed graph run once, at the top of the run (the graph is bound to it).

    A run whose ``publish`` node finished was counted completed there (JetStream stored its
    event); if the run then fails (its last checkpoint could not be written), it is not counted
    failed too: a run counts once, completed or failed.
    """

    def __init__(self) -> None:
        self._runs: dict[UUID, bool] = {}
        """Graph runs going on -> whether their ``publish`` node finished."""
        self._publishing: dict[UUID, UUID] = {}
        """A ``publish`` node's run going on -> its graph run."""

    async def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember the graph runs going on, and which one a ``publish`` node belongs to."""
        if parent_run_id is None:
            self._runs[run_id] = False
        elif kwargs.get("name") == "publish" and parent_run_id in self._runs:
            self._publishing[run_id] = parent_run_id

    async def on_chain_end(
        self,
        outputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A ``publish`` node finished (its run published); a graph run ended."""
        graph_run = self._publishing.pop(run_id, None)
        if graph_run is not None and graph_run in self._runs:
            self._runs[graph_run] = True
        if parent_run_id is None:
            self._runs.pop(run_id, None)

    async def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A run of the whole graph failed: count it by what failed and where (unless it had
        published: then it counted as completed).
        """
        self._publishing.pop(run_id, None)
        if parent_run_id is not None:
            return  # a node's error is the run's error (counted once, at the top)
        published = self._runs.pop(run_id, False)
        if published or isinstance(error, asyncio.CancelledError):
            return  # counted completed at publish; a stop is not a failure
        failure = describe(error)
        DELIBERATIONS_FAILED.labels(failure.kind, failure.stage).inc()
