"""How an admitted chat completion goes out: one JSON body, or server-sent events.

Owns the response bodies vLLM sends (``chat.completion`` and ``chat.completion.chunk``, the
release's reasoning field(s), ``usage``, the final ``data: [DONE]``), the end of the request's
log entry (``t_out``) and ``vllm:request_success``, and the ``drop`` fault, which breaks the
connection half-way through a body or after a few chunks (the log's ``status`` becomes 0).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response, StreamingResponse

from council_agents.sim_vllm.answers import PieceKind, Plan
from council_agents.sim_vllm.engine import LogEntry, SimVLLM
from council_agents.sim_vllm.protocol import ChatRequest, reasoning_fields

DROP_AFTER_CHUNKS = 3
"""A dropped stream breaks when this many chunks have been decoded (before sending the last)."""


@dataclass
class Completion:
    """One admitted chat completion, planned and logged, about to be generated and sent."""

    sim: SimVLLM
    req: ChatRequest
    rid: str
    """The completion's id (``chatcmpl-...``)."""
    created: int
    """Unix time of the response's ``created``."""
    model: str
    prompt_toks: list[str]
    plan: Plan
    entry: LogEntry
    drop: bool
    """Whether the ``drop`` fault breaks the connection."""

    def generate(self) -> AsyncIterator[tuple[PieceKind, str]]:
        """The answer's chunks, as the engine decodes them."""
        return self.sim.generate(self.req, self.entry, self.prompt_toks, self.plan.pieces)

    def usage(self) -> dict[str, Any]:
        """The ``usage`` object (after generation: it reads the log entry's figures)."""
        prompt, completion = len(self.prompt_toks), self.entry["completion_tokens"]
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": self.entry.get("cached_tokens", 0)},
        }

    def done(self) -> None:
        """Record that the answer went out whole."""
        self.entry["t_out"] = time.time()
        self.sim.metrics.request_success.labels(self.model, self.plan.finish).inc()


async def write_json(c: Completion) -> Response:
    """Generate the whole answer, then send it as one ``chat.completion`` body.

    Args:
        c: The completion.

    Returns:
        The response; under the ``drop`` fault, a stream that breaks half-way through the body.
    """
    out: dict[str, list[str]] = {"content": [], "reasoning": []}
    async for kind, text in c.generate():
        out[kind].append(text)
    reasoning = "".join(out["reasoning"]) or None
    message: dict[str, Any] = {"role": "assistant"}
    message.update(dict.fromkeys(reasoning_fields(c.sim.config.vllm_version), reasoning))
    message.update(content="".join(out["content"]), tool_calls=[])
    payload = json.dumps(
        {
            "id": c.rid,
            "object": "chat.completion",
            "created": c.created,
            "model": c.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": c.plan.finish,
                    "stop_reason": None,
                }
            ],
            "usage": c.usage(),
            "prompt_logprobs": None,
        }
    ).encode()
    c.done()
    if c.drop:
        c.entry["status"] = 0
        return StreamingResponse(
            _half(payload),
            media_type="application/json",
            headers={"content-length": str(len(payload))},
        )
    return Response(payload, media_type="application/json")


async def _half(payload: bytes) -> AsyncIterator[bytes]:
    """The first half of ``payload``, then a broken connection."""
    yield payload[: len(payload) // 2]
    raise ConnectionAbortedError("simulated dropped connection")


def write_stream(c: Completion) -> StreamingResponse:
    """Send the answer as server-sent events, each chunk as soon as it is decoded.

    Args:
        c: The completion.

    Returns:
        The event stream: the role, one chunk per decode step (reasoning in the release's
        field(s)), the finish reason, ``usage`` if ``stream_options.include_usage``, and
        ``[DONE]``.
    """
    include_usage = bool((c.req.stream_options or {}).get("include_usage"))
    return StreamingResponse(_events(c, include_usage), media_type="text/event-stream")


async def _events(c: Completion, include_usage: bool) -> AsyncIterator[bytes]:
    yield _chunk(c, {"role": "assistant", "content": ""})
    n = 0
    async for kind, text in c.generate():
        n += 1
        if c.drop and n >= DROP_AFTER_CHUNKS:
            c.entry["status"] = 0
            c.entry["t_out"] = time.time()
            raise ConnectionAbortedError("simulated dropped stream")
        fields = reasoning_fields(c.sim.config.vllm_version) if kind == "reasoning" else ()
        yield _chunk(c, dict.fromkeys(fields, text) if fields else {"content": text})
    yield _chunk(c, {"content": ""}, c.plan.finish)
    if include_usage:
        yield _event(
            {
                "id": c.rid,
                "object": "chat.completion.chunk",
                "created": c.created,
                "model": c.model,
                "choices": [],
                "usage": c.usage(),
            }
        )
    yield b"data: [DONE]\n\n"
    c.done()


def _chunk(c: Completion, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    """A ``chat.completion.chunk`` event with one choice."""
    return _event(
        {
            "id": c.rid,
            "object": "chat.completion.chunk",
            "created": c.created,
            "model": c.model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
    )


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"
