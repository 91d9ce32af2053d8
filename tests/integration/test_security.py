"""The trust boundary, against the real LangGraph server (``council serve``), Valkey and NATS.

Who may call (API keys, JWTs, nothing else), what each caller sees (their own threads), who
manages councils (admins), what a caller may choose (never an endpoint), validation before
anything is stored, runs in parallel, one owner per data directory, failures named in one line,
and metrics that count deliberations.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import nats
import pytest
import valkey
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.parser import text_string_to_metric_families

from council_agents.server.services import EmbeddedNats, EmbeddedValkey, free_port
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from council_agents.storage.apikeys import KeyStore
from council_agents.storage.keys import COUNCILS_KEY
from council_agents.storage.saver import client_url
from tests.helpers import ROOT, Served, api_key, run_sync, sim_admin, sim_requests

TASK = "Add rate limiting (100 requests per minute per API key) to the public API."


class Recorder:
    """A loopback HTTP server that records every request (and answers ``body``)."""

    def __init__(self, body: dict[str, Any] | None = None):
        seen: list[dict[str, Any]] = []
        answer = json.dumps(body or {}).encode()

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                seen.append({"method": self.command, "path": self.path, **dict(self.headers)})
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.requests = seen
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def metric_values(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every ``<name>_total`` sample of a Prometheus text, by its labels."""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{name}_total":
                values[tuple(sorted(sample.labels.items()))] = sample.value
    return values


def cli_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """The environment of a ``council`` subprocess: its own data dir, no inherited servers."""
    base = {k: v for k, v in os.environ.items() if k not in ("VALKEY_URL", "NATS_URL")}
    return {
        **base,
        "PYTHONPATH": str(ROOT),
        "COUNCIL_DATA_DIR": str(tmp_path / "data"),
        "COUNCIL_LLM_MAX_RETRIES": "0",
        **env,
    }


def council(*args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``council ARGS`` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "council_agents.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def revoke(valkey_url: str, key_id: str) -> bool:
    store = KeyStore(valkey_url)
    try:
        return await store.revoke(key_id)
    finally:
        await store.aclose()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("council: error:")]


@pytest.fixture(scope="module")
def sim() -> Iterator[ServerThread]:
    with ServerThread(SimVLLM(SimConfig(time_scale=0.02))) as s:
        yield s


@pytest.fixture(scope="module")
def served(tmp_path_factory, valkey_url, nats_url, sim) -> Iterator[Served]:
    s = Served(tmp_path_factory.mktemp("secure"), valkey_url, nats_url, sim.base_url).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def alice(served) -> str:
    return api_key(served.valkey_url, "alice")


@pytest.fixture(scope="module")
def bob(served) -> str:
    return api_key(served.valkey_url, "bob")


def deliberate(http: httpx.Client, thread_id: str | None = None, **inp: Any) -> httpx.Response:
    """A blocking run (a stateless one without ``thread_id``)."""
    path = f"/threads/{thread_id}/runs/wait" if thread_id else "/runs/wait"
    body = {"task": TASK, "role": "DEV", "rounds": 0, **inp}
    return http.post(path, json={"assistant_id": "council", "input": body})


# ---- authentication -------------------------------------------------------------------------


