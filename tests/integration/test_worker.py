"""``council worker`` as real processes on real NATS JetStream and Valkey, simulated vLLM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import nats
import pytest

from council_agents.events.planning import (
    DURABLE,
    PLAN_APPROVED,
    PLANNING_STREAM,
    PlanApproved,
    publish_plan,
    thread_id_for,
)
from council_agents.events.publisher import STREAM
from council_agents.server.services import EmbeddedNats
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from council_agents.storage.councils import CouncilStore
from tests.helpers import ROOT, expected_calls, sim_admin, sim_requests, tasks_stored

TASK = "Kubernetes pods of the API are OOM-killed during traffic peaks; propose a fix."


@pytest.fixture
def jet(tmp_path):
    """A fresh nats-server per test: streams and the durable consumer start empty."""
    with EmbeddedNats(tmp_path / "nats") as n:
        yield n.url


class Workers:
    def __init__(self, tmp_path: Path, nats_url: str, valkey_url: str, llm_url: str):
        self.tmp, self.nats_url, self.valkey_url, self.llm_url = (
            tmp_path,
            nats_url,
            valkey_url,
            llm_url,
        )
        self.procs: list[subprocess.Popen] = []

    def start(
        self,
        *extra: str,
        env: dict | None = None,
        name: str = "",
        module: str = "council_agents.cli",
    ) -> subprocess.Popen:
        name = name or f"w{len(self.procs)}"
        e = {
            **os.environ,
            "NATS_URL": self.nats_url,
            "VALKEY_URL": self.valkey_url,
            "COUNCIL_LLM_BASE_URL": self.llm_url,
            "COUNCIL_DATA_DIR": str(self.tmp / "data"),
            "COUNCIL_LLM_MAX_RETRIES": "2",
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                module,
                "--log-file",
                str(self.tmp / f"{name}.jsonl"),
                "worker",
                "--ack-wait",
                "3",
                "--max-deliver",
                "4",
                "--grace",
                "5",
                *extra,
            ],
            env=e,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / f"{name}.err", "ab"),
        )
        self.procs.append(p)
        return p

    def log(self, name: str) -> list[dict]:
        f = self.tmp / f"{name}.jsonl"
        return [json.loads(x) for x in f.read_text().splitlines()] if f.exists() else []

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def workers(tmp_path, jet, valkey_url):
    made: list[Workers] = []

    def make(llm_url: str) -> Workers:
        w = Workers(tmp_path, jet, valkey_url, llm_url)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop_all()


def plan(roles=("DEVOPS",), rounds=None, **kw) -> dict:
    ev = {
        "story_id": f"S-{uuid.uuid4().hex[:6]}",
        "plan_id": f"P-{uuid.uuid4().hex[:6]}",
        "approved_by": "po",
        "roles": list(roles),
        "timestamp": datetime.now(UTC).isoformat(),
        "task": TASK,
        **kw,
    }
    if rounds is not None:
        ev["rounds"] = rounds
    return ev


async def orchestration_events(nats_url: str, wait_for: int = 0, timeout: float = 60) -> list[dict]:
    """Every event in the orchestrator stream, by sequence (waiting for ``wait_for`` of them)."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                state = (await js.stream_info(STREAM)).state
            except Exception:  # noqa: BLE001 - stream not made yet
                state = None
            if state is not None and (state.messages >= wait_for or time.monotonic() > deadline):
                out = []
                for seq in range(state.first_seq, state.last_seq + 1):
                    m = await js.get_msg(STREAM, seq)
                    out.append({"subject": m.subject, "seq": seq, **json.loads(m.data)})
                return out
            if time.monotonic() > deadline:
                return []
            await asyncio.sleep(0.3)
    finally:
        await nc.close()


