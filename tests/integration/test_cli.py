"""The ``council`` command as a user runs it: real processes, embedded Valkey and NATS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from council_agents.core.limits import MAX_ROUNDS, MAX_TASK_CHARS
from council_agents.server.services import free_port, running_services
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from tests.helpers import ROOT, expected_calls, revisers, sim_admin, sim_requests, tasks_stored

COUNCIL = [sys.executable, "-m", "council_agents.cli"]
TASK = "Add idempotent retry handling to the webhook consumer that receives payment notifications."


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("VALKEY_URL", "NATS_URL")}
    e.update(COUNCIL_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT), **extra)
    return e


def council(
    tmp_path: Path, *args: str, timeout: float = 120, **extra: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COUNCIL, *args],
        env=env(tmp_path, **extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "args,needle",
    [
        (["", "--role", "DEV"], "task: String should have at least 1 character"),
        (["   ", "--role", "DEV"], "task: is empty or only whitespace"),
        ([TASK, "--role", "PM"], "role: unknown role 'PM'"),
        (
            [TASK, "--role", "DEV", "--agents", "1"],
            "context.agents: Input should be greater than or equal to 2",
        ),
        (
            [TASK, "--role", "DEV", "--rounds", "-1"],
            "rounds: Input should be greater than or equal to 0",
        ),
        (
            [TASK, "--role", "DEV", "--rounds", str(MAX_ROUNDS + 1)],
            f"less than or equal to {MAX_ROUNDS}",
        ),
        (
            ["x" * (MAX_TASK_CHARS + 1), "--role", "DEV"],
            f"task: String should have at most {MAX_TASK_CHARS} characters",
        ),
        (
            [TASK, "--role", "DEV", "--rubric", "/nonexistent.json"],
            "--rubric: file /nonexistent.json does not exist",
        ),
    ],
)
def test_bad_input_exits_2_naming_the_problem(tmp_path, args, needle):
    r = council(tmp_path, "deliberate", *args)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr


def test_unreachable_llm_names_the_url(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    r = council(tmp_path, "deliberate", TASK, "--role", "DEV", "--base-url", url, "--quiet")
    assert r.returncode == 3
    assert f"cannot reach the LLM at {url}" in r.stderr


def test_deliberate_json_logs_and_no_secret(tmp_path):
    secret = "sk-council-test-" + uuid.uuid4().hex
    with ServerThread(SimVLLM(SimConfig(time_scale=0.002))) as sim:
        r = council(
            tmp_path,
            "deliberate",
            TASK,
            "--role",
            "dev",
            "--rounds",
            "1",
            "--base-url",
            sim.base_url,
            "--json",
            "--story-id",
            "s-9",
            "--id",
            "cli-json",
            COUNCIL_API_KEY=secret,
        )
    assert r.returncode == 0, r.stderr
    event = json.loads(r.stdout)
    assert event["deliberation_id"] == "cli-json" and event["story_id"] == "s-9"
    assert "✓ published orchestration.deliberation.completed" in r.stderr
    assert "embedded valkey-server" in r.stderr and "embedded nats-server" in r.stderr
    log_file = tmp_path / "data" / "logs" / "council.jsonl"
    lines = [json.loads(x) for x in log_file.read_text().splitlines()]
    calls = [x for x in lines if x["event"] == "llm.call"]
    # 3 propose, 6 critique, the revisers (severe critiques only), 3 judges (rotations) unless
    # the ballots came first and were unanimous, 3 vote
    expected = expected_calls(event)
    assert expected["propose"] == 3 and expected["critique"] == 6
    assert Counter(c["stage"] for c in calls) == {s: n for s, n in expected.items() if n}
    for c in calls:
        assert c["level"] == "info" and c["deliberation_id"] == "cli-json" and c["role"] == "DEV"
        assert (
            c["agent_id"]
            and c["stage"] in ("propose", "critique", "revise", "judge", "vote")
            and c["content"]
        )
    proposals = {c["agent_id"]: c["content"] for c in calls if c["stage"] == "propose"}
    assert (
        event["proposals"][0]["versions"][0]
        == proposals[event["proposals"][0]["author"]["agent_id"]]
    )
    assert secret not in log_file.read_text() + r.stderr + r.stdout


def test_approval_from_the_cli_publishes_the_event_as_http_would(tmp_path):
    with ServerThread(SimVLLM(SimConfig(time_scale=0.002))) as sim:
        base = ["--base-url", sim.base_url]
        waiting = council(
            tmp_path, "deliberate", TASK, "--rounds", "0", "--approval", "--id", "cli-ok", *base
        )
        assert waiting.returncode == 0, waiting.stderr
        assert "is waiting at ['approve']" in waiting.stderr
        assert "council resume cli-ok --approve" in waiting.stderr
        refused = council(tmp_path, "resume", "cli-ok", "--override", "agent-dev-002", *base)
        assert refused.returncode == 2 and "--reason: an override needs" in refused.stderr
        n = len(sim_requests(sim))
        approved = council(tmp_path, "resume", "cli-ok", "--approve", "--json", *base)
        assert approved.returncode == 0, approved.stderr
        assert len(sim_requests(sim)) == n  # approving asks no LLM anything
        event = json.loads(approved.stdout)
        assert event["approved_by_human"] is True and event["stop_reason"] == "rounds_completed"
        assert "✓ published orchestration.deliberation.completed" in approved.stderr

        council(
            tmp_path, "deliberate", TASK, "--rounds", "0", "--approval", "--id", "cli-no", *base
        )
        overridden = council(
            tmp_path,
            "resume",
            "cli-no",
            "--override",
            "agent-dev-003",
            "--reason",
            "the cheapest to operate",
            "--json",
            *base,
        )
    assert overridden.returncode == 0, overridden.stderr
    event = json.loads(overridden.stdout)
    assert event["winner"]["author"]["agent_id"] == "agent-dev-003"
    assert event["stop_reason"] == "human_override" and event["decision"]["decided_by"] == "human"
    assert event["justification"] == "Human override: the cheapest to operate"


def test_killed_mid_critique_resumes_without_repeating_finished_calls(tmp_path):
    did = "crash-" + uuid.uuid4().hex[:8]
    with ServerThread(SimVLLM(SimConfig(time_scale=0.01))) as sim:
        # one critique hangs, so the process is surely killed in the middle of the critique stage
        httpx.post(
            sim_admin(sim, "/admin/faults"),
            json={
                "kind": "stall",
                "stage": "critique",
                "agent": "agent-dev-003",
                "nth": 1,
                "stall_seconds": 60,
            },
        )
        proc = subprocess.Popen(
            [
                *COUNCIL,
                "deliberate",
                TASK,
                "--role",
                "DEV",
                "--id",
                did,
                "--quiet",
                "--base-url",
                sim.base_url,
            ],
            env=env(tmp_path),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                done = [
                    e
                    for e in sim_requests(sim)
                    if e["stage"] == "critique" and e.get("t_out") and e["status"] == 200
                ]
                if len(done) == 5:
                    break
                time.sleep(0.05)
            assert len(done) == 5, "critique stage did not get going"
            embedded = running_services(tmp_path / "data")
            assert embedded and embedded["valkey_url"], embedded
            assert tasks_stored(embedded["valkey_url"], did, 5) == 5  # what resume keeps
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        before = sim_requests(sim)
        httpx.delete(sim_admin(sim, "/admin/faults"))
        r = council(tmp_path, "resume", did, "--json", "--base-url", sim.base_url)
        assert r.returncode == 0, r.stderr
        after = sim_requests(sim)[len(before) :]
    event = json.loads(r.stdout)
    assert event["deliberation_id"] == did and len(event["proposals"]) == 3
    # only the critique that had not finished ran again; then revise (the authors with a severe
    # critique) and selection (the ballots, then the judges unless the ballots were unanimous)
    judges = 0 if event["decision"].get("judges_skipped") else 3
    assert sorted((e["stage"], e["agent"]) for e in after) == sorted(
        [("critique", "agent-dev-003")]
        + [("revise", a) for a in revisers(event)]
        + [("judge", "judge-dev")] * judges
        + [("vote", f"agent-dev-00{i}") for i in (1, 2, 3)]
    )
    finished = [
        (e["agent"], e["prompt_sha"])
        for e in before + after
        if e["status"] == 200 and e.get("t_out")
    ]
    assert len(finished) == len(set(finished)) == sum(expected_calls(event).values())


def test_an_agent_answering_garbage_is_left_out_and_the_council_decides(tmp_path):
    with ServerThread(SimVLLM(SimConfig(time_scale=0.002))) as sim:
        httpx.post(
            sim_admin(sim, "/admin/faults"),
            json={
                "kind": "garbage",
                "probability": 1.0,
                "agent": "agent-qa-002",
                "stage": "propose",
            },
        )
        r = council(
            tmp_path,
            "deliberate",
            "Design the test plan for a password-reset flow",
            "--role",
            "QA",
            "--rounds",
            "0",
            "--id",
            "garbage-1",
            "--json",
            "--base-url",
            sim.base_url,
        )
        asked = [(e["stage"], e["agent"]) for e in sim_requests(sim)]
    assert r.returncode == 0, r.stderr
    event = json.loads(r.stdout)
    # its three attempts were garbage: it is left out, named, and the two others decide
    assert asked.count(("propose", "agent-qa-002")) == 3
    left = event["decision"]["omissions"]
    assert [(o["stage"], o["agent_id"]) for o in left] == [("propose", "agent-qa-002")]
    assert "garbage" in left[0]["reason"]
    assert len(event["proposals"]) == 2
    assert event["winner"]["author"]["agent_id"] in ("agent-qa-001", "agent-qa-003")


def test_event_schemas_in_docs_are_current(tmp_path):
    r = subprocess.run(
        [*COUNCIL, "schemas", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    # and the check really detects drift
    out = tmp_path / "events"
    subprocess.run(
        [*COUNCIL, "schemas", "--out", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env=env(tmp_path),
    )
    (out / "deliberation.completed.schema.json").write_text("{}")
    r = subprocess.run(
        [*COUNCIL, "schemas", "--check", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env(tmp_path),
    )
    assert r.returncode == 1 and "deliberation.completed.schema.json" in r.stderr


def test_graph_drawing_in_docs_is_current(tmp_path):
    r = subprocess.run(
        [*COUNCIL, "draw", "--check"], cwd=ROOT, capture_output=True, text=True, env=env(tmp_path)
    )
    assert r.returncode == 0, r.stderr
    stale = tmp_path / "graph.mmd"
    stale.write_text(
        (ROOT / "docs" / "graph.mmd").read_text().replace("tally -.-> select", "tally --> select")
    )
    r = subprocess.run(
        [*COUNCIL, "draw", "--check", "--out", str(stale)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env(tmp_path),
    )
    assert r.returncode == 1 and "stale graph drawing" in r.stderr
