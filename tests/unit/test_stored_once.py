"""Each piece of a deliberation is checkpointed once (docs/STORAGE.md), and the completed event,
which is not checkpointed, is rebuilt exactly as it was published.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver

from council_agents.core.context import Context
from council_agents.core.settings import LLMSettings, Settings
from council_agents.server.runner import thread_config
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from tests.helpers import TASKS, deliberate, sim_admin


@pytest.fixture(scope="module")
def sim():
    with ServerThread(SimVLLM(SimConfig(time_scale=0))) as s:
        # the first propose answer of agent-dev-002 is garbage: rejected, then retried
        httpx.post(
            sim_admin(s, "/admin/faults"),
            json={"kind": "garbage", "nth": 1, "stage": "propose", "agent": "agent-dev-002"},
        ).raise_for_status()
        yield s


@pytest.fixture(scope="module")
def finished(sim):
    saver, published = InMemorySaver(), []

    def on_update(mode: str, chunk: dict) -> None:
        if mode == "updates" and "publish" in chunk:
            published.append(chunk["publish"]["result"].model_dump(mode="json"))

    outcome = asyncio.run(
        deliberate(
            saver,
            "once",
            {"task": TASKS[0]["task"], "role": "DEV", "rounds": 1},
            Context(agents=3),
            Settings(llm=LLMSettings(base_url=sim.base_url)),
            on_update=on_update,
        )
    )
    assert outcome.status == "completed"
    return saver, outcome, published[0]


async def test_the_event_is_not_checkpointed_but_rebuilt_as_published(finished):
    saver, outcome, published = finished
    stored = saver.get_tuple(thread_config("once")).checkpoint["channel_values"]
    assert "result" not in stored and "published" in stored and stored["finished_at"]
    assert outcome.values["result"].model_dump(mode="json") == published
    assert published["timestamp"].startswith(stored["finished_at"][:19])
    again = await deliberate(
        saver, "once", None, None, Settings(llm=LLMSettings(base_url="http://unused"))
    )
    assert again.status == "replayed"
    assert again.values["result"].model_dump(mode="json") == published


async def test_accepted_answers_are_stored_once_and_rejected_ones_are_kept(finished):
    _, outcome, published = finished
    calls = outcome.values["calls"]
    rejected = [c for c in calls if not c["accepted"]]
    assert [(c["agent_id"], c["stage"]) for c in rejected] == [("agent-dev-002", "propose")]
    assert rejected[0]["content"] and rejected[0]["problem"].startswith("garbage")
    assert all("content" not in c for c in calls if c["accepted"])
    # what the accepted answers were is in the drafts and critiques, hence in the event
    judges = 0 if outcome.values["decision"].get("judges_skipped") else 3  # unanimous ballots
    assert len(calls) == 3 + 6 + 3 + judges + 3 + 1 == published["usage"]["calls"]  # +1 rejected
    assert sum(len(p["versions"]) for p in published["proposals"]) == 6


async def test_a_send_carries_only_what_its_agent_uses_of_the_council(finished):
    saver, outcome, _ = finished
    judges = 0 if outcome.values["decision"].get("judges_skipped") else 3  # unanimous ballots
    payloads = [
        write[2].arg
        for step in saver.list(thread_config("once"))
        for write in step.pending_writes or []
        if write[1] == "__pregel_tasks"
    ]
    assert len(payloads) == 3 + 6 + 3 + judges + 3  # propose, critique, revise, judge, vote
    for payload in payloads:
        assert set(payload["council"]) == {"role", "rubric", "constraints", "checkers"}
