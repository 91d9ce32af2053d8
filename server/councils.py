"""Councils as data: a role with its agents and defaults, kept in Valkey (survives restarts).

The five default councils (one per role, three real agents each on the configured model) are
created the first time the store is used and no council exists yet.
"""

from __future__ import annotations

import re
from typing import Any

import valkey.asyncio as avalkey
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from graph.context import DEFAULT_RUBRIC, MAX_AGENTS, MAX_ROUNDS, MIN_AGENTS, ROLES, default_agents

KEY = "council:councils"


class Agent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: str = Field(min_length=1, max_length=64)
    model: str | None = None
    temperature: float = Field(0.7, ge=0, le=2)
    seed: int | None = None


class Council(BaseModel):
    """A named council; a deliberation names it with ``council_name`` in its input."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    role: str
    agents: list[Agent] = Field(min_length=MIN_AGENTS, max_length=MAX_AGENTS)
    rounds: int = Field(1, ge=0, le=MAX_ROUNDS)
    rubric: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_RUBRIC), min_length=1)
    constraints: str = ""
    require_approval: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", v):
            raise ValueError("name may only contain letters, digits, '.', '_' and '-'")
        return v

    @field_validator("role")
    @classmethod
    def _role(cls, v: str) -> str:
        if v.upper() not in ROLES:
            raise ValueError(f"unknown role {v!r}; known roles: {', '.join(ROLES)}")
        return v.upper()

    @model_validator(mode="after")
    def _unique_agents(self) -> "Council":
        ids = [a.agent_id for a in self.agents]
        if len(set(ids)) != len(ids):
            raise ValueError(f"agent ids must be unique, got {ids}")
        return self

    def context(self) -> dict[str, Any]:
        """The ``Context`` fields this council sets for a run."""
        return {"role": self.role, "agent_specs": [a.model_dump() for a in self.agents], "rounds": self.rounds,
                "rubric": self.rubric, "constraints": self.constraints, "require_approval": self.require_approval}


def default_councils() -> list[Council]:
    return [Council(name=role.lower(), role=role,
                    agents=[Agent(agent_id=a.agent_id, temperature=a.temperature, seed=a.seed)
                            for a in default_agents(role, 3)]) for role in ROLES]


class CouncilStore:
    def __init__(self, url: str):
        self.client = avalkey.from_url(url.replace("valkey://", "redis://", 1))
        self._seeded = False

    async def _seed(self) -> None:
        if self._seeded:
            return
        if not await self.client.exists(KEY):
            await self.client.hset(KEY, mapping={c.name: c.model_dump_json() for c in default_councils()})
        self._seeded = True

    async def list(self) -> list[Council]:
        await self._seed()
        raw = await self.client.hgetall(KEY)
        return sorted((Council.model_validate_json(v) for v in raw.values()), key=lambda c: c.name)

    async def get(self, name: str) -> Council | None:
        await self._seed()
        raw = await self.client.hget(KEY, name)
        return Council.model_validate_json(raw) if raw else None

    async def create(self, council: Council) -> bool:
        """False when a council of that name exists already."""
        await self._seed()
        return bool(await self.client.hsetnx(KEY, council.name, council.model_dump_json()))

    async def delete(self, name: str) -> bool:
        await self._seed()
        return bool(await self.client.hdel(KEY, name))

    async def ping(self) -> bool:
        return bool(await self.client.ping())
