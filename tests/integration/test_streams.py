"""``council streams``: the streams and the workers' consumer, declared by a one-shot command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import nats

from council_agents.server.services import EmbeddedNats, free_port
from tests.helpers import ROOT


def streams(nats_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NATS_URL": nats_url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "council_agents.cli", "streams", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


async def info(url: str) -> tuple[dict, dict]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    out = {n: (await js.stream_info(n)).config for n in ("PLANNING_EVENTS", "ORCHESTRATOR_EVENTS")}
    consumer = await js.consumer_info("PLANNING_EVENTS", "orch-planning-plan-approved")
    await nc.close()
    return out, consumer.config


def test_streams_are_created_then_updated(tmp_path):
    with EmbeddedNats(tmp_path / "nats") as n:
        first = streams(n.url, "--ack-wait", "30", "--max-deliver", "7")
        assert first.returncode == 0, first.stderr
        assert "created stream PLANNING_EVENTS" in first.stdout
        assert "consumer orch-planning-plan-approved" in first.stdout
        configs, consumer = asyncio.run(info(n.url))
        assert consumer.filter_subject == "planning.plan.approved" and consumer.max_deliver == 7
        again = streams(n.url)  # the defaults, applied to what exists
        assert again.returncode == 0 and "updated stream ORCHESTRATOR_EVENTS" in again.stdout
        _, consumer = asyncio.run(info(n.url))
    assert configs["PLANNING_EVENTS"].subjects == ["planning.>"]
    assert configs["ORCHESTRATOR_EVENTS"].duplicate_window == 24 * 3600
    assert consumer.max_deliver == 5


def test_unreachable_nats_is_one_named_line_and_exit_5():
    url = f"nats://127.0.0.1:{free_port()}"
    r = streams(url)
    assert r.returncode == 5, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and url in lines[0]
