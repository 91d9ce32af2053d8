"""council's HTTP app, mounted by the LangGraph server beside its own API (``langgraph.json``).

- ``GET/POST /councils``, ``GET/DELETE /councils/{name}``: councils as data, in Valkey.
- ``GET /healthz``: Valkey, NATS and the LLM, each reported; 503 when one is down; Valkey's
  memory and the retained deliberations (``server.retention``).
- ``GET /metrics``: Prometheus (deliberations, durations, LLM calls and tokens, Valkey memory
  and retained deliberations).
- A middleware in front of the LangGraph API's run endpoints is the HTTP door: it admits each
  run's input and context (``core.request.admit``, one stored-council look-up) before the run
  is created: a refusal is one line naming the field and the limit, and nothing is stored; an
  admitted run carries the admission to the graph in its configuration (``ADMISSION_KEY``).
  A caller's ``config.configurable``, ``checkpoint`` and ``webhook`` are refused (a run's
  knobs are its ``context``), a run's ``command`` may only ``resume``, and a new thread may not
  carry ``supersteps``: the state is written by runs. Every run is checkpointed after each step,
  a stateless one too, and none is created while Valkey does not answer (503).
- The same middleware bounds every request body (``MAX_BODY_BYTES``: 413; JSON deeper than
  ``MAX_JSON_DEPTH``: 422), closes the store (403), and answers another owner's thread id
  with 404 where the LangGraph API would say 409 (it exists).

``create_app(settings)`` builds it; ``server.served`` builds the one the LangGraph server
mounts, from the environment.

Authentication runs first (``server.auth``; ``langgraph.json``: ``enable_custom_route_auth``,
``middleware_order: auth_first``), so nothing here answers a caller without a valid token but
``/healthz`` and ``/metrics``. Creating and deleting councils needs the ``council:admin`` scope.
The development runtime's unauthenticated maintenance routes (``/internal/...``, which can
truncate every thread, and ``/deploy``) are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import valkey.exceptions
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from council_agents.core.errors import describe
from council_agents.core.limits import MAX_BODY_BYTES
from council_agents.core.metrics import refused as count_refused
from council_agents.core.request import (
    ADMISSION_KEY,
    RequestError,
    admit,
    load_json,
    parse_context,
    parse_council,
)
from council_agents.core.settings import Settings, display_url
from council_agents.events.publisher import connect_once
from council_agents.server import logs, retention
from council_agents.server.services import exit_with
from council_agents.storage.apikeys import ADMIN_SCOPE
from council_agents.storage.councils import CouncilStore
from council_agents.storage.saver import PING_TIMEOUT_S

Endpoint = Callable[[Request], Awaitable[Response]]

_RUN_PATHS = re.compile(r"^/(threads/[^/]+/)?runs(/wait|/stream)?/?$")
_STATELESS_PATHS = re.compile(r"^/runs(/wait|/stream|/batch)?/?$")
_BATCH_PATH = re.compile(r"^/runs/batch/?$")
_THREADS_PATH = re.compile(r"^/threads/?$")
_COPY_PATH = re.compile(r"^/threads/([^/]+)/copy/?$")
_CLOSED_PATHS = re.compile(r"^/(internal|deploy)(/|$)")
_STORE_PATHS = re.compile(r"^/store(/|$)")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_FORKS = ("checkpoint", "checkpoint_id")
"""A run's fields that would start it from another checkpoint (and carry configuration)."""


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


