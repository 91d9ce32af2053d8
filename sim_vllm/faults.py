"""Scripted faults of the simulated vLLM: by flag (``--fault``) or through ``/admin/faults``."""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal[
    "http_500",
    "http_503",
    "http_429",
    "drop",
    "stall",
    "truncated_json",
    "invalid_json",
    "garbage",
    "say",
]


class FaultRule(BaseModel):
    """One scripted fault. Fires on the ``nth`` matching request, or with ``probability``."""

    model_config = ConfigDict(extra="forbid")
    kind: FaultKind
    nth: int | None = Field(None, ge=1, description="fire on the nth matching request (1-based)")
    probability: float | None = Field(None, ge=0, le=1)
    times: int | None = Field(None, ge=1, description="fire at most this many times")
    stage: str | None = None
    agent: str | None = None
    stall_seconds: float = Field(600.0, gt=0, description="real seconds a stall lasts")
    text: str = Field("", description="what a `say` fault answers (a prose answer's text)")
    seen: int = 0
    fired: int = 0

    def matches(self, stage: str | None, agent: str | None) -> bool:
        """Whether a request from ``agent`` at ``stage`` is one this rule watches."""
        return (self.stage is None or self.stage == stage) and (
            self.agent is None or self.agent == agent
        )

    def should_fire(self, rng: random.Random) -> bool:
        """Count a matching request and decide whether the fault fires on it.

        Args:
            rng: The server's fault generator (drawn from only for a ``probability`` rule).

        Returns:
            True when the fault fires on this request.
        """
        self.seen += 1
        if self.times is not None and self.fired >= self.times:
            return False
        if self.nth is not None:
            hit = self.seen == self.nth
        elif self.probability is not None:
            hit = rng.random() < self.probability
        else:
            hit = True
        if hit:
            self.fired += 1
        return hit

    @classmethod
    def parse_flag(cls, text: str) -> FaultRule:
        """A rule from the ``--fault`` flag's text.

        Args:
            text: ``kind[:key=value,...]``, e.g. ``http_500:p=0.1`` or
                ``drop:nth=3,stage=critique`` (``p`` is short for ``probability``, ``n`` for
                ``nth``).

        Returns:
            The validated rule.

        Raises:
            pydantic.ValidationError: An unknown kind or key, or a value out of range.
        """
        kind, _, rest = text.partition(":")
        kw: dict[str, Any] = {"kind": kind}
        for item in filter(None, rest.split(",")):
            k, _, v = item.partition("=")
            k = {"p": "probability", "n": "nth"}.get(k, k)
            kw[k] = v
        return cls.model_validate(kw)
