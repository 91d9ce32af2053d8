"""Failures outside council, each named in one line (and resumable where a run had begun),
against real Valkey, NATS and simulated vLLMs through the ``council`` CLI: one owner per data
directory, credentials in the URLs, NATS down at publish, Valkey killed mid-run, the LLM down at
preflight and an LLM that times out.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import valkey

from council_agents.server.services import EmbeddedNats, EmbeddedValkey, free_port
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from council_agents.storage.saver import client_url
from tests.helpers import (
    ROOT,
    TASK,
    KeptPort,
    cli_env,
    council_cli,
    expected_calls,
    run_sync,
    sim_admin,
    sim_requests,
)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("council: error:")]


# ---- one owner per data directory ---------------------------------------------------------------


def valkey_servers_on(data_dir: Path) -> list[int]:
    """Pids of live valkey-servers working in ``data_dir`` (their working directory)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if "valkey-server" in cmdline and cwd.startswith(str(data_dir)) and state != "Z":
            found.append(int(proc.name))
    return found


def test_two_processes_on_one_data_directory_cannot_both_start_servers(tmp_path, module_sim):
    env = cli_env(tmp_path, COUNCIL_LLM_BASE_URL=module_sim.base_url)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "council_agents.cli", "worker"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        while all(w.poll() is None for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        refused = [w for w in workers if w.poll() is not None]
        running = [w for w in workers if w.poll() is None]
        assert len(refused) == 1 and len(running) == 1
        assert refused[0].returncode == 1
        err = refused[0].stderr.read()
        assert re.search(r"data directory .* is in use by process \d+", err), err
        assert error_lines(err) == [line for line in err.splitlines() if "error" in line]
        while not (tmp_path / "data" / "services.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)  # the other one's servers are up
        assert len(valkey_servers_on(tmp_path / "data")) == 1
        # a deliberation on the same directory is refused too; `council keys` reaches the
        # running servers instead of starting its own
        busy = council_cli("deliberate", TASK, "--rounds", "0", env=env, timeout=60)
        assert busy.returncode == 1 and "is in use by process" in busy.stderr
        listed = council_cli("keys", "list", env=env, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert len(valkey_servers_on(tmp_path / "data")) == 1
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGTERM)
                w.wait(timeout=60)
    assert valkey_servers_on(tmp_path / "data") == []


# ---- credentials --------------------------------------------------------------------------------


def test_valkey_acl_users_and_nats_users_in_the_urls(tmp_path, valkey_url, nats_url, module_sim):
    admin = valkey.from_url(client_url(valkey_url))
    password = uuid.uuid4().hex
    admin.execute_command("ACL", "SETUSER", "council-ci", "on", f">{password}", "~*", "+@all")
    host = valkey_url.split("://", 1)[1].rsplit("@", 1)[-1]
    acl_url = f"valkey://council-ci:{password}@{host}"
    env = cli_env(
        tmp_path, VALKEY_URL=acl_url, NATS_URL=nats_url, COUNCIL_LLM_BASE_URL=module_sim.base_url
    )
    ok = council_cli("deliberate", TASK, "--rounds", "0", "--quiet", "--json", env=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["winner"]["content"]

    wrong = {**env, "VALKEY_URL": f"valkey://council-ci:wrong-{password}@{host}"}
    refused = council_cli("deliberate", TASK, "--rounds", "0", "--quiet", env=wrong)
    assert refused.returncode == 4, refused.stderr
    errors = error_lines(refused.stderr)
    assert len(errors) == 1 and "Valkey at valkey://council-ci:***@" in errors[0]
    assert password not in refused.stderr and "resume" not in refused.stderr
    admin.execute_command("ACL", "DELUSER", "council-ci")


# ---- services down or slow ----------------------------------------------------------------------


def published_event(nats_url: str, deliberation_id: str) -> dict[str, Any]:
    async def last() -> dict[str, Any]:
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            msg = await js.get_last_msg(
                "ORCHESTRATOR_EVENTS", "orchestration.deliberation.completed"
            )
            return json.loads(msg.data)
        finally:
            await nc.close()

    event = run_sync(last())
    assert event["deliberation_id"] == deliberation_id
    return event


def test_nats_down_at_publish_is_one_named_line_and_resumable(tmp_path, valkey_url, module_sim):
    kept = KeptPort()  # no other process takes the port before nats-server does
    nats_server = EmbeddedNats(tmp_path / "nats", port=kept.port)  # not started yet
    env = cli_env(
        tmp_path,
        VALKEY_URL=valkey_url,
        NATS_URL=nats_server.url,
        COUNCIL_LLM_BASE_URL=module_sim.base_url,
    )
    thread = f"nats-down-{uuid.uuid4().hex[:8]}"
    run = council_cli("deliberate", TASK, "--rounds", "0", "--id", thread, "--quiet", env=env)
    assert run.returncode == 5, run.stderr
    errors = error_lines(run.stderr)
    assert len(errors) == 1, run.stderr
    assert f"NATS at nats://council:***@127.0.0.1:{nats_server.port}" in errors[0]
    assert "publish" in errors[0]
    assert f"resume: council resume {thread}" in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.splitlines()) <= 4, run.stderr
    assert nats_server.url.split(":")[2].split("@")[0] not in run.stderr  # the password
    assert "Traceback" in (tmp_path / "data" / "logs" / "council.jsonl").read_text()
    calls = len([e for e in sim_requests(module_sim) if e["deliberation"] == thread])

    kept.release()
    with nats_server:
        resumed = council_cli("resume", thread, "--json", env=env)
        assert resumed.returncode == 0, resumed.stderr
        event = json.loads(resumed.stdout)
        assert event["deliberation_id"] == thread
        published_event(nats_server.url, thread)
    # every call was made before the failed publish (3 proposals, 3 ballots, 3 judgements unless
    # the ballots were unanimous) and checkpointed: the resume makes none
    assert calls == sum(expected_calls(event).values())
    assert len([e for e in sim_requests(module_sim) if e["deliberation"] == thread]) == calls


@pytest.fixture
def slow_sim() -> Iterator[ServerThread]:
    """A simulated vLLM whose calls take a few tenths of a second: time to act mid-stage."""
    with ServerThread(SimVLLM(SimConfig(time_scale=0.1))) as s:
        yield s


def test_valkey_killed_mid_run_is_one_named_line_and_resumable(tmp_path, nats_url, slow_sim):
    sim = slow_sim
    store = EmbeddedValkey(tmp_path / "valkey", port=free_port()).start()
    env = cli_env(
        tmp_path, VALKEY_URL=store.url, NATS_URL=nats_url, COUNCIL_LLM_BASE_URL=sim.base_url
    )
    thread = f"valkey-down-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "council_agents.cli",
            "deliberate",
            TASK,
            "--rounds",
            "1",
            "--id",
            thread,
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            stages = [e["stage"] for e in sim_requests(sim) if e["deliberation"] == thread]
            if "critique" in stages:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read()
        assert store.proc is not None
        store.proc.send_signal(signal.SIGKILL)  # mid-critique
        store.proc.wait()
        kept = KeptPort(store.port)  # Valkey's port, until it restarts there
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 4, err
    errors = error_lines(err)
    assert len(errors) == 1, err
    # a checkpoint write failed, or the next call stopped before it was made (nothing could
    # have saved its answer): either way one line naming Valkey and the stage
    assert f"Valkey at valkey://:***@127.0.0.1:{store.port} " in errors[0], err
    assert "critique" in errors[0], err
    assert f"resume: council resume {thread}" in err and "Traceback" not in err

    first = len([e for e in sim_requests(sim) if e["deliberation"] == thread])
    kept.release()
    with EmbeddedValkey(tmp_path / "valkey", port=store.port):
        resumed = council_cli("resume", thread, "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["deliberation_id"] == thread
    again = len([e for e in sim_requests(sim) if e["deliberation"] == thread]) - first
    assert again < 3 + 6 + 3 + 3 + 3  # finished calls were not made again


def test_an_llm_down_at_preflight_gives_no_resume_hint(tmp_path, valkey_url, nats_url):
    env = cli_env(
        tmp_path,
        VALKEY_URL=valkey_url,
        NATS_URL=nats_url,
        COUNCIL_LLM_BASE_URL=f"http://127.0.0.1:{free_port()}/v1",
    )
    run = council_cli("deliberate", TASK, "--rounds", "0", "--quiet", env=env)
    assert run.returncode == 3, run.stderr
    errors = error_lines(run.stderr)
    assert len(errors) == 1 and "preflight" in errors[0] and "127.0.0.1" in errors[0]
    assert "resume" not in run.stderr and "Traceback" not in run.stderr


def test_an_llm_timeout_names_the_stage_the_agent_and_the_url(tmp_path, valkey_url, nats_url):
    with ServerThread(SimVLLM(SimConfig(time_scale=0.002))) as sim:
        stall = {
            "kind": "stall",
            "stage": "critique",
            "agent": "agent-dev-002",
            "stall_seconds": 30,
        }
        assert httpx.post(sim_admin(sim, "/admin/faults"), json=stall).status_code == 200
        env = cli_env(
            tmp_path,
            VALKEY_URL=valkey_url,
            NATS_URL=nats_url,
            COUNCIL_LLM_BASE_URL=sim.base_url,
            COUNCIL_LLM_TIMEOUT="1",
        )
        thread = f"timeout-{uuid.uuid4().hex[:8]}"
        run = council_cli("deliberate", TASK, "--rounds", "1", "--id", thread, "--quiet", env=env)
    assert run.returncode == 3, run.stderr
    errors = error_lines(run.stderr)
    assert errors == [
        f"council: error: critique failed for agent-dev-002: the LLM at {sim.base_url} "
        "timed out after retries"
    ]
    assert f"resume: council resume {thread}" in run.stderr and "Traceback" not in run.stderr
