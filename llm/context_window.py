"""Fit every LLM call into its model's context window.

**The window** (prompt plus answer tokens), per endpoint and model, learned once per process
(re-learned after ``TTL_S``) and on every context-length rejection:

1. ``settings.llm_context_window`` (``COUNCIL_LLM_CONTEXT_WINDOW``) overrides the server;
2. ``GET {base}/models``: vLLM's ``max_model_len``, llama.cpp's ``meta.n_ctx`` (per slot);
3. ``GET {root}/props``: llama.cpp's ``default_generation_settings.n_ctx`` (per slot);
4. a context-length 400 names it (vLLM's and llama.cpp's messages are parsed, ``overflow``);
   the server's word beats a setting or report until the window is asked again.

Unknown (a server that reports none): calls go as they are, and the first 400 teaches it.

**Counting prompt tokens.** The server's tokenizer is not available here. A call whose
*estimate* (``ceil(UTF-8 bytes / BYTES_PER_TOKEN)`` plus ``PER_MESSAGE`` template tokens per
message) fits with its whole budget is sent without another request: the estimate is an upper
bound for every tokenizer measured (docs/REAL_LLM.md). Otherwise the server counts the rendered
prompt itself: vLLM's ``POST /tokenize`` (messages, with the chat template), llama.cpp's
``POST /apply-template`` then ``POST /tokenize``; a server with neither keeps the estimate.

**The rule**, for each attempt with completion budget ``B`` (the stage's, doubled after a
truncated answer), with ``room = window - MARGIN``:

- the answer keeps at least ``floor = max(MIN_ANSWER, B // 2)`` tokens (at most ``B``); on a
  retry (``B`` doubled) no more than half the window, nor less than the first attempt's floor;
- ``prompt + B <= room``: sent as it is;
- ``prompt + floor <= room``: ``max_tokens = room - prompt``;
- otherwise the stage's inputs are shortened, in the stage's order of sacrifice, until
  ``prompt + floor <= room``, and ``max_tokens = min(B, room - prompt)``:

  - propose: nothing (task, constraints and rubric are never cut: ``prepare`` refuses a task
    whose shortest prompts do not fit, with the numbers);
  - critique: the proposal under critique, oldest (first) paragraphs first;
  - revise: the critiques first (defect lines, minor then major then blocker then broken
    constraints, the last critic's first; then the summaries), then the proposal under
    revision, oldest paragraphs first;
  - judge and vote: every proposal cut to the same length (the longest ones lose most, none is
    favoured for being short), each keeping its beginning.

  Every cut leaves a marker in the text saying how much was omitted and why; each shortening is
  a line of the call record's ``context_fit.shortened`` and of the log (``llm.context_fit``).

- a fitted call's structured answer is fitted too (``fit_answer``): its JSON Schema's lists and
  strings are bounded so that the grammar ends the document within ``max_tokens`` (a retry of
  a cut answer that the window cannot give twice the budget plans half the document instead).

A context-length 400 that still happens (an estimate the server disagrees with, a window that
shrank) is not a failure: the window and the server's prompt count are learned from the error
and the call is fitted and sent again, at most ``REFITS`` times.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import openai
import structlog
from langchain_core.messages import BaseMessage

from council_agents.core.errors import CouncilError
from council_agents.core.settings import Settings, normal_url
from council_agents.core.state import Agent, ContextFit, Critique
from council_agents.llm import prompt_files

log = structlog.get_logger("council.llm")

BYTES_PER_TOKEN = 2.5
"""Estimate: at most one token per this many UTF-8 bytes of prompt text. Measured: SmolLM2's
tokenizer 3.1 bytes a token on council's Markdown and JSON (3.6 on Python), the simulator's
2.7-2.9, Gemma 3's more (docs/REAL_LLM.md)."""
PER_MESSAGE = 8
"""Estimate: chat-template tokens per message (role markers), plus the same once more."""
MARGIN = 16
"""Tokens of the window never planned: a server's template may add a token or two."""
MIN_ANSWER = 128
"""The smallest answer budget a shortening makes room for."""
REFITS = 2
"""Context-length rejections answered by fitting again, per attempt."""
TTL_S = 300.0
"""A learned window is asked again after this many seconds (a server may restart smaller)."""
MARKER = "[… {n:,} characters omitted to fit the model's context window …]"


