"""The Prometheus metrics the simulator serves on ``GET /metrics``, under vLLM's names.

One registry per simulated server (so servers in one process do not mix their counts), every
series labelled with ``model_name``. Times are model seconds. Importing this module turns off
prometheus_client's ``_created`` series process-wide, as vLLM's exposition has none.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# prometheus_client (0.26) declares disable_created_metrics without a return annotation
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The exposition's content type."""

LATENCY_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
"""Buckets of time to first token and end-to-end latency (model seconds)."""
TPOT_BUCKETS = (0.001, 0.0025, 0.004, 0.005, 0.0075, 0.01, 0.02, 0.04, 0.08, 0.15)
"""Buckets of time per output token (model seconds)."""


class Metrics:
    """vLLM's metrics for one served model, in a registry of their own.

    Attributes:
        registry: What ``GET /metrics`` exposes.
        running: ``vllm:num_requests_running``.
        waiting: ``vllm:num_requests_waiting``.
        prompt_tokens: ``vllm:prompt_tokens`` (exposed as ``_total``).
        generation_tokens: ``vllm:generation_tokens``.
        prefix_cache_queries: ``vllm:prefix_cache_queries`` (prompt tokens looked up).
        prefix_cache_hits: ``vllm:prefix_cache_hits`` (prompt tokens served from the cache).
        request_success: ``vllm:request_success``, also labelled ``finished_reason``.
        ttft: ``vllm:time_to_first_token_seconds`` (queueing and prefill).
        e2e: ``vllm:e2e_request_latency_seconds``.
        tpot: ``vllm:time_per_output_token_seconds``.
    """

    def __init__(self) -> None:
        """Every metric at zero, in a new registry."""
        r = self.registry = CollectorRegistry()
        lbl = ["model_name"]
        self.running = Gauge(
            "vllm:num_requests_running", "Requests running on GPU", lbl, registry=r
        )
        self.waiting = Gauge("vllm:num_requests_waiting", "Requests waiting", lbl, registry=r)
        self.prompt_tokens = Counter(
            "vllm:prompt_tokens", "Prefill tokens processed", lbl, registry=r
        )
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Generation tokens processed", lbl, registry=r
        )
        self.prefix_cache_queries = Counter(
            "vllm:prefix_cache_queries", "Prefix cache queries (tokens)", lbl, registry=r
        )
        self.prefix_cache_hits = Counter(
            "vllm:prefix_cache_hits", "Prefix cache hits (tokens)", lbl, registry=r
        )
        self.request_success = Counter(
            "vllm:request_success", "Finished requests", [*lbl, "finished_reason"], registry=r
        )
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Time to first token (model s)",
            lbl,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "End-to-end latency (model s)",
            lbl,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "vllm:time_per_output_token_seconds",
            "Time per output token (model s)",
            lbl,
            buckets=TPOT_BUCKETS,
            registry=r,
        )

    def exposition(self) -> bytes:
        """The registry in Prometheus's text format."""
        return generate_latest(self.registry)
