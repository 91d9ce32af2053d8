"""Decisions you can trust, proven through the graph on the simulator with a known truth:
the winner and its justification agree, averaging both orders resists a position-biased judge,
the vote decides when judges disagree, convergence and the budget stop early, and a mixed
council sends each agent's calls to its own endpoint and model.
"""

from __future__ import annotations

import re
import uuid

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from council_agents.core.context import Context
from council_agents.core.settings import LLMSettings, Settings, StorageSettings
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM, Truth
from tests.helpers import TASKS, deliberate, sim_requests

TASK = TASKS[0]
QUALITY = {"agent-dev-001": 7.0, "agent-dev-002": 5.5, "agent-dev-003": 4.0}
IDS = re.compile(r"agent-dev-\d{3}")


async def decided(sim: ServerThread, did: str, rounds: int = 0, **context) -> dict:
    outcome = await deliberate(
        InMemorySaver(),
        did,
        {"task": TASK["task"], "role": "DEV", "rounds": rounds, "rubric": TASK["rubric"]},
        Context(**context),
        Settings(llm=LLMSettings(base_url=sim.base_url)),
    )
    assert outcome.status == "completed"
    return {**outcome.values, "result": outcome.values["result"].model_dump(mode="json")}


@pytest.fixture(scope="module")
def biased_sim():
    """Judges add 3 points to whatever they read first; voters see quality with some noise."""
    truth = Truth(quality=QUALITY, position_bias=3.0, noise=0.6, vote_noise=1.0)
    with ServerThread(SimVLLM(SimConfig(time_scale=0, truth=truth))) as sim:
        yield sim


async def test_winner_and_justification_never_disagree(biased_sim):
    for i in range(12):
        values = await decided(biased_sim, f"story-{i}")
        d, event = values["decision"], values["result"]
        assert event["winner"]["author"]["agent_id"] == d["winner"] == d["ranking"][0]["agent_id"]
        assert IDS.findall(d["justification"])[0] == d["winner"]
        if d["decided_by"] == "judges":
            assert d["judges_agree"] is True
        else:
            assert d["winner"] == d["vote_winner"]
            assert "won the peer vote, which decided" in d["justification"]
        for j in values["judgements"]:  # quoted evidence is the winner's, never a loser's
            assert j["assessments"][d["winner"]]["verdict"] in d["justification"]
            for other in set(QUALITY) - {d["winner"]}:
                assert j["assessments"][other]["verdict"] not in d["justification"]
        assert event["decision"]["aggregator"] == "judge+vote"
        # the ballots first; the judges (one per rotation) only when the ballots are not unanimous
        judged = 0 if d["judges_skipped"] else 3
        assert len(event["decision"]["votes"]) == 3
        assert len(event["decision"]["judgements"]) == judged
        assert event["decision"]["judges_skipped"] == d["judges_skipped"]


async def test_both_orders_beat_one_judgement_against_position_bias(biased_sim):
    """Over many deliberations (each shows the proposals in its own order), the averaged pair
    of judgements picks the truly best proposal more often than the first judgement alone.
    """
    best = max(QUALITY, key=QUALITY.__getitem__)
    single = averaged = 0
    n = 30
    for i in range(n):
        values = await decided(biased_sim, f"bias-{i}", aggregator="judge")
        first = values["judgements"][0]
        single += max(first["totals"], key=first["totals"].__getitem__) == best
        averaged += values["decision"]["winner"] == best
    assert averaged >= single + 0.15 * n, (single, averaged)


async def test_vote_alone_needs_no_judge(biased_sim):
    values = await decided(biased_sim, "vote-only", aggregator="vote")
    assert values.get("judgements", []) == []
    assert {c["stage"] for c in values["calls"]} == {"propose", "vote"}
    assert values["decision"]["decided_by"] == "vote"