class ContextOverflow(CouncilError):
    """A call that cannot fit its model's context window, even with its inputs shortened."""


@dataclass
class Endpoint:
    """What council knows of one endpoint and model."""

    window: int | None
    """Prompt plus answer tokens per request (None: unknown)."""
    source: str
    """Where the window came from: setting, max_model_len, n_ctx, props, error, unknown."""
    tokenizer: str | None
    """How the server counts a prompt: ``vllm``, ``llama.cpp`` or None (estimate)."""
    learned_at: float = field(default_factory=time.monotonic)
    scale: float = 1.0
    """Estimates are multiplied by this after a server counted more than estimated."""


_endpoints: dict[tuple[str, str], Endpoint] = {}
_http: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def _key(agent: Agent) -> tuple[str, str]:
    return normal_url(agent["base_url"]), agent["model"]


def _client() -> httpx.AsyncClient:
    """One small HTTP client per event loop for probes and token counts."""
    loop = asyncio.get_running_loop()
    if loop not in _http:
        _http[loop] = httpx.AsyncClient(timeout=30)
    return _http[loop]


def _root(base_url: str) -> str:
    """The server root of an OpenAI base URL (``/tokenize`` and ``/props`` live there)."""
    return re.sub(r"/v1/?$", "", base_url.rstrip("/"))


def forget() -> None:
    """Drop everything learned (tests; a changed server is re-learned anyway)."""
    _endpoints.clear()


async def endpoint(settings: Settings, agent: Agent) -> Endpoint:
    """The endpoint's window and tokenizer, learned on first use."""
    key = _key(agent)
    known = _endpoints.get(key)
    if known is not None and (
        known.source == "setting" or time.monotonic() - known.learned_at < TTL_S
    ):
        return known
    if known is not None:
        known.learned_at = time.monotonic()  # other calls keep using it while this one asks
    learned = await _probe(settings, agent)
    configured = settings.context_window_for(agent["base_url"])
    if configured is not None:
        learned.window, learned.source = configured, "setting"
    if known is not None:
        learned.scale = known.scale
    _endpoints[key] = learned
    log.info(
        "llm.context_window",
        base_url=agent["base_url"],
        model=agent["model"],
        window=learned.window,
        source=learned.source,
        tokenizer=learned.tokenizer,
    )
    return learned


async def _probe(settings: Settings, agent: Agent) -> Endpoint:
    """Ask the server: ``/models`` (vLLM, llama.cpp), then ``/props`` (llama.cpp)."""
    headers = {"Authorization": f"Bearer {settings.api_key_for(agent.get('api_key_name'))}"}
    base = agent["base_url"].rstrip("/")
    try:
        response = await _client().get(base + "/models", headers=headers)
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
        response = await _client().get(_root(base) + "/props", headers=headers)
        props = response.json() if response.status_code == 200 else {}
        n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx")
    except (httpx.HTTPError, ValueError, AttributeError):
        n_ctx = None
    if isinstance(n_ctx, int):
        return Endpoint(n_ctx, "props", "llama.cpp")
    return Endpoint(None, "unknown", None)


def estimate(messages: list[BaseMessage]) -> int:
    """An upper estimate of a prompt's tokens (see ``BYTES_PER_TOKEN``)."""
    size = sum(len(_text(m).encode()) for m in messages)
    return math.ceil(size / BYTES_PER_TOKEN) + PER_MESSAGE * (len(messages) + 1)


def _text(message: BaseMessage) -> str:
    return message.content if isinstance(message.content, str) else str(message.content)


def wire(messages: list[BaseMessage]) -> list[dict[str, str]]:
    """Messages as the OpenAI API sends them."""
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    return [{"role": roles.get(m.type, m.type), "content": _text(m)} for m in messages]


async def count(
    settings: Settings, agent: Agent, messages: list[BaseMessage], known: Endpoint
) -> tuple[int, str]:
    """The prompt's tokens and who counted them (``server`` or ``estimate``)."""
    if known.tokenizer is not None:
        try:
            return await _server_count(settings, agent, messages, known.tokenizer), "server"
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning(
                "llm.tokenize_unavailable",
                base_url=agent["base_url"],
                tokenizer=known.tokenizer,
                error=f"{type(e).__name__}: {e}",
            )
            known.tokenizer = None
    return math.ceil(estimate(messages) * known.scale), "estimate"


