"""The council's run-time configuration, passed to the graph as ``context_schema``.

Everything here is *how* a deliberation runs (which agents, which model, how many rounds, token
budgets); *what* it deliberates on is the input state. Defaults come from the environment so the
LangGraph server and the CLI agree: ``COUNCIL_LLM_BASE_URL`` (default vLLM's
``http://localhost:8000/v1``), ``COUNCIL_MODEL``, ``COUNCIL_API_KEY`` (never logged), ``NATS_URL``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["DEV", "QA", "ARCHITECT", "DEVOPS", "DATA"]
ROLES: tuple[str, ...] = ("DEV", "QA", "ARCHITECT", "DEVOPS", "DATA")
STAGES: tuple[str, ...] = ("propose", "critique", "revise", "select")

MIN_AGENTS = 2
MAX_AGENTS = 9
MAX_ROUNDS = 5
MAX_TASK_CHARS = 8000
DEFAULT_BASE_URL = "http://localhost:8000/v1"

DEFAULT_RUBRIC: dict[str, str] = {
    "correctness": "solves the task as stated, with no unsafe step",
    "feasibility": "can be carried out by the team with the stated constraints",
    "risk": "names the risks and a way back",
    "clarity": "concrete steps a reviewer can check",
}


@dataclass(kw_only=True)
class AgentSpec:
    """One member of the council."""

    agent_id: str
    """Stable id, e.g. ``agent-dev-001``."""
    role: str
    """The council's role."""
    model: str | None = None
    """Model name at the LLM server; ``None`` means the context's model."""
    temperature: float = 0.7
    """Sampling temperature for this agent's calls."""
    seed: int | None = None
    """Sampling seed (vLLM honours it), so a deliberation can be replayed."""


def default_agents(role: str, n: int, temperature: float = 0.7, model: str | None = None) -> list[AgentSpec]:
    return [AgentSpec(agent_id=f"agent-{role.lower()}-{i:03d}", role=role, model=model,
                      temperature=temperature, seed=1000 + i) for i in range(1, n + 1)]


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(kw_only=True)
class Context:
    """How a deliberation runs. Read in nodes through ``Runtime[Context]``."""

    role: str = "DEV"
    """Default role of the council when the input names none."""
    agents: int = 3
    """Number of agents when ``agent_specs`` is empty (at least 2)."""
    agent_specs: list[dict[str, Any]] = field(default_factory=list)
    """Explicit agents (``AgentSpec`` fields); overrides ``agents``."""
    rounds: int = 1
    """Critique and revise rounds (0: propose, then select)."""
    rubric: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_RUBRIC))
    """Criteria the judge scores each proposal on, with what each means."""
    constraints: str = ""
    """Free-text constraints every agent must respect."""
    base_url: str = field(default_factory=lambda: os.environ.get("COUNCIL_LLM_BASE_URL", DEFAULT_BASE_URL))
    """OpenAI-compatible base URL of the LLM server (vLLM first)."""
    model: str = field(default_factory=lambda: os.environ.get("COUNCIL_MODEL", "Qwen/Qwen3-0.6B"))
    """Model name served there."""
    temperature: float = 0.7
    """Temperature of agents built from ``agents``."""
    judge_temperature: float = 0.0
    """Temperature of the judge in select."""
    max_tokens: dict[str, int] = field(default_factory=lambda: {
        "propose": 1536, "critique": 768, "revise": 1536, "select": 1536})
    """Completion-token budget per stage (reasoning included when it is inline)."""
    enable_thinking: bool | None = None
    """Send ``chat_template_kwargs.enable_thinking`` (Qwen3 on vLLM); ``None`` sends nothing."""
    timeout_s: float = field(default_factory=lambda: _env_float("COUNCIL_LLM_TIMEOUT", 120.0))
    """Per-request timeout of an LLM call."""
    max_retries: int = field(default_factory=lambda: int(os.environ.get("COUNCIL_LLM_MAX_RETRIES", 3)))
    """Retries of an LLM call on 5xx, 429, timeouts and broken connections (with backoff)."""
    answer_retries: int = 2
    """Extra attempts when an answer is empty, garbage, or (select) not valid against its schema."""
    max_connections: int = field(default_factory=lambda: int(os.environ.get("COUNCIL_LLM_MAX_CONNECTIONS", 64)))
    """HTTP connections to the LLM server per process (more parallel calls wait for one)."""
    llm_concurrency: int = field(default_factory=lambda: int(os.environ.get("COUNCIL_LLM_CONCURRENCY", 0)))
    """At most this many LLM calls in flight from this process to one server (0: no limit).
    1 reproduces the replaced system (one call at a time); benchmarks use it for the baseline."""
    nats_url: str | None = field(default_factory=lambda: os.environ.get("NATS_URL") or None)
    """JetStream server for the completed event; ``None`` skips publishing (logged)."""
    require_approval: bool = False
    """Interrupt before select for a human approval or override."""

    def api_key(self) -> str:
        return os.environ.get("COUNCIL_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
