"""The closed sets of words the contracts share: one ``Literal`` alias each.

The request, the state, the events and the routers all say these; spelling a set anywhere else
is a bug (``tests/unit/test_layers.py`` greps for it).
"""

from __future__ import annotations

from typing import Literal, get_args

Role = Literal["DEV", "QA", "ARCHITECT", "DEVOPS", "DATA"]
"""The roles a council can have."""
Stage = Literal["propose", "critique", "revise", "judge", "vote"]
"""The stages whose agents call an LLM."""
Aggregator = Literal["judge", "vote", "judge+vote"]
"""How the winner is decided (docs/DECISIONS.md)."""
StopReason = Literal["converged", "budget", "rounds_completed", "human_override", "approved"]
"""Why the rounds ended (``approved``: kept for the replaced system's consumers)."""
DecidedBy = Literal["judges", "vote", "human"]
"""What decided the winner."""
Severity = Literal["blocker", "major", "minor"]
"""How much a defect matters: must, should or could change."""
Origin = Literal["cli", "http", "planning", "eval"]
"""Which door started a deliberation: ``council deliberate``, the HTTP API, a planning event
(the worker), ``council eval``."""

ROLES: tuple[Role, ...] = get_args(Role)
"""Every role, in the order the docs list them."""
AGGREGATORS: tuple[Aggregator, ...] = get_args(Aggregator)
"""Every aggregator."""
SEVERE: tuple[Severity, ...] = ("blocker", "major")
"""The severities that make a round go on (must or should change)."""