async def _server_count(
    settings: Settings, agent: Agent, messages: list[BaseMessage], tokenizer: str
) -> int:
    headers = {"Authorization": f"Bearer {settings.api_key_for(agent.get('api_key_name'))}"}
    root, client = _root(agent["base_url"]), _client()
    if tokenizer == "vllm":
        body: dict[str, Any] = {
            "model": agent["model"],
            "messages": wire(messages),
            "add_generation_prompt": True,
        }
        if settings.enable_thinking is not None:
            body["chat_template_kwargs"] = {"enable_thinking": settings.enable_thinking}
        response = await client.post(root + "/tokenize", json=body, headers=headers)
        response.raise_for_status()
        return int(response.json()["count"])
    response = await client.post(
        root + "/apply-template", json={"messages": wire(messages)}, headers=headers
    )
    response.raise_for_status()
    prompt = response.json()["prompt"]
    response = await client.post(
        root + "/tokenize", json={"content": prompt, "add_special": True}, headers=headers
    )
    response.raise_for_status()
    return len(response.json()["tokens"])


# ---- inputs that can be shortened ---------------------------------------------------------


class Piece(Protocol):
    """A prompt input that can be shortened to a length, by its own rule."""

    def size(self) -> int:
        """Characters at full length."""
        ...

    def text(self, limit: int) -> tuple[str, str | None]:
        """The input in at most ``limit`` characters (never less than it can be), and what
        was cut (None: nothing)."""
        ...


def _marker(n: int) -> str:
    return MARKER.format(n=n)


@dataclass
class Oldest:
    """A text shortened from its beginning: the oldest (first) paragraphs go first."""

    name: str
    full: str

    def size(self) -> int:
        """Characters at full length."""
        return len(self.full)

    def text(self, limit: int) -> tuple[str, str | None]:
        """The newest paragraphs that fit in ``limit`` characters, after a marker."""
        if len(self.full) <= limit:
            return self.full, None
        paragraphs = self.full.split("\n\n")
        kept: list[str] = []
        room = limit - len(_marker(len(self.full))) - 2
        for paragraph in reversed(paragraphs):
            if sum(len(p) + 2 for p in kept) + len(paragraph) > room:
                if not kept:  # the last paragraph alone is too long: keep its end
                    tail = paragraph[max(0, len(paragraph) - max(room, 0)) :]
                    kept.append(tail.split(" ", 1)[-1] if " " in tail else tail)
                break
            kept.insert(0, paragraph)
        body = "\n\n".join(kept)
        omitted = len(self.full) - len(body)
        note = f"{self.name}: first {omitted:,} of {len(self.full):,} characters omitted"
        return (_marker(omitted) + ("\n\n" + body if body else "")), note


_SEVERITY = re.compile(r"^- \*\*(minor|major|blocker|constraint violated)\*\*")
_SACRIFICE = {"minor": 0, "major": 1, "blocker": 2, "constraint violated": 3, "summary": 4}


@dataclass
class Critiques:
    """Critiques as the author reads them, shortened line by line: defect lines (minor, then
    major, then blocker, then broken constraints; the last critic's first), then summaries;
    every critic's heading stays."""

    critiques: list[Critique]

    def size(self) -> int:
        """Characters at full length."""
        return len(self._join([c["content"].split("\n") for c in self.critiques], {}))

    def text(self, limit: int) -> tuple[str, str | None]:
        """The critiques in at most ``limit`` characters (headings always kept)."""
        lines = [c["content"].split("\n") for c in self.critiques]
        candidates = []
        for ci, critique_lines in enumerate(lines):
            for li, line in enumerate(critique_lines[1:], 1):
                match = _SEVERITY.match(line)
                kind = match.group(1) if match else ("summary" if li == 1 else "minor")
                candidates.append((_SACRIFICE[kind], -ci, -li, ci, li, kind))
        candidates.sort()
        dropped: dict[int, set[int]] = {}
        counts: dict[str, int] = {}
        for *_, ci, li, kind in candidates:
            if len(self._join(lines, dropped)) <= limit:
                break
            dropped.setdefault(ci, set()).add(li)
            counts[kind] = counts.get(kind, 0) + 1
        if not counts:
            return self._join(lines, {}), None
        text = self._join(lines, dropped)
        cut = ", ".join(f"{n} {kind}" for kind, n in counts.items())
        total = sum(counts.values())
        return text, f"critiques: {total} line{'s' if total != 1 else ''} omitted ({cut})"

    def _join(self, lines: list[list[str]], dropped: Mapping[int, set[int]]) -> str:
        parts = []
        for ci, critique_lines in enumerate(lines):
            gone = dropped.get(ci, set())
            parts.append("\n".join(x for li, x in enumerate(critique_lines) if li not in gone))
        text = "\n\n".join(parts) or "(none)"
        omitted = sum(len(lines[ci][li]) + 1 for ci, gone in dropped.items() for li in gone)
        return text + ("\n\n" + _marker(omitted) if omitted else "")


