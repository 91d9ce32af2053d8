"""What a caller may choose for one run, given as the graph's ``context_schema``.

Only per-run knobs live here: which stored council deliberates, how many agents a built-in
council has, whether a human approves the decision. Where council connects and with which key
are process settings (``core.settings``), never something a caller sends.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ConfigDict

from council_agents.core.limits import AgentCount, Checkers, Critics, Gate, Name, TokenBudget
from council_agents.core.terms import Aggregator, Presentation


@dataclass(kw_only=True)
class Context:
    """Per-run knobs, validated at the door and folded into the admitted council."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    council: Name | None = None
    """Name of a stored council (``GET /councils``); none: a built-in council for the role."""
    agents: AgentCount | None = None
    """Agents in a built-in council (2..9, default 3); a stored council fixes its own."""
    require_approval: bool | None = None
    """Interrupt after select for a human approval or override (default: the council's)."""
    aggregator: Aggregator | None = None
    """How the winner is decided (default: the council's, else ``judge+vote``)."""
    presentation: Presentation | None = None
    """How the judges are shown the proposals (default: the council's, else ``rotations``)."""
    critics: Critics | None = None
    """Critics per proposal (default: the council's, else every peer); fewer than the peers
    make a sparse ring (docs/DECISIONS.md, "Topology")."""
    token_budget: TokenBudget | None = None
    """Most prompt + completion tokens for the deliberation (default: the council's, else none);
    when the next stage could exceed it, the council goes to selection."""
    checkers: Checkers | None = None
    """The checkers run on the drafts and on quoted evidence (default: the council's, else by
    the task's kind: ``code``, ``quotes`` for a code task; ``plan``, ``quotes`` otherwise)."""
    execute: bool | None = None
    """Run the answers' code on the task's examples, in the sandbox only (default: the
    council's, else off)."""
    gate: Gate | None = None
    """The agreement gate: ``off``, ``all`` or the share of answers that must agree (default:
    the council's, else ``all``)."""
