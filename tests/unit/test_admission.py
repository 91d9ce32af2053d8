"""One admission per request: every door looks the stored council up once and hands the
admission to the graph, which never looks it up again (it has no store to look in).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from council_agents.cli import commands
from council_agents.core.context import Context
from council_agents.core.request import ADMISSION_KEY, CouncilSpec, default_council, parse_input
from council_agents.core.settings import EventSettings, LLMSettings, Settings, StorageSettings
from council_agents.events.planning import PlanApproved
from council_agents.server.app import Door
from council_agents.server.runner import Deliberations
from council_agents.server.worker import Worker
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM


class CountingStore:
    """A council store that counts its look-ups (the built-in councils, by name)."""

    gets = 0

    def __init__(self, url: str = "") -> None:
        self.client = None

    async def get(self, name: str) -> CouncilSpec:
        CountingStore.gets += 1
        return default_council(name.upper(), name=name)  # type: ignore[arg-type]

    async def list(self) -> list[CouncilSpec]:
        raise AssertionError("a door lists councils only to name them in a refusal")

    async def aclose(self) -> None:
        pass


@pytest.fixture(autouse=True)
def counted():
    CountingStore.gets = 0


@pytest.fixture(scope="module")
def sim():
    with ServerThread(SimVLLM(SimConfig(time_scale=0))) as s:
        yield s


def settings(base_url: str = "http://127.0.0.1:9/v1") -> Settings:
    return Settings(
        llm=LLMSettings(base_url=base_url),
        storage=StorageSettings(valkey_url="valkey://127.0.0.1:9"),
        events=EventSettings(nats_url="nats://127.0.0.1:9"),
    )


async def test_http_door_looks_up_once_and_the_graph_never(sim):
    door = Door(settings(sim.base_url))
    door._store = CountingStore()  # type: ignore[assignment]
    body = await door.admit_run(
        {"input": {"task": "Add rate limiting", "rounds": 0}, "context": {"council": "qa"}}
    )
    assert CountingStore.gets == 1
    admission: Any = body["config"]["configurable"][ADMISSION_KEY]
    assert admission["council"]["name"] == "qa" and admission["input"]["role"] == "QA"
    assert body["config"]["configurable"]["council"] == "qa" and "context" not in body
    local = Settings(llm=LLMSettings(base_url=sim.base_url))  # no Valkey at all
    deliberations = Deliberations(local, InMemorySaver())
    outcome = await deliberations.run("http-door", admission)
    assert outcome.status == "completed" and outcome.values["council"]["name"] == "qa"
    assert CountingStore.gets == 1


async def test_worker_looks_up_once_per_role():
    worker = Worker(InMemorySaver(), settings())
    worker.store = CountingStore()  # type: ignore[assignment]
    event = PlanApproved(
        story_id="S-1",
        plan_id="P-1",
        approved_by="me",
        roles=["DEV", "QA"],
        timestamp=datetime.now(UTC),
        task="Add rate limiting",
    )
    admissions = [await worker.admission(event, role) for role in event.roles]
    assert CountingStore.gets == 2
    assert [a["council"]["name"] for a in admissions] == ["dev", "qa"]
    await worker.valkey.aclose()


async def test_cli_door_looks_up_once(monkeypatch):
    monkeypatch.setattr(commands, "CouncilStore", CountingStore)
    request = parse_input({"task": "Add rate limiting"})
    admission = await commands._admit(settings(), request, Context(council="devops"))
    assert CountingStore.gets == 1 and admission["council"]["role"] == "DEVOPS"
    await commands._admit(settings(), request, Context(agents=4))  # a built-in council
    assert CountingStore.gets == 1
