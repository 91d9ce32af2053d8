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
  A caller's ``config.configurable`` is refused (a run's knobs are its ``context``), a run's
  ``command`` may only ``resume``, and a new thread may not carry ``supersteps``: the state is
  written by runs.

``create_app(settings)`` builds it; ``server.served`` builds the one the LangGraph server
mounts, from the environment.

Authentication runs first (``server.auth``; ``langgraph.json``: ``enable_custom_route_auth``,
``middleware_order: auth_first``), so nothing here answers a caller without a valid token but
``/healthz`` and ``/metrics``. Creating and deleting councils needs the ``council:admin`` scope.
The development runtime's unauthenticated maintenance routes (``/internal/...``, which can
truncate every thread, and ``/deploy``) are closed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from council_agents.core.metrics import refused as count_refused
from council_agents.core.request import (
    ADMISSION_KEY,
    RequestError,
    admit,
    parse_context,
    parse_council,
)
from council_agents.core.settings import Settings
from council_agents.events.publisher import connect_once
from council_agents.server import logs, retention
from council_agents.storage.apikeys import ADMIN_SCOPE
from council_agents.storage.councils import CouncilStore

_RUN_PATHS = re.compile(r"^/(threads/[^/]+/)?runs(/wait|/stream)?/?$")
_BATCH_PATH = re.compile(r"^/runs/batch/?$")
_THREADS_PATH = re.compile(r"^/threads/?$")
_CLOSED_PATHS = re.compile(r"^/(internal|deploy)(/|$)")


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

    async def admit_run(self, body: dict[str, Any]) -> dict[str, Any]:
        """A run request, admitted: refused (``RequestError`` names the field) or rewritten so
        that the graph receives the admission in its configuration (``ADMISSION_KEY``) and the
        caller's context as the run's configurable (the LangGraph API mirrors one into the
        other; only the context schema's fields reach the graph as its context).
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
        if body.get("input") is None:  # resuming (Command) or continuing a thread
            if body.get("context") is not None:
                parse_context(body["context"])
            return body
        context = parse_context(body.get("context"))
        stored = await self.store.get(context.council) if context.council else None
        if context.council and stored is None:
            known = ", ".join(c.name for c in await self.store.list())
            raise RequestError(
                "context.council",
                f"unknown council {context.council!r}; known: {known}",
                status=404,
            )
        admission = admit(body["input"], context, stored, self.settings.llm)
        given = {k: v for k, v in dataclasses.asdict(context).items() if v is not None}
        return {
            **{k: v for k, v in body.items() if k != "context"},
            "input": admission["input"],
            "config": {**(config or {}), "configurable": {**given, ADMISSION_KEY: admission}},
        }


class RunInputMiddleware:
    """Pure ASGI (streaming responses pass untouched): admits run-creating POSTs."""

    def __init__(self, app: ASGIApp, door: Door):
        self.app, self.door = app, door

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit a run-creating POST (or refuse it), pass everything else on."""
        if scope["type"] == "http" and _CLOSED_PATHS.match(scope["path"]):
            await _problem(404, "Not Found")(scope, receive, send)
            return
        path = scope["path"] if scope["type"] == "http" and scope["method"] == "POST" else ""
        batch, new_thread = bool(_BATCH_PATH.match(path)), bool(_THREADS_PATH.match(path))
        if not (batch or new_thread or _RUN_PATHS.match(path)):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        raw = b"".join(chunks)
        try:
            body = json.loads(raw or b"{}")
            if new_thread:
                if isinstance(body, dict) and body.get("supersteps"):
                    raise RequestError("supersteps", "the state is written by runs, not by callers")
            elif batch and isinstance(body, list):
                body = [await self.door.admit_run(r) if isinstance(r, dict) else r for r in body]
                raw = json.dumps(body).encode()
            elif isinstance(body, dict):
                body = await self.door.admit_run(body)
                raw = json.dumps(body).encode()
        except json.JSONDecodeError:
            pass  # the LangGraph API answers malformed JSON itself
        except RequestError as e:
            if not new_thread:
                count_refused("input")
            await _problem(e.status, str(e))(scope, receive, send)
            return
        await self.app(scope, _replay(raw, receive), send)


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
            council = parse_council(await request.json(), door.settings.llm)
        except json.JSONDecodeError as e:
            return _problem(400, f"body: malformed JSON: {e}")
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

    return [
        Route("/councils", list_councils),
        Route("/councils", create_council, methods=["POST"]),
        Route("/councils/{name}", get_council),
        Route("/councils/{name}", delete_council, methods=["DELETE"]),
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
