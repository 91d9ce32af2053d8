"""What a request is answered with, decided whole before any time passes.

Owns the answer's text and finish reason: a scripted HumanEval answer, a fault's text
(``garbage``, ``invalid_json``, ``truncated_json``), a document from the request's JSON schema
shaped by the truth (``sim_vllm.truth``), or prose about the prompt; the reasoning block (inline
``<think>`` or the reasoning field); and the cut at ``max_tokens``. Everything is drawn from a
generator seeded by the request, so the same request gets the same answer. How long the answer
takes is the engine's business (``sim_vllm.engine``).
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any, Literal, NamedTuple

from council_agents.sim_vllm import content, truth
from council_agents.sim_vllm.faults import FaultRule
from council_agents.sim_vllm.humaneval import HumanEvalScript
from council_agents.sim_vllm.latency import SimConfig
from council_agents.sim_vllm.protocol import (
    Caller,
    ChatRequest,
    guess_stage,
    json_schema,
    message_text,
)

PieceKind = Literal["reasoning", "content"]
FinishReason = Literal["stop", "length"]


class Plan(NamedTuple):
    """A whole answer: its pieces in order, and why it ends."""

    pieces: list[tuple[PieceKind, str]]
    """``("reasoning", text)`` for the reasoning field (reasoning parser on), then
    ``("content", text)``; a piece cut to nothing is left out."""
    finish: FinishReason


def plan_answer(
    req: ChatRequest,
    prompt: str,
    who: Caller,
    fault: FaultRule | None,
    *,
    config: SimConfig,
    humaneval: HumanEvalScript | None,
    authors: truth.Authors,
) -> Plan:
    """Decide the whole answer up front.

    Without the reasoning parser the ``<think>`` block is inline in the content, as Qwen3 writes
    it, and counts against ``max_tokens`` like any other output; under a ``json_schema`` without
    the parser there is none: vLLM's guided decoding constrains the output from its first token,
    so the content is the JSON document alone.

    Args:
        req: The chat request.
        prompt: Its last message's text (what answers are built from).
        who: Who asks (the stage, else one guessed from the messages; the agent; the round).
        fault: The fault that fired on this request, if any.
        config: The server's configuration.
        humaneval: Scripted HumanEval answers, or None.
        authors: Who wrote which proposal (a proposal written here is recorded).

    Returns:
        The answer's pieces and finish reason.

    Raises:
        content.SchemaError: The response format or its schema is not supported.
    """
    rng = _rng(req, config.seed)
    words = (
        config.truth.marked("\n".join(message_text(m) for m in req.messages))
        if config.truth is not None and config.truth.marks
        else frozenset()
    )
    stage = who["stage"] or guess_stage(req.messages)
    script = config.truth if config.truth is not None and config.truth.realistic else None
    behave = rng
    if script is not None:  # the realistic setting draws per deliberation too
        rng = _rng(req, config.seed, who["deliberation"] or "")
        behave = script.behaviour(who, stage, req.seed, prompt, authors)
    max_tokens = req.max_tokens_asked or (config.max_model_len - who["prompt_tokens"])
    thinking_on = (req.chat_template_kwargs or {}).get("enable_thinking", True) is not False
    schema = json_schema(req.response_format)
    if schema is not None and not config.reasoning_parser:
        thinking_on = False  # the grammar applies from the first token: no room to think
    reasoning = content.make_thinking(rng, prompt) if thinking_on else ""
    kind = fault.kind if fault else None
    if kind is None and script is not None and script.invalid_now(stage, behave):
        kind = "invalid_json" if schema is not None else "garbage"
    scripted = None
    if humaneval is not None and kind != "garbage":
        agent, round_ = who["agent"] or f"seed-{req.seed}", int(who["round"] or 0)
        attempt = {"nonce": req.seed} if humaneval.per_attempt else {}
        scripted = humaneval.answer(stage, prompt, agent, round_, schema, **attempt)
    if scripted is not None:
        reasoning, body = "", scripted
        if kind == "invalid_json" and schema is not None:
            body = content.break_json(rng, body)
    elif kind == "garbage":
        body = content.make_garbage(rng, 40)
    elif kind == "say" and fault is not None and schema is None:
        reasoning, body = "", fault.text
        if stage == "propose":
            authors.remember(who["agent"], body)
    elif schema is not None:
        body = _document(rng, behave, schema, stage, prompt, who, config, authors, words)
        if kind == "invalid_json":
            body = content.break_json(rng, body)
    elif stage == "revise" and not req.ignore_eos:
        body = _revision(rng, behave, prompt, who, config, authors, script, words)
    else:
        body = _prose(rng, req, stage, prompt, who, config, max_tokens)
        if stage == "propose":
            quality = (
                script.first_quality(who["deliberation"], who["agent"])
                if script is not None
                else None
            )
            authors.remember(who["agent"], body, quality, who["deliberation"], words)
    finish: FinishReason = "stop"
    if kind == "truncated_json":
        body, finish = body[: max(1, len(body) // 2)], "length"
    return _cut(_pieces(reasoning, body, config.reasoning_parser), max_tokens, finish)


def _revision(
    rng: random.Random,
    behave: random.Random,
    prompt: str,
    who: Caller,
    config: SimConfig,
    authors: truth.Authors,
    script: truth.Truth | None,
    words: frozenset[str] = frozenset(),
) -> str:
    """A plain-text revision: the proposal under review kept whole with its changes (in the
    realistic setting: or ``UNCHANGED``, or one that drops content; its quality recorded).
    """
    kind = script.revision(behave) if script is not None else "same"
    if kind == "unchanged":
        return "UNCHANGED"
    if kind == "drop":
        return content.dropped_revision(rng, prompt)
    mean = config.mean_tokens.get("revise", config.mean_tokens["default"])
    target = max(20, int(rng.lognormvariate(0, config.length_sigma) * mean))
    body = content.revision(rng, prompt, target, who["agent"] or "")
    proposal = body.split("\n\n=== CHANGES ===")[0]
    quality = None
    if script is not None:
        before = authors.base_quality(content.under_review(prompt) or "", script, who["agent"])
        quality = script.revised_quality(before, kind)
    words = words | authors.inherited(who["deliberation"], who["agent"])
    authors.remember(who["agent"], proposal, quality, who["deliberation"], words)
    return body


def _rng(req: ChatRequest, seed: int, deliberation: str = "") -> random.Random:
    """The request's generator: its seed, the server's, the messages, format and temperature
    (and the deliberation, when given).
    """
    key: list[Any] = [req.seed, seed, req.messages, req.response_format, req.temperature]
    if deliberation:
        key.append(deliberation)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _document(
    rng: random.Random,
    behave: random.Random,
    schema: dict[str, Any],
    stage: str,
    prompt: str,
    who: Caller,
    config: SimConfig,
    authors: truth.Authors,
    words: frozenset[str] = frozenset(),
) -> str:
    """A structured answer: a document valid against ``schema`` (its text drawn from ``rng``),
    as the truth shapes it (its behaviour drawn from ``behave``).
    """
    doc = content.from_schema(schema, rng, prompt)
    revise = max(20, int(rng.lognormvariate(0, config.length_sigma) * config.mean_tokens["revise"]))
    doc = truth.shape(doc, stage, prompt, who, behave, config.truth, authors, revise, words)
    return content.dumps(doc)


def _prose(
    rng: random.Random,
    req: ChatRequest,
    stage: str,
    prompt: str,
    who: Caller,
    config: SimConfig,
    max_tokens: int,
) -> str:
    """A plain-text answer of a log-normal length around the stage's mean.

    With ``ignore_eos`` it is longer than the limit, so the cut ends it.
    """
    mean = config.mean_tokens.get(stage, config.mean_tokens["default"])
    target = max(20, int(rng.lognormvariate(0, config.length_sigma) * mean))
    if req.ignore_eos:
        target = max_tokens + 50
    return content.make_text(rng, stage, prompt, target, who["agent"] or "")


def _pieces(reasoning: str, body: str, parser: bool) -> list[tuple[PieceKind, str]]:
    """The reasoning in its own piece (parser on) or inline as ``<think>``, then the body."""
    if reasoning and parser:
        return [("reasoning", reasoning), ("content", body)]
    if reasoning:
        return [("content", f"<think>\n{reasoning}\n</think>\n\n{body}")]
    return [("content", body)]


def _cut(pieces: list[tuple[PieceKind, str]], budget: int, finish: FinishReason) -> Plan:
    """The pieces within ``budget`` tokens; ``length`` if any had to be cut."""
    out: list[tuple[PieceKind, str]] = []
    for kind, text in pieces:
        toks = content.tokenize(text)
        if len(toks) > budget:
            text, finish = "".join(toks[:budget]), "length"
        budget -= min(len(toks), budget)
        if text:
            out.append((kind, text))
    return Plan(out, finish)
