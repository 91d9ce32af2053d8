"""The real LangGraph server (``council serve``) driven with ``langgraph_sdk``."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import valkey.asyncio as avalkey
from prometheus_client.parser import text_string_to_metric_families

from council_agents.server.services import free_port
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from tests.helpers import KeptPort, Served, expected_calls, revisers

TASK = (
    "Choose between server-sent events and WebSockets for live order-status updates "
    "to 200k clients."
)


@pytest.fixture(scope="module")
def llm():
    with ServerThread(SimVLLM(SimConfig(time_scale=0.005))) as s:
        yield s


@pytest.fixture(scope="module")
def server(tmp_path_factory, valkey_url, nats_url, llm):
    s = Served(tmp_path_factory.mktemp("serve"), valkey_url, nats_url, llm.base_url).start()
    yield s
    s.stop()


async def test_run_to_completion_and_state_history(server, valkey_url):
    client = server.client()
    thread = await client.threads.create()
    out = await client.runs.wait(
        thread["thread_id"],
        "council",
        input={"task": TASK, "role": "ARCHITECT", "rounds": 1, "story_id": "S-1"},
    )
    assert out["result"]["role"] == "ARCHITECT" and out["result"]["story_id"] == "S-1"
    assert out["result"]["winner"]["author"]["agent_id"].startswith("agent-architect-")
    assert out["published"]["subject"] == "orchestration.deliberation.completed"
    history = await client.threads.get_history(thread["thread_id"], limit=100)
    steps = sorted(h["metadata"]["step"] for h in history)
    # one checkpoint per super-step: input (-1), start (0), admit, prepare, tally (3), then a
    # stage and its tally for each stage the run took: propose, ground (the checkers on the new
    # drafts), critique, revise and ground again when an author had a severe critique, vote,
    # judge unless the ballots were unanimous; then select, publish
    calls = expected_calls(out["result"])
    stages = ["propose", "ground"]
    stages += ["critique"] if calls["critique"] else []
    stages += ["revise", "ground"] if calls["revise"] else []
    stages += ["vote"] + (["judge"] if calls["judge"] else [])
    assert steps == list(range(-1, 3 + 2 * len(stages) + 2 + 1))
    v = avalkey.from_url(valkey_url.replace("valkey://", "redis://"))
    keys = [k async for k in v.scan_iter(match=f"checkpoint:{{{thread['thread_id']}}}:*")]
    await v.aclose()
    assert len(keys) >= len(history)


async def test_stream_updates_custom_and_tokens(server):
    client = server.client()
    thread = await client.threads.create()
    seen: dict[str, list] = {"updates": [], "custom": [], "messages": []}
    async for part in client.runs.stream(
        thread["thread_id"],
        "council",
        input={"task": TASK, "role": "DEVOPS", "rounds": 1},
        stream_mode=["updates", "custom", "messages-tuple"],
    ):
        kind = part.event.split("|")[0]
        if kind in seen:
            seen[kind].append(part.data)
    event = next(u["publish"]["result"] for u in seen["updates"] if "publish" in u)
    calls = expected_calls(event)  # the revisers; the judge unless the ballots were unanimous
    nodes = [n for u in seen["updates"] for n in u]
    assert (nodes.count("propose"), nodes.count("critique"), nodes.count("revise")) == (
        3,
        calls["critique"],
        calls["revise"],
    )
    assert calls["critique"] == 6  # every peer critiques every proposal in round 1
    finished = [c for c in seen["custom"] if c.get("event") == "agent_finished"]
    stages = ("propose", "critique", "vote")
    assert sorted({(c["stage"], c["agent_id"]) for c in finished}) == sorted(
        {(s, f"agent-devops-00{i}") for s in stages for i in (1, 2, 3)}
        | {("revise", a) for a in revisers(event)}
        | ({("judge", "judge-devops")} if calls["judge"] else set())
    )
    tokens = [m for m in seen["messages"] if isinstance(m, list) and m and m[0].get("content")]
    assert len(tokens) > 50  # token chunks as they are generated


async def test_interrupt_before_select_then_approve_or_override(server):
    client = server.client()
    # approve
    t1 = await client.threads.create()
    await client.runs.wait(
        t1["thread_id"],
        "council",
        input={"task": TASK, "role": "DEV", "rounds": 0},
        context={"require_approval": True},
    )
    state = await client.threads.get_state(t1["thread_id"])
    assert state["next"] == ["approve"]
    question = state["tasks"][0]["interrupts"][0]["value"]
    assert (
        len(question["ranking"]) == 3 and question["winner"] == question["ranking"][0]["agent_id"]
    )
    out = await client.runs.wait(t1["thread_id"], "council", command={"resume": {"approved": True}})
    assert out["result"]["stop_reason"] == "rounds_completed"
    assert out["result"]["approved_by_human"] is True
    assert out["result"]["winner"]["author"]["agent_id"] == question["winner"]
    # override with the last-ranked candidate
    t2 = await client.threads.create()
    await client.runs.wait(
        t2["thread_id"],
        "council",
        input={"task": TASK, "role": "DEV", "rounds": 0},
        context={"require_approval": True},
    )
    last = (await client.threads.get_state(t2["thread_id"]))["tasks"][0]["interrupts"][0]["value"][
        "ranking"
    ][-1]
    out = await client.runs.wait(
        t2["thread_id"],
        "council",
        command={"resume": {"winner": last["agent_id"], "reason": "simplest to operate"}},
    )
    assert out["result"]["stop_reason"] == "human_override"
    assert out["result"]["winner"]["author"]["agent_id"] == last["agent_id"]
    assert "simplest to operate" in out["result"]["justification"]


@pytest.mark.parametrize(
    "inp,status,needle",
    [
        ({"role": "DEV"}, 422, "task: Field required"),
        ({"task": "  ", "role": "DEV"}, 422, "task: is empty or only whitespace"),
        ({"task": TASK, "role": "CEO"}, 422, "role: unknown role 'CEO'"),
        (
            {"task": TASK, "role": "DEV", "rounds": 99},
            422,
            "rounds: Input should be less than or equal to 5",
        ),
        (
            {"task": TASK, "role": "DEV", "rounds": "many"},
            422,
            "rounds: Input should be a valid integer",
        ),
        ({"task": TASK, "role": "DEV", "budget": 3}, 422, "budget: unknown field"),
        (
            {"task": TASK, "role": "DEV", "base_url": "http://127.0.0.1:9/v1"},
            422,
            "base_url: unknown field",
        ),
        (
            {"task": TASK, "__context__": {"council": "nope"}},
            404,
            "context.council: unknown council 'nope'; known: ",
        ),
        (
            {"task": TASK, "__context__": {"base_url": "http://127.0.0.1:9/v1"}},
            422,
            "context.base_url: unknown field",
        ),
        (
            {"task": TASK, "__context__": {"nats_url": "nats://127.0.0.1:9"}},
            422,
            "context.nats_url: unknown field",
        ),
    ],
)
def test_bad_run_requests_name_the_field(server, inp, status, needle):
    thread = server.http.post("/threads", json={}).json()
    inp = dict(inp)
    context = inp.pop("__context__", None)
    for path in (
        f"/threads/{thread['thread_id']}/runs",
        f"/threads/{thread['thread_id']}/runs/wait",
        "/runs/wait",
    ):
        r = server.http.post(
            path, json={"assistant_id": "council", "input": inp, "context": context}
        )
        assert r.status_code == status, (path, r.text)
        assert needle in r.json()["detail"]


async def test_councils_crud_use_and_survive_restart(server, tmp_path, valkey_url, nats_url, llm):
    names = [c["name"] for c in server.http.get("/councils").json()]
    assert {"dev", "qa", "architect", "devops", "data"} <= set(names)
    name = f"pair-{uuid.uuid4().hex[:6]}"
    council = {
        "name": name,
        "role": "QA",
        "rounds": 0,
        "rubric": {"coverage": "all paths"},
        "agents": [
            {"agent_id": "qa-alice", "temperature": 0.2},
            {"agent_id": "qa-bob", "temperature": 0.9},
        ],
    }
    assert server.http.post("/councils", json=council).status_code == 201
    assert server.http.post("/councils", json=council).status_code == 409
    bad = server.http.post("/councils", json={**council, "name": "x", "role": "CEO"})
    assert bad.status_code == 422 and "role: unknown role 'CEO'" in bad.json()["detail"]
    one = server.http.post(
        "/councils", json={**council, "name": "y", "agents": council["agents"][:1]}
    )
    assert one.status_code == 422 and "agents" in one.json()["detail"]

    client = server.client()
    thread = await client.threads.create()
    out = await client.runs.wait(
        thread["thread_id"], "council", input={"task": TASK}, context={"council": name}
    )
    assert out["result"]["role"] == "QA"
    assert sorted(p["author"]["agent_id"] for p in out["result"]["proposals"]) == [
        "qa-alice",
        "qa-bob",
    ]
    assert set(out["result"]["ranking"][0]["scores"]) == {"coverage"}

    # a restarted server finds the council again (it lives in Valkey)
    other = Served(tmp_path, valkey_url, nats_url, llm.base_url)
    server.stop()
    kept = KeptPort(server.port)  # the module's server comes back on its port
    other.start()
    try:
        assert other.http.get(f"/councils/{name}").json()["agents"][0]["agent_id"] == "qa-alice"
        assert other.http.delete(f"/councils/{name}").status_code == 204
        assert other.http.get(f"/councils/{name}").status_code == 404
        assert other.http.delete(f"/councils/{name}").status_code == 404
    finally:
        other.stop()
        kept.release()
        server.start()


def test_healthz_and_metrics(server):
    h = server.http.get("/healthz")
    assert h.status_code == 200, h.text
    body = h.json()
    assert body["valkey"]["ok"] and body["nats"]["ok"] and body["llm"]["ok"]
    r = server.http.post(
        "/runs/wait",
        json={
            "assistant_id": "council",
            "input": {
                "task": "Plan a zero-downtime split of the events table",
                "role": "DATA",
                "rounds": 1,
            },
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text
    text = server.http.get("/metrics").text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "council_deliberations_started",
        "council_deliberations_completed",
        "council_llm_calls",
        "council_llm_tokens",
        "council_deliberation_duration_seconds",
    ):
        assert name in fams, name
    calls = {
        (s.labels["role"], s.labels["stage"])
        for s in fams["council_llm_calls"].samples
        if s.value > 0
    }
    made = expected_calls(r.json()["result"])  # the revisers; judges unless ballots unanimous
    assert {"propose", "critique", "vote"} <= {s for s, n in made.items() if n}
    assert {("DATA", s) for s, n in made.items() if n} <= calls
    started = {
        s.labels["role"]: s.value
        for s in fams["council_deliberations_started"].samples
        if s.name.endswith("_total")
    }
    assert started["DATA"] >= 1
    # the app's lifespan sweeps (counting at start-up): its figures on /metrics and /healthz
    retained = {s.labels["status"] for s in fams["council_retained_deliberations"].samples}
    assert retained >= {"finished", "failed", "waiting", "unfinished"}
    storage = server.http.get("/healthz").json()["storage"]
    assert storage["ok"] and storage["used_memory"] > 0 and "finished" in storage["retained"]


def test_healthz_reports_a_down_llm(tmp_path, valkey_url, nats_url):
    s = Served(tmp_path, valkey_url, nats_url, f"http://127.0.0.1:{free_port()}/v1").start()
    try:
        h = httpx.get(s.url + "/healthz")
        assert h.status_code == 503 and not h.json()["llm"]["ok"] and h.json()["valkey"]["ok"]
    finally:
        s.stop()


async def test_served_schemas_hold_only_what_a_caller_fills_in(server):
    client = server.client()
    assistant = (await client.assistants.search(graph_id="council"))[0]
    schemas = await client.assistants.get_schemas(assistant["assistant_id"])
    inp, out, ctx = schemas["input_schema"], schemas["output_schema"], schemas["context_schema"]
    assert inp and out and ctx, schemas
    assert set(inp["properties"]) == {
        "task",
        "role",
        "rounds",
        "constraints",
        "rubric",
        "story_id",
        "task_id",
        "deliberation_id",
    }
    assert inp["required"] == ["task"]
    assert set(out["properties"]) == {"deliberation_id", "decision", "result", "published"}
    assert set(ctx["properties"]) == {
        "council",
        "agents",
        "require_approval",
        "aggregator",
        "presentation",
        "critics",
        "token_budget",
        "checkers",
        "execute",
        "gate",
    }
    for forbidden in ("base_url", "nats_url", "api_key", "model"):
        assert forbidden not in json.dumps(inp) + json.dumps(ctx)
