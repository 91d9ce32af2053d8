"""The production runtime (``council serve --production``) and the worker's probes, as the
image runs them (docs/DEPLOY.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from council_agents.server.services import free_port
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from tests.helpers import ROOT, Served

TASK = "Roll out the new rate limiter behind a flag and watch its error budget."


def test_production_runtime_serves_the_graph_behind_auth(tmp_path, valkey_url, nats_url):
    with ServerThread(SimVLLM(SimConfig(time_scale=0))) as sim:
        served = Served(
            tmp_path, valkey_url, nats_url, sim.base_url, extra_args=("--production", "--jobs", "4")
        ).start()
        try:
            assert httpx.post(served.url + "/threads", json={}).status_code == 401
            bypass = httpx.post(
                served.url + "/threads", json={}, headers={"x-auth-scheme": "langsmith"}
            )
            assert bypass.status_code == 401  # no Studio bypass in production
            r = served.http.post(
                "/runs/wait",
                json={
                    "assistant_id": "council",
                    "input": {"task": TASK, "role": "DEVOPS", "rounds": 0},
                },
            )
            assert r.status_code == 200, r.text
            assert r.json()["result"]["winner"]["author"]["agent_id"].startswith("agent-devops-")
            assert httpx.get(served.url + "/healthz").status_code == 200
        finally:
            served.stop()
    assert (tmp_path / "data" / ".langgraph_api").is_dir()  # runtime files in the data dir


def test_production_refuses_embedded_servers(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("VALKEY_URL", "NATS_URL")}
    env.update(COUNCIL_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "council_agents.cli",
            "serve",
            "--production",
            "--port",
            str(free_port()),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "council: error: --production: set VALKEY_URL and NATS_URL "
        "(no embedded servers in production)"
    )


def test_worker_serves_health_and_metrics(tmp_path, valkey_url, nats_url):
    port = free_port()
    env = {
        **os.environ,
        "VALKEY_URL": valkey_url,
        "NATS_URL": nats_url,
        "COUNCIL_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "council_agents.cli", "worker", "--metrics-port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, health = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health is not None and health.status_code == 200, health
        assert health.json()["valkey"]["ok"] and health.json()["nats"]["ok"]
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "council_deliberations_started" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