async def test_convergence_stops_early():
    truth = Truth(major_until_round=1)  # round 1 finds a major defect, round 2 only minor ones
    with ServerThread(SimVLLM(SimConfig(time_scale=0, truth=truth))) as sim:
        values = await decided(sim, "converge", rounds=4)
    event = values["result"]
    assert event["stop_reason"] == "converged" and event["rounds"] == 1 and event["max_rounds"] == 4
    stages = [(c["stage"], c["round"]) for c in values["calls"]]
    assert (
        ("critique", 2) in stages and ("revise", 2) not in stages and ("critique", 3) not in stages
    )


async def test_budget_stops_before_it_is_exceeded():
    truth = Truth(major_until_round=99)
    with ServerThread(SimVLLM(SimConfig(time_scale=0, truth=truth))) as sim:
        free = await decided(sim, "unbounded", rounds=3)
        budget = 30_000
        assert (
            free["result"]["usage"]["prompt_tokens"] + free["result"]["usage"]["completion_tokens"]
            > budget
        )  # the budget really binds
        values = await decided(sim, "bounded", rounds=3, token_budget=budget)
    event = values["result"]
    used = event["usage"]["prompt_tokens"] + event["usage"]["completion_tokens"]
    assert event["stop_reason"] == "budget" and event["rounds"] < 3 and used <= budget
    # selection still ran: the ballots, and the judges when they fit what was left (each critique
    # prompt now shows every proposal, so the token budget binds sooner: tokens served from the
    # prefix cache count like any other in it)
    assert "vote" in {c["stage"] for c in values["calls"]}


async def test_mixed_council_calls_each_agent_on_its_own_endpoint_and_model(valkey_url):
    from council_agents.core.request import parse_council
    from council_agents.storage.councils import CouncilStore

    with (
        ServerThread(SimVLLM(SimConfig(time_scale=0, model="small-a"))) as a,
        ServerThread(SimVLLM(SimConfig(time_scale=0, model="large-b"))) as b,
    ):
        settings = Settings(
            llm=LLMSettings(
                base_url=a.base_url,
                model="small-a",
                allowed_urls=(b.base_url,),
                api_keys={"COUNCIL_B_API_KEY": "key-b"},
            ),
            storage=StorageSettings(valkey_url=valkey_url),
        )
        name = f"mixed-{uuid.uuid4().hex[:6]}"
        store = CouncilStore(valkey_url)
        await store.create(
            parse_council(
                {
                    "name": name,
                    "role": "DEV",
                    "rounds": 1,
                    # the judge always runs (with judge+vote it is skipped on unanimous ballots)
                    "aggregator": "judge",
                    "agents": [
                        {"agent_id": "on-a-1"},
                        {"agent_id": "on-a-2"},
                        {
                            "agent_id": "on-b",
                            "base_url": b.base_url,
                            "model": "large-b",
                            "api_key_name": "COUNCIL_B_API_KEY",
                        },
                    ],
                    "judge": {
                        "agent_id": "judge-b",
                        "base_url": b.base_url,
                        "model": "large-b",
                        "temperature": 0,
                    },
                },
                settings.llm,
            )
        )
        await store.aclose()
        outcome = await deliberate(
            InMemorySaver(), "mixed", {"task": TASK["task"]}, Context(council=name), settings
        )
        on_a, on_b = sim_requests(a), sim_requests(b)
    assert outcome.status == "completed"
    assert {e["agent"] for e in on_a} == {"on-a-1", "on-a-2"}
    assert {e["model"] for e in on_a} == {"small-a"}
    assert {e["agent"] for e in on_b} == {"on-b", "judge-b"}
    assert {e["model"] for e in on_b} == {"large-b"}
    models = {
        a["agent_id"]: a["model"]
        for a in outcome.values["result"].model_dump(mode="json")["agents"]
    }
    assert models == {"on-a-1": "small-a", "on-a-2": "small-a", "on-b": "large-b"}
    event = outcome.values["result"].model_dump(mode="json")
    assert event["decision"]["judges"] == [{"agent_id": "judge-b", "model": "large-b"}]