def test_without_a_valid_token_no_request_reaches_a_thread_run_or_council(served, sim):
    admin = served.http
    thread = admin.post("/threads", json={}).json()["thread_id"]
    assert deliberate(admin, thread).status_code == 200
    before_state = admin.get(f"/threads/{thread}/state").json()
    councils = sorted(c["name"] for c in admin.get("/councils").json())
    calls = len(sim_requests(sim))

    revoked = api_key(served.valkey_url, "mallory")
    assert run_sync(revoke(served.valkey_url, revoked.split("_")[1]))
    forged = jwt.encode(
        {"sub": "eve", "exp": time.time() + 600},
        "a guessed secret, 32 bytes long..",
        algorithm="HS256",
    )
    run = {"assistant_id": "council", "input": {"task": TASK, "role": "DEV", "rounds": 0}}
    council = {"name": "evil", "role": "DEV", "agents": [{"agent_id": "a"}, {"agent_id": "b"}]}
    requests = [
        ("GET", f"/threads/{thread}", None),
        ("GET", f"/threads/{thread}/state", None),
        ("POST", f"/threads/{thread}/history", {}),
        ("PATCH", f"/threads/{thread}", {"metadata": {"owner": "eve"}}),
        ("DELETE", f"/threads/{thread}", None),
        ("POST", "/threads", {}),
        ("POST", "/threads/search", {}),
        ("GET", f"/threads/{thread}/runs", None),
        ("POST", f"/threads/{thread}/runs", run),
        ("POST", f"/threads/{thread}/runs/wait", run),
        ("POST", "/runs/wait", run),
        ("POST", "/runs/stream", run),
        ("POST", "/runs/batch", [run]),
        ("POST", "/runs/crons", {**run, "schedule": "* * * * *"}),
        ("POST", "/assistants/search", {}),
        ("POST", "/assistants", {"graph_id": "council"}),
        ("PUT", "/store/items", {"namespace": ["x"], "key": "k", "value": {}}),
        ("GET", "/councils", None),
        ("GET", "/councils/dev", None),
        ("POST", "/councils", council),
        ("DELETE", "/councils/dev", None),
    ]
    for token in (None, "not-a-key", "ck_000000000000_" + "A" * 43, revoked, forged):
        caller = served.as_(token)
        for method, path, body in requests:
            r = caller.request(method, path, json=body)
            assert r.status_code == 401, (token, method, path, r.text)
            assert "\n" not in r.json()["detail"]
    # Studio's header grants nothing unless the server runs with --dev-studio
    studio = served.as_(None)
    assert (
        studio.post("/threads/search", json={}, headers={"x-auth-scheme": "langsmith"}).status_code
        == 401
    )
    # the development runtime's unauthenticated maintenance routes are closed
    assert studio.post("/internal/truncate").status_code == 404
    assert studio.get(f"/internal/debug/thread/{thread}").status_code == 404
    assert studio.get("/deploy").status_code == 404
    # routes that would create runs around the input validation are not served at all
    for path in ("/mcp", "/a2a/council"):
        gone = admin.post(path, json={"jsonrpc": "2.0", "id": 1, "method": "message/send"})
        assert gone.status_code == 404 and gone.json()["detail"] == "Not Found", path
    assert admin.get("/.well-known/agent-card.json").status_code == 404

    assert len(sim_requests(sim)) == calls
    assert sorted(c["name"] for c in admin.get("/councils").json()) == councils
    after = admin.get(f"/threads/{thread}/state").json()
    assert (
        after["values"] == before_state["values"]
        and after["checkpoint"] == before_state["checkpoint"]
    )
    assert admin.get(f"/threads/{thread}").json()["metadata"]["owner"] == "tester"
    # health and metrics stay readable without a token
    assert studio.get("/healthz").status_code == 200
    assert "council_deliberations_started_total" in studio.get("/metrics").text


