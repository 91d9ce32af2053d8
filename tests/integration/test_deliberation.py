"""Full deliberations on real valkey-server, nats-server and the simulated vLLM over HTTP."""

from __future__ import annotations

import json
import uuid

import httpx
import jsonschema
import nats
import pytest
import valkey.asyncio as avalkey

from council_agents.core.context import Context
from council_agents.core.events import DeliberationCompleted
from council_agents.core.settings import EventSettings, LLMSettings, Settings, StorageSettings
from council_agents.events.publisher import COMPLETED_SUBJECT, STREAM, Publisher
from council_agents.storage.saver import valkey_saver
from tests.helpers import ROOT, TASKS, deliberate, expected_calls, sim_admin, sim_requests

TASK = TASKS[4]  # t05, ARCHITECT


def overlapping(entries: list[dict]) -> bool:
    """True when every call of the list was in flight at one common instant."""
    return max(e["t_in"] for e in entries) < min(e["t_out"] for e in entries)


async def completed_subscription(nats_url: str):
    ensure = Publisher(nats_url)
    await ensure.connect()  # ensures the stream
    await ensure.close()
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    from nats.js.api import ConsumerConfig, DeliverPolicy

    sub = await js.pull_subscribe(
        COMPLETED_SUBJECT, stream=STREAM, config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
    )
    return nc, sub


async def receive_for(sub, deliberation_id: str) -> tuple[dict, dict]:
    for _ in range(20):
        for msg in await sub.fetch(10, timeout=5):
            await msg.ack()
            data = json.loads(msg.data)
            if data["deliberation_id"] == deliberation_id:
                return data, dict(msg.headers or {})
    raise AssertionError(f"no completed event for {deliberation_id}")


@pytest.fixture
def timed_sim():
    """Calls long enough (tens of ms) that overlap in time means real concurrency."""
    from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM

    with ServerThread(SimVLLM(SimConfig(time_scale=0.05))) as s:
        yield s


@pytest.mark.parametrize("rounds", [1, 2])
async def test_full_deliberation_publishes_a_valid_event(timed_sim, valkey_url, nats_url, rounds):
    sim = timed_sim
    did = f"it-{rounds}-{uuid.uuid4().hex[:8]}"
    nc, sub = await completed_subscription(nats_url)
    ctx = Settings(llm=LLMSettings(base_url=sim.base_url), events=EventSettings(nats_url=nats_url))
    try:
        async with valkey_saver(valkey_url) as saver:
            values = (
                await deliberate(
                    saver,
                    did,
                    {
                        "task": TASK["task"],
                        "role": TASK["role"],
                        "rounds": rounds,
                        "story_id": "s-1",
                        "task_id": TASK["id"],
                        "rubric": TASK["rubric"],
                    },
                    None,
                    ctx,
                )
            ).values
        event, headers = await receive_for(sub, did)
    finally:
        await nc.close()

    # the event on the wire: valid against the committed JSON Schema and the pydantic model
    schema = json.loads(
        (ROOT / "docs" / "events" / "deliberation.completed.schema.json").read_text()
    )
    jsonschema.validate(event, schema)
    ev = DeliberationCompleted.model_validate(event)
    assert headers["Nats-Msg-Id"] == f"{did}:completed"
    assert (
        ev.story_id == "s-1"
        and ev.task_id == "t05"
        and ev.role == "ARCHITECT"
        and ev.rounds == rounds
    )
    assert ev.stop_reason == "rounds_completed"
    assert ev.winner.author.agent_id == ev.ranking[0].agent_id
    # the judges score the winner, unless the ballots came first and were unanimous
    assert set(ev.ranking[0].scores) == (
        set() if ev.decision.judges_skipped else set(TASK["rubric"])
    )
    assert len(ev.proposals) == 3
    for p in ev.proposals:
        assert len(p.versions) == rounds + 1
        assert len(p.critiques_received) == 2 * rounds
        assert all(c.critic != p.author.agent_id for c in p.critiques_received)
        assert all("<think>" not in v for v in p.versions)  # reasoning never reaches peers
    assert ev.winner.content == next(
        p.versions[-1] for p in ev.proposals if p.author.agent_id == ev.winner.author.agent_id
    )
    assert event["timestamp"].endswith("Z") or event["timestamp"].endswith("+00:00")

    # every call the simulator served is accounted for, per stage
    log = [e for e in sim_requests(sim) if e["deliberation"] == did]
    # targeted: only authors with a severe critique revise; the judges when the ballots split
    expected = expected_calls(event)
    assert expected["propose"] == 3 and expected["critique"] == 6 * rounds
    assert {s: sum(1 for e in log if e["stage"] == s) for s in expected} == expected
    assert {s: ev.usage.by_stage[s].calls for s in expected if expected[s]} == {
        s: n for s, n in expected.items() if n
    }
    assert ev.usage.completion_tokens == sum(e["completion_tokens"] for e in log)
    assert ev.usage.prompt_tokens == sum(e["prompt_tokens"] for e in log)
    assert len(values["calls"]) == sum(expected.values())

    # each stage's calls were in flight together (parallel, not one after another)
    for stage, rnd in [("propose", "0")] + [
        (s, str(r)) for r in range(1, rounds + 1) for s in ("critique", "revise")
    ]:
        group = [e for e in log if e["stage"] == stage and e["round"] == rnd]
        if stage == "revise" and len(group) < 2:  # only the authors with a severe critique
            continue
        assert len(group) in (2, 3, 6) and overlapping(group), (stage, rnd)

    # checkpoints are in Valkey under the thread id, compacted to the final one as it finished
    client = avalkey.from_url(valkey_url.replace("valkey://", "redis://"))
    keys = [k async for k in client.scan_iter(match=f"checkpoint:{{{did}}}:*")]
    await client.aclose()
    assert len(keys) == 1


