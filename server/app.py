"""council's HTTP app, mounted by the LangGraph server beside its own API (``langgraph.json``).

- ``GET/POST /councils``, ``GET/DELETE /councils/{name}``: councils as data, in Valkey.
- ``GET /healthz``: Valkey, NATS and the LLM, each reported; 503 when one is down; Valkey's
  memory and the retained deliberations (``server.retention``).
- ``GET /metrics``: Prometheus (deliberations, durations, LLM calls and tokens, Valkey memory
  and retained deliberations).
- A middleware in front of the LangGraph API's run endpoints resolves each run's input and
  context with ``graph.request.resolve`` before the run is created: a refusal is one line
  naming the field and the limit, and nothing is stored. A run's ``command`` may only
  ``resume``, and a new thread may not carry ``supersteps``: the state is written by runs.

Authentication runs first (``server.auth``; ``langgraph.json``: ``enable_custom_route_auth``,
``middleware_order: auth_first``), so nothing here answers a caller without a valid token but
``/healthz`` and ``/metrics``. Creating and deleting councils needs the ``council:admin`` scope.
The development runtime's unauthenticated maintenance routes (``/internal/...``, which can
truncate every thread, and ``/deploy``) are closed.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from council_agents.core import settings
from council_agents.core.metrics import refused as count_refused
from council_agents.core.request import RequestError, parse_context, parse_council, resolve
from council_agents.events.publisher import connect_once
from council_agents.server import logs, retention
from council_agents.storage.apikeys import ADMIN_SCOPE
from council_agents.storage.councils import CouncilStore

_RUN_PATHS = re.compile(r"^/(threads/[^/]+/)?runs(/wait|/stream)?/?$")
_BATCH_PATH = re.compile(r"^/runs/batch/?$")
_THREADS_PATH = re.compile(r"^/threads/?$")
_CLOSED_PATHS = re.compile(r"^/(internal|deploy)(/|$)")
_store: CouncilStore | None = None


def store() -> CouncilStore:
    """The council store on the server's Valkey."""
    global _store
    if _store is None:
        url = settings.current().valkey_url
        if not url:
            raise RuntimeError("VALKEY_URL is not set (`council serve` sets it)")
        _store = CouncilStore(url)
    return _store


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


async def resolve_run_body(body: dict[str, Any]) -> dict[str, Any]:
    """Validate a run request's input and context (``RequestError`` names the field)."""
    command = body.get("command")
    if command is not None and (not isinstance(command, dict) or command.keys() - {"resume"}):
        # Command(update=..., goto=...) would write the state around every check
        raise RequestError("command", "only `resume` (a human's answer) is accepted")
    if body.get("input") is None:  # resuming (Command) or continuing a thread
        if body.get("context") is not None:
            parse_context(body["context"])
        return body
    context = parse_context(body.get("context"))
    stored = await store().get(context.council) if context.council else None
    if context.council and stored is None:
        known = ", ".join(c.name for c in await store().list())
        raise RequestError(
            "context.council", f"unknown council {context.council!r}; known: {known}", status=404
        )
    resolve(body["input"], context, stored, settings.current())
    return body


class RunInputMiddleware:
    """Pure ASGI (streaming responses pass untouched): checks run-creating POSTs."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
            else:
                for run in body if batch and isinstance(body, list) else [body]:
                    if isinstance(run, dict):
                        await resolve_run_body(run)
        except json.JSONDecodeError:
            pass  # the LangGraph API answers malformed JSON itself
        except RequestError as e:
            if not new_thread:
                count_refused("input")
            await _problem(e.status, str(e))(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


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


async def list_councils(request: Request) -> Response:
    """Every stored council."""
    if refused := _refused(request):
        return refused
    return JSONResponse([c.model_dump() for c in await store().list()])


async def get_council(request: Request) -> Response:
    """One stored council."""
    if refused := _refused(request):
        return refused
    council = await store().get(request.path_params["name"])
    if council is None:
        return _problem(404, f"council {request.path_params['name']!r} does not exist")
    return JSONResponse(council.model_dump())


async def create_council(request: Request) -> Response:
    """Store a new council (409 when the name is taken); admins only."""
    if refused := _refused(request, admin=True):
        return refused
    try:
        council = parse_council(await request.json(), settings.current())
    except json.JSONDecodeError as e:
        return _problem(400, f"body: malformed JSON: {e}")
    except RequestError as e:
        return _problem(e.status, str(e))
    if not await store().create(council):
        return _problem(409, f"council {council.name!r} exists already; DELETE it first")
    return JSONResponse(council.model_dump(), status_code=201)


async def delete_council(request: Request) -> Response:
    """Remove a stored council; admins only."""
    if refused := _refused(request, admin=True):
        return refused
    if not await store().delete(request.path_params["name"]):
        return _problem(404, f"council {request.path_params['name']!r} does not exist")
    return Response(status_code=204)


async def _check_nats(url: str | None) -> dict[str, Any]:
    if not url:
        return {"ok": False, "error": "NATS_URL is not set: events are not published"}
    try:
        nc = await connect_once(url, timeout=3)
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


async def healthz(request: Request) -> Response:
    """Valkey, NATS and the LLM, each reported; 503 when one is down."""
    current = settings.current()
    report: dict[str, dict[str, Any]] = {}
    try:
        await store().ping()
        report["valkey"] = {"ok": True}
        survey = retention.served_survey(request.app)  # retained, at the last sweep
        report["storage"] = await retention.health(store().client, survey)  # memory now
    except Exception as e:  # noqa: BLE001 - reported, not raised
        report["valkey"] = {"ok": False, "error": str(e)}
    report["nats"] = await _check_nats(current.nats_url)
    report["llm"] = await _check_llm(current.llm_base_url)
    ok = all(v["ok"] for v in report.values())
    return JSONResponse({"ok": ok, **report}, status_code=200 if ok else 503)


async def metrics(_: Request) -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


if settings.current().log_file is not None:  # council serve: council's logs to its file
    logs.to_file(settings.current().log_file)  # type: ignore[arg-type]

app = Starlette(
    routes=[
        Route("/councils", list_councils),
        Route("/councils", create_council, methods=["POST"]),
        Route("/councils/{name}", get_council),
        Route("/councils/{name}", delete_council, methods=["DELETE"]),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
    ],
    lifespan=retention.lifespan,  # the periodic retention sweep (server.retention)
)
app.add_middleware(RunInputMiddleware)