async def consumer_idle(nats_url: str, timeout: float = 30) -> bool:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ci = await js.consumer_info(PLANNING_STREAM, DURABLE)
            if ci.num_pending == 0 and ci.num_ack_pending == 0:
                return True
            await asyncio.sleep(0.2)
        return False
    finally:
        await nc.close()


def finished_shas(log: list[dict]) -> list[str]:
    # a finished call: its agent and prompt (the agents share their propose prompt)
    return [f"{e['agent']}:{e['prompt_sha']}" for e in log if e["status"] == 200 and e.get("t_out")]


@pytest.mark.parametrize(
    "stage,agent,finished_before_kill",
    [
        ("propose", "agent-devops-003", 2),
        ("critique", "agent-devops-001", 5),
        ("revise", "agent-devops-002", 2),
        ("judge", "judge-devops", 0),
    ],
)
async def test_kill_9_mid_stage_then_another_worker_finishes(
    workers, stage, agent, finished_before_kill
):
    with ServerThread(SimVLLM(SimConfig(time_scale=0.01))) as sim:
        httpx.post(
            sim_admin(sim, "/admin/faults"),
            json={"kind": "stall", "stage": stage, "agent": agent, "nth": 1, "stall_seconds": 60},
        )
        w = workers(sim.base_url)
        if stage == "judge":  # judge+vote skips the judges on unanimous ballots: judge alone
            store = CouncilStore(w.valkey_url)
            spec = await store.get("devops")
            assert spec is not None and await store.delete("devops")
            assert await store.create(spec.model_copy(update={"aggregator": "judge"}))
            await store.aclose()
        first = w.start(name="first")
        ev = plan()
        await publish_plan(w.nats_url, ev)
        did = thread_id_for(PlanApproved.model_validate(ev), "DEVOPS")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            log = sim_requests(sim)
            stalled = [e for e in log if e["stage"] == stage and e["agent"] == agent]
            done = [e for e in log if e["stage"] == stage and e.get("t_out") and e["status"] == 200]
            if stalled and len(done) >= finished_before_kill:
                break
            await asyncio.sleep(0.05)
        assert stalled, f"never reached {stage}"
        # the other tasks of the stalled one's step (with aggregator judge the other two
        # rotations' judgements and the votes run together) have their writes in Valkey: what
        # the next worker keeps
        others = {"propose": 2, "critique": 5, "revise": 2, "judge": 2 + 3}[stage]
        assert tasks_stored(w.valkey_url, did, others) == others
        first.send_signal(signal.SIGKILL)
        first.wait()
        before = sim_requests(sim)
        httpx.delete(sim_admin(sim, "/admin/faults"))
        w.start(name="second")
        events = await orchestration_events(w.nats_url, wait_for=1, timeout=60)
        assert await consumer_idle(w.nats_url)
        after = sim_requests(sim)[len(before) :]
    completed = [e for e in events if e["subject"] == "orchestration.deliberation.completed"]
    assert [e["deliberation_id"] for e in completed] == [did]
    assert completed[0]["story_id"] == ev["story_id"] and completed[0]["task_id"] == ev["plan_id"]
    shas = finished_shas(before + after)
    made = sum(expected_calls(completed[0]).values())  # the revisers; judges unless unanimous
    assert len(shas) == len(set(shas)) == made, "a finished LLM call was made again"
    assert (stage, agent) in [
        (e["stage"], e["agent"]) for e in after
    ]  # the unfinished one ran again


async def test_kill_9_between_publish_and_ack(workers):
    with ServerThread(SimVLLM(SimConfig(time_scale=0.002))) as sim:
        w = workers(sim.base_url)
        first = w.start(name="first", module="tests.worker_dies_before_ack")
        ev = plan(rounds=0)
        await publish_plan(w.nats_url, ev)
        assert first.wait(timeout=60) == -signal.SIGKILL
        n_calls = len(sim_requests(sim))
        w.start(name="second")
        assert await consumer_idle(w.nats_url, timeout=60)
        events = await orchestration_events(w.nats_url, wait_for=1)
        assert len(sim_requests(sim)) == n_calls == 9  # finished: nothing asked of the LLM again
    assert [e["subject"] for e in events] == ["orchestration.deliberation.completed"]
    republished = [x for x in w.log("second") if x["event"] == "worker.republished"]
    assert republished and republished[0]["duplicate"] is True