def test_keys_created_listed_and_revoked_with_the_cli(served, tmp_path):
    env = cli_env(tmp_path, VALKEY_URL=served.valkey_url)
    made = council("keys", "create", "--owner", "carol", "--label", "ci", "--json", env=env)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["key"].startswith("ck_") and key["owner"] == "carol" and key["scopes"] == []
    carol = served.as_(key["key"])
    assert carol.post("/threads", json={}).json()["metadata"]["owner"] == "carol"

    listed = council("keys", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    mine = [k for k in json.loads(listed.stdout) if k["key_id"] == key["key_id"]]
    assert mine == [{k: key[k] for k in ("key_id", "owner", "scopes", "label", "created_at")}]
    assert key["key"] not in listed.stdout and "sha256" not in listed.stdout
    stored = valkey.from_url(client_url(served.valkey_url)).hget("council:apikeys", key["key_id"])
    assert key["key"].encode() not in stored  # only its SHA-256

    revoked = council("keys", "revoke", key["key_id"], env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert carol.post("/threads", json={}).status_code == 401
    assert council("keys", "revoke", key["key_id"], env=env).returncode == 2


# ---- authorization --------------------------------------------------------------------------


def test_one_owner_cannot_read_or_touch_another_owners_thread(served, alice, bob):
    a, b = served.as_(alice), served.as_(bob)
    thread = a.post("/threads", json={"metadata": {"owner": "bob"}}).json()
    tid = thread["thread_id"]
    assert thread["metadata"]["owner"] == "alice"  # the owner is stamped, not chosen
    out = deliberate(a, tid)
    assert out.status_code == 200 and out.json()["result"]["role"] == "DEV"

    assert b.get(f"/threads/{tid}").status_code == 404
    assert b.get(f"/threads/{tid}/state").status_code == 404
    assert b.post(f"/threads/{tid}/history", json={}).status_code == 404
    assert b.get(f"/threads/{tid}/runs").status_code == 404
    assert b.patch(f"/threads/{tid}", json={"metadata": {"x": 1}}).status_code == 404
    assert b.delete(f"/threads/{tid}").status_code == 404
    assert deliberate(b, tid).status_code == 404
    assert tid not in [t["thread_id"] for t in b.post("/threads/search", json={}).json()]
    # bob's own deliberations work, and alice does not see them
    own = b.post("/threads", json={}).json()["thread_id"]
    assert deliberate(b, own).status_code == 200
    assert own not in [t["thread_id"] for t in a.post("/threads/search", json={}).json()]
    # alice's thread is intact
    state = a.get(f"/threads/{tid}/state").json()
    assert state["values"]["deliberation_id"].startswith(f"{tid}:") and state["values"]["published"]
    assert a.get(f"/threads/{tid}/runs").json()[0]["status"] == "success"


def test_managing_councils_and_assistants_needs_the_admin_scope(served, bob):
    b = served.as_(bob)
    name = f"ops-{uuid.uuid4().hex[:6]}"
    spec = {
        "name": name,
        "role": "DEVOPS",
        "rounds": 0,
        "agents": [{"agent_id": "ops-a"}, {"agent_id": "ops-b"}],
    }
    refused = b.post("/councils", json=spec)
    assert refused.status_code == 403 and "council:admin" in refused.json()["detail"]
    assert b.delete("/councils/dev").status_code == 403
    assert b.get("/councils/dev").status_code == 200
    assert b.post("/assistants", json={"graph_id": "council"}).status_code == 403
    assert b.post("/assistants/search", json={}).status_code == 200
    # deny by default: what council does not use is closed to every caller, admins too
    cron = {"assistant_id": "council", "schedule": "* * * * *", "input": {"task": TASK}}
    item = {"namespace": ["n"], "key": "k", "value": {}}
    for caller in (b, served.http):
        assert caller.post("/runs/crons", json=cron).status_code == 403
        assert caller.put("/store/items", json=item).status_code == 403
        search = {"namespace_prefix": ["n"]}
        assert caller.post("/store/items/search", json=search).status_code == 403

    assert served.http.post("/councils", json=spec).status_code == 201
    assert name in [c["name"] for c in b.get("/councils").json()]
    out = b.post(
        "/runs/wait",
        json={"assistant_id": "council", "input": {"task": TASK}, "context": {"council": name}},
    )
    assert out.status_code == 200 and out.json()["result"]["role"] == "DEVOPS"
    assert served.http.delete(f"/councils/{name}").status_code == 204


# ---- what a caller may choose -----------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[Recorder]:
    r = Recorder({"object": "list", "data": [{"id": "m", "object": "model"}]})
    yield r
    r.close()


def test_a_caller_chosen_endpoint_is_refused_and_no_request_leaves(served, sim, listener):
    http = served.http
    url = listener.url + "/v1"
    nats_url = "nats://" + listener.url.removeprefix("http://")
    thread = http.post("/threads", json={}).json()["thread_id"]
    calls = len(sim_requests(sim))
    refused = [
        ({"base_url": url}, None, "base_url: unknown field"),
        ({"api_key": "k"}, None, "api_key: unknown field"),
        ({}, {"base_url": url}, "context.base_url: unknown field"),
        ({}, {"nats_url": nats_url}, "context.nats_url: unknown field"),
        ({}, {"llm_base_url": url}, "context.llm_base_url: unknown field"),
        ({}, {"model": "m", "endpoint": url}, "unknown field"),
        ({}, {"agents": [{"agent_id": "x", "base_url": url}]}, "context.agents"),
    ]
    for extra, context, needle in refused:
        body = {"assistant_id": "council", "input": {"task": TASK, **extra}, "context": context}
        for path in (f"/threads/{thread}/runs", "/runs/wait", "/runs/stream"):
            r = http.post(path, json=body)
            assert r.status_code == 422, (path, r.text)
            assert needle in r.json()["detail"] and "\n" not in r.json()["detail"]
        batch = http.post("/runs/batch", json=[body])
        assert batch.status_code == 422 and needle in batch.json()["detail"]
    for agent, needle in (
        ({"agent_id": "a", "base_url": url}, "not on the server's allow-list"),
        ({"agent_id": "a", "api_key": "k"}, "unknown field"),
    ):
        spec = {"name": "leak", "role": "DEV", "agents": [agent, {"agent_id": "b"}]}
        r = http.post("/councils", json=spec)
        assert r.status_code == 422 and needle in r.json()["detail"], r.text
    # nor can a council with another endpoint be planted in a deliberation's state
    planted = {
        "role": "DEV",
        "agents": [{"agent_id": "a", "role": "DEV", "model": "m", "base_url": url}],
    }
    write = http.post(
        f"/threads/{thread}/state", json={"values": {"council": planted}, "as_node": "prepare"}
    )
    assert write.status_code == 403, write.text
    superstep = {"updates": [{"values": {"council": planted}, "as_node": "prepare"}]}
    refused_thread = http.post("/threads", json={"supersteps": [superstep]})
    assert refused_thread.status_code == 422 and "supersteps" in refused_thread.json()["detail"]
    for command in ({"update": {"council": planted}}, {"goto": "propose"}, "resume"):
        body = {"assistant_id": "council", "command": command}
        r = http.post(f"/threads/{thread}/runs/wait", json=body)
        assert r.status_code == 422 and r.json()["detail"].startswith("command: "), r.text
    # a caller's configurable is refused (a run's knobs are its context): no run, no request
    for configurable in ({"base_url": url, "nats_url": nats_url}, {"council_admission": {}}):
        r = http.post(
            "/runs/wait",
            json={
                "assistant_id": "council",
                "input": {"task": TASK, "role": "DEV", "rounds": 0},
                "config": {"configurable": configurable},
            },
        )
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith("config.configurable: not accepted")
    assert listener.requests == []
    assert len(sim_requests(sim)) == calls
    assert http.get(f"/threads/{thread}/runs").json() == []


BAD_COUNCILS = [
    ({"agents": [{"agent_id": "a", "budget": 3}, {"agent_id": "b"}]}, "agents.0.budget"),
    ({"agents": [{"agent_id": "a"}, {"agent_id": "a"}]}, "must be unique"),
    ({"rubric": {}}, "rubric"),
    ({"agents": [{"agent_id": "a", "temperature": 99}, {"agent_id": "b"}]}, "temperature"),
    ({"agents": [{"agent_id": "a", "max_tokens": 0}, {"agent_id": "b"}]}, "max_tokens"),
    ({"agents": [{"agent_id": "a\nb"}, {"agent_id": "b"}]}, "agents.0.agent_id"),
    ({"name": "n" * 10240}, "name"),
    ({"name": "bad\nname"}, "name"),
    ({"rounds": 99}, "rounds"),
]


@pytest.mark.parametrize("change,field", BAD_COUNCILS)
def test_bad_councils_are_refused_before_anything_is_stored(served, change, field):
    spec = {
        "name": f"c-{uuid.uuid4().hex[:6]}",
        "role": "DEV",
        "agents": [{"agent_id": "a"}, {"agent_id": "b"}],
        **change,
    }
    stored = valkey.from_url(client_url(served.valkey_url))
    before = stored.hgetall(COUNCILS_KEY)
    r = served.http.post("/councils", json=spec)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert field in detail and "\n" not in detail and len(detail) < 400
    assert stored.hgetall(COUNCILS_KEY) == before


BAD_RUNS = [
    ({"rubric": {}}, None, 422, "rubric"),
    ({"rounds": 99}, None, 422, "rounds"),
    ({"task": "x" * 10000}, None, 422, "task"),
    ({"deliberation_id": "a\nb"}, None, 422, "deliberation_id"),
    ({}, {"agents": 99}, 422, "context.agents"),
    ({}, {"agents": 0}, 422, "context.agents"),
    ({}, {"temperature": 99}, 422, "context.temperature: unknown field"),
    ({}, {"max_tokens": 0}, 422, "context.max_tokens: unknown field"),
    ({}, {"council": "a\nb"}, 422, "context.council: 'a\\nb' does not match"),
    ({}, {"council": "nope"}, 404, "context.council: unknown council 'nope'"),
    ({}, {"council": "n" * 10240}, 422, "context.council"),
]


@pytest.mark.parametrize("change,context,status,field", BAD_RUNS)
def test_bad_runs_are_refused_before_anything_is_stored(
    served, sim, change, context, status, field
):
    http = served.http
    thread = http.post("/threads", json={}).json()["thread_id"]
    calls = len(sim_requests(sim))
    body = {
        "assistant_id": "council",
        "input": {"task": TASK, "role": "DEV", **change},
        "context": context,
    }
    for path in (f"/threads/{thread}/runs", f"/threads/{thread}/runs/wait", "/runs/wait"):
        r = http.post(path, json=body)
        assert r.status_code == status, (path, r.text)
        detail = r.json()["detail"]
        assert field in detail and "\n" not in detail and len(detail) < 400
    assert http.get(f"/threads/{thread}/runs").json() == []
    assert http.get(f"/threads/{thread}/state").json()["checkpoint"] is None
    assert len(sim_requests(sim)) == calls


def test_served_logs_go_to_the_log_file_not_the_console(served):
    thread = served.http.post("/threads", json={}).json()["thread_id"]
    assert deliberate(served.http, thread).status_code == 200
    logged = Path(served.env["COUNCIL_DATA_DIR"]) / "logs" / "council.jsonl"
    calls = [
        json.loads(line)
        for line in logged.read_text().splitlines()
        if f'"{thread}:' in line and '"llm.call"' in line
    ]
    assert len(calls) == 8  # 3+2+3
    assert len({c["deliberation_id"] for c in calls}) == 1  # <thread>:<run>
    assert "llm.call" not in served.log.read_text()  # the server's console
    assert not (ROOT / ".langgraph_api").exists()
    assert (Path(served.env["COUNCIL_DATA_DIR"]) / "api" / ".langgraph_api").is_dir()


# ---- concurrency ------------------------------------------------------------------------------


def most_in_flight(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


async def test_ten_runs_submitted_together_overlap(served, sim):
    client = served.client()
    threads = [(await client.threads.create())["thread_id"] for _ in range(10)]
    runs = await asyncio.gather(
        *(
            client.runs.create(t, "council", input={"task": TASK, "role": "QA", "rounds": 1})
            for t in threads
        )
    )
    joins = [client.runs.join(t, r["run_id"]) for t, r in zip(threads, runs, strict=True)]
    outs = await asyncio.gather(*joins)
    assert all(o["result"]["role"] == "QA" for o in outs)
    log = [e for e in sim_requests(sim) if e["deliberation"].split(":")[0] in threads]
    spans = {}
    for entry in log:
        start, end = spans.get(entry["deliberation"], (entry["t_in"], entry["t_out"]))
        spans[entry["deliberation"]] = (min(start, entry["t_in"]), max(end, entry["t_out"]))
    assert len(spans) == 10
    in_flight = most_in_flight(list(spans.values()))
    print(f"deliberations in flight together: {in_flight} of 10")
    assert in_flight >= 5  # one at a time (the LangGraph dev default) would give 1


# ---- one owner per data directory -------------------------------------------------------------


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


def test_two_processes_on_one_data_directory_cannot_both_start_servers(tmp_path, sim):
    env = cli_env(tmp_path, COUNCIL_LLM_BASE_URL=sim.base_url)
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
        busy = council("deliberate", TASK, "--rounds", "0", env=env, timeout=60)
        assert busy.returncode == 1 and "is in use by process" in busy.stderr
        listed = council("keys", "list", env=env, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert len(valkey_servers_on(tmp_path / "data")) == 1
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGTERM)
                w.wait(timeout=60)
    assert valkey_servers_on(tmp_path / "data") == []


# ---- credentials ------------------------------------------------------------------------------


def test_valkey_acl_users_and_nats_users_in_the_urls(tmp_path, valkey_url, nats_url, sim):
    admin = valkey.from_url(client_url(valkey_url))
    password = uuid.uuid4().hex
    admin.execute_command("ACL", "SETUSER", "council-ci", "on", f">{password}", "~*", "+@all")
    host = valkey_url.split("://", 1)[1].rsplit("@", 1)[-1]
    acl_url = f"valkey://council-ci:{password}@{host}"
    env = cli_env(
        tmp_path, VALKEY_URL=acl_url, NATS_URL=nats_url, COUNCIL_LLM_BASE_URL=sim.base_url
    )
    ok = council("deliberate", TASK, "--rounds", "0", "--quiet", "--json", env=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["winner"]["content"]

    wrong = {**env, "VALKEY_URL": f"valkey://council-ci:wrong-{password}@{host}"}
    refused = council("deliberate", TASK, "--rounds", "0", "--quiet", env=wrong)
    assert refused.returncode == 4, refused.stderr
    errors = error_lines(refused.stderr)
    assert len(errors) == 1 and "Valkey at valkey://council-ci:***@" in errors[0]
    assert password not in refused.stderr and "resume" not in refused.stderr
    admin.execute_command("ACL", "DELUSER", "council-ci")


# ---- failures named in one line ---------------------------------------------------------------


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


def test_nats_down_at_publish_is_one_named_line_and_resumable(tmp_path, valkey_url, sim):
    nats_server = EmbeddedNats(tmp_path / "nats", port=free_port())  # not started yet
    env = cli_env(
        tmp_path, VALKEY_URL=valkey_url, NATS_URL=nats_server.url, COUNCIL_LLM_BASE_URL=sim.base_url
    )
    thread = f"nats-down-{uuid.uuid4().hex[:8]}"
    run = council("deliberate", TASK, "--rounds", "0", "--id", thread, "--quiet", env=env)
    assert run.returncode == 5, run.stderr
    errors = error_lines(run.stderr)
    assert len(errors) == 1, run.stderr
    assert f"NATS at nats://council:***@127.0.0.1:{nats_server.port}" in errors[0]
    assert "publish" in errors[0]
    assert f"resume: council resume {thread}" in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.splitlines()) <= 4, run.stderr
    assert nats_server.url.split(":")[2].split("@")[0] not in run.stderr  # the password
    assert "Traceback" in (tmp_path / "data" / "logs" / "council.jsonl").read_text()
    calls = len([e for e in sim_requests(sim) if e["deliberation"] == thread])
    assert calls == 8  # 3 proposals, 2 judgements, 3 ballots: checkpointed

    with nats_server:
        resumed = council("resume", thread, "--json", env=env)
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["deliberation_id"] == thread
        published_event(nats_server.url, thread)
    assert len([e for e in sim_requests(sim) if e["deliberation"] == thread]) == calls


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
    with EmbeddedValkey(tmp_path / "valkey", port=store.port):
        resumed = council("resume", thread, "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["deliberation_id"] == thread
    again = len([e for e in sim_requests(sim) if e["deliberation"] == thread]) - first
    assert again < 3 + 6 + 3 + 2 + 3  # finished calls were not made again


def test_an_llm_down_at_preflight_gives_no_resume_hint(tmp_path, valkey_url, nats_url):
    env = cli_env(
        tmp_path,
        VALKEY_URL=valkey_url,
        NATS_URL=nats_url,
        COUNCIL_LLM_BASE_URL=f"http://127.0.0.1:{free_port()}/v1",
    )
    run = council("deliberate", TASK, "--rounds", "0", "--quiet", env=env)
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
        run = council("deliberate", TASK, "--rounds", "1", "--id", thread, "--quiet", env=env)
    assert run.returncode == 3, run.stderr
    errors = error_lines(run.stderr)
    assert errors == [
        f"council: error: critique failed for agent-dev-002: the LLM at {sim.base_url} "
        "timed out after retries"
    ]
    assert f"resume: council resume {thread}" in run.stderr and "Traceback" not in run.stderr


# ---- metrics --------------------------------------------------------------------------------


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

        assert deliberate(http).status_code == 200  # 1: completed
        assert deliberate(http).status_code == 200  # 2: completed
        assert deliberate(http, rounds=99).status_code == 422  # 3: refused at the door
        fault = {"kind": "http_500", "stage": "critique"}
        assert httpx.post(sim_admin(sim, "/admin/faults"), json=fault).status_code == 200
        assert "critique failed for" in error_of(deliberate(http, rounds=1))  # 4: a stage fails
        httpx.delete(sim_admin(sim, "/admin/faults"))
        port = int(sim.base_url.split(":")[2].split("/")[0])
        sim.stop()
        assert "preflight failed" in error_of(deliberate(http))  # 5: prepare fails
        sim = ServerThread(SimVLLM(SimConfig(time_scale=0.002)), port=port).start()
        events.stop()
        thread = http.post("/threads", json={}).json()["thread_id"]
        assert "publish failed" in error_of(deliberate(http, thread))  # 6: publish fails
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


def test_the_worker_serves_metrics(tmp_path, valkey_url, sim):
    events = EmbeddedNats(tmp_path / "nats").start()
    port = free_port()
    env = cli_env(
        tmp_path, VALKEY_URL=valkey_url, NATS_URL=events.url, COUNCIL_LLM_BASE_URL=sim.base_url
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


# ---- exposure ---------------------------------------------------------------------------------


def test_serving_beyond_loopback_needs_authentication(tmp_path):
    env = cli_env(tmp_path)
    bare = council("serve", "--host", "0.0.0.0", "--port", str(free_port()), env=env, timeout=60)
    assert bare.returncode == 2, bare.stderr
    assert "refusing to serve beyond this machine without authentication" in bare.stderr
    studio = council(
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        str(free_port()),
        "--dev-studio",
        env=env,
        timeout=60,
    )
    assert studio.returncode == 2 and "--dev-studio" in studio.stderr


def test_dev_studio_lets_studio_in_on_loopback_only(tmp_path, valkey_url, nats_url, sim):
    server = Served(tmp_path, valkey_url, nats_url, sim.base_url, extra_args=("--dev-studio",))
    server.start()
    try:
        studio = server.as_(None)
        r = studio.post("/threads/search", json={}, headers={"x-auth-scheme": "langsmith"})
        assert r.status_code == 200
        assert studio.post("/threads/search", json={}).status_code == 401
    finally:
        server.stop()


# ---- JWTs -----------------------------------------------------------------------------------


def test_jwts_from_a_shared_secret_or_a_jwks(tmp_path, valkey_url, nats_url, sim):
    secret = "s3cret-" + uuid.uuid4().hex
    signer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signer.public_key()))
    jwks = Recorder({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]})
    server = Served(
        tmp_path,
        valkey_url,
        nats_url,
        sim.base_url,
        env={
            "COUNCIL_JWT_SECRET": secret,
            "COUNCIL_JWT_JWKS_URL": jwks.url + "/jwks.json",
            "COUNCIL_JWT_AUDIENCE": "council",
        },
    ).start()

    def claims(sub: str, **more: Any) -> dict[str, Any]:
        return {"sub": sub, "aud": "council", "exp": time.time() + 600, **more}

    try:
        carol = jwt.encode(claims("carol"), secret, algorithm="HS256")
        dave = jwt.encode(
            claims("dave", scope="council:admin"), signer, algorithm="RS256", headers={"kid": "k1"}
        )
        c, d = server.as_(carol), server.as_(dave)
        mine = c.post("/threads", json={}).json()
        assert mine["metadata"]["owner"] == "carol"
        assert d.get(f"/threads/{mine['thread_id']}").status_code == 404
        name = f"jwt-{uuid.uuid4().hex[:6]}"
        spec = {"name": name, "role": "DEV", "agents": [{"agent_id": "a"}, {"agent_id": "b"}]}
        assert c.post("/councils", json=spec).status_code == 403
        assert d.post("/councils", json=spec).status_code == 201  # admin by the JWT's scope
        assert d.delete(f"/councils/{name}").status_code == 204

        bad = [
            jwt.encode(claims("x", exp=time.time() - 5), secret, algorithm="HS256"),  # expired
            jwt.encode(claims("x"), "another secret, also 32 bytes long", algorithm="HS256"),
            jwt.encode({**claims("x"), "aud": "other"}, secret, algorithm="HS256"),
            jwt.encode({"sub": "x", "aud": "council"}, secret, algorithm="HS256"),  # no exp
            jwt.encode(claims("x"), stranger, algorithm="RS256", headers={"kid": "k1"}),
            jwt.encode(claims("x"), None, algorithm="none"),
        ]
        for token in bad:
            r = server.as_(token).post("/threads", json={})
            assert r.status_code == 401, (jwt.get_unverified_header(token), r.text)
        assert any(r["path"] == "/jwks.json" for r in jwks.requests)
    finally:
        server.stop()
        jwks.close()
