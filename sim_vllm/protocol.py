"""vLLM's OpenAI-compatible wire format, as the simulator speaks it (no server state here).

Owns the chat request (its fields, validation and the error a bad one gets), who asked
(council's ``X-Council-*`` headers or the ``user`` field), error bodies as vLLM sends them, and
what differs between the simulated vLLM releases: the reasoning field's name and the wording of
the context-length error (docs/SIMULATOR.md has the table).
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from council_agents.sim_vllm import content
from council_agents.sim_vllm.latency import SimConfig

ERROR_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    503: "ServiceUnavailableError",
}
"""The error ``type`` vLLM sends per status (any other: ``InternalServerError``)."""


class ChatRequest(BaseModel):
    """A ``POST /v1/chat/completions`` body: the fields the simulator honours (others allowed)."""

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

    @property
    def max_tokens_asked(self) -> int | None:
        """The completion limit the client set (``max_completion_tokens`` first), if any."""
        return self.max_completion_tokens or self.max_tokens or None


class Caller(TypedDict):
    """Who asked, and how long the prompt is (copied into the request's log entry)."""

    deliberation: str | None
    agent: str | None
    stage: str | None
    round: str | None
    prompt_tokens: int


def error(
    status: int, message: str, kind: str | None = None, param: str | None = None
) -> JSONResponse:
    """An error body as vLLM (OpenAI) sends it.

    Args:
        status: The HTTP status (also the body's ``code``).
        message: The error's message.
        kind: The error's ``type``; by default the one vLLM sends for ``status``.
        param: The request parameter at fault, if any.

    Returns:
        The response.
    """
    kind = kind or ERROR_TYPES.get(status, "InternalServerError")
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": status}},
        status_code=status,
    )


async def read_chat_request(request: Request, model: str) -> ChatRequest | JSONResponse:
    """The request's body as a chat request, or the error vLLM sends for it.

    Args:
        request: The HTTP request.
        model: The served model; a request naming another gets a 404.

    Returns:
        The validated request, or a 400 (malformed JSON, not an object, an invalid field: the
        first one is named in ``param``) or the 404.
    """
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
    if req.model is not None and req.model != model:
        return error(404, f"The model `{req.model}` does not exist.", param="model")
    return req


def caller(request: Request, req: ChatRequest, prompt_tokens: int) -> Caller:
    """Who asked: the ``X-Council-*`` headers, else the ``user`` field.

    Args:
        request: The HTTP request (its headers).
        req: The chat request; ``user`` is ``deliberation/agent/stage``, or an agent alone.
        prompt_tokens: The rendered prompt's tokens.

    Returns:
        The caller.
    """
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
    return Caller(
        deliberation=delib,
        agent=agent,
        stage=stage,
        round=h.get("x-council-round"),
        prompt_tokens=prompt_tokens,
    )


def message_text(message: dict[str, Any]) -> str:
    """A chat message's text (the text parts of a list content, joined)."""
    c = message.get("content")
    if isinstance(c, list):
        return "".join(p.get("text", "") for p in c if isinstance(p, dict))
    return str(c or "")


def guess_stage(messages: list[dict[str, Any]]) -> str:
    """The council stage a request without a stage header is for, from its last message's end."""
    text = str(messages[-1].get("content", ""))[-600:].lower()
    for stage in ("critique", "revise", "judge", "vote", "propose"):
        if stage in text:
            return stage
    return "default"


def json_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON schema the answer must follow, or None for free text.

    Args:
        response_format: The request's ``response_format``: ``json_schema`` (its schema),
            ``json_object`` (an object with a string ``answer``) or ``text``.

    Returns:
        The schema, or None.

    Raises:
        content.SchemaError: The format is unknown, or ``json_schema`` has no schema object.
    """
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


def version(text: str) -> tuple[int, ...]:
    """``"0.11.1"`` as ``(0, 11, 1)`` (a suffix such as ``rc1`` or ``.dev3`` is ignored)."""
    parts = []
    for part in text.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def reasoning_fields(vllm_version: str) -> tuple[str, ...]:
    """The reasoning field(s) a vLLM release sends.

    ``reasoning_content`` before 0.11.1; both from 0.11.1 (``reasoning`` added, the old name
    kept, vLLM PR #27752); ``reasoning`` alone from 0.16.0 (``reasoning_content`` removed,
    PR #33402).

    Args:
        vllm_version: The simulated release, e.g. ``"0.11.0"``.

    Returns:
        The field names, each sent with the same text.
    """
    v = version(vllm_version)
    if v < (0, 11, 1):
        return ("reasoning_content",)
    if v < (0, 16, 0):
        return ("reasoning", "reasoning_content")
    return ("reasoning",)


def context_error(config: SimConfig, prompt: int, max_tokens: int | None) -> JSONResponse | None:
    """The 400 vLLM sends for a request over ``max_model_len``, if this one is.

    As ``serving_engine._validate_input``: a prompt of ``max_model_len`` tokens or more, or
    ``prompt + max_tokens`` over it. Before 0.13 the chat endpoint appends the error's cause
    (`` None``); from 0.13 the error names the parameter and value (``VLLMValidationError``,
    PR #30134) and the body's ``param`` is set.

    Args:
        config: The server's configuration (``max_model_len``, ``vllm_version``).
        prompt: The prompt's tokens.
        max_tokens: The completion limit the client set, if any.

    Returns:
        The error response, or None when the request fits.
    """
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
