"""The fast tier: the whole graph in-process (LangGraph's in-memory saver, the simulated vLLM
in a thread at time scale 0), end to end in seconds.
"""

from __future__ import annotations

import httpx
import httpx2
import openai
import pytest
from langgraph.checkpoint.memory import InMemorySaver

from council_agents.core.context import Context
from council_agents.core.errors import LLMUnreachable, broken_stream
from council_agents.core.request import RequestError
from council_agents.core.settings import LLMSettings, Settings
from council_agents.llm.client import LLM
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM, Truth
from tests.helpers import TASKS, deliberate, sim_requests


@pytest.fixture(scope="module")
def fast_sim():
    # critiques always find a major defect: every round runs (convergence is tested elsewhere)
    truth = Truth(major_until_round=99)
    with ServerThread(SimVLLM(SimConfig(time_scale=0, truth=truth))) as sim:
        yield sim


@pytest.fixture
def settings(fast_sim):
    return Settings(llm=LLMSettings(base_url=fast_sim.base_url))


@pytest.mark.parametrize("rounds,agents", [(0, 2), (1, 3), (2, 4)])
async def test_deliberation_end_to_end(fast_sim, settings, rounds, agents):
    task = TASKS[0]
    did = f"fast-{rounds}-{agents}"
    outcome = await deliberate(
        InMemorySaver(),
        did,
        {"task": task["task"], "role": task["role"], "rounds": rounds, "rubric": task["rubric"]},
        Context(agents=agents),
        settings,
    )
    assert outcome.status == "completed"
    values = outcome.values
    event = values["result"].model_dump(mode="json")
    assert values["published"] == {}  # no NATS configured: not published, and said so
    assert event["rounds"] == rounds and len(event["proposals"]) == agents
    assert all(len(p["versions"]) == rounds + 1 for p in event["proposals"])
    assert all(len(p["critiques_received"]) == rounds * (agents - 1) for p in event["proposals"])
    assert event["winner"]["author"]["agent_id"] == values["decision"]["winner"]
    judges = agents if agents > 2 else 2  # one judgement per rotation of the order (a pair at 2)
    if values["decision"].get("judges_skipped"):  # the ballots came first and were unanimous
        judges = 0
    calls = agents + rounds * (agents * (agents - 1) + agents) + judges + agents  # N votes
    assert event["usage"]["calls"] == calls == len(values["calls"])
    asked = [e for e in sim_requests(fast_sim) if e["deliberation"] == did]
    assert len(asked) == calls
    assert {c["model"] for c in values["calls"]} == {"Qwen/Qwen3-0.6B"}  # adopted at preflight


async def test_finished_deliberation_is_replayed_not_rerun(fast_sim, settings):
    saver = InMemorySaver()
    inp = {"task": TASKS[1]["task"], "role": "DEV", "rounds": 0}
    first = await deliberate(saver, "replay", inp, None, settings)
    n = len(sim_requests(fast_sim))
    second = await deliberate(saver, "replay", inp, None, settings)
    assert (first.status, second.status) == ("completed", "replayed")
    assert second.values["result"] == first.values["result"]
    assert len(sim_requests(fast_sim)) == n


async def test_approval_interrupts_then_override_names_the_reason(settings):
    saver = InMemorySaver()
    outcome = await deliberate(
        saver,
        "approve",
        {"task": TASKS[2]["task"], "rounds": 0},
        Context(require_approval=True),
        settings,
    )
    assert outcome.status == "interrupted" and outcome.pending == ["approve"]
    last = outcome.interrupts[0]["ranking"][-1]["agent_id"]
    answer = {"winner": last, "reason": "cheaper to run"}
    done = await deliberate(saver, "approve", None, None, settings, answer=answer)
    assert done.status == "completed"
    assert done.values["result"].winner.author.agent_id == last
    assert done.values["result"].stop_reason == "human_override"
    assert done.values["result"].justification == "Human override: cheaper to run"
    again = await deliberate(saver, "approve", None, None, settings)
    assert again.status == "replayed" and again.values["result"] == done.values["result"]


async def test_refused_request_fails_in_prepare_with_the_field(settings):
    with pytest.raises(RequestError, match="^role: unknown role 'CEO'"):
        await deliberate(InMemorySaver(), "ceo", {"task": "t", "role": "CEO"}, None, settings)


def test_only_a_stream_broken_mid_answer_is_retried_by_the_stage():
    request = httpx2.Request("POST", "http://llm/v1/chat/completions")
    mid_stream = openai.APIConnectionError(request=request)
    mid_stream.__cause__ = httpx2.RemoteProtocolError("peer closed connection")
    refused = openai.APIConnectionError(request=request)
    refused.__cause__ = httpx2.ConnectError("connection refused")
    wrap = LLMUnreachable("propose", "a", "x")
    wrap.__cause__ = mid_stream
    assert broken_stream(wrap) and broken_stream(mid_stream)
    assert not broken_stream(refused) and not broken_stream(ValueError("no"))
    assert not broken_stream(httpx.ConnectError("legacy"))


async def test_a_call_to_an_endpoint_off_the_allow_list_is_refused_before_it_leaves():
    from council_agents.core.errors import CouncilError

    agent = {
        "agent_id": "a",
        "role": "DEV",
        "model": "m",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_name": None,
        "temperature": 0.0,
        "seed": None,
    }
    with pytest.raises(CouncilError, match="is not on this server's allow-list"):
        await LLM(LLMSettings(base_url="http://127.0.0.1:8/v1")).call(
            agent,
            [],
            stage="propose",
            round_=0,
            deliberation_id="d",
            max_tokens=10,
        )
