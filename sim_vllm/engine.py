"""The simulated engine: one server's state, and the time a request takes (the package doc's model).

Owns :class:`SimVLLM`: the configuration, scripted faults, the request log, the prefix cache,
who wrote which proposal, the metrics, and the scheduler that runs an answer (decided by
``sim_vllm.answers``) through queueing (at most ``max_num_seqs`` at once), prefill and decode in
model time, sleeping ``time_scale`` wall seconds per model second and recording every component
in the request's log entry and the metrics. HTTP is the business of the other modules.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from council_agents.sim_vllm import content, truth
from council_agents.sim_vllm.answers import PieceKind, Plan, plan_answer
from council_agents.sim_vllm.faults import FaultRule
from council_agents.sim_vllm.humaneval import HumanEvalScript
from council_agents.sim_vllm.latency import PrefixCache, SimConfig
from council_agents.sim_vllm.metrics import Metrics
from council_agents.sim_vllm.protocol import Caller, ChatRequest

LogEntry = dict[str, Any]
"""One request in the log (``GET /admin/requests``): filled in as the request goes on."""


@dataclass
class _Decode:
    """What decoding one request took: model seconds, tokens, and the batch at each step."""

    seconds: float = 0.0
    tokens: int = 0
    batches: list[int] = field(default_factory=list)


class SimVLLM:
    """State of one simulated server: engine, prefix cache, metrics, request log, faults.

    Attributes:
        config: The configuration (changed in place by ``PATCH /admin/config``).
        humaneval: Scripted answers to HumanEval problems (``sim_vllm.humaneval``); None: off.
        faults: The scripted fault rules, tried in order.
        log: Every request, in arrival order.
        cache: The prefix cache.
        authors: Who wrote which of the simulator's proposals (for ``sim_vllm.truth``).
        running: Requests running now.
        waiting: Requests queued now.
        started: When the server was made (Unix time; the model's ``created``).
        metrics: vLLM's metrics.
        registry: The metrics' registry.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        faults: list[FaultRule] | None = None,
        humaneval: HumanEvalScript | None = None,
    ) -> None:
        """A server with nothing running and an empty log and cache.

        Args:
            config: The configuration; the defaults model a ~0.6B model on one GPU.
            faults: Fault rules to start with.
            humaneval: Scripted HumanEval answers (needs the ``eval`` extra when used).
        """
        self.config = config or SimConfig()
        self.humaneval = humaneval
        self.faults: list[FaultRule] = list(faults or [])
        self.log: list[LogEntry] = []
        self.cache = PrefixCache(self.config.block_size, self.config.num_cache_blocks)
        self.authors = truth.Authors()
        self.running = 0
        self.waiting = 0
        self._slots: asyncio.Semaphore | None = None
        self._fault_rng = random.Random(self.config.seed ^ 0x5EED)
        self.started = time.time()
        self.metrics = Metrics()
        self.registry = self.metrics.registry
        self._sync_gauges()

    @property
    def slots(self) -> asyncio.Semaphore:
        """The ``max_num_seqs`` places to run in (made in the serving event loop)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.config.max_num_seqs)
        return self._slots

    def reconfigure(self, changes: dict[str, Any]) -> None:
        """Set configuration fields; a new ``max_num_seqs`` applies to requests admitted next.

        Args:
            changes: Field name to new value (every name a field of :class:`SimConfig`).
        """
        for k, v in changes.items():
            setattr(self.config, k, v)
        if "max_num_seqs" in changes:
            self._slots = None

    def pick_fault(self, stage: str | None, agent: str | None) -> FaultRule | None:
        """The first fault rule that matches this request and fires on it, if any."""
        for rule in self.faults:
            if rule.matches(stage, agent) and rule.should_fire(self._fault_rng):
                return rule
        return None

    def plan_answer(
        self, req: ChatRequest, prompt: str, who: Caller, fault: FaultRule | None
    ) -> Plan:
        """Decide the whole answer up front (``sim_vllm.answers.plan_answer``).

        Args:
            req: The chat request.
            prompt: Its last message's text.
            who: Who asks.
            fault: The fault that fired on this request, if any.

        Returns:
            The answer's pieces and finish reason.

        Raises:
            content.SchemaError: The response format or its schema is not supported.
        """
        return plan_answer(
            req,
            prompt,
            who,
            fault,
            config=self.config,
            humaneval=self.humaneval,
            authors=self.authors,
        )

    async def generate(
        self,
        req: ChatRequest,
        entry: LogEntry,
        prompt_toks: list[str],
        pieces: list[tuple[PieceKind, str]],
    ) -> AsyncIterator[tuple[PieceKind, str]]:
        """Run one request through queue, prefill and decode, yielding its chunks as decoded.

        Args:
            req: The chat request.
            entry: Its log entry: queueing, cache, prefill, decode and batch figures are added.
            prompt_toks: The rendered prompt's tokens (looked up in the prefix cache).
            pieces: The planned answer.

        Yields:
            ``(kind, text)``: up to ``chunk_tokens`` tokens of a piece per decode step.
        """
        await self._admit(entry)
        try:
            prefill = await self._prefill(entry, prompt_toks)
            decode = _Decode()
            for kind, chunk in _chunks(pieces, self.config.chunk_tokens):
                decode.batches.append(self.running)
                step = self._tpot() * len(chunk)
                decode.seconds += step
                await self._sleep(step)
                decode.tokens += len(chunk)
                yield kind, "".join(chunk)
            self._finish(entry, prefill, decode)
        finally:
            self.running -= 1
            self.slots.release()
            self._sync_gauges()

    async def _admit(self, entry: LogEntry) -> None:
        """Wait for a place to run in; the wait goes in the log entry."""
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

    async def _prefill(self, entry: LogEntry, prompt_toks: list[str]) -> float:
        """Look the prompt up in the prefix cache and prefill the rest; its model seconds."""
        c, m = self.config, self.metrics
        cached = self.cache.lookup_and_insert(prompt_toks)
        n_prompt = len(prompt_toks)
        m.prefix_cache_queries.labels(c.model).inc(n_prompt)
        m.prefix_cache_hits.labels(c.model).inc(cached)
        m.prompt_tokens.labels(c.model).inc(n_prompt)
        entry["cached_tokens"] = cached
        prefill = c.ttft_base_s + (n_prompt - cached) / c.prefill_tps
        entry["prefill_s"] = round(prefill, 6)
        entry["batch_at_start"] = self.running
        await self._sleep(prefill)
        entry["t_first_token"] = time.time()
        m.ttft.labels(c.model).observe(entry["queue_s"] + prefill)
        return prefill

    def _finish(self, entry: LogEntry, prefill: float, decode: _Decode) -> None:
        """Record a fully decoded request in its log entry and the metrics."""
        c, m = self.config, self.metrics
        entry["decode_s"] = round(decode.seconds, 6)
        entry["completion_tokens"] = decode.tokens
        entry["batch_max"] = max(decode.batches, default=self.running)
        entry["batch_mean"] = (
            round(sum(decode.batches) / len(decode.batches), 3) if decode.batches else self.running
        )
        entry["model_s"] = round(entry["queue_s"] + prefill + decode.seconds, 6)
        m.generation_tokens.labels(c.model).inc(decode.tokens)
        m.e2e.labels(c.model).observe(entry["model_s"])
        if decode.tokens:
            m.tpot.labels(c.model).observe(decode.seconds / decode.tokens)

    def _sync_gauges(self) -> None:
        self.metrics.running.labels(self.config.model).set(self.running)
        self.metrics.waiting.labels(self.config.model).set(self.waiting)

    async def _sleep(self, model_seconds: float) -> None:
        if self.config.time_scale > 0 and model_seconds > 0:
            await asyncio.sleep(model_seconds * self.config.time_scale)
        else:
            await asyncio.sleep(0)

    def _tpot(self) -> float:
        """Model seconds per output token with the requests running now."""
        c = self.config
        return (1.0 / c.decode_tps) * (1.0 + c.batch_slowdown * max(0, self.running - 1))


def _chunks(
    pieces: list[tuple[PieceKind, str]], size: int
) -> Iterator[tuple[PieceKind, list[str]]]:
    """Each piece's tokens, ``size`` at a time (a decode step)."""
    for kind, text in pieces:
        toks = content.tokenize(text)
        for i in range(0, len(toks), size):
            yield kind, toks[i : i + size]