@dataclass
class EvenCap:
    """Proposals shown together (judge, vote), all cut to the same length when they do not
    fit: the longest lose most, each keeps its beginning."""

    order: list[str]
    proposals: dict[str, str]
    join: Callable[[list[str], dict[str, str]], str]
    """How the proposals are shown (labels and headings), from their texts."""

    def size(self) -> int:
        """Characters at full length."""
        return len(self.join(self.order, self.proposals))

    def text(self, limit: int) -> tuple[str, str | None]:
        """The proposals, each capped at the largest common length that fits ``limit``."""
        if self.size() <= limit:
            return self.join(self.order, self.proposals), None
        low, high = 0, max(len(self.proposals[a]) for a in self.order)
        while low < high:  # the largest cap whose text fits
            middle = (low + high + 1) // 2
            if len(self.join(self.order, self._capped(middle))) <= limit:
                low = middle
            else:
                high = middle - 1
        capped = self._capped(low)
        cut = sum(len(self.proposals[a]) > low for a in self.order)
        note = f"proposals: {cut} of {len(self.order)} cut to their first {low:,} characters"
        return self.join(self.order, capped), note

    def _capped(self, cap: int) -> dict[str, str]:
        out = {}
        for agent_id in self.order:
            text = self.proposals[agent_id]
            if len(text) > cap:
                head = text[:cap].rsplit(" ", 1)[0] if " " in text[:cap] else text[:cap]
                text = head + ("\n" if head else "") + _marker(len(text) - len(head))
            out[agent_id] = text
        return out


@dataclass
class Prompt:
    """A stage prompt: fixed placeholders, and the inputs that may be shortened, in order of
    sacrifice (``pieces``' order)."""

    system: str
    stage: str
    role: str
    values: dict[str, Any]
    pieces: dict[str, Piece] = field(default_factory=dict)

    def render(self, limits: Mapping[str, int]) -> tuple[list[BaseMessage], list[str]]:
        """The messages with each piece at most its limit, and what was cut."""
        texts, cuts = {}, []
        for name, piece in self.pieces.items():
            texts[name], cut = piece.text(limits.get(name, piece.size()))
            if cut:
                cuts.append(cut)
        messages = prompt_files.messages(
            self.system, self.stage, role=self.role, **self.values, **texts
        )
        return messages, cuts


# ---- fitting -------------------------------------------------------------------------------


@dataclass
class Fitted:
    """A call ready to send."""

    messages: list[BaseMessage]
    max_tokens: int
    fit: ContextFit | None = None
    """Set when anything was changed to fit (``CallRecord.context_fit``)."""
    response_format: dict[str, Any] | None = None
    """The answer's format, its schema fitted to ``max_tokens`` when the call was fitted."""