class Door:
    """What the HTTP door needs: the process settings and one council store (connected on
    first use, closed with the app).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: CouncilStore | None = None
        self.sweeper: retention.Sweeper | None = None
        """The served process's retention sweep (its figures reach /metrics and /healthz)."""

    @property
    def store(self) -> CouncilStore:
        """The council store on the server's Valkey."""
        if self._store is None:
            url = self.settings.storage.valkey_url
            if not url:
                raise RuntimeError("VALKEY_URL is not set (`council serve` sets it)")
            self._store = CouncilStore(url)
        return self._store

    async def aclose(self) -> None:
        """Close the store's connections."""
        if self._store is not None:
            await self._store.aclose()

    async def storage_answers(self) -> None:
        """``RequestError`` (503) naming Valkey unless it answers: a run whose state could not
        be saved is not started.
        """
        try:
            await asyncio.wait_for(self.store.ping(), timeout=PING_TIMEOUT_S)
        except (valkey.exceptions.ValkeyError, OSError, TimeoutError) as e:
            raise storage_down(
                self.settings, e, "no run is started (its state could not be saved)"
            ) from e

    async def admit_run(
        self, body: dict[str, Any], owner: str | None = None, stateless: bool = False
    ) -> dict[str, Any]:
        """A run request, admitted: refused (``RequestError`` names the field) or rewritten so
        that the graph receives the admission in its configuration (``ADMISSION_KEY``) and the
        caller's context as the run's configurable (the LangGraph API mirrors one into the
        other; only the context schema's fields reach the graph as its context). Every run is
        checkpointed after each step (``durability: sync``); a stateless one keeps its thread
        (``on_completion: keep``: the LangGraph server runs a thread it deletes afterwards
        without a checkpointer, and council runs nothing it could not save).
        """
        command = body.get("command")
        if command is not None and (not isinstance(command, dict) or command.keys() - {"resume"}):
            # Command(update=..., goto=...) would write the state around every check
            raise RequestError("command", "only `resume` (a human's answer) is accepted")
        config = body.get("config")
        if config is not None and (
            not isinstance(config, dict) or (config.get("configurable") or {})
        ):
            raise RequestError(
                "config.configurable", "not accepted: give a run's knobs as `context`"
            )
        for name in _FORKS:  # the LangGraph API copies `checkpoint` into the configuration
            if body.get(name) is not None:
                raise RequestError(name, "not accepted: a deliberation runs from its own state")
        if body.get("webhook") is not None:
            raise RequestError("webhook", "not accepted: the server calls no URL a caller names")
        durable = {"durability": "sync", **({"on_completion": "keep"} if stateless else {})}
        if body.get("input") is None:  # resuming (Command) or continuing a thread
            if body.get("context") is not None:
                parse_context(body["context"])
            return {**body, **durable}
        context = parse_context(body.get("context"))
        stored = await self.store.get(context.council) if context.council else None
        if context.council and stored is None:
            known = ", ".join(c.name for c in await self.store.list())
            raise RequestError(
                "context.council",
                f"unknown council {context.council!r}; known: {known}",
                status=404,
            )
        admission = admit(
            body["input"], context, stored, self.settings.llm, origin="http", owner=owner
        )
        given = {k: v for k, v in dataclasses.asdict(context).items() if v is not None}
        return {
            **{k: v for k, v in body.items() if k != "context"},
            **durable,
            "input": admission["input"],
            "config": {**(config or {}), "configurable": {**given, ADMISSION_KEY: admission}},
        }


def storage_down(settings: Settings, e: BaseException, what: str) -> RequestError:
    """The 503 of a request that needs Valkey when it does not answer, naming it and why."""
    url = display_url(settings.storage.valkey_url)
    cause = f"{type(e).__name__}: {e}".rstrip(": ")
    return RequestError("valkey", f"{url} does not answer ({cause}): {what}", status=503)


def _identity(scope: Scope) -> str | None:
    """Who is calling (the authentication ran before this middleware)."""
    user = scope.get("user")
    identity = getattr(user, "identity", None)
    return str(identity) if identity else None


