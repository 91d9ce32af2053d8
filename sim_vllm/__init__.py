"""Simulated vLLM: an OpenAI-compatible server for tests, benchmarks and the demo.

OPT-IN ONLY. Nothing in council uses it unless asked (``council sim-vllm``, ``council demo``,
the test fixtures, ``bench/``). It is not a model: answers are generated text, shaped by the
request (see ``sim_vllm.content``), with vLLM's protocol, metrics and timing behaviour.

Latency model (times are *model seconds*; wall time is model time x ``time_scale``):

* queueing: at most ``max_num_seqs`` requests run at once; the rest wait (FIFO).
* prefill (time to first token after admission)::

      ttft = ttft_base_s + uncached_prompt_tokens / prefill_tps

  where ``uncached_prompt_tokens`` are the prompt tokens not served by the prefix cache.
* decode, per generated token, with ``r`` requests running at that moment::

      tpot = (1 / decode_tps) * (1 + batch_slowdown * (r - 1))

Defaults (``SimConfig``) model a ~0.6B model on one GPU: ``decode_tps=250`` (inside the
150-400 tokens/s the replaced system saw), ``batch_slowdown=0.015`` (at 64 running requests
each decodes ~2x slower, so aggregate throughput still grows ~30x, as with continuous batching),
``prefill_tps=12000`` and ``ttft_base_s=0.015``, ``max_num_seqs=64``.

Prefix caching as vLLM does it: the prompt's tokens are hashed in blocks of ``block_size``, each
block's hash chained to its predecessor's; the leading blocks found in an LRU of
``num_cache_blocks`` are hits. ``vllm:prefix_cache_queries`` counts prompt tokens looked up,
``vllm:prefix_cache_hits`` those served from the cache.

Every request is recorded in an in-memory log (``GET /admin/requests``) with its wall times,
model-time components, token counts, the batch sizes it saw, and who asked (``X-Council-Agent``,
``X-Council-Stage``, ``X-Council-Deliberation`` headers, or the ``user`` field as
``deliberation/agent/stage``). Faults are injected by flag or through ``/admin/faults``.

The package depends on nothing of council's (``tests/unit/test_sim_independent.py``). Modules:
``server`` (the app, its thread and CLI) puts together ``info`` (models, tokenize, health,
metrics), ``completions`` (chat requests to logged completions, HTTP-level faults) and
``admin``; ``protocol`` is vLLM's wire format, ``engine`` the state and timing, ``answers`` what
is answered, ``writers`` the JSON and SSE bodies, ``metrics`` the Prometheus series; ``latency``
(configuration, prefix cache), ``content`` (tokens, text, JSON from a schema), ``faults``,
``truth``, and the scripted HumanEval answers in ``humaneval``, ``scripted`` and ``problems``.
"""

from council_agents.sim_vllm.engine import SimVLLM
from council_agents.sim_vllm.faults import FaultRule
from council_agents.sim_vllm.humaneval import HumanEvalScript
from council_agents.sim_vllm.latency import SimConfig
from council_agents.sim_vllm.server import ServerThread, add_cli, create_app
from council_agents.sim_vllm.truth import Truth

__all__ = [
    "FaultRule",
    "HumanEvalScript",
    "ServerThread",
    "SimConfig",
    "SimVLLM",
    "Truth",
    "add_cli",
    "create_app",
]
