"""What a caller may choose for one run, given as the graph's ``context_schema``.

Only per-run knobs live here: which stored council deliberates, how many agents a built-in
council has, whether a human approves the decision. Where council connects and with which key
are process settings (``graph.settings``), never something a caller sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import ConfigDict, Field


@dataclass(kw_only=True)
class Context:
    """Per-run knobs; nodes read them through ``Runtime[Context]``."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    council: Annotated[str | None, Field(max_length=64)] = None
    """Name of a stored council (``GET /councils``); none: a built-in council for the role."""
    agents: Annotated[int | None, Field(ge=2, le=9)] = None
    """Agents in a built-in council (2..9, default 3); a stored council fixes its own."""
    require_approval: bool | None = None
    """Interrupt after select for a human approval or override (default: the council's)."""
    aggregator: Literal["judge", "vote", "judge+vote"] | None = None
    """How the winner is decided (default: the council's, else ``judge+vote``)."""
    token_budget: Annotated[int | None, Field(ge=1000, le=10_000_000)] = None
    """Most prompt + completion tokens for the deliberation (default: the council's, else none);
    when the next stage could exceed it, the council goes to selection."""
