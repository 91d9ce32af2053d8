"""LLM calls: langchain-openai ``ChatOpenAI`` against any OpenAI-compatible server (vLLM first).

``LLM`` is one process's client, built from ``LLMSettings`` by a door and passed to the graph:
it owns the HTTP clients (per event loop), what it learned of each endpoint's context window
(``llm.endpoints``) and the prompt files (``llm.prompt_files``). One call gives one finished
record per attempt (content, reasoning, usage, latency), logged in full at INFO with the
deliberation, agent, role and stage. Failed requests (5xx, 429, timeouts, refused connections)
are retried by the openai client with backoff; empty, garbage or invalid answers are retried
here; a stream that breaks mid-answer is retried by the stage's ``RetryPolicy``
(``core.errors.broken_stream``). Every attempt is fitted into the model's context window
(``llm.fit``), and a context-length 400 is fitted and sent again. Each attempt renders from a
snapshot of the prompt set read for it, and its record names the files' hashes and the set's
digest (``llm.prompt_files``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import re
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import httpx
import httpx2
import openai
import structlog
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, SecretStr, ValidationError

from council_agents.core import metrics
from council_agents.core.errors import AnswerRejected, CouncilError, LLMUnreachable
from council_agents.core.request import one_line
from council_agents.core.settings import LLMSettings
from council_agents.core.state import Agent, CallRecord, Council
from council_agents.core.terms import Stage
from council_agents.llm import fit as fitting
from council_agents.llm.endpoints import Windows, overflow
from council_agents.llm.prompt import Prompt
from council_agents.llm.prompt_files import PromptFiles, Snapshot
from council_agents.llm.tokens import Tokenizer, estimate

log = structlog.get_logger("council.llm")

Guard = Callable[[str, str], Awaitable[None]]
"""A check before an LLM call (stage, agent id) that raises to stop it."""

_THINK = re.compile(r"^\s*<think>(.*?)(?:</think>\s*|$)", re.S)
_NOT_WORDISH = re.compile(r"[^\w\s.,;:()'\"#*`/-]")


class VLLMChatOpenAI(ChatOpenAI):
    """``ChatOpenAI`` that keeps vLLM's reasoning field (ChatOpenAI drops it); vLLM >= 0.11
    names it ``reasoning``, older versions ``reasoning_content``: both are read.
    """

    def _create_chat_result(
        self, response: Any, generation_info: dict[str, Any] | None = None
    ) -> ChatResult:
        result = super()._create_chat_result(response, generation_info)
        choices = (
            response.get("choices")
            if isinstance(response, dict)
            else getattr(response, "choices", None)
        )
        if choices:
            msg = choices[0]["message"] if isinstance(choices[0], dict) else choices[0].message
            extra = msg if isinstance(msg, dict) else (getattr(msg, "model_extra", None) or {})
            reasoning = extra.get("reasoning_content") or extra.get("reasoning")
            if reasoning and isinstance(result.generations[0].message, AIMessage):
                result.generations[0].message.additional_kwargs["reasoning_content"] = reasoning
        return result

    def _convert_chunk_to_generation_chunk(
        self,
        chunk: dict[str, Any],
        default_chunk_class: type,
        base_generation_info: dict[str, Any] | None,
    ) -> ChatGenerationChunk | None:
        gen = super()._convert_chunk_to_generation_chunk(
            chunk, default_chunk_class, base_generation_info
        )
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
    match = _THINK.match(content or "")
    if match:
        reasoning = (reasoning + "\n" + match.group(1)).strip()
        content = content[match.end() :]
    return content.strip(), reasoning.strip()


def looks_like_garbage(text: str) -> bool:
    """Text that is mostly not words (the simulator's garbage fault, a broken decode)."""
    if not text:
        return True
    sample = text[:2000]
    odd = len(_NOT_WORDISH.findall(sample)) + sum(1 for ch in sample if ch.isdigit())
    return odd / len(sample) > 0.3 or not re.search(r"[A-Za-z]{3,}", sample)


class _LoopClients:
    """The clients of one event loop: async HTTP connections belong to the loop that opened
    them. Kept in a ``WeakKeyDictionary`` by loop, so a closed loop's clients go with it; their
    connections are closed when the loop shuts down (``asyncio.run`` cancels every task first).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.models: dict[tuple[Any, ...], ChatOpenAI] = {}
        self.limits: dict[tuple[str, int], asyncio.Semaphore] = {}
        self.http: list[httpx2.AsyncClient] = []
        self.closer = loop.create_task(
            self._close_at_shutdown(), name="council-llm-clients", context=contextvars.Context()
        )

    async def _close_at_shutdown(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            for http in self.http:
                with contextlib.suppress(Exception):
                    await http.aclose()


def call_params(
    settings: LLMSettings,
    agent: Agent,
    *,
    stage: Stage,
    round_: int,
    max_tokens: int,
    deliberation_id: str,
    response_format: dict[str, Any] | None = None,
    seed: int | None = None,
    server: Tokenizer | None = None,
) -> dict[str, Any]:
    """What differs per call: sampling (``seed``: this attempt's), budget, who asks (headers the
    simulator logs), format, and the repetition control of the server it goes to (``server``:
    vLLM's ``repetition_penalty``, llama.cpp's ``repeat_penalty``; none for another server).
    """
    extra_body: dict[str, Any] = {}
    if settings.repetition_penalty and server is not None:
        name = "repetition_penalty" if server == "vllm" else "repeat_penalty"
        extra_body[name] = settings.repetition_penalty
    if settings.enable_thinking is not None:
        extra_body["chat_template_kwargs"] = {"enable_thinking": settings.enable_thinking}
    if response_format is not None:
        # In the body as-is: langchain-openai would switch to the client's parse() helper, which
        # raises on truncated JSON instead of returning it for council to retry with more room.
        extra_body["response_format"] = response_format
    params: dict[str, Any] = {
        "temperature": agent["temperature"],
        "max_tokens": max_tokens,
        "extra_headers": {
            "X-Council-Deliberation": deliberation_id,
            "X-Council-Agent": agent["agent_id"],
            "X-Council-Stage": stage,
            "X-Council-Round": str(round_),
        },
    }
    if seed is not None:
        params["seed"] = seed
    if extra_body:
        params["extra_body"] = extra_body
    return params


def attempt_seed(seed: int | None, attempt: int, salt: int = 0) -> int | None:
    """The seed of one attempt: the agent's for the first attempt of a first try, another for
    each retry and each new try (``salt``), so a rejected answer is not asked for again with
    the same seed (None: the agent samples without a seed).
    """
    if seed is None:
        return None
    return (seed + 7919 * (attempt - 1) + 104729 * salt) % 2**31


def _request_error(e: Exception, stage: str, agent: Agent) -> CouncilError:
    """The one-line error of a request that failed for good."""
    where = f"the LLM at {agent['base_url']}"
    if isinstance(e, openai.APIStatusError):
        if e.status_code >= 500 or e.status_code in (408, 409, 429):
            return LLMUnreachable(
                stage,
                agent["agent_id"],
                f"{where} answered {e.status_code} after retries: {e.message}",
            )
        return CouncilError(
            stage, agent["agent_id"], f"{where} rejected the request ({e.status_code}): {e.message}"
        )
    if isinstance(e, openai.APITimeoutError):
        return LLMUnreachable(stage, agent["agent_id"], f"{where} timed out after retries")
    return LLMUnreachable(stage, agent["agent_id"], f"cannot reach {where}: {e}")


@dataclass
class Answer:
    """An accepted answer and the records of every attempt that led to it."""

    records: list[CallRecord]
    """Every finished attempt; the last one is accepted, and stored without its content (the
    stage stores that as what it became: a draft, a critique, the decision)."""
    content: str
    """The accepted answer's text."""
    parsed: Any = None
    """``validate``'s result for the accepted answer."""


def without_content(record: CallRecord) -> CallRecord:
    """``record`` without its answer text (stored elsewhere once accepted)."""
    kept = dict(record)
    kept.pop("content", None)
    return cast(CallRecord, kept)


class NoRetry(ValueError):
    """An answer check's refusal that no further attempt is asked for (unless the answer was
    cut at ``max_tokens``): what stands without an answer is what a retry could at best
    restore (a revision that drops the previous version's code: the previous version stands).
    """


def _problem(
    answer: str,
    reasoning: str,
    finish: str | None,
    structured: bool,
    validate: Callable[[str], Any] | None,
) -> tuple[str, Any, bool]:
    """Why an answer is rejected ("" when it is accepted), its parsed value, and whether
    another attempt may be asked for.
    """
    if not answer:
        used = "; reasoning used the budget" if reasoning else ""
        return f"empty answer (finish_reason={finish}{used})", None, True
    if not structured and looks_like_garbage(answer):
        return f"garbage answer: {answer[:80]!r}", None, True
    if validate is None:
        return "", None, True
    try:
        return "", validate(answer), True
    except ValueError as e:
        said = " ".join(str(e).split())  # one line, whatever the check raised
        again = finish == "length" or not isinstance(e, NoRetry)
        return f"invalid structured answer (finish_reason={finish}): {said}", None, again


class LLM:
    """One process's LLM client: its settings, HTTP clients per event loop, what it learned of
    each endpoint's context window, and the prompt files it renders.
    """

    def __init__(self, settings: LLMSettings, guard: Guard | None = None) -> None:
        self.settings = settings
        self.guard = guard
        """Awaited before every attempt with the stage and the agent; raises to stop the call
        (``graph.builder`` checks that the run's checkpoints can still be written)."""
        self.windows = Windows(settings)
        """Each endpoint's context window, learned on first use."""
        self.prompts = PromptFiles(settings.prompts_dir)
        """The prompt files, read on every call."""
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = (
            weakref.WeakKeyDictionary()
        )

    def _clients(self) -> _LoopClients:
        loop = asyncio.get_running_loop()
        if loop not in self._loops:
            self._loops[loop] = _LoopClients(loop)
        return self._loops[loop]

    def _limit(self, base_url: str) -> contextlib.AbstractAsyncContextManager[Any]:
        """The process-wide limit on calls in flight to ``base_url`` (no-op when unlimited)."""
        n = self.settings.concurrency
        if n <= 0:
            return contextlib.nullcontext()
        limits = self._clients().limits
        if (base_url, n) not in limits:
            limits[(base_url, n)] = asyncio.Semaphore(n)
        return limits[(base_url, n)]

    def chat_model(self, agent: Agent) -> ChatOpenAI:
        """One client per server and model, reused by every call (building a ChatOpenAI builds
        openai and HTTP clients: far too slow to do per call).
        """
        s, clients = self.settings, self._clients()
        api_key = s.api_key_for(agent.get("api_key_name"))
        key = (agent["base_url"], agent["model"], api_key)
        if key not in clients.models:
            # A bounded pool (more calls wait, as in vLLM's queue). aiohttp, the openai SDK's
            # documented alternative transport, costs about a millisecond of CPU less per call
            # than httpx2, whose pool also scans every pooled connection per request.
            n = s.max_connections
            transport = (
                openai.DefaultAioHttpClient
                if s.http == "aiohttp"
                else openai.DefaultAsyncHttpxClient
            )
            http = transport(
                limits=httpx2.Limits(max_connections=n, max_keepalive_connections=n),
                timeout=s.timeout_s,
            )
            clients.http.append(http)
            clients.models[key] = VLLMChatOpenAI(
                model=agent["model"],
                base_url=agent["base_url"],
                api_key=SecretStr(api_key),
                timeout=s.timeout_s,
                max_retries=s.max_retries,
                stream_usage=True,
                http_async_client=http,
            )
        return clients.models[key]

    async def call(
        self,
        agent: Agent,
        messages: list[BaseMessage] | Prompt,
        *,
        stage: Stage,
        round_: int,
        deliberation_id: str,
        max_tokens: int,
        response_format: dict[str, Any] | None = None,
        validate: Callable[[str], Any] | None = None,
        salt: int = 0,
        token_cap: int | None = None,
        min_answer: int | None = None,
    ) -> Answer:
        """One LLM call with answer checks; rejected answers are kept, logged and retried
        ``answer_retries`` times, each attempt with a seed of its own (a truncated one with
        twice the budget; a ``NoRetry`` refusal of an answer that was not cut ends the
        attempts), then ``AnswerRejected`` names the stage, the agent and the last
        problem. ``token_cap`` bounds what the attempts may spend together (prompt and
        completion): no attempt is made that could pass it. Every attempt is fitted into the
        model's context window first (``llm.fit``; a ``Prompt`` can be shortened).
        """
        if not self.settings.allows(agent["base_url"]):  # whatever wrote the state, keys stay
            raise CouncilError(
                stage,
                agent["agent_id"],
                f"{agent['base_url']} is not on this server's allow-list "
                "(COUNCIL_LLM_ALLOWED_URLS)",
            )
        records: list[CallRecord] = []
        attempts = 1 + self.settings.answer_retries
        budget, problem = max_tokens, ""
        for attempt in range(1, attempts + 1):
            spent = sum(r["prompt_tokens"] + r["completion_tokens"] for r in records)
            if self.guard is not None:
                await self.guard(stage, agent["agent_id"])
            # the prompt set as it is now, read once for this attempt: what it rendered is named
            files = (
                await asyncio.to_thread(self.prompts.snapshot)  # disk reads: off the event loop
                if isinstance(messages, Prompt)
                else None
            )
            try:
                sent, msg, latency = await self._send(
                    agent,
                    messages,
                    budget,
                    files=files,
                    base=max_tokens,
                    stage=stage,
                    round_=round_,
                    deliberation_id=deliberation_id,
                    response_format=response_format,
                    seed=attempt_seed(agent["seed"], attempt, salt),
                    cap=None if token_cap is None else token_cap - spent,
                    min_answer=min_answer,
                )
            except fitting.OverBudget as e:
                if not records:
                    raise e.after(records) from None
                problem += f"; {e.cause} (attempt {attempt} not made)"
                break
            except CouncilError as e:  # what the earlier attempts cost goes with the error
                raise e.after(records) from e.__cause__
            record = _record(
                agent, msg, stage=stage, round_=round_, attempt=attempt, latency=latency
            )
            if sent.fit is not None:
                record["context_fit"] = sent.fit
            if files is not None:
                record["prompts"], record["prompt_set"] = dict(files.rendered), files.digest
            problem, parsed, again = _problem(
                record.get("content", ""),
                record["reasoning"],
                record["finish_reason"],
                response_format is not None,
                validate,
            )
            record["accepted"], record["problem"] = not problem, problem or None
            log.info("llm.call", deliberation_id=deliberation_id, **record)
            records.append(record)
            metrics.observe_call(record)
            if not problem:
                if response_format is not None and record["completion_tokens"]:
                    content = record.get("content", "")
                    self.windows.learn_answer(agent, len(content), record["completion_tokens"])
                return Answer(
                    records[:-1] + [without_content(record)], record.get("content", ""), parsed
                )
            if not again:
                break
            if record["finish_reason"] == "length":
                budget *= 2  # truncated: retry with room to finish
        raise AnswerRejected(
            stage, agent["agent_id"], f"{problem} after {len(records)} attempt(s)"
        ).after(records)

    async def _send(
        self,
        agent: Agent,
        messages: list[BaseMessage] | Prompt,
        budget: int,
        *,
        base: int,
        stage: Stage,
        round_: int,
        deliberation_id: str,
        response_format: dict[str, Any] | None,
        seed: int | None = None,
        cap: int | None = None,
        min_answer: int | None = None,
        files: Snapshot | None = None,
    ) -> tuple[fitting.Fitted, AIMessage, float]:
        """Fit, send, and fit again after a context-length rejection (``REFITS`` times);
        a ``Prompt`` is rendered from ``files`` (the attempt's snapshot of the prompt set).
        """
        llm = self.chat_model(agent)
        overflows = 0
        while True:
            sent = await fitting.fit(
                self.windows,
                files or self.prompts,
                agent,
                messages,
                budget,
                stage=stage,
                base=base,
                overflows=overflows,
                response_format=response_format,
                cap=cap,
                min_answer=min_answer,
            )
            if sent.fit is not None:
                log.info(
                    "llm.context_fit",
                    deliberation_id=deliberation_id,
                    agent_id=agent["agent_id"],
                    stage=stage,
                    round=round_,
                    **sent.fit,
                )
            known = await self.windows.endpoint(agent)
            params = call_params(
                self.settings,
                agent,
                stage=stage,
                round_=round_,
                max_tokens=sent.max_tokens,
                deliberation_id=deliberation_id,
                response_format=sent.response_format,
                seed=seed,
                server=known.tokenizer,
            )
            try:
                async with self._limit(agent["base_url"]):
                    started = time.monotonic()
                    msg = await llm.ainvoke(sent.messages, **params)
                return sent, msg, time.monotonic() - started
            except (openai.APIError, httpx.TransportError, httpx2.TransportError) as e:
                seen = overflow(e)
                if seen is not None and overflows < fitting.REFITS:
                    overflows += 1
                    by_estimate = sent.fit is None or sent.fit["counted_by"] == "estimate"
                    self.windows.learn(
                        agent, seen, estimate(sent.messages) if by_estimate else None
                    )
                    log.warning(
                        "llm.context_overflow",
                        deliberation_id=deliberation_id,
                        agent_id=agent["agent_id"],
                        stage=stage,
                        window=seen.window,
                        prompt_tokens=seen.prompt_tokens,
                        message=seen.message,
                    )
                    continue
                raise _request_error(e, stage, agent) from e

    async def default_model(self) -> str:
        """The configured model, else the default server's first one (``LLMUnreachable``
        when the server does not answer, serves no model, or not the configured one).
        """
        s = self.settings
        served = await served_models(s.base_url, s.api_key)
        if s.model is None:
            if not served:
                raise LLMUnreachable("preflight", "-", f"the LLM at {s.base_url} serves no model")
            return served[0]
        if served and s.model not in served:
            raise LLMUnreachable(
                "preflight",
                "-",
                f"model {s.model!r} is not served at {s.base_url}; served: {', '.join(served)}",
            )
        return s.model

    async def ready(self, council: Council) -> Council:
        """Check that every endpoint the council names answers and serves its agents' models
        (one ``GET /models`` per endpoint); an agent without a model adopts its server's first
        one. Returns the council with every model named.
        """
        served: dict[tuple[str, str | None], list[str]] = {}
        for agent in [*council["agents"], council["judge"]]:
            endpoint = (agent["base_url"], agent.get("api_key_name"))
            if endpoint not in served:
                key = self.settings.api_key_for(endpoint[1])
                served[endpoint] = await served_models(endpoint[0], key)

        def named(agent: Agent) -> Agent:
            models = served[(agent["base_url"], agent.get("api_key_name"))]
            if not agent["model"]:
                if not models:
                    raise LLMUnreachable(
                        "preflight", "-", f"the LLM at {agent['base_url']} serves no model"
                    )
                return {**agent, "model": models[0]}
            if models and agent["model"] not in models:
                raise LLMUnreachable(
                    "preflight",
                    "-",
                    f"model {agent['model']!r} is not served at {agent['base_url']}; "
                    f"served: {', '.join(models)}",
                )
            return agent

        return {
            **council,
            "agents": [named(a) for a in council["agents"]],
            "judge": named(council["judge"]),
        }


def _record(
    agent: Agent, msg: AIMessage, *, stage: Stage, round_: int, attempt: int, latency: float
) -> CallRecord:
    raw = msg.content if isinstance(msg.content, str) else str(msg.content)
    answer, reasoning = split_reasoning(raw, msg.additional_kwargs.get("reasoning_content"))
    usage: dict[str, Any] = dict(msg.usage_metadata or {})
    return CallRecord(
        agent_id=agent["agent_id"],
        role=agent["role"],
        stage=stage,
        round=round_,
        attempt=attempt,
        model=msg.response_metadata.get("model_name"),
        content=answer,
        reasoning=reasoning,
        finish_reason=msg.response_metadata.get("finish_reason"),
        prompt_tokens=usage.get("input_tokens", 0),
        completion_tokens=usage.get("output_tokens", 0),
        cached_tokens=(usage.get("input_token_details") or {}).get("cache_read", 0) or 0,
        latency_s=round(latency, 4),
        accepted=False,
        problem=None,
    )


@functools.lru_cache(maxsize=512)
def structured(model: type[BaseModel], name: str) -> tuple[dict[str, Any], Callable[[str], Any]]:
    """The ``response_format`` that makes the server answer ``model``'s JSON Schema (vLLM's
    guided decoding), and the check that parses an answer (``ValueError`` rejects it).
    Cached: generating a JSON Schema costs milliseconds, and the schemas are few.
    """
    schema = model.model_json_schema(by_alias=True)
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": schema, "strict": True},
    }

    def validate(answer: str) -> Any:
        try:
            return model.model_validate_json(answer)
        except ValidationError as e:  # one line for the error; every problem in the log
            log.info("llm.invalid_answer", schema=name, errors=e.errors(include_url=False))
            raise ValueError(str(one_line(e))) from None

    return response_format, validate


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for the preflight's clients: building one (loading the CA bundle) costs
    tens of milliseconds of CPU, more than the rest of a deliberation's preflight.
    """
    return httpx.create_ssl_context()


async def served_models(base_url: str, api_key: str) -> list[str]:
    """The models an OpenAI-compatible server serves (``GET /models``)."""
    url = base_url.rstrip("/") + "/models"
    try:
        async with httpx.AsyncClient(timeout=10, verify=_tls()) as client:
            response = await client.get(url, headers={"Authorization": f"Bearer {api_key}"})
            response.raise_for_status()
            return [m["id"] for m in response.json().get("data", [])]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
        raise LLMUnreachable(
            "preflight", "-", f"cannot reach the LLM at {url}: {type(e).__name__}: {e}"
        ) from e
