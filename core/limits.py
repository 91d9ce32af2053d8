"""Every limit a request is held to, once: the numbers, the patterns and the types that apply them.

``core.request`` (the input, stored councils), ``core.context`` (the run's knobs), planning
events and the CLI's help all take their bounds from here, so a refusal and the documentation
always say the same number.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, StringConstraints

from council_agents.core.terms import CHECKERS, ROLES, Checker, Role

MIN_AGENTS, MAX_AGENTS, DEFAULT_AGENTS = 2, 9, 3
MAX_ROUNDS = 5
MAX_TASK_CHARS = 8000
MAX_CONSTRAINTS_CHARS = 4000
MAX_CRITERIA = 12
MIN_TOKEN_BUDGET, MAX_TOKEN_BUDGET = 1000, 10_000_000
MAX_BODY_BYTES = 512 * 1024
"""The largest HTTP request body the served API reads (a run's largest input, every field at
its limit and JSON-escaped, is under 250 KB)."""
MAX_JSON_DEPTH = 32
"""The deepest nesting of objects and arrays in a request body or a planning event (a run's
input needs 5)."""
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Council names and agent ids: a letter or digit, then letters, digits, ``_ . -``; <= 64."""
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
"""Deliberation, story and task ids: like names, ``:`` allowed, <= 128."""


def _role(value: object) -> object:
    """A role in any case, upper-cased; anything else is left for the ``Literal`` to refuse
    with the list of roles.
    """
    if isinstance(value, str):
        role = value.strip().upper()
        if role not in ROLES:
            raise ValueError(f"unknown role {value!r}; known roles: {', '.join(ROLES)}")
        return role
    return value


RoleName = Annotated[Role, BeforeValidator(_role)]
"""A role, accepted in any case (``dev`` is DEV)."""
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
"""A council name or an agent id."""
Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
"""A deliberation, story or task id."""
AgentCount = Annotated[int, Field(ge=MIN_AGENTS, le=MAX_AGENTS)]
"""Agents in a council."""
Critics = Annotated[int, Field(ge=1, le=MAX_AGENTS - 1)]
"""Critics per proposal (a sparse ring when fewer than the peers)."""
Rounds = Annotated[int, Field(ge=0, le=MAX_ROUNDS)]
"""Critique and revise rounds."""
TokenBudget = Annotated[int, Field(ge=MIN_TOKEN_BUDGET, le=MAX_TOKEN_BUDGET)]
"""Most prompt + completion tokens of a deliberation."""
MIN_GATE = 0.5
"""The agreement gate's threshold is a share of the answers above this (a majority)."""


def _gate(value: object) -> object:
    """The agreement gate as a share: ``off`` (0), ``all`` or ``on`` (1), or a share of the
    answers that must agree, above ``MIN_GATE`` and at most 1.
    """
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("off", "all", "on"):
            return 0.0 if word == "off" else 1.0
        try:
            value = float(word)
        except ValueError:
            pass
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and (value == 0 or MIN_GATE < value <= 1):
        return float(value)
    raise ValueError(
        f"must be 'off', 'all' or the share of answers that must agree, above {MIN_GATE} and at "
        f"most 1; got {value!r}"
    )


Gate = Annotated[float, BeforeValidator(_gate)]
"""The agreement gate: 0 is off, else the share of answers that must agree."""


def _checkers(value: object) -> object:
    if isinstance(value, list) and len(set(map(str, value))) != len(value):
        raise ValueError("names a checker twice")
    if isinstance(value, list):
        unknown = [v for v in value if v not in CHECKERS]
        if unknown:
            raise ValueError(f"unknown checker {unknown[0]!r}; known: {', '.join(CHECKERS)}")
    return value


Checkers = Annotated[list[Checker], BeforeValidator(_checkers)]
"""The checkers a council runs, each once (``checks/``)."""