async def test_finished_deliberation_is_not_run_again(sim, valkey_url):
    did = f"again-{uuid.uuid4().hex[:8]}"
    ctx = Settings(llm=LLMSettings(base_url=sim.base_url))
    async with valkey_saver(valkey_url) as saver:
        first = (
            await deliberate(
                saver, did, {"task": TASK["task"], "role": "ARCHITECT", "rounds": 0}, None, ctx
            )
        ).values
        n = len(sim_requests(sim))
        second = (
            await deliberate(
                saver, did, {"task": TASK["task"], "role": "ARCHITECT", "rounds": 0}, None, ctx
            )
        ).values
    assert second["result"] == first["result"]
    judges = 0 if first["decision"].get("judges_skipped") else 3  # ballots first
    assert len(sim_requests(sim)) == n == 3 + 3 + judges


async def test_failed_agent_keeps_siblings_work_and_resumes(sim, valkey_url):
    """One agent's propose fails for good: its siblings' proposals survive, resume runs only it."""
    did = f"partial-{uuid.uuid4().hex[:8]}"
    httpx.post(
        sim_admin(sim, "/admin/faults"),
        json={"kind": "http_500", "probability": 1.0, "agent": "agent-dev-002", "stage": "propose"},
    )
    ctx = Settings(llm=LLMSettings(base_url=sim.base_url, max_retries=1))
    inp = {
        "task": "Add rate limiting, 100 requests per minute per API key",
        "role": "DEV",
        "rounds": 1,
    }
    async with valkey_saver(valkey_url) as saver:
        with pytest.raises(Exception, match="500"):
            await deliberate(saver, did, inp, None, ctx)
        before = [e for e in sim_requests(sim) if e["deliberation"] == did]
        assert {e["agent"] for e in before if e["status"] == 200} == {
            "agent-dev-001",
            "agent-dev-003",
        }
        httpx.delete(sim_admin(sim, "/admin/faults"))
        values = (await deliberate(saver, did, None, None, ctx)).values
    after = [e for e in sim_requests(sim) if e["deliberation"] == did][len(before) :]
    assert [(e["stage"], e["agent"]) for e in after if e["stage"] == "propose"] == [
        ("propose", "agent-dev-002")
    ]
    assert values["result"].winner.author.model_dump()["agent_id"].startswith("agent-dev-")
    ok = [
        (e["agent"], e["prompt_sha"])  # agents share their propose prompt
        for e in sim_requests(sim)
        if e["deliberation"] == did and e["status"] == 200
    ]
    made = sum(expected_calls(values["result"].model_dump(mode="json")).values())
    assert len(ok) == len(set(ok)) == made  # no finished call was made twice


async def test_garbage_from_the_judge_is_retried_then_left_out_and_the_vote_decides(
    sim, valkey_url
):
    did = f"garbage-{uuid.uuid4().hex[:8]}"
    httpx.post(
        sim_admin(sim, "/admin/faults"),
        json={"kind": "invalid_json", "probability": 1.0, "stage": "judge"},
    )
    ctx = Settings(llm=LLMSettings(base_url=sim.base_url, answer_retries=2))
    inp = {"task": TASK["task"], "role": "ARCHITECT", "rounds": 0}
    judged_always = Context(aggregator="judge")  # judge+vote skips them on unanimous ballots
    try:
        async with valkey_saver(valkey_url) as saver:
            values = (await deliberate(saver, did, inp, judged_always, ctx)).values
    finally:
        httpx.delete(sim_admin(sim, "/admin/faults"))
    # every judgement (one per rotation) made its three attempts, each rejected: left out, named
    judged = [x for x in sim_requests(sim) if x["deliberation"] == did and x["stage"] == "judge"]
    assert len(judged) == 3 * 3
    left = values["omissions"]
    assert [o["stage"] for o in left] == ["judge"] * 3
    assert all(o["agent_id"] == "judge-architect" and o["attempts"] == 3 for o in left)
    assert all("invalid structured answer" in o["reason"] for o in left)
    # the council still decides, by the peer vote, and says why
    decision = values["decision"]
    assert decision["decided_by"] in ("vote", "tiebreak")  # the vote, or its tie-break
    assert "because every judgement was rejected" in decision["justification"]
    event = values["result"].model_dump(mode="json")
    assert len(event["decision"]["omissions"]) == 3


