"""Council's HTTP app, mounted by the LangGraph server beside its own API (``langgraph.json``).

- ``GET/POST /councils``, ``GET/DELETE /councils/{name}``: councils as data, in Valkey.
- ``GET /healthz``: Valkey, NATS and the LLM, each reported; 503 when one is down.
- ``GET /metrics``: Prometheus (deliberations, durations, LLM calls and tokens by role and stage).
- A middleware in front of the LangGraph API's run endpoints validates a run's ``input`` (a 422
  names the field) and turns ``council_name`` into the run's ``context``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph.context import DEFAULT_BASE_URL, DEFAULT_RUBRIC, Context
from graph.persistence import valkey_url
from graph.state import DeliberationRequest, describe_validation_error
from server.councils import Council, CouncilStore

_RUN_PATHS = re.compile(r"^/(threads/[^/]+/)?runs(/wait|/stream)?/?$")
_store: CouncilStore | None = None


async def store() -> CouncilStore:
    global _store
    if _store is None:
        _store = CouncilStore(await asyncio.to_thread(valkey_url))
    return _store


def _problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


async def resolve_run_body(body: dict[str, Any]) -> dict[str, Any]:
    """Validate a run request's input and apply its named council; raise ``ValueError(status, msg)``."""
    inp = body.get("input")
    if inp is None:  # resuming (Command) or continuing a thread: nothing to validate
        return body
    if not isinstance(inp, dict):
        raise ValueError(422, "input: must be an object with at least 'task'")
    inp = dict(inp)
    context = dict(body.get("context") or {})
    name = inp.pop("council_name", None)
    if name is not None:
        council = await (await store()).get(str(name))
        if council is None:
            known = ", ".join(c.name for c in await (await store()).list())
            raise ValueError(404, f"council_name: unknown council {name!r}; known councils: {known}")
        context = {**council.context(), **context}
    if "task" not in inp:
        raise ValueError(422, "task: field required")
    agents = len(context.get("agent_specs") or []) or context.get("agents", 3)
    try:
        DeliberationRequest(task=inp["task"] if isinstance(inp["task"], str) else "",
                            role=inp.get("role") or context.get("role") or Context().role,
                            agents=agents, rounds=inp.get("rounds", context.get("rounds", 1)),
                            rubric=inp.get("rubric") or context.get("rubric") or DEFAULT_RUBRIC,
                            constraints=inp.get("constraints", ""), story_id=inp.get("story_id"),
                            task_id=inp.get("task_id"))
    except ValidationError as e:
        raise ValueError(422, describe_validation_error(e)) from None
    unknown = set(inp) - {"task", "role", "rounds", "constraints", "rubric", "story_id", "task_id",
                          "deliberation_id"}
    if unknown:
        raise ValueError(422, f"input: unknown field(s) {sorted(unknown)}")
    return {**body, "input": inp, "context": context}


class RunInputMiddleware:
    """Pure ASGI (streaming responses pass untouched): checks and rewrites run-creating POSTs."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not _RUN_PATHS.match(scope["path"]):
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
            if isinstance(body, dict):
                body = await resolve_run_body(body)
                raw = json.dumps(body).encode()
        except json.JSONDecodeError:
            pass  # the LangGraph API answers malformed JSON itself
        except ValueError as e:
            status, detail = e.args if len(e.args) == 2 else (422, str(e))
            await _problem(status, detail)(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(raw)).encode()))
        await self.app({**scope, "headers": headers}, replay, send)


async def list_councils(_: Request) -> Response:
    return JSONResponse([c.model_dump() for c in await (await store()).list()])


async def get_council(request: Request) -> Response:
    c = await (await store()).get(request.path_params["name"])
    if c is None:
        return _problem(404, f"council {request.path_params['name']!r} does not exist")
    return JSONResponse(c.model_dump())


async def create_council(request: Request) -> Response:
    try:
        council = Council.model_validate(await request.json())
    except json.JSONDecodeError as e:
        return _problem(400, f"body: malformed JSON: {e}")
    except ValidationError as e:
        return _problem(422, describe_validation_error(e))
    if not await (await store()).create(council):
        return _problem(409, f"council {council.name!r} exists already; DELETE it first")
    return JSONResponse(council.model_dump(), status_code=201)


async def delete_council(request: Request) -> Response:
    if not await (await store()).delete(request.path_params["name"]):
        return _problem(404, f"council {request.path_params['name']!r} does not exist")
    return Response(status_code=204)


async def healthz(_: Request) -> Response:
    report: dict[str, dict[str, Any]] = {}
    try:
        await (await store()).ping()
        report["valkey"] = {"ok": True}
    except Exception as e:  # noqa: BLE001 - reported, not raised
        report["valkey"] = {"ok": False, "error": str(e)}
    nats_url = os.environ.get("NATS_URL")
    if not nats_url:
        report["nats"] = {"ok": False, "error": "NATS_URL is not set: events are not published"}
    else:
        try:
            import nats

            nc = await nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
            await nc.close()
            report["nats"] = {"ok": True}
        except Exception as e:  # noqa: BLE001
            report["nats"] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    base = os.environ.get("COUNCIL_LLM_BASE_URL", DEFAULT_BASE_URL)
    try:
        async with httpx.AsyncClient(timeout=3) as client:
            r = await client.get(base.rstrip("/") + "/models")
            r.raise_for_status()
            report["llm"] = {"ok": True, "base_url": base, "models": [m["id"] for m in r.json().get("data", [])]}
    except Exception as e:  # noqa: BLE001
        report["llm"] = {"ok": False, "base_url": base, "error": f"{type(e).__name__}: {e}"}
    ok = all(v["ok"] for v in report.values())
    return JSONResponse({"ok": ok, **report}, status_code=200 if ok else 503)


async def metrics(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


app = Starlette(routes=[
    Route("/councils", list_councils),
    Route("/councils", create_council, methods=["POST"]),
    Route("/councils/{name}", get_council),
    Route("/councils/{name}", delete_council, methods=["DELETE"]),
    Route("/healthz", healthz),
    Route("/metrics", metrics),
])
app.add_middleware(RunInputMiddleware)