async def test_two_workers_share_fifty_events_exactly_once(workers):
    with ServerThread(SimVLLM(SimConfig(time_scale=0.002))) as sim:
        w = workers(sim.base_url)
        w.start("--concurrency", "8", "--ack-wait", "10", name="a")
        w.start("--concurrency", "8", "--ack-wait", "10", name="b")
        evs = [
            plan(roles=[("DEV", "QA", "DATA", "DEVOPS", "ARCHITECT")[i % 5]], rounds=0)
            for i in range(50)
        ]
        for ev in evs:
            await publish_plan(w.nats_url, ev)
        events = await orchestration_events(w.nats_url, wait_for=50, timeout=180)
        assert await consumer_idle(w.nats_url)
    ids = [e["deliberation_id"] for e in events if e["subject"].endswith("completed")]
    assert len(ids) == len(set(ids)) == 50
    assert set(ids) == {
        thread_id_for(PlanApproved.model_validate(ev), ev["roles"][0]) for ev in evs
    }
    acked = {
        name: sum(1 for x in w.log(name) if x["event"] == "worker.acked") for name in ("a", "b")
    }
    assert acked["a"] > 0 and acked["b"] > 0 and acked["a"] + acked["b"] == 50


async def test_injected_llm_faults_are_survived(workers):
    cfg = SimConfig(time_scale=0.002)
    with ServerThread(SimVLLM(cfg)) as sim:
        for rule in (
            {"kind": "http_500", "probability": 0.1},
            {"kind": "drop", "probability": 0.05},
            {"kind": "http_429", "probability": 0.05},
            {"kind": "stall", "nth": 7, "stall_seconds": 20},
            {"kind": "invalid_json", "stage": "judge", "nth": 1},
            {"kind": "truncated_json", "stage": "judge", "nth": 2},
        ):
            httpx.post(sim_admin(sim, "/admin/faults"), json=rule)
        w = workers(sim.base_url)
        w.start("--concurrency", "6", env={"COUNCIL_LLM_TIMEOUT": "1.5"})
        evs = [plan(roles=["DEV", "QA"], rounds=1) for _ in range(5)]
        for ev in evs:
            await publish_plan(w.nats_url, ev)
        events = await orchestration_events(w.nats_url, wait_for=10, timeout=180)
        assert await consumer_idle(w.nats_url, timeout=60)
        faults = {e["fault"] for e in sim_requests(sim) if e["fault"]}
    assert {"http_500", "stall", "invalid_json", "truncated_json"} <= faults
    ids = [e["deliberation_id"] for e in events if e["subject"].endswith("completed")]
    assert len(ids) == len(set(ids)) == 10
    assert not [e for e in events if e["subject"].endswith("failed")]


async def test_permanent_fault_yields_a_failed_event_with_its_reason(workers):
    with ServerThread(SimVLLM(SimConfig(time_scale=0.002))) as sim:
        httpx.post(
            sim_admin(sim, "/admin/faults"),
            json={
                "kind": "http_500",
                "probability": 1.0,
                "agent": "agent-qa-002",
                "stage": "propose",
            },
        )
        w = workers(sim.base_url)
        w.start("--max-deliver", "2", env={"COUNCIL_LLM_MAX_RETRIES": "0"})
        ev = plan(roles=["QA"], rounds=0)
        await publish_plan(w.nats_url, ev)
        events = await orchestration_events(w.nats_url, wait_for=1, timeout=60)
        assert await consumer_idle(w.nats_url)
    assert len(events) == 1
    failed = events[0]
    assert failed["subject"] == "orchestration.deliberation.failed"
    assert (
        failed["stage"] == "propose"
        and failed["agent_id"] == "agent-qa-002"
        and failed["role"] == "QA"
    )
    assert "answered 500" in failed["reason"] and "max_deliver" in failed["reason"]


