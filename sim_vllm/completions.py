"""``POST /v1/chat/completions``: from an HTTP request to a planned, logged completion.

Owns the order vLLM checks a request in (body, model, context length, response format), the
choice of a fault, the request's log entry (``GET /admin/requests``), and the faults that answer
at the HTTP level instead of with a completion (``http_500``, ``http_503``, ``http_429``,
``stall``). The answer's text comes from ``sim_vllm.answers``, its timing from
``sim_vllm.engine``, and its body from ``sim_vllm.writers``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from council_agents.sim_vllm import content
from council_agents.sim_vllm.engine import LogEntry, SimVLLM
from council_agents.sim_vllm.faults import FaultRule
from council_agents.sim_vllm.latency import render_prompt
from council_agents.sim_vllm.protocol import (
    Caller,
    ChatRequest,
    caller,
    context_error,
    error,
    json_schema,
    message_text,
    read_chat_request,
)
from council_agents.sim_vllm.writers import Completion, write_json, write_stream

HTTP_FAULTS = {
    "http_500": "Simulated internal error",
    "http_503": "Simulated overload: engine unavailable",
    "http_429": "Simulated rate limit",
}
"""The faults answered with an HTTP error instead of a completion, and their messages."""


class ChatCompletions:
    """The chat completions endpoint of one simulated server."""

    def __init__(self, sim: SimVLLM) -> None:
        """The endpoint for ``sim``."""
        self.sim = sim

    def routes(self) -> list[Route]:
        """``POST /v1/chat/completions``."""
        return [Route("/v1/chat/completions", self.chat, methods=["POST"])]

    async def chat(self, request: Request) -> Response:
        """Validate, plan, log and answer one chat completion request."""
        sim = self.sim
        req = await read_chat_request(request, sim.config.model)
        if isinstance(req, JSONResponse):
            return req
        prompt = render_prompt(req.messages)
        prompt_toks = content.tokenize(prompt)
        who = caller(request, req, len(prompt_toks))
        too_long = context_error(sim.config, len(prompt_toks), req.max_tokens_asked)
        if too_long is not None:
            return too_long
        fault = sim.pick_fault(who["stage"], who["agent"])
        try:
            plan = sim.plan_answer(req, message_text(req.messages[-1]), who, fault)
        except content.SchemaError as e:
            return error(400, f"response_format: {e}", param="response_format")
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        entry = log_entry(rid, req, who, prompt, fault)
        if sim.config.log_prompts:
            entry["prompt"] = prompt
        sim.log.append(entry)
        if fault is not None and fault.kind in HTTP_FAULTS:
            return http_fault(fault, entry)
        if fault is not None and fault.kind == "stall":
            return await stall(request, fault, entry)
        entry["prompt_tokens"] = len(prompt_toks)
        entry["finish_reason"] = plan.finish
        completion = Completion(
            sim=sim,
            req=req,
            rid=rid,
            created=int(time.time()),
            model=sim.config.model,
            prompt_toks=prompt_toks,
            plan=plan,
            entry=entry,
            drop=fault is not None and fault.kind == "drop",
        )
        return write_stream(completion) if req.stream else await write_json(completion)


def log_entry(
    rid: str, req: ChatRequest, who: Caller, prompt: str, fault: FaultRule | None
) -> LogEntry:
    """A request's log entry as it is admitted (the engine and writers add the rest).

    Args:
        rid: The completion's id.
        req: The chat request.
        who: Who asked.
        prompt: The rendered prompt (its hash is logged, not the text).
        fault: The fault that fired on it, if any.

    Returns:
        The entry.
    """
    return {
        "id": rid,
        "t_in": time.time(),
        "stream": req.stream,
        **who,
        "model": req.model,
        "temperature": req.temperature,
        "seed": req.seed,
        "max_tokens": req.max_tokens_asked,
        "structured": json_schema(req.response_format) is not None,
        "fault": fault.kind if fault else None,
        "status": 200,
        "prompt_sha": hashlib.sha256(prompt.encode()).hexdigest()[:16],
    }


def http_fault(fault: FaultRule, entry: LogEntry) -> JSONResponse:
    """The error an ``http_*`` fault answers with (a 429 says to retry at once)."""
    entry["status"] = int(fault.kind[-3:])
    entry["t_out"] = time.time()
    resp = error(entry["status"], HTTP_FAULTS[fault.kind])
    if entry["status"] == 429:
        resp.headers["retry-after"] = "0"
    return resp


async def stall(request: Request, fault: FaultRule, entry: LogEntry) -> JSONResponse:
    """Answer nothing for ``stall_seconds`` (or until the client leaves), then a 504.

    The log's status is 499 ("client closed request"): a client normally gives up first.
    """
    deadline = time.monotonic() + fault.stall_seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            break
        await asyncio.sleep(0.05)
    entry["status"] = 499
    entry["t_out"] = time.time()
    return error(504, "Simulated stall")
