"""The simulated vLLM's HTTP server: OpenAI endpoints, metrics, admin, and its CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
import uuid
import zlib
from dataclasses import asdict
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from council_agents.sim_vllm import content, truth
from council_agents.sim_vllm.faults import FaultRule
from council_agents.sim_vllm.humaneval import HumanEvalScript
from council_agents.sim_vllm.latency import PrefixCache, SimConfig, render_prompt

disable_created_metrics()


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    seed: int | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    user: str | None = None
    n: int = Field(1, ge=1, le=1)
    ignore_eos: bool = False


class SimVLLM:
    """State of one simulated server: engine, prefix cache, metrics, request log, faults."""

    def __init__(
        self,
        config: SimConfig | None = None,
        faults: list[FaultRule] | None = None,
        humaneval: HumanEvalScript | None = None,
    ):
        self.config = config or SimConfig()
        self.humaneval = humaneval
        """Scripted answers to HumanEval problems (``sim_vllm.humaneval``); None: off."""
        self.faults: list[FaultRule] = list(faults or [])
        self.log: list[dict[str, Any]] = []
        self.cache = PrefixCache(self.config.block_size, self.config.num_cache_blocks)
        self.authors = truth.Authors()
        self.running = 0
        self.waiting = 0
        self._slots: asyncio.Semaphore | None = None
        self._fault_rng = random.Random(self.config.seed ^ 0x5EED)
        self.started = time.time()
        r = self.registry = CollectorRegistry()
        lbl = ["model_name"]
        self.m_running = Gauge(
            "vllm:num_requests_running", "Requests running on GPU", lbl, registry=r
        )
        self.m_waiting = Gauge("vllm:num_requests_waiting", "Requests waiting", lbl, registry=r)
        self.m_prompt = Counter("vllm:prompt_tokens", "Prefill tokens processed", lbl, registry=r)
        self.m_gen = Counter(
            "vllm:generation_tokens", "Generation tokens processed", lbl, registry=r
        )
        self.m_pc_q = Counter(
            "vllm:prefix_cache_queries", "Prefix cache queries (tokens)", lbl, registry=r
        )
        self.m_pc_h = Counter(
            "vllm:prefix_cache_hits", "Prefix cache hits (tokens)", lbl, registry=r
        )
        self.m_success = Counter(
            "vllm:request_success", "Finished requests", lbl + ["finished_reason"], registry=r
        )
        buckets = (
            0.001,
            0.005,
            0.01,
            0.02,
            0.04,
            0.06,
            0.08,
            0.1,
            0.25,
            0.5,
            0.75,
            1.0,
            2.5,
            5.0,
            7.5,
            10.0,
            20.0,
            40.0,
            80.0,
        )
        self.m_ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Time to first token (model s)",
            lbl,
            buckets=buckets,
            registry=r,
        )
        self.m_e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "End-to-end latency (model s)",
            lbl,
            buckets=buckets,
            registry=r,
        )
        self.m_tpot = Histogram(
            "vllm:time_per_output_token_seconds",
            "Time per output token (model s)",
            lbl,
            buckets=(0.001, 0.0025, 0.004, 0.005, 0.0075, 0.01, 0.02, 0.04, 0.08, 0.15),
            registry=r,
        )
        self._sync_gauges()

    # ---- engine --------------------------------------------------------------------------
    @property
    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.config.max_num_seqs)
        return self._slots

    def _sync_gauges(self) -> None:
        self.m_running.labels(self.config.model).set(self.running)
        self.m_waiting.labels(self.config.model).set(self.waiting)

    async def _sleep(self, model_seconds: float) -> None:
        if self.config.time_scale > 0 and model_seconds > 0:
            await asyncio.sleep(model_seconds * self.config.time_scale)
        else:
            await asyncio.sleep(0)

    def _tpot(self) -> float:
        c = self.config
        return (1.0 / c.decode_tps) * (1.0 + c.batch_slowdown * max(0, self.running - 1))

    def pick_fault(self, stage: str | None, agent: str | None) -> FaultRule | None:
        for rule in self.faults:
            if rule.matches(stage, agent) and rule.should_fire(self._fault_rng):
                return rule
        return None

    def plan_answer(
        self, req: ChatRequest, prompt: str, who: dict[str, Any], fault: FaultRule | None
    ):
        """Decide the whole answer up front: ([(kind, text), ...], finish_reason).

        ``kind`` is "reasoning" (sent in the reasoning field, with the reasoning parser on) or
        "content". Without the parser the ``<think>`` block is inline in the content, as Qwen3
        writes it, and counts against ``max_tokens`` like any other output; under a
        ``json_schema`` without the parser there is none: vLLM's guided decoding constrains the
        output from its first token, so the content is the JSON document alone.
        """
        c = self.config
        digest = hashlib.sha256(
            json.dumps(
                [req.seed, c.seed, req.messages, req.response_format, req.temperature],
                sort_keys=True,
                default=str,
            ).encode()
        ).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        stage = who.get("stage") or _guess_stage(req.messages)
        max_tokens = (
            req.max_completion_tokens or req.max_tokens or (c.max_model_len - who["prompt_tokens"])
        )
        thinking_on = (req.chat_template_kwargs or {}).get("enable_thinking", True) is not False
        schema = _json_schema(req.response_format)
        if schema is not None and not c.reasoning_parser:
            thinking_on = False  # the grammar applies from the first token: no room to think
        reasoning = content.make_thinking(rng, prompt) if thinking_on else ""
        finish = "stop"
        kind = fault.kind if fault else None
        scripted = (
            self.humaneval.answer(
                stage,
                prompt,
                who.get("agent") or f"seed-{req.seed}",
                int(who.get("round") or 0),
                schema,
            )
            if self.humaneval is not None and kind != "garbage"
            else None
        )
        if scripted is not None:
            reasoning, body = "", scripted
        elif kind == "garbage":
            body = content.make_garbage(rng, 40)
        elif schema is not None:
            doc = content.from_schema(schema, rng, prompt)
            revise = max(20, int(rng.lognormvariate(0, c.length_sigma) * c.mean_tokens["revise"]))
            doc = truth.shape(doc, stage, prompt, who, rng, c.truth, self.authors, revise)
            body = content.dumps(doc)
            if kind == "invalid_json":
                body = content.break_json(rng, body)
        else:
            mean = c.mean_tokens.get(stage, c.mean_tokens["default"])
            target = max(20, int(rng.lognormvariate(0, c.length_sigma) * mean))
            if req.ignore_eos:
                target = max_tokens + 50
            body = content.make_text(rng, stage, prompt, target, who.get("agent") or "")
            if stage == "propose":
                self.authors.remember(who.get("agent"), body)
        if kind == "truncated_json":
            body, finish = body[: max(1, len(body) // 2)], "length"
        if reasoning and c.reasoning_parser:
            pieces = [("reasoning", reasoning), ("content", body)]
        elif reasoning:
            pieces = [("content", f"<think>\n{reasoning}\n</think>\n\n{body}")]
        else:
            pieces = [("content", body)]
        out, budget = [], max_tokens
        for k, text in pieces:
            toks = content.tokenize(text)
            if len(toks) > budget:
                text, finish = "".join(toks[:budget]), "length"
            budget -= min(len(toks), budget)
            if text:
                out.append((k, text))
        return out, finish

    async def generate(
        self,
        req: ChatRequest,
        entry: dict[str, Any],
        prompt_toks: list[str],
        pieces: list[tuple[str, str]],
    ):
        """Run one request through queue, prefill and decode, yielding (kind, text) chunks."""
        c = self.config
        t0 = time.monotonic()
        self.waiting += 1
        self._sync_gauges()
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        self._sync_gauges()
        entry["queue_wall_s"] = round(time.monotonic() - t0, 6)
        entry["queue_s"] = (
            round(entry["queue_wall_s"] / c.time_scale, 6) if c.time_scale > 0 else 0.0
        )
        try:
            cached = self.cache.lookup_and_insert(prompt_toks)
            n_prompt = len(prompt_toks)
            self.m_pc_q.labels(c.model).inc(n_prompt)
            self.m_pc_h.labels(c.model).inc(cached)
            self.m_prompt.labels(c.model).inc(n_prompt)
            entry["cached_tokens"] = cached
            prefill = c.ttft_base_s + (n_prompt - cached) / c.prefill_tps
            entry["prefill_s"] = round(prefill, 6)
            entry["batch_at_start"] = self.running
            await self._sleep(prefill)
            entry["t_first_token"] = time.time()
            self.m_ttft.labels(c.model).observe(entry["queue_s"] + prefill)
            decode = 0.0
            batch_seen: list[int] = []
            generated = 0
            for kind, text in pieces:
                toks = content.tokenize(text)
                for i in range(0, len(toks), c.chunk_tokens):
                    chunk = toks[i : i + c.chunk_tokens]
                    batch_seen.append(self.running)
                    step = self._tpot() * len(chunk)
                    decode += step
                    await self._sleep(step)
                    generated += len(chunk)
                    yield kind, "".join(chunk)
            entry["decode_s"] = round(decode, 6)
            entry["completion_tokens"] = generated
            entry["batch_max"] = max(batch_seen, default=self.running)
            entry["batch_mean"] = (
                round(sum(batch_seen) / len(batch_seen), 3) if batch_seen else self.running
            )
            entry["model_s"] = round(entry["queue_s"] + prefill + decode, 6)
            self.m_gen.labels(c.model).inc(generated)
            self.m_e2e.labels(c.model).observe(entry["model_s"])
            if generated:
                self.m_tpot.labels(c.model).observe(decode / generated)
        finally:
            self.running -= 1
            self.slots.release()
            self._sync_gauges()


def _json_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        js = response_format.get("json_schema") or {}
        schema = js.get("schema", js.get("json_schema"))
        if not isinstance(schema, dict):
            raise content.SchemaError("response_format.json_schema.schema must be an object")
        return schema
    if kind == "json_object":
        return {
            "type": "object",
            "properties": {"answer": {"type": "string"}},
            "required": ["answer"],
        }
    if kind == "text":
        return None
    raise content.SchemaError(f"response_format.type {kind!r} is not supported")


def _message_text(m: dict[str, Any]) -> str:
    c = m.get("content")
    if isinstance(c, list):
        return "".join(p.get("text", "") for p in c if isinstance(p, dict))
    return str(c or "")


def _guess_stage(messages: list[dict[str, Any]]) -> str:
    text = str(messages[-1].get("content", ""))[-600:].lower()
    for stage in ("critique", "revise", "judge", "vote", "propose"):
        if stage in text:
            return stage
    return "default"


def _who(request: Request, req: ChatRequest) -> dict[str, Any]:
    h = request.headers
    delib, agent, stage = (
        h.get("x-council-deliberation"),
        h.get("x-council-agent"),
        h.get("x-council-stage"),
    )
    if req.user and not (agent or stage):
        parts = req.user.split("/")
        if len(parts) == 3:
            delib, agent, stage = parts
        else:
            agent = req.user
    return {
        "deliberation": delib,
        "agent": agent,
        "stage": stage,
        "round": h.get("x-council-round"),
    }


def error(
    status: int, message: str, kind: str | None = None, param: str | None = None
) -> JSONResponse:
    """An error body as vLLM (OpenAI) sends it."""
    kind = kind or {
        400: "BadRequestError",
        404: "NotFoundError",
        422: "UnprocessableEntityError",
        429: "RateLimitError",
        503: "ServiceUnavailableError",
    }.get(status, "InternalServerError")
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": status}},
        status_code=status,
    )


def version(text: str) -> tuple[int, ...]:
    """``"0.11.1"`` as ``(0, 11, 1)`` (a suffix such as ``rc1`` or ``.dev3`` is ignored)."""
    parts = []
    for part in text.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def reasoning_fields(vllm_version: str) -> tuple[str, ...]:
    """The reasoning field(s) a vLLM release sends: ``reasoning_content`` before 0.11.1, both
    from 0.11.1 (``reasoning`` added, the old name kept, vLLM PR #27752), ``reasoning`` alone
    from 0.16.0 (``reasoning_content`` removed, PR #33402)."""
    v = version(vllm_version)
    if v < (0, 11, 1):
        return ("reasoning_content",)
    if v < (0, 16, 0):
        return ("reasoning", "reasoning_content")
    return ("reasoning",)


def context_error(config: SimConfig, prompt: int, max_tokens: int | None) -> JSONResponse | None:
    """vLLM's 400 for a request over ``max_model_len`` (``serving_engine._validate_input``):
    a prompt of ``max_model_len`` tokens or more, or ``prompt + max_tokens`` over it. Before
    0.13 the chat endpoint appends the error's cause (`` None``); from 0.13 the error names the
    parameter and value (``VLLMValidationError``, PR #30134) and the body's ``param`` is set."""
    limit = config.max_model_len
    if prompt >= limit:
        message = (
            f"This model's maximum context length is {limit} tokens. However, your request has "
            f"{prompt} input tokens. Please reduce the length of the input messages."
        )
        param, value = "input_tokens", prompt
    elif max_tokens is not None and prompt + max_tokens > limit:
        message = (
            f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's "
            f"maximum context length is {limit} tokens and your request has {prompt} input "
            f"tokens ({max_tokens} > {limit} - {prompt})."
        )
        param, value = "max_tokens", max_tokens
    else:
        return None
    if version(config.vllm_version) < (0, 13, 0):
        return error(400, f"{message} None")
    return error(400, f"{message} (parameter={param}, value={value})", param=param)


def create_app(sim: SimVLLM | None = None) -> Starlette:
    """The simulator's Starlette app."""
    sim = sim or SimVLLM()

    async def models(_: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": sim.config.model,
                        "object": "model",
                        "created": int(sim.started),
                        "owned_by": "vllm",
                        "root": sim.config.model,
                        "parent": None,
                        "max_model_len": sim.config.max_model_len,
                    }
                ],
            }
        )

    async def tokenize(request: Request) -> Response:
        """vLLM's ``POST /tokenize``: messages (with the chat template) or a prompt."""
        try:
            body = await request.json()
        except ValueError as e:
            return error(400, f"Malformed JSON body: {e}")
        if not isinstance(body, dict) or not (
            isinstance(body.get("messages"), list) or isinstance(body.get("prompt"), str)
        ):
            return error(400, "either 'messages' (a list) or 'prompt' (a string) is required")
        model = body.get("model")
        if model is not None and model != sim.config.model:
            return error(404, f"The model `{model}` does not exist.", param="model")
        if "messages" in body:
            text = render_prompt(body["messages"])
            if body.get("add_generation_prompt", True) is False:
                text = text.removesuffix("<|im_start|>assistant\n")
        else:
            text = body["prompt"]
        tokens = content.tokenize(text)
        return JSONResponse(
            {
                "count": len(tokens),
                "max_model_len": sim.config.max_model_len,
                "tokens": [zlib.crc32(t.encode()) % 151_936 for t in tokens],
                "token_strs": tokens if body.get("return_token_strs") else None,
            }
        )

    async def health(_: Request) -> Response:
        return Response(status_code=200)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(sim.registry), media_type=CONTENT_TYPE_LATEST)

    async def chat(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError as e:
            return error(400, f"Malformed JSON body: {e}")
        if not isinstance(body, dict):
            return error(400, "Request body must be a JSON object")
        try:
            req = ChatRequest.model_validate(body)
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            return error(400, f"{loc}: {first['msg']}", param=loc)
        if req.model is not None and req.model != sim.config.model:
            return error(404, f"The model `{req.model}` does not exist.", param="model")
        prompt = render_prompt(req.messages)
        ask = _message_text(req.messages[-1])
        prompt_toks = content.tokenize(prompt)
        who = _who(request, req)
        who["prompt_tokens"] = len(prompt_toks)
        max_tokens = req.max_completion_tokens or req.max_tokens or 0
        too_long = context_error(sim.config, len(prompt_toks), max_tokens or None)
        if too_long is not None:
            return too_long
        fault = sim.pick_fault(who["stage"], who["agent"])
        try:
            pieces, finish = sim.plan_answer(req, ask, who, fault)
        except content.SchemaError as e:
            return error(400, f"response_format: {e}", param="response_format")
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        entry: dict[str, Any] = {
            "id": rid,
            "t_in": time.time(),
            "stream": req.stream,
            **who,
            "model": req.model,
            "temperature": req.temperature,
            "seed": req.seed,
            "max_tokens": max_tokens or None,
            "structured": _json_schema(req.response_format) is not None,
            "fault": fault.kind if fault else None,
            "status": 200,
            "prompt_sha": hashlib.sha256(prompt.encode()).hexdigest()[:16],
        }
        sim.log.append(entry)
        if fault is not None and fault.kind in ("http_500", "http_503", "http_429"):
            entry["status"] = int(fault.kind[-3:])
            entry["t_out"] = time.time()
            msg = {
                500: "Simulated internal error",
                503: "Simulated overload: engine unavailable",
                429: "Simulated rate limit",
            }[entry["status"]]
            resp = error(entry["status"], msg)
            if entry["status"] == 429:
                resp.headers["retry-after"] = "0"
            return resp
        if fault is not None and fault.kind == "stall":
            deadline = time.monotonic() + fault.stall_seconds
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    break
                await asyncio.sleep(0.05)
            entry["status"] = 499
            entry["t_out"] = time.time()
            return error(504, "Simulated stall")
        created = int(time.time())
        model = sim.config.model
        entry["prompt_tokens"] = len(prompt_toks)
        entry["finish_reason"] = finish
        drop = fault is not None and fault.kind == "drop"

        def usage(completion: int) -> dict[str, Any]:
            return {
                "prompt_tokens": len(prompt_toks),
                "completion_tokens": completion,
                "total_tokens": len(prompt_toks) + completion,
                "prompt_tokens_details": {"cached_tokens": entry.get("cached_tokens", 0)},
            }

        if not req.stream:
            out: dict[str, list[str]] = {"content": [], "reasoning": []}
            async for kind, text in sim.generate(req, entry, prompt_toks, pieces):
                out[kind].append(text)
            reasoning = "".join(out["reasoning"]) or None
            message: dict[str, Any] = {"role": "assistant"}
            message.update(dict.fromkeys(reasoning_fields(sim.config.vllm_version), reasoning))
            message.update(content="".join(out["content"]), tool_calls=[])
            payload = json.dumps(
                {
                    "id": rid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "logprobs": None,
                            "finish_reason": finish,
                            "stop_reason": None,
                        }
                    ],
                    "usage": usage(entry["completion_tokens"]),
                    "prompt_logprobs": None,
                }
            ).encode()
            entry["t_out"] = time.time()
            sim.m_success.labels(model, finish).inc()
            if drop:
                entry["status"] = 0

                async def partial():
                    yield payload[: len(payload) // 2]
                    raise ConnectionAbortedError("simulated dropped connection")

                return StreamingResponse(
                    partial(),
                    media_type="application/json",
                    headers={"content-length": str(len(payload))},
                )
            return Response(payload, media_type="application/json")

        include_usage = bool((req.stream_options or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            return (
                b"data: "
                + json.dumps(
                    {
                        "id": rid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "delta": delta,
                                "logprobs": None,
                                "finish_reason": finish_reason,
                            }
                        ],
                    }
                ).encode()
                + b"\n\n"
            )

        async def events():
            yield chunk({"role": "assistant", "content": ""})
            n = 0
            async for kind, text in sim.generate(req, entry, prompt_toks, pieces):
                n += 1
                if drop and n >= 3:
                    entry["status"] = 0
                    entry["t_out"] = time.time()
                    raise ConnectionAbortedError("simulated dropped stream")
                fields = reasoning_fields(sim.config.vllm_version) if kind == "reasoning" else ()
                yield chunk(dict.fromkeys(fields, text) if fields else {"content": text})
            yield chunk({"content": ""}, finish)
            if include_usage:
                yield (
                    b"data: "
                    + json.dumps(
                        {
                            "id": rid,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model,
                            "choices": [],
                            "usage": usage(entry["completion_tokens"]),
                        }
                    ).encode()
                    + b"\n\n"
                )
            yield b"data: [DONE]\n\n"
            entry["t_out"] = time.time()
            sim.m_success.labels(model, finish).inc()

        return StreamingResponse(events(), media_type="text/event-stream")

    # ---- admin ------------------------------------------------------------------------------
    async def get_requests(_: Request) -> Response:
        return JSONResponse({"requests": sim.log})

    async def clear_requests(_: Request) -> Response:
        sim.log.clear()
        return JSONResponse({"cleared": True})

    async def get_faults(_: Request) -> Response:
        return JSONResponse({"faults": [f.model_dump() for f in sim.faults]})

    async def add_faults(request: Request) -> Response:
        try:
            body = await request.json()
            rules = [FaultRule.model_validate(r) for r in (body.get("faults") or [body])]
        except (ValueError, ValidationError, AttributeError) as e:
            return error(400, f"invalid fault rule: {e}")
        sim.faults.extend(rules)
        return JSONResponse({"faults": [f.model_dump() for f in sim.faults]})

    async def clear_faults(_: Request) -> Response:
        sim.faults.clear()
        return JSONResponse({"faults": []})

    async def clear_cache(_: Request) -> Response:
        sim.cache.blocks.clear()
        return JSONResponse({"cleared": True})

    async def config(request: Request) -> Response:
        if request.method == "PATCH":
            try:
                changes = await request.json()
            except ValueError as e:
                return error(400, f"Malformed JSON body: {e}")
            unknown = [k for k in changes if not hasattr(sim.config, k)]
            if unknown:
                return error(400, f"unknown config keys: {unknown}")
            for k, v in changes.items():
                setattr(sim.config, k, v)
            if "max_num_seqs" in changes:
                sim._slots = None
        return JSONResponse(asdict(sim.config))

    app = Starlette(
        routes=[
            Route("/v1/models", models),
            Route("/health", health),
            Route("/metrics", metrics),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/tokenize", tokenize, methods=["POST"]),
            Route("/admin/requests", get_requests),
            Route("/admin/requests", clear_requests, methods=["DELETE"]),
            Route("/admin/faults", get_faults),
            Route("/admin/faults", add_faults, methods=["POST"]),
            Route("/admin/faults", clear_faults, methods=["DELETE"]),
            Route("/admin/config", config, methods=["GET", "PATCH"]),
            Route("/admin/prefix-cache", clear_cache, methods=["DELETE"]),
        ]
    )
    app.state.sim = sim
    return app


class ServerThread:
    """Runs the simulator with uvicorn in a background thread (tests, demo, benchmarks)."""

    def __init__(self, sim: SimVLLM | None = None, host: str = "127.0.0.1", port: int = 0):
        import threading

        import uvicorn

        from council_agents.server.services import free_port

        self.sim = sim or SimVLLM()
        self.host, self.port = host, port or free_port()
        cfg = uvicorn.Config(
            create_app(self.sim),
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(cfg)
        self._thread = threading.Thread(target=self._server.run, name="sim-vllm", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"simulated vLLM did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def add_cli(sub) -> None:
    """Register ``council sim-vllm`` on an argparse sub-parser collection."""
    p = sub.add_parser(
        "sim-vllm", help="run the SIMULATED vLLM server (opt-in; for tests, demo, bench)"
    )
    d = SimConfig()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", default=d.model)
    p.add_argument(
        "--time-scale",
        type=float,
        default=d.time_scale,
        help="wall seconds per model second (0 = no waiting; 1 = realistic)",
    )
    p.add_argument("--max-num-seqs", type=int, default=d.max_num_seqs)
    p.add_argument("--decode-tps", type=float, default=d.decode_tps)
    p.add_argument("--batch-slowdown", type=float, default=d.batch_slowdown)
    p.add_argument("--prefill-tps", type=float, default=d.prefill_tps)
    p.add_argument("--max-model-len", type=int, default=d.max_model_len)
    p.add_argument(
        "--reasoning-parser",
        action="store_true",
        help="put <think> text in the reasoning field, as vLLM's qwen3 reasoning parser does",
    )
    p.add_argument(
        "--vllm-version",
        default=d.vllm_version,
        help="the vLLM release simulated where releases differ (reasoning field, error wording)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--humaneval-correct",
        type=float,
        metavar="SHARE",
        help="answer HumanEval problems with this share of correct first answers "
        "(sim_vllm.humaneval; needs the eval extra)",
    )
    p.add_argument(
        "--humaneval-fix", type=float, default=0.0, help="chance a revision fixes broken code"
    )
    p.add_argument(
        "--humaneval-judge-accuracy",
        type=float,
        default=1.0,
        help="share of problems where judges and voters prefer correct code",
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[:k=v,...]",
        help="inject faults, e.g. http_500:p=0.1 or drop:nth=3,stage=critique",
    )
    p.set_defaults(func=_run_cli)


def _run_cli(args) -> int:
    import uvicorn

    cfg = SimConfig(
        model=args.model,
        time_scale=args.time_scale,
        max_num_seqs=args.max_num_seqs,
        decode_tps=args.decode_tps,
        batch_slowdown=args.batch_slowdown,
        prefill_tps=args.prefill_tps,
        max_model_len=args.max_model_len,
        reasoning_parser=args.reasoning_parser,
        vllm_version=args.vllm_version,
        seed=args.seed,
    )
    faults = [FaultRule.parse_flag(f) for f in args.fault]
    humaneval = (
        None
        if args.humaneval_correct is None
        else HumanEvalScript(
            correct=args.humaneval_correct,
            fix=args.humaneval_fix,
            judge_accuracy=args.humaneval_judge_accuracy,
            seed=args.seed,
        )
    )
    print(
        f"SIMULATED vLLM (not a model) serving {cfg.model} on http://{args.host}:{args.port}/v1",
        flush=True,
    )
    uvicorn.run(
        create_app(SimVLLM(cfg, faults, humaneval)),
        host=args.host,
        port=args.port,
        log_level="warning",
    )
    return 0
