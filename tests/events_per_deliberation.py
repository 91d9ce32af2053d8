"""Count completed events per deliberation on the stream, after the two ways issue #25 lost one.

``python -m tests.events_per_deliberation`` starts everything for real (an embedded
valkey-server and nats-server, the simulated vLLM, ``council serve`` and ``council worker``),
then:

1. **the forged event**: a non-admin caller runs ``POST /runs/wait`` with the planning
   deliberation's id as its ``deliberation_id``, *before* the planning service publishes
   ``planning.plan.approved`` for that plan (``council publish-plan``), and two HTTP callers run
   with the same ``deliberation_id``;
2. **the second run**: two runs with different tasks on one thread.

Then it reads every ``orchestration.deliberation.completed`` event on ``ORCHESTRATOR_EVENTS``
and prints, per deliberation, how many events it has and who started it. It exits 0 only when
every deliberation has exactly one event, the plan's event came from the worker, and each of the
five runs above has its own. ``tests/integration/test_record.py`` runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.js.errors import NotFoundError

from council_agents.server.services import EmbeddedNats, EmbeddedValkey
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from tests.helpers import ROOT, Served, api_key

STREAM, COMPLETED = "ORCHESTRATOR_EVENTS", "orchestration.deliberation.completed"


async def _completed(nats_url: str) -> list[dict[str, Any]]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        try:
            state = (await js.stream_info(STREAM)).state
        except NotFoundError:
            return []
        found = []
        for seq in range(state.first_seq, state.last_seq + 1):
            try:
                msg = await js.get_msg(STREAM, seq)
            except NotFoundError:
                continue
            if msg.subject == COMPLETED:
                headers = msg.headers or {}
                found.append({"msg_id": headers.get("Nats-Msg-Id"), **json.loads(msg.data)})
        return found
    finally:
        await nc.close()


def completed_events(nats_url: str) -> list[dict[str, Any]]:
    """Every completed event on the stream, oldest first, with its ``Nats-Msg-Id``."""
    return asyncio.run(_completed(nats_url))


def wait_for_event(nats_url: str, deliberation_id: str, timeout: float = 180) -> dict[str, Any]:
    """The completed event of ``deliberation_id``, once it is on the stream."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mine = [e for e in completed_events(nats_url) if e["deliberation_id"] == deliberation_id]
        if mine:
            return mine[0]
        time.sleep(0.5)
    raise TimeoutError(f"no completed event for {deliberation_id} within {timeout:g} s")