async def test_truncated_judgement_is_retried_with_a_larger_budget(sim, valkey_url):
    did = f"trunc-{uuid.uuid4().hex[:8]}"
    httpx.post(
        sim_admin(sim, "/admin/faults"), json={"kind": "truncated_json", "nth": 1, "stage": "judge"}
    )
    ctx = Settings(llm=LLMSettings(base_url=sim.base_url))
    inp = {"task": TASK["task"], "role": "ARCHITECT", "rounds": 0}
    judged_always = Context(aggregator="judge")  # judge+vote skips them on unanimous ballots
    async with valkey_saver(valkey_url) as saver:
        values = (await deliberate(saver, did, inp, judged_always, ctx)).values
    judged = [x for x in sim_requests(sim) if x["deliberation"] == did and x["stage"] == "judge"]
    # three judgements (rotations); the first truncated one is asked again with a larger budget
    assert sorted(s["finish_reason"] for s in judged) == ["length", "stop", "stop", "stop"]
    cut = next(s for s in judged if s["finish_reason"] == "length")
    assert max(s["max_tokens"] for s in judged) == 2 * cut["max_tokens"]
    rejected = [c for c in values["calls"] if c["stage"] == "judge" and not c["accepted"]]
    assert len(rejected) == 1 and "finish_reason=length" in rejected[0]["problem"]


async def test_prompt_edit_changes_the_next_deliberation(sim, valkey_url, tmp_path):
    import shutil

    shutil.copytree(ROOT / "prompts", tmp_path / "prompts")

    p = tmp_path / "prompts" / "propose.md"
    p.write_text(
        p.read_text().replace("## Your assignment", "## Your assignment\n" + "Zephyrquux " * 12)
    )
    ctx = Settings(llm=LLMSettings(base_url=sim.base_url, prompts_dir=tmp_path / "prompts"))
    async with valkey_saver(valkey_url) as saver:
        outcome = await deliberate(
            saver,
            f"edit-{uuid.uuid4().hex[:8]}",
            {"task": TASK["task"], "role": "ARCHITECT", "rounds": 0},
            None,
            ctx,
        )
    values = outcome.values
    # the simulator builds answers from the prompt's words: the new instruction shows up
    assert all("zephyrquux" in d["content"].lower() for d in values["drafts"])


async def test_a_stream_broken_mid_answer_retries_the_stage_task(sim, valkey_url):
    """Streaming (as the LangGraph server streams messages): the stream of one propose dies
    half-way; the openai client does not retry it, the stage's RetryPolicy does.
    """
    did = f"broken-{uuid.uuid4().hex[:8]}"
    httpx.post(
        sim_admin(sim, "/admin/faults"),
        json={"kind": "drop", "nth": 1, "stage": "propose", "agent": "agent-dev-002"},
    )
    ctx = Settings(llm=LLMSettings(base_url=sim.base_url, max_retries=0))
    modes: set[str] = set()
    async with valkey_saver(valkey_url) as saver:
        outcome = await deliberate(
            saver,
            did,
            {"task": TASK["task"], "role": "DEV", "rounds": 0},
            None,
            ctx,
            on_update=lambda mode, _: modes.add(mode),
            stream_mode=("updates", "messages"),
        )
    assert outcome.status == "completed" and "messages" in modes
    mine = [
        e
        for e in sim_requests(sim)
        if e["deliberation"] == did and e["stage"] == "propose" and e["agent"] == "agent-dev-002"
    ]
    assert [e["status"] for e in mine] == [0, 200] and all(e["stream"] for e in mine)
    assert outcome.values["result"].proposals[1].versions[0]


async def test_a_stored_council_deliberates_through_the_runner(sim, valkey_url):
    from council_agents.core.request import parse_council
    from council_agents.storage.councils import CouncilStore

    name = f"c{uuid.uuid4().hex[:8]}"
    store = CouncilStore(valkey_url)
    await store.create(
        parse_council(
            {
                "name": name,
                "role": "DATA",
                "rounds": 0,
                "agents": [
                    {"agent_id": "data-x", "temperature": 0.1},
                    {"agent_id": "data-y", "temperature": 0.9},
                ],
            }
        )
    )
    await store.aclose()
    did = f"stored-{uuid.uuid4().hex[:8]}"
    ctx = Settings(
        llm=LLMSettings(base_url=sim.base_url), storage=StorageSettings(valkey_url=valkey_url)
    )
    async with valkey_saver(valkey_url) as saver:
        outcome = await deliberate(saver, did, {"task": TASK["task"]}, Context(council=name), ctx)
    council = outcome.values["council"]
    assert council["name"] == name and council["role"] == "DATA" and council["rounds"] == 0
    asked = {e["agent"] for e in sim_requests(sim) if e["deliberation"] == did}
    assert asked == {"data-x", "data-y", "judge-data"}