async def test_malformed_events_are_named_and_not_redelivered(workers, jet):
    with ServerThread(SimVLLM(SimConfig(time_scale=0.002))) as sim:
        w = workers(sim.base_url)
        w.start(name="w")
        await publish_plan(jet, plan(rounds=0))  # creates the stream; one good event too
        nc = await nats.connect(jet)
        js = nc.jetstream()
        good = plan()
        for body in (
            b"not json at all",
            json.dumps({"story_id": "S-1", "roles": ["DEV"], "task": "x"}).encode(),
            json.dumps({**good, "roles": ["DEV", "CEO"]}).encode(),
            json.dumps({**good, "task": "  "}).encode(),
            json.dumps({**good, "task": "x" * 8001}).encode(),
            json.dumps(
                {
                    "idempotency_key": "k",
                    "event_type": "planning.plan.approved",
                    "payload": {**good, "roles": []},
                }
            ).encode(),
        ):
            await js.publish(PLAN_APPROVED, body, headers={"Nats-Msg-Id": uuid.uuid4().hex})
        await nc.close()
        events = await orchestration_events(jet, wait_for=7, timeout=60)
        assert await consumer_idle(jet)
        await asyncio.sleep(4)  # past ack_wait: nothing comes back
    failed = sorted(e["reason"] for e in events if e["subject"].endswith("failed"))
    assert len(failed) == 6
    text = "\n".join(failed)
    for needle in (
        "not JSON",
        "plan_id: Field required",
        "unknown role(s) ['CEO']",
        "no task",
        "roles: List should have at least 1 item",
        "task: String should have at most 8000 characters (got 8001)",
    ):
        assert needle in text, needle
    # five never parse (poison); one parses but its DEV deliberation is refused at admission
    assert sum(1 for x in w.log("w") if x["event"] == "worker.poison") == 5
    refused = [x for x in w.log("w") if x["event"] == "worker.gave_up"]
    assert len(refused) == 1 and "at most 8000 characters" in refused[0]["errors"][0]
    assert len([e for e in events if e["subject"].endswith("completed")]) == 1


async def test_envelope_and_sigterm_hand_back(workers):
    with ServerThread(SimVLLM(SimConfig(time_scale=0.01))) as sim:
        httpx.post(
            sim_admin(sim, "/admin/faults"),
            json={"kind": "stall", "stage": "critique", "nth": 1, "stall_seconds": 60},
        )
        w = workers(sim.base_url)
        first = w.start(name="first")
        inner = plan(roles=["DATA"])
        await publish_plan(
            w.nats_url,
            {
                "idempotency_key": f"k-{inner['plan_id']}",
                "correlation_id": "c-1",
                "event_type": "planning.plan.approved",
                "producer": "planning",
                "payload": inner,
            },
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not [
            e
            for e in sim_requests(sim)
            if e["stage"] == "critique" and e.get("t_out") and e["status"] == 200
        ]:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0  # graceful: waits `grace`, hands the message back, exits
        assert any(x["event"] == "worker.handed_back" for x in w.log("first"))
        before = sim_requests(sim)
        httpx.delete(sim_admin(sim, "/admin/faults"))
        w.start(name="second")
        events = await orchestration_events(w.nats_url, wait_for=1, timeout=60)
        after = sim_requests(sim)[len(before) :]
    assert [e["deliberation_id"] for e in events] == [
        thread_id_for(PlanApproved.model_validate(inner), "DATA")
    ]
    shas = finished_shas(before + after)
    made = sum(expected_calls(events[0]).values())  # the revisers; judges unless unanimous
    assert len(shas) == len(set(shas)) == made
