"""Helpers the tests share (imported by tests; fixtures stay in conftest.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import httpx
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from council_agents.core.context import Context
from council_agents.core.request import CouncilSpec, admit
from council_agents.core.settings import LLMSettings, Settings
from council_agents.core.state import Council
from council_agents.server.runner import Deliberations, Outcome
from council_agents.server.services import free_port
from council_agents.sim_vllm import ServerThread
from council_agents.storage.apikeys import ADMIN_SCOPE, KeyStore
from council_agents.storage.councils import CouncilStore
from council_agents.storage.saver import valkey_saver

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent

TIERS: dict[str, tuple[str, float]] = {
    # tests/<directory> -> (its tier's marker, seconds one of its tests may take)
    "unit": ("unit", 60),  # in-process: the slowest takes ~10 s on 2 busy cores
    "integration": ("integration", 300),  # real servers and processes
    "bench": ("bench_smoke", 180),  # each bench command at its smallest: ~5-20 s
}
"""The test tiers, by directory (``tests/conftest.py`` marks every test with its tier and the
tier's timeout unless the test names its own); ``real_llm`` is a marker of its own, opt-in."""


def tier_of(path: Path) -> tuple[str, float] | None:
    """The tier (marker, timeout) of a test file: by its directory under ``tests/``."""
    try:
        parts = path.resolve().relative_to(ROOT / "tests").parts
    except ValueError:
        return None
    return TIERS.get(parts[0]) if len(parts) > 1 else None


TASKS = [
    json.loads(x)
    for x in resources.files("council_agents.cli").joinpath("tasks.jsonl").read_text().splitlines()
]

TASK = "Add rate limiting (100 requests per minute per API key) to the public API."
"""The task of the served app's and the CLI's trust and failure tests (``run_wait``'s default)."""


def sim_admin(sim: ServerThread, path: str) -> str:
    """An admin URL of a simulated vLLM."""
    return sim.base_url.removesuffix("/v1") + path


def sim_requests(sim: ServerThread) -> list[dict[str, Any]]:
    """The simulated vLLM's request log."""
    requests: list[dict[str, Any]] = httpx.get(sim_admin(sim, "/admin/requests")).json()["requests"]
    return requests


def revisers(event: dict[str, Any]) -> list[str]:
    """The revise calls a completed event's deliberation made, one author per (round, author)
    with a severe critique (targeted deliberation: only they revise; the others are carried).
    """
    return sorted(
        p["author"]["agent_id"]
        for p in event["proposals"]
        for r in {
            c["round"]
            for c in p["critiques_received"]
            if c["violations"] or any(d["severity"] in ("blocker", "major") for d in c["defects"])
        }
    )


def expected_calls(event: dict[str, Any], rotations: int = 3) -> dict[str, int]:
    """The calls per stage a completed event's deliberation made when none was retried or left
    out: every proposal, every critique it records, the revisers (``revisers``), the judges
    (one per rotation) unless the ballots came first and were unanimous (``judges_skipped``),
    one ballot per agent.
    """
    proposals = event["proposals"]
    return {
        "propose": len(proposals),
        "critique": sum(len(p["critiques_received"]) for p in proposals),
        "revise": len(revisers(event)),
        "judge": 0 if event["decision"].get("judges_skipped") else rotations,
        "vote": len(proposals),
    }


def council(role: str = "QA", agents: int = 3, rounds: int = 1, **inp: Any) -> Council:
    """A built-in council, as a door admits it."""
    admitted = admit(
        {"task": "t", "role": role, "rounds": rounds, **inp},
        {"agents": agents},
        None,
        LLMSettings(model="m"),
    )
    return admitted["council"]


async def deliberate(
    saver: Any,
    thread_id: str,
    inp: dict[str, Any] | None,
    context: Context | dict[str, Any] | None,
    settings: Settings,
    *,
    stored: CouncilSpec | None = None,
    **run: Any,
) -> Outcome:
    """What a door does: admit the request once (``inp`` None: resume), looking the stored
    council it names up once in ``settings.storage``'s Valkey, then run it.
    """
    name = (context or {}).get("council") if isinstance(context, dict) else None
    name = context.council if isinstance(context, Context) else name
    if inp is not None and name and stored is None and settings.storage.valkey_url:
        store = CouncilStore(settings.storage.valkey_url)
        try:
            stored = await store.get(name)
        finally:
            await store.aclose()
    deliberations = Deliberations(settings, saver)
    try:
        admission = None if inp is None else admit(inp, context, stored, settings.llm)
        return await deliberations.run(thread_id, admission, **run)
    finally:
        await deliberations.close()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end from sync or async test code (in a thread of its own)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def api_key(valkey_url: str, owner: str, admin: bool = False) -> str:
    """A new API key for ``owner`` in the Valkey at ``valkey_url`` (as ``council keys create``)."""

    async def create() -> str:
        store = KeyStore(valkey_url)
        try:
            token, _ = await store.create(owner, [ADMIN_SCOPE] if admin else [])
            return token
        finally:
            await store.aclose()

    return run_sync(create())


class Served:
    """``council serve`` in a subprocess on a free port, with an admin API key (``token``)."""

    def __init__(
        self,
        tmp_path: Path,
        valkey_url: str,
        nats_url: str,
        llm_url: str,
        *,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        owner: str = "tester",
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.valkey_url = valkey_url
        self.env = dict(os.environ)
        self.env.update(
            VALKEY_URL=valkey_url,
            NATS_URL=nats_url,
            COUNCIL_LLM_BASE_URL=llm_url,
            COUNCIL_DATA_DIR=str(tmp_path / "data"),
            PYTHONPATH=str(ROOT),
            **(env or {}),
        )
        self.extra_args = extra_args
        self.log = tmp_path / f"serve-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = api_key(valkey_url, owner, admin=True)
        self.headers = {"Authorization": f"Bearer {self.token}"}
        self.http = httpx.Client(base_url=self.url, headers=self.headers, timeout=120)

    def client(self, token: str | None = None) -> LangGraphClient:
        """A ``langgraph_sdk`` client with this server's admin key (or ``token``)."""
        return get_client(url=self.url, headers={"Authorization": f"Bearer {token or self.token}"})

    def as_(self, token: str | None) -> httpx.Client:
        """An HTTP client sending ``token`` (None: no Authorization header)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def start(self) -> Served:
        """Start and wait until the API answers."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "council_agents.cli", "serve", "--port", str(self.port)]
            + list(self.extra_args),
            env=self.env,
            cwd=ROOT,
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/ok", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.25)
        raise RuntimeError(f"langgraph server did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Stop the server and its process group."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def run_wait(http: httpx.Client, thread_id: str | None = None, **inp: Any) -> httpx.Response:
    """A blocking run (a stateless one without ``thread_id``)."""
    path = f"/threads/{thread_id}/runs/wait" if thread_id else "/runs/wait"
    body = {"task": TASK, "role": "DEV", "rounds": 0, **inp}
    return http.post(path, json={"assistant_id": "council", "input": body})


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


def council_cli(
    *args: str, env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run ``council ARGS`` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "council_agents.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
        """Stop serving."""
        self.httpd.shutdown()


class KeptPort:
    """A loopback port that no other process can take while nothing serves on it.

    A socket is bound to it and never listens, so a connection is refused as by a server that is
    down; ``release`` lets the port go just before the server starts on it. A port left free
    for seconds (from ``free_port()`` to a server's start, or from a server's stop to its
    restart) can be handed to any process's ``bind(0)`` meanwhile, and the server then cannot
    start on it.
    """

    def __init__(self, port: int = 0):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        self.sock.bind(("127.0.0.1", port))
        self.port: int = self.sock.getsockname()[1]

    def release(self) -> None:
        """Let the port go (for the server about to start on it)."""
        self.sock.close()


def tasks_stored(valkey_url: str, thread_id: str, count: int, timeout: float = 60) -> int:
    """Wait until ``count`` tasks of a thread's running step have their writes in Valkey (what a
    resume does not run again; an LLM call can end well before its task's writes are stored),
    or ``timeout`` seconds; the number stored.
    """

    async def stored() -> int:
        config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        async with valkey_saver(valkey_url) as saver:
            found = await saver.aget_tuple(config)  # type: ignore[arg-type]
        return len({task for task, _, _ in (found.pending_writes or [])}) if found else 0

    deadline = time.monotonic() + timeout
    while (n := run_sync(stored())) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return n
