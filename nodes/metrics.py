"""Prometheus metrics of deliberations and LLM calls (served at ``/metrics`` by the HTTP app)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from graph.state import CallRecord

DELIBERATIONS_STARTED = Counter("council_deliberations_started", "Deliberations started", ["role"])
DELIBERATIONS_COMPLETED = Counter(
    "council_deliberations_completed", "Deliberations completed", ["role"]
)
DELIBERATIONS_FAILED = Counter(
    "council_deliberations_failed",
    "Stages that failed for good (a deliberation stops there until resumed)",
    ["role", "stage"],
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
