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
StopReason = Literal[
    "converged",
    "budget",
    "rounds_completed",
    "human_override",
    "approved",
    "no_critiques",
    "unchanged",
    "agreed",
]
"""Why the rounds ended (``approved``: kept for the replaced system's consumers;
``no_critiques``: every critique of a round was rejected, so nothing could be revised;
``unchanged``: no draft changed in the last round, so nothing was left to critique;
``agreed``: the answers agreed, so the agreement gate decided without critiques or judges)."""
DecidedBy = Literal["judges", "vote", "human", "tiebreak", "agreement", "checks"]
"""What decided the winner (``tiebreak``: neither the judges nor the vote could tell the
leaders apart, and the documented tie-break did; the justification says which;
``agreement``: the agreement gate; ``checks``: the grounded checks left one draft passing)."""
Checker = Literal["code", "plan", "quotes"]
"""A checker a council runs on what its agents write, with no LLM (``checks/``)."""
Presentation = Literal["pair", "rotations", "pointwise"]
"""How the judges are shown the proposals: ``pair`` (one order and its reverse), ``rotations``
(every cyclic rotation: each proposal in each position once), ``pointwise`` (each proposal
alone). docs/DECISIONS.md measures them."""
Severity = Literal["blocker", "major", "minor"]
"""How much a defect matters: must, should or could change."""
Origin = Literal["cli", "http", "planning", "eval"]
"""Which door started a deliberation: ``council deliberate``, the HTTP API, a planning event
(the worker), ``council eval``."""

ROLES: tuple[Role, ...] = get_args(Role)
"""Every role, in the order the docs list them."""
AGGREGATORS: tuple[Aggregator, ...] = get_args(Aggregator)
"""Every aggregator."""
PRESENTATIONS: tuple[Presentation, ...] = get_args(Presentation)
"""Every presentation scheme."""
CHECKERS: tuple[Checker, ...] = get_args(Checker)
"""Every checker."""
SEVERE: tuple[Severity, ...] = ("blocker", "major")
"""The severities that make a round go on (must or should change)."""
