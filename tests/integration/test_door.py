"""The served app's door, against the real LangGraph server (``council serve``), Valkey and
NATS: what a caller may choose (never an endpoint), bad councils and runs refused before anything
is stored, where the served logs go, and runs submitted together that run in parallel.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import valkey

from council_agents.storage.keys import COUNCILS_KEY
from council_agents.storage.saver import client_url
from tests.helpers import ROOT, TASK, Recorder, expected_calls, run_wait, sim_requests

# ---- what a caller may choose -------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[Recorder]:
    r = Recorder({"object": "list", "data": [{"id": "m", "object": "model"}]})
    yield r
    r.close()


def test_a_caller_chosen_endpoint_is_refused_and_no_request_leaves(served, module_sim, listener):
    http = served.http
    url = listener.url + "/v1"
    nats_url = "nats://" + listener.url.removeprefix("http://")
    thread = http.post("/threads", json={}).json()["thread_id"]
    calls = len(sim_requests(module_sim))
    refused = [
        ({"base_url": url}, None, "base_url: unknown field"),
        ({"api_key": "k"}, None, "api_key: unknown field"),
        ({}, {"base_url": url}, "context.base_url: unknown field"),
        ({}, {"nats_url": nats_url}, "context.nats_url: unknown field"),
        ({}, {"llm_base_url": url}, "context.llm_base_url: unknown field"),
        ({}, {"model": "m", "endpoint": url}, "unknown field"),
        ({}, {"agents": [{"agent_id": "x", "base_url": url}]}, "context.agents"),
    ]
    for extra, context, needle in refused:
        body = {"assistant_id": "council", "input": {"task": TASK, **extra}, "context": context}
        for path in (f"/threads/{thread}/runs", "/runs/wait", "/runs/stream"):
            r = http.post(path, json=body)
            assert r.status_code == 422, (path, r.text)
            assert needle in r.json()["detail"] and "\n" not in r.json()["detail"]
        batch = http.post("/runs/batch", json=[body])
        assert batch.status_code == 422 and needle in batch.json()["detail"]
    for agent, needle in (
        ({"agent_id": "a", "base_url": url}, "not on the server's allow-list"),
        ({"agent_id": "a", "api_key": "k"}, "unknown field"),
    ):
        spec = {"name": "leak", "role": "DEV", "agents": [agent, {"agent_id": "b"}]}
        r = http.post("/councils", json=spec)
        assert r.status_code == 422 and needle in r.json()["detail"], r.text
    # nor can a council with another endpoint be planted in a deliberation's state
    planted = {
        "role": "DEV",
        "agents": [{"agent_id": "a", "role": "DEV", "model": "m", "base_url": url}],
    }
    write = http.post(
        f"/threads/{thread}/state", json={"values": {"council": planted}, "as_node": "prepare"}
    )
    assert write.status_code == 403, write.text
    superstep = {"updates": [{"values": {"council": planted}, "as_node": "prepare"}]}
    refused_thread = http.post("/threads", json={"supersteps": [superstep]})
    assert refused_thread.status_code == 422 and "supersteps" in refused_thread.json()["detail"]
    for command in ({"update": {"council": planted}}, {"goto": "propose"}, "resume"):
        body = {"assistant_id": "council", "command": command}
        r = http.post(f"/threads/{thread}/runs/wait", json=body)
        assert r.status_code == 422 and r.json()["detail"].startswith("command: "), r.text
    # a caller's configurable is refused (a run's knobs are its context): no run, no request
    for configurable in ({"base_url": url, "nats_url": nats_url}, {"council_admission": {}}):
        r = http.post(
            "/runs/wait",
            json={
                "assistant_id": "council",
                "input": {"task": TASK, "role": "DEV", "rounds": 0},
                "config": {"configurable": configurable},
            },
        )
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith("config.configurable: not accepted")
    assert listener.requests == []
    assert len(sim_requests(module_sim)) == calls
    assert http.get(f"/threads/{thread}/runs").json() == []


# ---- refused before anything is stored ----------------------------------------------------------

BAD_COUNCILS = [
    ({"agents": [{"agent_id": "a", "budget": 3}, {"agent_id": "b"}]}, "agents.0.budget"),
    ({"agents": [{"agent_id": "a"}, {"agent_id": "a"}]}, "must be unique"),
    ({"rubric": {}}, "rubric"),
    ({"agents": [{"agent_id": "a", "temperature": 99}, {"agent_id": "b"}]}, "temperature"),
    ({"agents": [{"agent_id": "a", "max_tokens": 0}, {"agent_id": "b"}]}, "max_tokens"),
    ({"agents": [{"agent_id": "a\nb"}, {"agent_id": "b"}]}, "agents.0.agent_id"),
    ({"name": "n" * 10240}, "name"),
    ({"name": "bad\nname"}, "name"),
    ({"rounds": 99}, "rounds"),
]


@pytest.mark.parametrize("change,field", BAD_COUNCILS)
def test_bad_councils_are_refused_before_anything_is_stored(served, change, field):
    spec = {
        "name": f"c-{uuid.uuid4().hex[:6]}",
        "role": "DEV",
        "agents": [{"agent_id": "a"}, {"agent_id": "b"}],
        **change,
    }
    stored = valkey.from_url(client_url(served.valkey_url))
    before = stored.hgetall(COUNCILS_KEY)
    r = served.http.post("/councils", json=spec)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert field in detail and "\n" not in detail and len(detail) < 400
    assert stored.hgetall(COUNCILS_KEY) == before


BAD_RUNS = [
    ({"rubric": {}}, None, 422, "rubric"),
    ({"rounds": 99}, None, 422, "rounds"),
    ({"task": "x" * 10000}, None, 422, "task"),
    ({"deliberation_id": "a\nb"}, None, 422, "deliberation_id"),
    ({}, {"agents": 99}, 422, "context.agents"),
    ({}, {"agents": 0}, 422, "context.agents"),
    ({}, {"temperature": 99}, 422, "context.temperature: unknown field"),
    ({}, {"max_tokens": 0}, 422, "context.max_tokens: unknown field"),
    ({}, {"council": "a\nb"}, 422, "context.council: 'a\\nb' does not match"),
    ({}, {"council": "nope"}, 404, "context.council: unknown council 'nope'"),
    ({}, {"council": "n" * 10240}, 422, "context.council"),
]


@pytest.mark.parametrize("change,context,status,field", BAD_RUNS)
def test_bad_runs_are_refused_before_anything_is_stored(
    served, module_sim, change, context, status, field
):
    http = served.http
    thread = http.post("/threads", json={}).json()["thread_id"]
    calls = len(sim_requests(module_sim))
    body = {
        "assistant_id": "council",
        "input": {"task": TASK, "role": "DEV", **change},
        "context": context,
    }
    for path in (f"/threads/{thread}/runs", f"/threads/{thread}/runs/wait", "/runs/wait"):
        r = http.post(path, json=body)
        assert r.status_code == status, (path, r.text)
        detail = r.json()["detail"]
        assert field in detail and "\n" not in detail and len(detail) < 400
    assert http.get(f"/threads/{thread}/runs").json() == []
    assert http.get(f"/threads/{thread}/state").json()["checkpoint"] is None
    assert len(sim_requests(module_sim)) == calls


# ---- logs ---------------------------------------------------------------------------------------


def test_served_logs_go_to_the_log_file_not_the_console(served):
    thread = served.http.post("/threads", json={}).json()["thread_id"]
    out = run_wait(served.http, thread)
    assert out.status_code == 200
    logged = Path(served.env["COUNCIL_DATA_DIR"]) / "logs" / "council.jsonl"
    calls = [
        json.loads(line)
        for line in logged.read_text().splitlines()
        if f'"{thread}:' in line and '"llm.call"' in line
    ]
    # 3 proposals, 3 ballots, 3 judgements (rotations) unless the ballots were unanimous
    assert len(calls) == sum(expected_calls(out.json()["result"]).values())
    assert len({c["deliberation_id"] for c in calls}) == 1  # <thread>:<run>
    assert "llm.call" not in served.log.read_text()  # the server's console
    assert not (ROOT / ".langgraph_api").exists()
    assert (Path(served.env["COUNCIL_DATA_DIR"]) / "api" / ".langgraph_api").is_dir()


# ---- concurrency --------------------------------------------------------------------------------


def most_in_flight(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


async def test_ten_runs_submitted_together_overlap(served, module_sim):
    client = served.client()
    threads = [(await client.threads.create())["thread_id"] for _ in range(10)]
    runs = await asyncio.gather(
        *(
            client.runs.create(t, "council", input={"task": TASK, "role": "QA", "rounds": 1})
            for t in threads
        )
    )
    joins = [client.runs.join(t, r["run_id"]) for t, r in zip(threads, runs, strict=True)]
    outs = await asyncio.gather(*joins)
    assert all(o["result"]["role"] == "QA" for o in outs)
    log = [e for e in sim_requests(module_sim) if e["deliberation"].split(":")[0] in threads]
    spans = {}
    for entry in log:
        start, end = spans.get(entry["deliberation"], (entry["t_in"], entry["t_out"]))
        spans[entry["deliberation"]] = (min(start, entry["t_in"]), max(end, entry["t_out"]))
    assert len(spans) == 10
    in_flight = most_in_flight(list(spans.values()))
    print(f"deliberations in flight together: {in_flight} of 10")
    assert in_flight >= 5  # one at a time (the LangGraph dev default) would give 1
