"""Metrics that count deliberations: the served app's ``/metrics`` after a scripted sequence
of runs (completed, refused, failed at each stage, resumed), and the worker's ``/metrics``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import nats
from prometheus_client.parser import text_string_to_metric_families

from council_agents.server.services import EmbeddedNats, free_port
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from tests.helpers import ROOT, TASK, KeptPort, Served, cli_env, run_sync, run_wait, sim_admin


def metric_values(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every ``<name>_total`` sample of a Prometheus text, by its labels."""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{name}_total":
                values[tuple(sorted(sample.labels.items()))] = sample.value
    return values


def test_metrics_match_a_scripted_sequence_exactly(tmp_path, valkey_url):
    sim = ServerThread(SimVLLM(SimConfig(time_scale=0.002))).start()
    events = EmbeddedNats(tmp_path / "nats").start()
    server = Served(
        tmp_path, valkey_url, events.url, sim.base_url, env={"COUNCIL_LLM_MAX_RETRIES": "0"}
    ).start()
    try:
        http = server.http

        def error_of(response: httpx.Response) -> str:
            message: str = response.json()["__error__"]["message"]
            return message

        assert run_wait(http).status_code == 200  # 1: completed
        assert run_wait(http).status_code == 200  # 2: completed
        assert run_wait(http, rounds=99).status_code == 422  # 3: refused at the door
        fault = {"kind": "http_500", "stage": "critique"}
        assert httpx.post(sim_admin(sim, "/admin/faults"), json=fault).status_code == 200
        assert "critique failed for" in error_of(run_wait(http, rounds=1))  # 4: a stage fails
        httpx.delete(sim_admin(sim, "/admin/faults"))
        port = int(sim.base_url.split(":")[2].split("/")[0])
        sim.stop()
        kept = KeptPort(port)  # the simulator's port, until it restarts there
        assert "preflight failed" in error_of(run_wait(http))  # 5: prepare fails
        kept.release()
        sim = ServerThread(SimVLLM(SimConfig(time_scale=0.002)), port=port).start()
        events.stop()
        kept = KeptPort(events.port)  # NATS's port, until it restarts there
        thread = http.post("/threads", json={}).json()["thread_id"]
        assert "publish failed" in error_of(run_wait(http, thread))  # 6: publish fails
        kept.release()
        events.start()
        resumed = http.post(f"/threads/{thread}/runs/wait", json={"assistant_id": "council"})
        assert resumed.json()["published"]["duplicate"] is False  # 7: completed on resume
        again = http.post(f"/threads/{thread}/runs/wait", json={"assistant_id": "council"})
        assert again.json()["published"] == resumed.json()["published"]  # 8: nothing to do

        text = http.get("/metrics").text
        assert metric_values(text, "council_deliberations_started") == {(("role", "DEV"),): 4.0}
        assert metric_values(text, "council_deliberations_completed") == {(("role", "DEV"),): 3.0}
        assert metric_values(text, "council_deliberations_failed") == {
            (("kind", "input"), ("stage", "door")): 1.0,
            (("kind", "llm"), ("stage", "critique")): 1.0,
            (("kind", "llm"), ("stage", "prepare")): 1.0,
            (("kind", "nats"), ("stage", "publish")): 1.0,
        }
    finally:
        server.stop()
        events.stop()
        sim.stop()


def test_the_worker_serves_metrics(tmp_path, valkey_url, module_sim):
    events = EmbeddedNats(tmp_path / "nats").start()
    port = free_port()
    env = cli_env(
        tmp_path,
        VALKEY_URL=valkey_url,
        NATS_URL=events.url,
        COUNCIL_LLM_BASE_URL=module_sim.base_url,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "council_agents.cli", "worker", "--metrics-port", str(port)],
        env=env,
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        good = {
            "story_id": f"S-{uuid.uuid4().hex[:6]}",
            "plan_id": "P-1",
            "approved_by": "po",
            "roles": ["QA"],
            "task": TASK,
            "rounds": 0,
            "timestamp": "2026-01-01T00:00:00Z",
        }

        async def publish() -> None:
            nc = await nats.connect(events.url)
            js = nc.jetstream()
            from council_agents.events.publisher import ensure_stream

            await ensure_stream(js, "PLANNING_EVENTS")
            await js.publish("planning.plan.approved", b"not json")
            await js.publish("planning.plan.approved", json.dumps(good).encode())
            await nc.close()

        run_sync(publish())
        deadline = time.monotonic() + 120
        values: dict[Any, float] = {}
        while time.monotonic() < deadline:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                values = metric_values(text, "council_deliberations_completed")
                if values:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert values == {(("role", "QA"),): 1.0}
        assert metric_values(text, "council_deliberations_failed") == {
            (("kind", "input"), ("stage", "door")): 1.0
        }
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        events.stop()