def floor(budget: int) -> int:
    """The smallest answer a call is fitted for."""
    return min(budget, max(MIN_ANSWER, budget // 2))


async def fit(
    settings: Settings,
    agent: Agent,
    prompt: Prompt | list[BaseMessage],
    budget: int,
    *,
    stage: str,
    base: int | None = None,
    overflows: int = 0,
    response_format: dict[str, Any] | None = None,
) -> Fitted:
    """The call's messages, ``max_tokens`` and ``response_format``, fitted into the endpoint's
    window. ``budget`` is this attempt's, ``base`` the stage's (a retry after a truncated
    answer asks for more); a fitted call's answer schema is fitted too (``fit_answer``)."""
    known = await endpoint(settings, agent)
    if isinstance(prompt, Prompt):
        messages, cuts = prompt.render({})
    else:
        messages, cuts = prompt, []
    if known.window is None:
        return Fitted(messages, budget, response_format=response_format)
    room = known.window - MARGIN
    if estimate(messages) * known.scale + budget <= room and not overflows:
        return Fitted(messages, budget, response_format=response_format)
    tokens, counted_by = await count(settings, agent, messages, known)
    least = floor(base or budget)
    need = min(floor(budget), max(least, room // 2))
    if tokens + need > room and isinstance(prompt, Prompt) and prompt.pieces:
        messages, cuts, tokens, counted_by = await _shorten(
            settings, agent, prompt, known, messages, tokens, room - need
        )
    if tokens + least > room:
        raise ContextOverflow(
            stage,
            agent["agent_id"],
            f"the prompt is {tokens} tokens ({counted_by}) and the answer needs at least {least}: "
            f"over the context window of {agent['model']} at {agent['base_url']} "
            f"({known.window} tokens){', with its inputs shortened' if cuts else ''}",
        )
    max_tokens = min(budget, room - tokens)
    if max_tokens == budget and not cuts and not overflows:
        return Fitted(messages, budget, response_format=response_format)
    if response_format is not None:  # a retry of a cut answer plans a shorter document
        planned = max_tokens * (base or budget) // budget
        response_format, note = fit_answer(response_format, planned)
        cuts = [*cuts, note] if note else cuts
    record = ContextFit(
        window=known.window,
        prompt_tokens=tokens,
        counted_by=counted_by,
        asked=budget,
        max_tokens=max_tokens,
        shortened=cuts,
        overflows=overflows,
    )
    return Fitted(messages, max_tokens, record, response_format)


async def _shorten(
    settings: Settings,
    agent: Agent,
    prompt: Prompt,
    known: Endpoint,
    messages: list[BaseMessage],
    tokens: int,
    target: int,
) -> tuple[list[BaseMessage], list[str], int, str]:
    """Cut the prompt's pieces, first first, until it is at most ``target`` tokens (or cannot
    be cut further); the server counts again after each cut."""
    limits = {name: piece.size() for name, piece in prompt.pieces.items()}
    cuts: list[str] = []
    counted_by = "estimate"
    for round_ in range(6):
        excess = tokens - target
        if excess <= 0:
            break
        chars = sum(len(_text(m)) for m in messages)
        per_token = max(1.0, chars / max(tokens, 1))
        remove = int(excess * per_token * (1.1 + 0.2 * round_)) + 32
        for name in limits:
            take = min(remove, limits[name])
            limits[name] -= take
            remove -= take
        messages, cuts = prompt.render(limits)
        tokens, counted_by = await count(settings, agent, messages, known)
        if all(limit == 0 for limit in limits.values()):
            break
    return messages, cuts, tokens, counted_by


# ---- the answer's schema ------------------------------------------------------------------

ANSWER_CHARS_PER_TOKEN = 2.5
"""A fitted structured answer is planned at this many characters a token (JSON with English
strings runs at 3 or more: a margin)."""
ITEM_STRING = 400
"""The planned length of a string the schema leaves unbounded inside a list or a nested object
(an unbounded string of the document itself, such as a revision's ``proposal``, may take the
whole room)."""
KEEP = 0.5
"""Lists keep as many items as they can while every string keeps at least this share of its
length."""
LEAST = 0.15
"""Lists keep one item (a critique one defect) while strings keep at least this share."""


def fit_answer(
    response_format: dict[str, Any], max_tokens: int
) -> tuple[dict[str, Any], str | None]:
    """``response_format`` whose JSON Schema cannot produce a document longer than
    ``max_tokens`` allows: lists at most ``K`` items (never below their own minimum) and every
    string at most a share ``f`` of its length (the schema's ``maxLength``, else
    ``ITEM_STRING``, else the room), with the largest ``K`` that keeps ``f >= KEEP`` (one
    item while ``f >= LEAST``: a critique keeps a defect to report). The
    grammar (vLLM's guided decoding, llama.cpp's) then ends the document inside the room;
    the answer is still checked against the stage's own, looser model."""
    spec = response_format.get("json_schema") or {}
    schema = spec.get("schema")
    if response_format.get("type") != "json_schema" or not isinstance(schema, dict):
        return response_format, None
    room = int(max_tokens * ANSWER_CHARS_PER_TOKEN)
    defs = schema.get("$defs", {})
    if sum(_size(schema, defs, None, room, True)) <= room:
        return response_format, None
    choice: tuple[int, float] | None = None
    for items in (None, 12, 8, 6, 4, 3, 2, 1, 0):
        fixed, stretch = _size(schema, defs, items, room, True)
        share = min(1.0, max(0.0, (room - fixed) / stretch)) if stretch else 1.0
        if items is None:
            if share >= 1.0:
                return response_format, None
            continue
        if share >= KEEP or (items == 1 and share >= LEAST) or items == 0:
            choice = (items, share)
            break
    assert choice is not None
    items, share = choice
    capped = _capped(schema, defs, items, share, room, True)
    note = (
        f"answer schema: lists at most {items} items, strings cut to {share:.0%} of their "
        f"length, to end within {max_tokens} tokens"
    )
    return {**response_format, "json_schema": {**spec, "schema": capped}}, note


def _string_bound(node: dict[str, Any], room: int, top: bool) -> int:
    own = node.get("maxLength")
    return own if isinstance(own, int) else (room if top else ITEM_STRING)


def _size(
    node: Any, defs: dict[str, Any], items: int | None, room: int, top: bool
) -> tuple[int, int]:
    """The longest JSON text a schema allows, as (fixed characters, string characters), with
    lists at most ``items`` (None: their own bound, 64 when unbounded)."""
    if not isinstance(node, dict):
        return 8, 0
    if "$ref" in node:
        return _size(defs.get(node["$ref"].rsplit("/", 1)[-1], {}), defs, items, room, top)
    if "enum" in node or "const" in node:
        values = node.get("enum", [node.get("const")])
        return max(len(str(v)) + 2 for v in values), 0
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        sizes = [_size(o, defs, items, room, top) for o in options]
        return max(sizes, key=sum)
    if node.get("type") == "object" or "properties" in node:
        fixed, stretch = 2, 0
        for key, value in node.get("properties", {}).items():
            f, s = _size(value, defs, items, room, top)
            fixed, stretch = fixed + len(key) + 6 + f, stretch + s
        return fixed, stretch
    if node.get("type") == "array":
        count = _count(node, items)
        f, s = _size(node.get("items", {}), defs, items, room, False)
        return 2 + count * (2 + f), count * s
    if node.get("type") == "string":
        return 2, _string_bound(node, room, top)
    return 8, 0  # numbers, booleans, null


def _count(node: dict[str, Any], items: int | None) -> int:
    own = node.get("maxItems")
    bound = own if isinstance(own, int) else 64
    return bound if items is None else max(node.get("minItems", 0), min(bound, items))


def _capped(node: Any, defs: dict[str, Any], items: int, share: float, room: int, top: bool) -> Any:
    """A copy of ``node``: lists at most ``items``, strings at ``share`` of their length."""
    if isinstance(node, list):
        return [_capped(x, defs, items, share, room, top) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$defs":  # definitions are used inside the document, never at its top
            out[key] = {k: _capped(v, defs, items, share, room, False) for k, v in value.items()}
        elif key == "properties":
            out[key] = {k: _capped(v, defs, items, share, room, top) for k, v in value.items()}
        elif key == "items":
            out[key] = _capped(value, defs, items, share, room, False)
        else:
            out[key] = _capped(value, defs, items, share, room, top)
    if node.get("type") == "array":
        out["maxItems"] = _count(node, items)
    if node.get("type") == "string" and "enum" not in node and "const" not in node:
        least = node.get("minLength", 0)
        out["maxLength"] = max(least, int(_string_bound(node, room, top) * share))
    return out


# ---- context-length rejections ---------------------------------------------------------------

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


def learn(agent: Agent, seen: Overflow, sent: Fitted) -> None:
    """Take the window and the server's prompt count from a rejection into account: estimates
    for this endpoint grow to the server's count (plus 5 %) when they were below it."""
    known = _endpoints.get(_key(agent))
    if known is None:
        return
    if seen.window is not None:  # the server's word beats any setting or report
        known.window, known.source, known.learned_at = seen.window, "error", time.monotonic()
    if seen.prompt_tokens and (sent.fit is None or sent.fit["counted_by"] == "estimate"):
        raw = estimate(sent.messages)
        known.scale = max(known.scale, 1.05 * seen.prompt_tokens / max(raw, 1))
