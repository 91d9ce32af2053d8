"""Retention on a real Valkey: the footprint a finished deliberation keeps, what the policy
removes (and never a resumable deliberation), and the event that still describes a pruned one.

Deliberations run through the ``council`` CLI (``demo``, simulated vLLM at time scale 0) or the
runner (simulated vLLM over HTTP); the policy is applied with an explicit ``now`` so ages are
exact, without waiting.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import nats
import pytest
import structlog
import valkey.asyncio as avalkey
from prometheus_client import generate_latest

from council_agents.core.context import Context
from council_agents.core.errors import CouncilError
from council_agents.core.request import admit, with_admission
from council_agents.core.settings import (
    EventSettings,
    LLMSettings,
    RetentionSettings,
    Settings,
    StorageSettings,
)
from council_agents.server import retention
from council_agents.server.app import create_app
from council_agents.server.runner import Deliberations, thread_config
from council_agents.storage import compaction
from council_agents.storage.checkpoints import read_thread
from council_agents.storage.keys import checkpoint_key, lease_key, thread_key, writes_key
from council_agents.storage.markers import done_marker
from council_agents.storage.saver import client_url, valkey_saver
from tests.helpers import ROOT, TASKS, deliberate, sim_admin, sim_requests

DAY = 86400.0


def council(tmp_path: Path, valkey_url: str, nats_url: str, *args: str) -> str:
    env = {
        **os.environ,
        "VALKEY_URL": valkey_url,
        "NATS_URL": nats_url,
        "COUNCIL_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "council_agents.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def demo(tmp_path: Path, valkey_url: str, nats_url: str, *args: str) -> tuple[str, dict]:
    thread_id = f"ret-{uuid.uuid4().hex[:8]}"
    flags = ["--time-scale", "0", "--quiet", "--json", "--id", thread_id, *args]
    out = council(tmp_path, valkey_url, nats_url, "demo", *flags)
    return thread_id, json.loads(out[: out.rindex("}") + 1])


@pytest.fixture
async def client(valkey_url):
    c = avalkey.from_url(client_url(valkey_url))
    yield c
    await c.aclose()


async def keys_of(client, thread_id: str) -> dict[str, int]:
    """Every key of a thread (its hash tag) with its MEMORY USAGE."""
    keys = [k.decode() async for k in client.scan_iter(match=f"*{{{thread_id}}}*", count=1000)]
    return {k: await client.memory_usage(k, samples=0) for k in keys}


def event_bytes(event: dict) -> int:
    return len(json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode())


@pytest.mark.parametrize("rounds", ["1", "2"])
async def test_a_finished_deliberation_keeps_at_most_twice_its_event(
    tmp_path, client, valkey_url, nats_url, rounds
):
    thread_id, event = demo(tmp_path, valkey_url, nats_url, "--rounds", rounds)

    kept = await keys_of(client, thread_id)
    kinds = sorted(k.split(":{", 1)[0] for k in kept)
    assert kinds == ["checkpoint", "council:done", "thread"]  # compacted as it finished
    assert sum(kept.values()) <= 2 * event_bytes(event)
    # what is left expires a day after the finish; the marker after 30 days
    ttl = {k.split(":{", 1)[0]: await client.ttl(k) for k in kept}
    assert DAY - 120 < ttl["checkpoint"] <= DAY and DAY - 120 < ttl["thread"] <= DAY
    assert 30 * DAY - 120 < ttl["council:done"] <= 30 * DAY
    # and it still answers: the same event, rebuilt from the final checkpoint
    again = council(tmp_path, valkey_url, nats_url, "resume", thread_id, "--json", "--quiet")
    assert json.loads(again[: again.rindex("}") + 1]) == event


async def test_dry_run_changes_nothing(tmp_path, client, valkey_url, nats_url, monkeypatch):
    monkeypatch.setenv("COUNCIL_RETAIN_HISTORY", "1h")
    thread_id, _ = demo(tmp_path, valkey_url, nats_url)
    monkeypatch.delenv("COUNCIL_RETAIN_HISTORY")
    before = await keys_of(client, thread_id)
    # history kept: every checkpoint of the run, the writes of each but the newest, the list.
    # How many checkpoints depends on the steps the run took (a ground step after each draft
    # stage; judges only when the ballots are not unanimous; revise only with severe critiques)
    ids = [i.decode() for i in await client.lrange(thread_key(thread_id), 0, -1)]
    assert len(ids) > 1  # not compacted (compaction keeps one)
    assert set(before) == (
        {checkpoint_key(thread_id, i) for i in ids}
        | {writes_key(thread_id, i) for i in ids[1:]}  # the list holds the newest first
        | {thread_key(thread_id)}
    )

    flags = ["--dry-run", "--history", "0", "--thread", thread_id]
    out = council(tmp_path, valkey_url, nats_url, "prune", *flags)
    assert f"{thread_id}" in out and "would be compacted" in out
    assert await keys_of(client, thread_id) == before

    out = council(
        tmp_path, valkey_url, nats_url, "prune", "--history", "0", "--thread", thread_id, "--json"
    )
    row = json.loads(out.splitlines()[0])
    assert row["verb"] == "compact" and row["done"] and row["bytes_after"] < row["bytes_before"]
    assert len(await keys_of(client, thread_id)) == 3


async def _finished(saver, sim, thread_id: str) -> None:
    settings = Settings(
        llm=LLMSettings(base_url=sim.base_url), retention=RetentionSettings(history_s=DAY)
    )  # history kept
    inp = {"task": TASKS[0]["task"], "role": "DEV", "rounds": 1}
    assert (await deliberate(saver, thread_id, inp, None, settings)).status == "completed"


async def _failed(saver, sim, thread_id: str) -> None:
    httpx.post(
        sim_admin(sim, "/admin/faults"),
        json={"kind": "http_500", "probability": 1.0, "stage": "critique"},
    ).raise_for_status()
    settings = Settings(llm=LLMSettings(base_url=sim.base_url, max_retries=0))
    with pytest.raises(CouncilError):
        await deliberate(saver, thread_id, {"task": TASKS[1]["task"], "rounds": 1}, None, settings)
    httpx.delete(sim_admin(sim, "/admin/faults"))


async def _waiting(saver, sim, thread_id: str) -> None:
    settings = Settings(llm=LLMSettings(base_url=sim.base_url))
    inp = {"task": TASKS[2]["task"], "rounds": 0}
    outcome = await deliberate(saver, thread_id, inp, Context(require_approval=True), settings)
    assert outcome.status == "interrupted"


async def _unfinished(saver, sim, thread_id: str) -> None:
    """Stopped before select, as if its process had died there."""
    settings = Settings(llm=LLMSettings(base_url=sim.base_url))
    deliberations = Deliberations(settings, saver)
    inp = {"task": TASKS[3]["task"], "rounds": 0}
    admission = admit(inp, None, None, settings.llm)
    await deliberations.graph.ainvoke(
        admission["input"],
        with_admission(thread_config(thread_id), admission),
        interrupt_before=["select"],
        durability="sync",
    )


async def test_the_policy_removes_exactly_what_it_says_and_never_a_resumable_one(
    sim, client, valkey_url
):
    tag = uuid.uuid4().hex[:6]
    ids = {kind: f"ret-{kind}-{tag}" for kind in ("finished", "failed", "waiting", "unfinished")}
    async with valkey_saver(valkey_url) as saver:
        for kind, make in (
            ("finished", _finished),
            ("failed", _failed),
            ("waiting", _waiting),
            ("unfinished", _unfinished),
        ):
            await make(saver, sim, ids[kind])
    threads = {kind: await read_thread(client, tid) for kind, tid in ids.items()}
    assert {kind: t.status for kind, t in threads.items()} == {
        "finished": "finished",
        "failed": "failed",
        "waiting": "waiting",
        "unfinished": "unfinished",
    }
    assert threads["unfinished"].next == ["select"] and threads["waiting"].next == ["approve"]
    before = {kind: await keys_of(client, tid) for kind, tid in ids.items()}
    only = list(ids.values())
    now = time.time()

    # the default policy, two days later: the finished one is gone (its marker stays for 30
    # days); every resumable one is left exactly as it was
    swept = await retention.sweep(
        client, retention.Policy(), now=now + 2 * DAY, only=only, measure=True
    )
    verbs = {a.thread_id: (a.verb, a.done) for a in swept.actions}
    assert verbs[ids["finished"]] == ("delete", True)
    assert all(verbs[ids[k]] == ("keep", False) for k in ("failed", "waiting", "unfinished"))
    assert list(await keys_of(client, ids["finished"])) == [f"council:done:{{{ids['finished']}}}"]
    for kind in ("failed", "waiting", "unfinished"):
        assert await keys_of(client, ids[kind]) == before[kind], kind

    # a policy for resumable ones: nothing younger than it goes ...
    week = retention.Policy(unfinished_s=7 * DAY)
    swept = await retention.sweep(client, week, now=now + 6 * DAY, only=only)
    assert not [a for a in swept.actions if a.verb != "keep"]
    # ... a worker's lease protects one whatever its age ...
    await client.set(lease_key(ids["failed"]), "worker-x", px=60_000)
    swept = await retention.sweep(client, week, now=now + 8 * DAY, only=only)
    assert {a.thread_id for a in swept.actions if a.done} == {ids["waiting"], ids["unfinished"]}
    assert await keys_of(client, ids["failed"]) == {
        **before["failed"],
        lease_key(ids["failed"]): await client.memory_usage(lease_key(ids["failed"])),
    }
    # ... and once it is released, the older one goes, every key of it
    await client.delete(lease_key(ids["failed"]))
    swept = await retention.sweep(client, week, now=now + 8 * DAY, only=only)
    assert [a.thread_id for a in swept.actions if a.done] == [ids["failed"]]
    for kind in ("failed", "waiting", "unfinished"):
        assert await keys_of(client, ids[kind]) == {}, kind


async def test_a_thread_that_moves_on_while_being_compacted_is_left_as_it_was(
    sim, client, valkey_url
):
    thread_id = f"ret-race-{uuid.uuid4().hex[:6]}"
    async with valkey_saver(valkey_url) as saver:
        await _finished(saver, sim, thread_id)
        thread = await read_thread(client, thread_id)
        # someone edits the state (Studio, update_state) after the sweep read it
        graph = Deliberations(Settings(), saver).graph
        await graph.aupdate_state(thread_config(thread_id), {"constraints": "edited"})
    before = await keys_of(client, thread_id)
    plan = retention.decide(thread, retention.Policy(), time.time())
    with pytest.raises(compaction.Changed):
        await compaction.settle(
            client, thread, time.time(), expire_at=plan.expire_at, marker_until=plan.marker_until
        )
    assert await keys_of(client, thread_id) == before


async def test_a_pruned_deliberation_is_described_by_its_event(
    tmp_path, sim, client, valkey_url, nats_url
):
    thread_id, event = demo(tmp_path, valkey_url, nats_url)
    out = council(tmp_path, valkey_url, nats_url, "prune", "--finished", "0", "--thread", thread_id)
    assert "deleted" in out
    assert list(await keys_of(client, thread_id)) == [f"council:done:{{{thread_id}}}"]

    marker = await done_marker(client, thread_id)
    assert marker["published"]["stream"] == "ORCHESTRATOR_EVENTS"
    nc = await nats.connect(nats_url)
    try:
        stored = await nc.jetstream().get_msg("ORCHESTRATOR_EVENTS", marker["published"]["seq"])
    finally:
        await nc.close()
    assert json.loads(stored.data) == event
    assert stored.headers["Nats-Msg-Id"] == f"{thread_id}:completed"

    # asked again (a redelivered plan event, `council resume`): no LLM call, it says where
    n = len(sim_requests(sim))
    settings = Settings(
        llm=LLMSettings(base_url=sim.base_url), events=EventSettings(nats_url=nats_url)
    )
    async with valkey_saver(valkey_url) as saver:
        outcome = await deliberate(saver, thread_id, {"task": "again"}, None, settings)
    assert outcome.status == "pruned" and outcome.marker == marker
    assert len(sim_requests(sim)) == n
    said = council(tmp_path, valkey_url, nats_url, "resume", thread_id)
    seq = marker["published"]["seq"]
    assert f"its completed event is ORCHESTRATOR_EVENTS seq {seq}" in said


async def test_the_sweep_feeds_metrics_and_health_and_warns_about_memory(sim, valkey_url, client):
    async with valkey_saver(valkey_url) as saver:
        await _finished(saver, sim, f"ret-metrics-{uuid.uuid4().hex[:6]}")
    settings = Settings(
        storage=StorageSettings(valkey_url=valkey_url),
        retention=RetentionSettings(valkey_memory_warn=1e-9),
    )
    sweeper = retention.Sweeper(client, settings, owner=f"test-{uuid.uuid4().hex[:6]}")
    with structlog.testing.capture_logs() as logs:
        result = await sweeper.once(apply_policy=False)
    assert [e for e in logs if e["event"] == "valkey.memory_high"]
    assert result.retained["finished"] >= 1 and not [a for a in result.actions if a.done]

    assert sweeper.last is not None and sweeper.last.retained == result.retained
    assert "council_retained_deliberations" not in generate_latest().decode()  # not exported
    with retention.exported(sweeper):
        text = generate_latest().decode()
    assert 'council_retained_deliberations{status="finished"}' in text
    used = next(x for x in text.splitlines() if x.startswith("council_valkey_used_memory_bytes"))
    assert float(used.split()[-1]) > 0

    health = await retention.health(client, sweeper.last)
    assert health["ok"] and health["used_memory"] > 0 and health["retained"] == result.retained
    assert "retained" not in await retention.health(client, None)  # before any sweep

    # the served app exposes the same figures: its lifespan sweeps, and exports its figures
    # on /metrics and /healthz until it ends
    served = Settings(
        storage=StorageSettings(valkey_url=valkey_url),
        retention=RetentionSettings(prune_interval_s=3600),
    )
    app = create_app(served)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://app") as http,
    ):
        for _ in range(100):
            metrics = (await http.get("/metrics")).text
            if 'council_retained_deliberations{status="finished"}' in metrics:
                break
            await asyncio.sleep(0.1)
        health = (await http.get("/healthz")).json()
    assert 'council_retained_deliberations{status="finished"}' in metrics
    assert health["storage"]["retained"]["finished"] >= 1
    assert "council_retained_deliberations" not in generate_latest().decode()