async def _read_body(receive: Receive, declared: int | None) -> bytes:
    """The whole request body, or ``RequestError`` (413) past ``MAX_BODY_BYTES``."""
    limit = MAX_BODY_BYTES
    if declared is not None and declared > limit:
        raise RequestError("body", f"{declared} bytes; the limit is {limit}", status=413)
    chunks, size = [], 0
    while True:
        msg = await receive()
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError("body", f"more than {limit} bytes; the limit is {limit}", status=413)
        chunks.append(chunk)
        if not msg.get("more_body"):
            return b"".join(chunks)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RunInputMiddleware:
    """Pure ASGI (streaming responses pass untouched), in front of every route: closes the
    routes council does not serve, bounds every request body (size and JSON depth), admits
    run-creating POSTs, and answers another owner's thread id with 404.
    """

    def __init__(self, app: ASGIApp, door: Door):
        self.app, self.door = app, door

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse, rewrite and admit, or pass the request on."""
        if scope["type"] != "http":
            await self._pass(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if _CLOSED_PATHS.match(path):
            await _problem(404, "Not Found")(scope, receive, send)
            return
        if _STORE_PATHS.match(path):  # deny by default said 403, but {} reached a 500 first
            await _problem(403, "the store is not open to callers")(scope, receive, send)
            return
        if method not in _BODY_METHODS:
            await self._pass(scope, receive, send)
            return
        try:
            raw = await _read_body(receive, _declared_length(scope))
            body: Any = load_json(raw) if raw.strip() else None
        except RequestError as e:
            if e.status != 400:  # too large, too deep: refused here
                await _problem(e.status, str(e))(scope, receive, send)
                return
            # malformed JSON: the LangGraph API (or council's route) answers it itself
            await self._pass(scope, _replay(raw, receive), send)
            return
        if method != "POST":
            await self._pass(scope, _replay(raw, receive), send)
            return
        runs = bool(_RUN_PATHS.match(path) or _BATCH_PATH.match(path))
        new_thread = bool(_THREADS_PATH.match(path))
        try:
            if runs:
                await self.door.storage_answers()
                raw = await self._admitted(path, body, _identity(scope)) or raw
            elif new_thread and isinstance(body, dict) and body.get("supersteps"):
                raise RequestError("supersteps", "the state is written by runs, not by callers")
        except RequestError as e:
            if runs and e.status != 503:
                count_refused("input")
            await _problem(e.status, str(e))(scope, receive, send)
            return
        chosen = body.get("thread_id") if new_thread and isinstance(body, dict) else None
        copied = _COPY_PATH.match(path)
        if chosen or copied:  # 409 would tell another owner's thread exists: it answers 404
            thread = str(chosen) if chosen else copied.group(1) if copied else ""
            await self._not_revealing(thread, scope, _replay(raw, receive), send)
            return
        await self._pass(scope, _replay(raw, receive), send)

    async def _pass(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The request to the app behind; Valkey failing under it (a thread's state, a
        checkpoint) is a 503 naming it, as long as no answer has started.
        """
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as e:
            if started or describe(e).kind != "valkey":
                raise
            down = storage_down(self.door.settings, e, "the request needs it")
            await _problem(down.status, str(down))(scope, receive, send)

    async def _admitted(self, path: str, body: Any, owner: str | None) -> bytes | None:
        """The run request rewritten by the door (None: not a run body, left to the API)."""
        stateless = bool(_STATELESS_PATHS.match(path))
        if _BATCH_PATH.match(path) and isinstance(body, list):
            rewritten: Any = [
                await self.door.admit_run(r, owner, stateless) if isinstance(r, dict) else r
                for r in body
            ]
        elif isinstance(body, dict):
            rewritten = await self.door.admit_run(body, owner, stateless)
        else:
            return None
        return orjson.dumps(rewritten)

    async def _not_revealing(self, thread: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass a request naming ``thread`` on; a 409 (it exists) becomes 404 when the caller
        cannot see that thread (another owner's), as every other route answers.
        """
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        status = next((m["status"] for m in held if m["type"] == "http.response.start"), 0)
        if status == 409 and not await self._visible(thread, scope):
            await _problem(404, f"thread {thread[:64]!r} not found")(scope, receive, send)
            return
        for message in held:
            await send(message)

    async def _visible(self, thread: str, scope: Scope) -> bool:
        """Whether the caller can read ``thread`` (``GET /threads/{id}`` as them)."""
        status = 0

        async def nothing() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        get = {
            **scope,
            "method": "GET",
            "path": f"/threads/{thread}",
            "raw_path": f"/threads/{thread}".encode(),
            "query_string": b"",
        }
        await self.app(get, nothing, seen)
        return status == 200


def _replay(raw: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``raw`` as the whole body, then defers to ``receive``."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay


def _scopes(request: Request) -> list[str]:
    """The caller's scopes (none when no authentication ran: deny by default)."""
    credentials = request.scope.get("auth")
    return list(getattr(credentials, "scopes", None) or [])


def _refused(request: Request, admin: bool = False) -> Response | None:
    """401 for an anonymous caller; 403 for a non-admin where ``admin`` is needed."""
    user = request.scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return _problem(401, "authentication required: send `Authorization: Bearer <key>`")
    if admin and ADMIN_SCOPE not in _scopes(request):
        return _problem(403, f"managing councils needs the {ADMIN_SCOPE} scope")
    return None


def routes(door: Door) -> list[Route]:
    """``/councils``, ``/healthz`` and ``/metrics``, served by ``door``."""

    async def list_councils(request: Request) -> Response:
        """Every stored council."""
        if refused := _refused(request):
            return refused
        return JSONResponse([c.model_dump() for c in await door.store.list()])

    async def get_council(request: Request) -> Response:
        """One stored council."""
        if refused := _refused(request):
            return refused
        council = await door.store.get(request.path_params["name"])
        if council is None:
            return _problem(404, f"council {request.path_params['name']!r} does not exist")
        return JSONResponse(council.model_dump())

    async def create_council(request: Request) -> Response:
        """Store a new council (409 when the name is taken); admins only."""
        if refused := _refused(request, admin=True):
            return refused
        try:
            council = parse_council(load_json(await request.body()), door.settings.llm)
        except RequestError as e:
            return _problem(e.status, str(e))
        if not await door.store.create(council):
            return _problem(409, f"council {council.name!r} exists already; DELETE it first")
        return JSONResponse(council.model_dump(), status_code=201)

    async def delete_council(request: Request) -> Response:
        """Remove a stored council; admins only."""
        if refused := _refused(request, admin=True):
            return refused
        if not await door.store.delete(request.path_params["name"]):
            return _problem(404, f"council {request.path_params['name']!r} does not exist")
        return Response(status_code=204)

    async def healthz(_: Request) -> Response:
        """Valkey, NATS and the LLM, each reported; 503 when one is down."""
        current = door.settings
        report: dict[str, dict[str, Any]] = {}
        try:
            await door.store.ping()
            report["valkey"] = {"ok": True}
            survey = door.sweeper.last if door.sweeper is not None else None
            report["storage"] = await retention.health(door.store.client, survey)
        except Exception as e:  # noqa: BLE001 - reported, not raised
            report["valkey"] = {"ok": False, "error": str(e)}
        report["nats"] = await _check_nats(current.events.nats_url, current.events.nats_creds)
        report["llm"] = await _check_llm(current.llm.base_url)
        ok = all(v["ok"] for v in report.values())
        return JSONResponse({"ok": ok, **report}, status_code=200 if ok else 503)

    def on_storage(handler: Endpoint) -> Endpoint:
        """``handler``, answering 503 naming Valkey when it does not answer."""

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (valkey.exceptions.ValkeyError, OSError) as e:
                down = storage_down(door.settings, e, "councils cannot be read or changed")
                return _problem(down.status, str(down))

        return guarded

    return [
        Route("/councils", on_storage(list_councils)),
        Route("/councils", on_storage(create_council), methods=["POST"]),
        Route("/councils/{name}", on_storage(get_council)),
        Route("/councils/{name}", on_storage(delete_council), methods=["DELETE"]),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
    ]


async def _check_nats(url: str | None, creds: Path | None) -> dict[str, Any]:
    if not url:
        return {"ok": False, "error": "NATS_URL is not set: events are not published"}
    try:
        nc = await connect_once(url, creds, timeout=3)
        await nc.close()
        return {"ok": True}
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


async def _check_llm(base_url: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=3) as client:
            response = await client.get(base_url.rstrip("/") + "/models")
            response.raise_for_status()
            models = [m["id"] for m in response.json().get("data", [])]
            return {"ok": True, "base_url": base_url, "models": models}
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return {"ok": False, "base_url": base_url, "error": f"{type(e).__name__}: {e}"}


async def metrics(_: Request) -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings) -> Starlette:
    """Council's HTTP app for a process with ``settings``: its routes, the run door, and a
    lifespan that sends council's logs to the log file and sweeps retention meanwhile.
    """
    door = Door(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if settings.server.log_file is not None:  # council serve: council's logs to its file
            logs.to_file(settings.server.log_file)
        if settings.server.serve_parent is not None:  # never outlive `council serve`
            exit_with(settings.server.serve_parent)
        owner = f"serve-{socket.gethostname()}-{os.getpid()}"
        try:
            async with retention.sweeping(settings, owner=owner) as sweeper:
                door.sweeper = sweeper
                yield
        finally:
            door.sweeper = None
            await door.aclose()

    app = Starlette(routes=routes(door), lifespan=lifespan)
    app.add_middleware(RunInputMiddleware, door=door)
    return app