def per_deliberation(events: list[dict[str, Any]]) -> tuple[Counter[str], Counter[str]]:
    """How many completed events each deliberation id, and each ``Nats-Msg-Id``, has."""
    return (
        Counter(e["deliberation_id"] for e in events),
        Counter(str(e["msg_id"]) for e in events),
    )


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``council worker`` with ``env``, in a session of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "council_agents.cli", "--log-file", str(log), "worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def publish_plan(env: dict[str, str], story: str, plan: str, task: str) -> None:
    """``council publish-plan`` for one DEV deliberation, as the planning service would."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "council_agents.cli",
            "publish-plan",
            "--story-id",
            story,
            "--plan-id",
            plan,
            "--roles",
            "DEV",
            "--rounds",
            "0",
            "--task",
            task,
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"council publish-plan failed: {done.stderr}")


def scenario(served: Served, nats_url: str, env: dict[str, str]) -> dict[str, Any]:
    """Run the forged-event and second-run cases; what each run answered."""
    suffix = uuid.uuid4().hex[:6]
    story, plan = f"S-ATK-{suffix}", "P-ATK"
    target = f"plan.{story}.{plan}.dev"
    mallory = served.as_(api_key(served.valkey_url, f"mallory-{suffix}"))
    alice = served.as_(api_key(served.valkey_url, f"alice-{suffix}"))

    def run(http: httpx.Client, path: str, **inp: Any) -> dict[str, Any]:
        body = {"assistant_id": "council", "input": {"rounds": 0, **inp}}
        response = http.post(path, json=body)
        if response.status_code != 200 or "__error__" in response.json():
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
        out: dict[str, Any] = response.json()
        return out

    runs: dict[str, Any] = {"target": target}
    runs["forged"] = run(
        mallory,
        "/runs/wait",
        task="FORGED: ship it without tests",
        deliberation_id=target,
        story_id=story,
        task_id=plan,
    )
    publish_plan(env, story, plan, "Add rate limiting (100 requests per minute per API key).")
    runs["planned"] = wait_for_event(nats_url, target)
    runs["shared_a"] = run(alice, "/runs/wait", task="Add a cache.", deliberation_id="shared")
    runs["shared_b"] = run(mallory, "/runs/wait", task="Add a queue.", deliberation_id="shared")
    thread = alice.post("/threads", json={}).json()["thread_id"]
    runs["first"] = run(alice, f"/threads/{thread}/runs/wait", task="Add request logging.")
    runs["second"] = run(alice, f"/threads/{thread}/runs/wait", task="Add request tracing.")
    return runs


def verdict(runs: dict[str, Any], events: list[dict[str, Any]]) -> list[str]:
    """What is wrong (empty: every deliberation has exactly one event, each run its own)."""
    problems = []
    by_id, by_msg = per_deliberation(events)
    problems += [f"{d}: {n} completed events" for d, n in by_id.items() if n != 1]
    problems += [f"Nats-Msg-Id {m}: {n} events" for m, n in by_msg.items() if n != 1]
    planned = [e for e in events if e["deliberation_id"] == runs["target"]]
    if len(planned) != 1 or planned[0].get("origin") != "planning":
        problems.append(f"the plan's event is not the worker's: {planned}")
    names = ("forged", "shared_a", "shared_b", "first", "second")
    ids = [runs[n]["deliberation_id"] for n in names]
    if len(set(ids)) != len(ids) or runs["target"] in ids:
        problems.append(f"runs share a deliberation id: {ids}")
    for name in names:
        if runs[name]["published"].get("duplicate") is not False:
            problems.append(f"{name}: published {runs[name]['published']}")
        if by_id[runs[name]["deliberation_id"]] != 1:
            problems.append(f"{name}: {by_id[runs[name]['deliberation_id']]} events on the stream")
    return problems


def table(events: list[dict[str, Any]]) -> str:
    """One line per deliberation: its events, origin, owner and label."""
    by_id, _ = per_deliberation(events)
    first = {e["deliberation_id"]: e for e in reversed(events)}
    lines = [f"{'events':>6}  {'origin':<8}  {'owner':<16}  {'label':<28}  deliberation"]
    for did, n in by_id.items():
        e = first[did]
        lines.append(
            f"{n:>6}  {e.get('origin') or '-':<8}  {(e.get('owner') or '-')[:16]:<16}  "
            f"{(e.get('label') or '-')[:28]:<28}  {did}"
        )
    return "\n".join(lines)


def main() -> int:
    """Start the servers, run both cases, count, and say whether each has exactly one event."""
    with tempfile.TemporaryDirectory(prefix="council-events-") as scratch:
        tmp = Path(scratch)
        with (
            EmbeddedValkey(tmp / "valkey") as store,
            EmbeddedNats(tmp / "nats") as jet,
            ServerThread(SimVLLM(SimConfig(time_scale=0.002))) as sim,
        ):
            env = {
                **{k: v for k, v in os.environ.items() if k not in ("VALKEY_URL", "NATS_URL")},
                "VALKEY_URL": store.url,
                "NATS_URL": jet.url,
                "COUNCIL_LLM_BASE_URL": sim.base_url,
                "COUNCIL_DATA_DIR": str(tmp / "data"),
                "PYTHONPATH": str(ROOT),
            }
            served = Served(tmp, store.url, jet.url, sim.base_url).start()
            worker = start_worker(env, tmp / "worker.jsonl")
            try:
                runs = scenario(served, jet.url, env)
                events = completed_events(jet.url)
            finally:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(timeout=60)
                served.stop()
    print(table(events))
    problems = verdict(runs, events)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("exactly one completed event per deliberation" if not problems else "FAILED")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
