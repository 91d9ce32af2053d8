"""What council knows of each LLM endpoint's context window, and what a rejection teaches it.

**The window** (prompt plus answer tokens), per endpoint and model, learned once per process
(re-learned after ``TTL_S``) and on every context-length rejection:

1. ``LLMSettings.context_window`` (``COUNCIL_LLM_CONTEXT_WINDOW``) overrides the server;
2. ``GET {base}/models``: vLLM's ``max_model_len``, llama.cpp's ``meta.n_ctx`` (per slot);
3. ``GET {root}/props``: llama.cpp's ``default_generation_settings.n_ctx`` (per slot);
4. a context-length 400 names it (vLLM's and llama.cpp's messages are parsed, ``overflow``);
   the server's word beats a setting or report until the window is asked again.

Unknown (a server that reports none): calls go as they are, and the first 400 teaches it.
``Windows`` holds what was learned; the LLM client owns one (no module state).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import weakref
from dataclasses import dataclass, field

import httpx
import openai
import structlog
from langchain_core.messages import BaseMessage

from council_agents.core.settings import LLMSettings, normal_url
from council_agents.core.state import Agent
from council_agents.llm.tokens import Tokenizer, estimate, server_root, tokenize

log = structlog.get_logger("council.llm")

TTL_S = 300.0
"""A learned window is asked again after this many seconds (a server may restart smaller)."""
DEFAULT_CHARS_PER_TOKEN = 2.5
"""Characters a completion token carries in a structured answer, until an endpoint's own
answers say otherwise (JSON with English strings runs at 3 or more: a margin)."""
LEARN_AFTER = 300
"""Completion tokens of accepted structured answers after which an endpoint's own ratio is
used."""


@dataclass
class Endpoint:
    """What council knows of one endpoint and model."""

    window: int | None
    """Prompt plus answer tokens per request (None: unknown)."""
    source: str
    """Where the window came from: setting, max_model_len, n_ctx, props, error, unknown."""
    tokenizer: Tokenizer | None
    """How the server counts a prompt: ``vllm``, ``llama.cpp`` or None (estimate)."""
    learned_at: float = field(default_factory=time.monotonic)
    scale: float = 1.0
    """Estimates are multiplied by this after a server counted more than estimated."""


_WINDOW = (
    re.compile(r"maximum context length is (\d+)"),
    re.compile(r"model's context length is only (\d+)"),
    re.compile(r"available context size \((\d+) tokens\)"),
)
_PROMPT = (
    re.compile(r"your request has (\d+) input tokens"),
    re.compile(r"\((\d+) in the messages"),
    re.compile(r"You passed (\d+) input tokens"),
    re.compile(r"request \((\d+) tokens\) exceeds"),
    re.compile(r"messages resulted in (\d+) tokens"),
)


@dataclass
class Overflow:
    """What a context-length rejection says."""

    window: int | None
    prompt_tokens: int | None
    message: str


def overflow(error: BaseException) -> Overflow | None:
    """The numbers of a context-length 400 (vLLM's, llama.cpp's or OpenAI's), else None."""
    if not isinstance(error, openai.BadRequestError):
        return None
    body = error.body if isinstance(error.body, dict) else {}
    body = body.get("error", body) if isinstance(body.get("error"), dict) else body
    message = str(body.get("message") or error.message)
    window = body.get("n_ctx") if isinstance(body.get("n_ctx"), int) else _first(_WINDOW, message)
    prompt = body.get("n_prompt_tokens")
    prompt = prompt if isinstance(prompt, int) else _first(_PROMPT, message)
    if window is None and body.get("type") != "exceed_context_size_error":
        return None
    return Overflow(window, prompt, message)


def _first(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return int(match.group(1))
    return None


class Windows:
    """The context windows of the endpoints one process calls, learned on first use."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._known: dict[tuple[str, str], Endpoint] = {}
        self._answers: dict[tuple[str, str], tuple[int, int]] = {}
        """Characters and completion tokens of accepted structured answers, per endpoint."""
        self._http: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> httpx.AsyncClient:
        """One small HTTP client per event loop for probes and token counts."""
        loop = asyncio.get_running_loop()
        if loop not in self._http:
            self._http[loop] = httpx.AsyncClient(timeout=30)
        return self._http[loop]

    @staticmethod
    def _key(agent: Agent) -> tuple[str, str]:
        return normal_url(agent["base_url"]), agent["model"]

    def forget(self) -> None:
        """Drop everything learned (a changed server is re-learned anyway)."""
        self._known.clear()

    async def endpoint(self, agent: Agent) -> Endpoint:
        """The endpoint's window and tokenizer, learned on first use."""
        key = self._key(agent)
        known = self._known.get(key)
        if known is not None and (
            known.source == "setting" or time.monotonic() - known.learned_at < TTL_S
        ):
            return known
        if known is not None:
            known.learned_at = time.monotonic()  # other calls keep using it while this one asks
        learned = await self._probe(agent)
        configured = self.settings.context_window_for(agent["base_url"])
        if configured is not None:
            learned.window, learned.source = configured, "setting"
        if known is not None:
            learned.scale = known.scale
        self._known[key] = learned
        log.info(
            "llm.context_window",
            base_url=agent["base_url"],
            model=agent["model"],
            window=learned.window,
            source=learned.source,
            tokenizer=learned.tokenizer,
        )
        return learned

    async def _probe(self, agent: Agent) -> Endpoint:
        """Ask the server: ``/models`` (vLLM, llama.cpp), then ``/props`` (llama.cpp)."""
        api_key = self.settings.api_key_for(agent.get("api_key_name"))
        headers = {"Authorization": f"Bearer {api_key}"}
        base = agent["base_url"].rstrip("/")
        try:
            response = await self._client().get(base + "/models", headers=headers)
            entries = response.json().get("data", []) if response.status_code == 200 else []
        except (httpx.HTTPError, ValueError, AttributeError):
            entries = []
        entry = next((e for e in entries if e.get("id") == agent["model"]), None)
        entry = entry or (entries[0] if len(entries) == 1 else {})
        if isinstance(entry.get("max_model_len"), int):
            return Endpoint(entry["max_model_len"], "max_model_len", "vllm")
        meta = entry.get("meta") or {}
        if isinstance(meta.get("n_ctx"), int):
            return Endpoint(meta["n_ctx"], "n_ctx", "llama.cpp")
        try:
            response = await self._client().get(server_root(base) + "/props", headers=headers)
            props = response.json() if response.status_code == 200 else {}
            n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx")
        except (httpx.HTTPError, ValueError, AttributeError):
            n_ctx = None
        if isinstance(n_ctx, int):
            return Endpoint(n_ctx, "props", "llama.cpp")
        return Endpoint(None, "unknown", None)

    async def count(
        self, agent: Agent, messages: list[BaseMessage], known: Endpoint
    ) -> tuple[int, str]:
        """The prompt's tokens and who counted them (``server`` or ``estimate``)."""
        if known.tokenizer is not None:
            try:
                tokens = await tokenize(
                    self._client(),
                    agent["base_url"],
                    self.settings.api_key_for(agent.get("api_key_name")),
                    agent["model"],
                    messages,
                    known.tokenizer,
                    self.settings.enable_thinking,
                )
                return tokens, "server"
            except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as e:
                log.warning(
                    "llm.tokenize_unavailable",
                    base_url=agent["base_url"],
                    tokenizer=known.tokenizer,
                    error=f"{type(e).__name__}: {e}",
                )
                known.tokenizer = None
        return math.ceil(estimate(messages) * known.scale), "estimate"

    def learn_answer(self, agent: Agent, chars: int, tokens: int) -> None:
        """Count an accepted structured answer: ``chars`` characters in ``tokens`` tokens."""
        key = self._key(agent)
        before = self._answers.get(key, (0, 0))
        self._answers[key] = (before[0] + chars, before[1] + tokens)

    def chars_per_token(self, agent: Agent) -> float:
        """Characters a completion token of this endpoint carries in structured answers: what
        its accepted answers took (once they add up to ``LEARN_AFTER`` tokens, with a 10 %
        margin), else ``DEFAULT_CHARS_PER_TOKEN``.
        """
        chars, tokens = self._answers.get(self._key(agent), (0, 0))
        if tokens < LEARN_AFTER:
            return DEFAULT_CHARS_PER_TOKEN
        return min(6.0, max(1.5, 0.9 * chars / tokens))

    def learn(self, agent: Agent, seen: Overflow, estimated: int | None) -> None:
        """Take the window and the server's prompt count from a rejection into account:
        estimates for this endpoint grow to the server's count (plus 5 %) when they were below
        it (``estimated``: the raw estimate of the rejected prompt, None when the server had
        counted it).
        """
        known = self._known.get(self._key(agent))
        if known is None:
            return
        if seen.window is not None:  # the server's word beats any setting or report
            known.window, known.source, known.learned_at = seen.window, "error", time.monotonic()
        if seen.prompt_tokens and estimated is not None:
            known.scale = max(known.scale, 1.05 * seen.prompt_tokens / max(estimated, 1))
