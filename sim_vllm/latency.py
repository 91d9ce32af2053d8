"""The simulated engine's configuration, prompt layout and prefix cache (see the package doc)."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from council_agents.sim_vllm.truth import Truth


@dataclass
class SimConfig:
    """The simulated engine's settings (the package doc explains the latency model).

    ``PATCH /admin/config`` changes fields at run time; a new ``max_num_seqs`` applies to the
    requests admitted after it, while the prefix cache keeps the ``block_size`` and
    ``num_cache_blocks`` it was made with.

    Attributes:
        model: The one model served (``/v1/models``; requests naming another get a 404).
        max_num_seqs: Requests running at once; the rest wait in FIFO order.
        time_scale: Wall seconds per model second (0: no waiting at all).
        decode_tps: Tokens per model second one request decodes alone.
        batch_slowdown: Extra decode time per token for each other running request.
        prefill_tps: Prompt tokens per model second not served by the prefix cache.
        ttft_base_s: Model seconds of prefill that every request pays.
        block_size: Tokens per prefix-cache block.
        num_cache_blocks: Blocks the prefix cache keeps.
        max_model_len: The context window (prompt plus completion tokens).
        reasoning_parser: Send the reasoning in its own field instead of a ``<think>`` block.
        vllm_version: The simulated vLLM release.
        seed: Varies every answer and the faults' draws.
        mean_tokens: Mean answer length per stage (``default`` for any other).
        truth: Scripted judges, voters and critics.
        length_sigma: Sigma of the log-normal answer length.
        chunk_tokens: Tokens per decode step (and per streamed chunk).
        log_prompts: Keep each request's rendered prompt in the request log (``prompt``).
    """

    model: str = "Qwen/Qwen3-0.6B"
    max_num_seqs: int = 64
    time_scale: float = 1.0
    decode_tps: float = 250.0
    batch_slowdown: float = 0.015
    prefill_tps: float = 12000.0
    ttft_base_s: float = 0.015
    block_size: int = 16
    num_cache_blocks: int = 16384
    max_model_len: int = 32768
    reasoning_parser: bool = False
    vllm_version: str = "0.11.0"
    """The vLLM release whose protocol is simulated where releases differ: the reasoning
    field's name, the context-length error's wording (``sim_vllm.protocol``, docs/SIMULATOR.md)."""
    seed: int = 0
    mean_tokens: dict[str, int] = field(
        default_factory=lambda: {
            "propose": 450,
            "revise": 450,
            "critique": 220,
            "judge": 300,
            "vote": 120,
            "default": 300,
        }
    )
    truth: Truth | None = None
    """Known truth for judges, voters and critics (``sim_vllm.truth``); None: random answers."""
    length_sigma: float = 0.25
    chunk_tokens: int = 4
    log_prompts: bool = False


def render_prompt(messages: list[dict[str, Any]]) -> str:
    """The messages as Qwen's chat template lays them out (what the prefix cache sees)."""
    parts = []
    for m in messages:
        c = m.get("content")
        if isinstance(c, list):
            c = "".join(p.get("text", "") for p in c if isinstance(p, dict))
        parts.append(f"<|im_start|>{m.get('role', 'user')}\n{c or ''}<|im_end|>\n")
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


class PrefixCache:
    """Block-hashed LRU prefix cache (hash of each full block chained to the previous one)."""

    def __init__(self, block_size: int, capacity: int) -> None:
        """An empty cache.

        Args:
            block_size: Tokens per block (only full blocks are cached).
            capacity: Blocks kept; the least recently used is evicted beyond it.
        """
        self.block_size = block_size
        self.capacity = capacity
        self.blocks: OrderedDict[bytes, None] = OrderedDict()

    def lookup_and_insert(self, tokens: list[str]) -> int:
        """Number of leading prompt tokens served from cache; inserts the prompt's full blocks."""
        hits, prev, missed = 0, b"", False
        for start in range(0, len(tokens) - self.block_size + 1, self.block_size):
            h = hashlib.blake2b(
                prev + "\x00".join(tokens[start : start + self.block_size]).encode(), digest_size=16
            ).digest()
            prev = h
            if not missed and h in self.blocks:
                hits += self.block_size
                self.blocks.move_to_end(h)
            else:
                missed = True
                self.blocks[h] = None
                if len(self.blocks) > self.capacity:
                    self.blocks.popitem(last=False)
        return hits
