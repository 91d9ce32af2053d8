"""LLM calls: langchain-openai ``ChatOpenAI`` against any OpenAI-compatible server (vLLM first).

One call = one finished record (content, reasoning, usage, latency) that the node returns into
the state and logs in full at INFO. Transport failures (5xx, 429, timeouts, broken connections)
are retried by the openai client with backoff; empty or garbage answers are retried here.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any

import httpx
import openai
import structlog
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI

from graph.context import Context
from nodes import metrics

log = structlog.get_logger("council.llm")

_THINK = re.compile(r"^\s*<think>(.*?)(?:</think>\s*|$)", re.S)


class CouncilError(RuntimeError):
    """A stage failed; names the stage, the agent and the cause."""

    transient = False
    """True when trying again later may succeed (LLM down, overloaded, timing out)."""

    def __init__(self, stage: str, agent_id: str, cause: str):
        super().__init__(f"{stage} failed for {agent_id}: {cause}")
        self.stage, self.agent_id, self.cause = stage, agent_id, cause


class LLMUnreachable(CouncilError):
    """The LLM server could not be reached, timed out, or kept failing with 5xx/429 (after retries)."""

    transient = True


class VLLMChatOpenAI(ChatOpenAI):
    """``ChatOpenAI`` that keeps vLLM's ``reasoning_content`` (ChatOpenAI drops it)."""

    def _create_chat_result(self, response: Any, generation_info: dict | None = None) -> ChatResult:
        result = super()._create_chat_result(response, generation_info)
        choices = response.get("choices") if isinstance(response, dict) else getattr(response, "choices", None)
        if choices:
            msg = choices[0]["message"] if isinstance(choices[0], dict) else choices[0].message
            extra = msg if isinstance(msg, dict) else (getattr(msg, "model_extra", None) or {})
            reasoning = extra.get("reasoning_content") or extra.get("reasoning")
            if reasoning and isinstance(result.generations[0].message, AIMessage):
                result.generations[0].message.additional_kwargs["reasoning_content"] = reasoning
        return result

    def _convert_chunk_to_generation_chunk(self, chunk: dict, default_chunk_class: type,
                                           base_generation_info: dict | None) -> ChatGenerationChunk | None:
        gen = super()._convert_chunk_to_generation_chunk(chunk, default_chunk_class, base_generation_info)
        choices = chunk.get("choices") or []
        if gen is not None and choices:
            delta = choices[0].get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning and isinstance(gen.message, AIMessageChunk):
                gen.message.additional_kwargs["reasoning_content"] = reasoning
        return gen


def split_reasoning(content: str, reasoning: str | None = None) -> tuple[str, str]:
    """``(answer, reasoning)``: a leading ``<think>`` block goes to reasoning, never to peers."""
    reasoning = reasoning or ""
    m = _THINK.match(content or "")
    if m:
        reasoning = (reasoning + "\n" + m.group(1)).strip()
        content = content[m.end():]
    return content.strip(), reasoning.strip()


_NOT_WORDISH = re.compile(r"[^\w\s.,;:()'\"#*`/-]")


def looks_like_garbage(text: str) -> bool:
    """Text that is mostly not words (the simulator's garbage fault, a broken decode)."""
    if not text:
        return True
    sample = text[:2000]
    odd = len(_NOT_WORDISH.findall(sample)) + sum(1 for ch in sample if ch.isdigit())
    return odd / len(sample) > 0.3 or not re.search(r"[A-Za-z]{3,}", sample)


_limits: dict[tuple[int, str, int], asyncio.Semaphore] = {}


def _limit(ctx: Context, base_url: str):
    """The process-wide limit on calls in flight to ``base_url`` (a no-op when unlimited)."""
    if ctx.llm_concurrency <= 0:
        return contextlib.nullcontext()
    key = (id(asyncio.get_running_loop()), base_url, ctx.llm_concurrency)
    if key not in _limits:
        _limits[key] = asyncio.Semaphore(ctx.llm_concurrency)
    return _limits[key]


_models: dict[tuple, ChatOpenAI] = {}


def chat_model(ctx: Context, council: dict[str, Any], agent: dict[str, Any]) -> ChatOpenAI:
    """One client per server, model and transport settings, reused by every call (building a
    ChatOpenAI builds openai and httpx clients: far too slow to do per call)."""
    # per event loop too: the async HTTP client's connections belong to the loop that opened them
    key = (council["base_url"], agent.get("model") or council["model"], ctx.api_key(), ctx.timeout_s,
           ctx.max_retries, id(asyncio.get_running_loop()))
    if key not in _models:
        _models[key] = VLLMChatOpenAI(model=key[1], base_url=key[0], api_key=key[2], timeout=key[3],
                                      max_retries=key[4], stream_usage=True,
                                      http_async_client=_http_client(ctx))
    return _models[key]


def _http_client(ctx: Context):
    """A bounded connection pool: httpcore scans every pooled connection on each request, so an
    unbounded pool (hundreds of parallel calls) costs O(connections) CPU per request. Calls
    beyond the bound wait for a connection, as they would wait in vLLM's queue anyway."""
    import httpx2

    n = ctx.max_connections
    return openai.DefaultAsyncHttpxClient(limits=httpx2.Limits(max_connections=n, max_keepalive_connections=n),
                                          timeout=ctx.timeout_s)


