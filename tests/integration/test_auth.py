"""Who may call the real LangGraph server (``council serve``, with Valkey and NATS), and what
each caller may see and do.

API keys (made, listed and revoked with ``council keys``), JWTs (a shared secret or a JWKS),
nothing else; each caller sees their own threads; admins manage councils and assistants; serving
beyond loopback needs authentication, and ``--dev-studio`` lets Studio in on loopback only.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest
import valkey
from cryptography.hazmat.primitives.asymmetric import rsa

from council_agents.server.services import free_port
from council_agents.storage.apikeys import KeyStore
from council_agents.storage.saver import client_url
from tests.helpers import (
    TASK,
    Recorder,
    Served,
    api_key,
    cli_env,
    council_cli,
    run_sync,
    run_wait,
    sim_requests,
)


async def revoke(valkey_url: str, key_id: str) -> bool:
    store = KeyStore(valkey_url)
    try:
        return await store.revoke(key_id)
    finally:
        await store.aclose()


@pytest.fixture(scope="module")
def alice(served) -> str:
    return api_key(served.valkey_url, "alice")


@pytest.fixture(scope="module")
def bob(served) -> str:
    return api_key(served.valkey_url, "bob")


# ---- authentication -----------------------------------------------------------------------------


def test_without_a_valid_token_no_request_reaches_a_thread_run_or_council(served, module_sim):
    admin = served.http
    thread = admin.post("/threads", json={}).json()["thread_id"]
    assert run_wait(admin, thread).status_code == 200
    before_state = admin.get(f"/threads/{thread}/state").json()
    councils = sorted(c["name"] for c in admin.get("/councils").json())
    calls = len(sim_requests(module_sim))

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

    assert len(sim_requests(module_sim)) == calls
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
    made = council_cli("keys", "create", "--owner", "carol", "--label", "ci", "--json", env=env)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["key"].startswith("ck_") and key["owner"] == "carol" and key["scopes"] == []
    carol = served.as_(key["key"])
    assert carol.post("/threads", json={}).json()["metadata"]["owner"] == "carol"

    listed = council_cli("keys", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    mine = [k for k in json.loads(listed.stdout) if k["key_id"] == key["key_id"]]
    assert mine == [{k: key[k] for k in ("key_id", "owner", "scopes", "label", "created_at")}]
    assert key["key"] not in listed.stdout and "sha256" not in listed.stdout
    stored = valkey.from_url(client_url(served.valkey_url)).hget("council:apikeys", key["key_id"])
    assert key["key"].encode() not in stored  # only its SHA-256

    revoked = council_cli("keys", "revoke", key["key_id"], env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert carol.post("/threads", json={}).status_code == 401
    assert council_cli("keys", "revoke", key["key_id"], env=env).returncode == 2


# ---- authorization ------------------------------------------------------------------------------


def test_one_owner_cannot_read_or_touch_another_owners_thread(served, alice, bob):
    a, b = served.as_(alice), served.as_(bob)
    thread = a.post("/threads", json={"metadata": {"owner": "bob"}}).json()
    tid = thread["thread_id"]
    assert thread["metadata"]["owner"] == "alice"  # the owner is stamped, not chosen
    out = run_wait(a, tid)
    assert out.status_code == 200 and out.json()["result"]["role"] == "DEV"

    assert b.get(f"/threads/{tid}").status_code == 404
    assert b.get(f"/threads/{tid}/state").status_code == 404
    assert b.post(f"/threads/{tid}/history", json={}).status_code == 404
    assert b.get(f"/threads/{tid}/runs").status_code == 404
    assert b.patch(f"/threads/{tid}", json={"metadata": {"x": 1}}).status_code == 404
    assert b.delete(f"/threads/{tid}").status_code == 404
    assert run_wait(b, tid).status_code == 404
    assert tid not in [t["thread_id"] for t in b.post("/threads/search", json={}).json()]
    # bob's own deliberations work, and alice does not see them
    own = b.post("/threads", json={}).json()["thread_id"]
    assert run_wait(b, own).status_code == 200
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


# ---- exposure -----------------------------------------------------------------------------------


def test_serving_beyond_loopback_needs_authentication(tmp_path):
    env = cli_env(tmp_path)
    bare = council_cli(
        "serve", "--host", "0.0.0.0", "--port", str(free_port()), env=env, timeout=60
    )
    assert bare.returncode == 2, bare.stderr
    assert "refusing to serve beyond this machine without authentication" in bare.stderr
    studio = council_cli(
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


def test_dev_studio_lets_studio_in_on_loopback_only(tmp_path, valkey_url, nats_url, module_sim):
    server = Served(
        tmp_path, valkey_url, nats_url, module_sim.base_url, extra_args=("--dev-studio",)
    )
    server.start()
    try:
        studio = server.as_(None)
        r = studio.post("/threads/search", json={}, headers={"x-auth-scheme": "langsmith"})
        assert r.status_code == 200
        assert studio.post("/threads/search", json={}).status_code == 401
    finally:
        server.stop()


# ---- JWTs ---------------------------------------------------------------------------------------


def test_jwts_from_a_shared_secret_or_a_jwks(tmp_path, valkey_url, nats_url, module_sim):
    secret = "s3cret-" + uuid.uuid4().hex
    signer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signer.public_key()))
    jwks = Recorder({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]})
    server = Served(
        tmp_path,
        valkey_url,
        nats_url,
        module_sim.base_url,
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