def call_params(ctx: Context, agent: dict[str, Any], *, stage: str, round_: int, max_tokens: int,
                deliberation_id: str, response_format: dict | None = None) -> dict[str, Any]:
    """What differs per call: sampling, budget, who asks (headers the simulator logs), format."""
    extra_body: dict[str, Any] = {}
    if ctx.enable_thinking is not None:
        extra_body["chat_template_kwargs"] = {"enable_thinking": ctx.enable_thinking}
    if response_format is not None:
        # In the body as-is: langchain-openai would switch to the client's parse() helper, which
        # raises on truncated JSON instead of returning it for council to retry with more room.
        extra_body["response_format"] = response_format
    params: dict[str, Any] = {
        "temperature": agent["temperature"], "max_tokens": max_tokens,
        "extra_headers": {"X-Council-Deliberation": deliberation_id, "X-Council-Agent": agent["agent_id"],
                          "X-Council-Stage": stage, "X-Council-Round": str(round_)}}
    if agent.get("seed") is not None:
        params["seed"] = agent["seed"]
    if extra_body:
        params["extra_body"] = extra_body
    return params


async def call(ctx: Context, council: dict[str, Any], agent: dict[str, Any], *, stage: str, round_: int,
               deliberation_id: str, messages: list, max_tokens: int,
               response_format: dict | None = None, validate=None) -> list[dict[str, Any]]:
    """One LLM call with answer checks; returns the records of every finished attempt.

    The last record is the accepted answer (its ``parsed`` holds ``validate``'s result).
    ``validate(answer) -> parsed`` may raise ``ValueError`` to reject an answer; rejected
    answers are kept (``accepted: False``), logged in full and retried ``ctx.answer_retries``
    times, then the stage fails with an error naming the stage and the agent.
    """
    records: list[dict[str, Any]] = []
    attempts = 1 + ctx.answer_retries
    budget = max_tokens
    problem = ""
    for attempt in range(1, attempts + 1):
        llm = chat_model(ctx, council, agent)
        params = call_params(ctx, agent, stage=stage, round_=round_, max_tokens=budget,
                             deliberation_id=deliberation_id, response_format=response_format)
        try:
            async with _limit(ctx, council["base_url"]):
                t0 = time.monotonic()
                msg = await llm.ainvoke(messages, **params)
        except (openai.APIConnectionError, httpx.TransportError) as e:
            metrics.DELIBERATIONS_FAILED.labels(council["role"], stage).inc()
            raise LLMUnreachable(stage, agent["agent_id"],
                                 f"cannot reach the LLM at {council['base_url']}: {e}") from e
        except openai.APIStatusError as e:
            if e.status_code >= 500 or e.status_code in (408, 409, 429):
                metrics.DELIBERATIONS_FAILED.labels(council["role"], stage).inc()
                raise LLMUnreachable(stage, agent["agent_id"], f"the LLM at {council['base_url']} answered "
                                                               f"{e.status_code} after retries: {e.message}") from e
            if e.status_code == 404:
                raise CouncilError(stage, agent["agent_id"],
                                   f"the LLM at {council['base_url']} answered 404: {e.message}") from e
            raise CouncilError(stage, agent["agent_id"], f"the LLM at {council['base_url']} rejected the "
                                                         f"request ({e.status_code}): {e.message}") from e
        latency = time.monotonic() - t0
        raw = msg.content if isinstance(msg.content, str) else str(msg.content)
        answer, reasoning = split_reasoning(raw, msg.additional_kwargs.get("reasoning_content"))
        finish = msg.response_metadata.get("finish_reason")
        usage = msg.usage_metadata or {}
        record = {
            "agent_id": agent["agent_id"], "role": council["role"], "stage": stage, "round": round_,
            "attempt": attempt, "model": msg.response_metadata.get("model_name"),
            "content": answer, "reasoning": reasoning, "finish_reason": finish,
            "prompt_tokens": usage.get("input_tokens", 0), "completion_tokens": usage.get("output_tokens", 0),
            "cached_tokens": (usage.get("input_token_details") or {}).get("cache_read", 0),
            "latency_s": round(latency, 4),
        }
        parsed = None
        if not answer:
            problem = (f"empty answer (finish_reason={finish}; reasoning used the budget)" if reasoning
                       else f"empty answer (finish_reason={finish})")
        elif response_format is None and looks_like_garbage(answer):
            problem = f"garbage answer: {answer[:80]!r}"
        elif validate is not None:
            try:
                parsed = validate(answer)
                problem = ""
            except ValueError as e:
                problem = f"invalid structured answer (finish_reason={finish}): {e}"
        else:
            problem = ""
        log.info("llm.call", deliberation_id=deliberation_id, agent_id=agent["agent_id"], role=council["role"],
                 stage=stage, round=round_, attempt=attempt, ok=not problem, problem=problem or None,
                 finish_reason=finish, prompt_tokens=record["prompt_tokens"],
                 completion_tokens=record["completion_tokens"], latency_s=record["latency_s"],
                 content=answer, reasoning=reasoning)
        record["accepted"] = not problem
        record["problem"] = problem or None
        records.append(record)
        metrics.observe_call(record)
        if not problem:
            record["parsed"] = parsed
            return records
        if finish == "length":
            budget = budget * 2  # truncated: retry with room to finish
    metrics.DELIBERATIONS_FAILED.labels(council["role"], stage).inc()
    raise CouncilError(stage, agent["agent_id"], f"{problem} after {attempts} attempts")
