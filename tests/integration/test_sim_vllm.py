"""The simulated vLLM through real clients: openai, langchain-openai, prometheus parser."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import jsonschema
import openai
import pytest
from langchain_openai import ChatOpenAI
from prometheus_client.parser import text_string_to_metric_families

from council_agents.llm.client import VLLMChatOpenAI
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM, content
from tests.helpers import sim_admin, sim_requests

MODEL = "Qwen/Qwen3-0.6B"
MSGS = [
    {"role": "system", "content": "You are a senior DEVOPS engineer."},
    {
        "role": "user",
        "content": "Roll out a PostgreSQL major-version upgrade (14 to 16) for a 2 TB "
        "primary with two replicas and less than 5 minutes of write downtime.",
    },
]
JUDGE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["scores", "winner", "justification"],
    "properties": {
        "scores": {
            "type": "array",
            "minItems": 2,
            "maxItems": 4,
            "items": {
                "type": "object",
                "required": ["agent", "score"],
                "properties": {
                    "agent": {"type": "string", "enum": ["a1", "a2", "a3"]},
                    "score": {"type": "number", "minimum": 0, "maximum": 10},
                    "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}},
                },
            },
        },
        "winner": {"$ref": "#/$defs/Agent"},
        "justification": {"type": "string", "minLength": 10},
        "confident": {"type": "boolean"},
        "attempts": {"type": "integer", "minimum": 1, "maximum": 3},
    },
    "$defs": {"Agent": {"type": "string", "enum": ["a1", "a2", "a3"]}},
}


def client(sim: ServerThread, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url, api_key="EMPTY", max_retries=0, **kw)


def add_fault(sim: ServerThread, **rule) -> None:
    r = httpx.post(sim_admin(sim, "/admin/faults"), json=rule)
    assert r.status_code == 200, r.text


def test_models_health_and_non_streaming_usage(sim):
    c = client(sim)
    assert [m.id for m in c.models.list().data] == [MODEL]
    assert httpx.get(sim_admin(sim, "/health")).status_code == 200
    r = c.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=2000, seed=1)
    u = r.usage
    assert u.prompt_tokens > 20 and u.completion_tokens > 50
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert r.choices[0].finish_reason == "stop"
    text = r.choices[0].message.content
    assert text.startswith("<think>") and "</think>" in text  # Qwen3 reasoning inline by default
    assert (
        "PostgreSQL".lower() in text.lower() or "upgrade" in text.lower()
    )  # built from the prompt


def test_deterministic_per_seed_and_prompt_different_across_agents(sim):
    c = client(sim)
    a = c.chat.completions.create(model=MODEL, messages=MSGS, seed=1).choices[0].message.content
    b = c.chat.completions.create(model=MODEL, messages=MSGS, seed=1).choices[0].message.content
    other_seed = (
        c.chat.completions.create(model=MODEL, messages=MSGS, seed=2).choices[0].message.content
    )
    other_prompt = (
        c.chat.completions.create(
            model=MODEL,
            messages=MSGS[:1]
            + [{"role": "user", "content": "Design a test plan for password reset."}],
            seed=1,
        )
        .choices[0]
        .message.content
    )
    assert a == b
    assert a != other_seed and a != other_prompt


def test_max_tokens_cuts_with_finish_reason_length(sim):
    r = client(sim).chat.completions.create(model=MODEL, messages=MSGS, max_tokens=15)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 15


def test_streaming_with_usage_and_done(sim):
    with httpx.stream(
        "POST",
        sim.base_url + "/chat/completions",
        json={
            "model": MODEL,
            "messages": MSGS,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln.removeprefix("data: ")) for ln in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    text = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch["choices"])
    # the streamed text is the same answer the non-streaming call gives
    same = client(sim).chat.completions.create(model=MODEL, messages=MSGS)
    assert text == same.choices[0].message.content
    # without include_usage there is no usage chunk
    stream = client(sim).chat.completions.create(model=MODEL, messages=MSGS, stream=True)
    assert all(ch.usage is None for ch in stream)


async def test_async_client_streaming_usage(sim):
    c = openai.AsyncOpenAI(base_url=sim.base_url, api_key="EMPTY", max_retries=0)
    stream = await c.chat.completions.create(
        model=MODEL, messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    usage, parts = None, []
    async for ch in stream:
        if ch.usage:
            usage = ch.usage
        if ch.choices:
            parts.append(ch.choices[0].delta.content or "")
    assert usage is not None and usage.completion_tokens > 0 and "".join(parts)


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_answers_validate(sim, stream):
    c = client(sim)
    rf = {
        "type": "json_schema",
        "json_schema": {"name": "judge", "schema": JUDGE_SCHEMA, "strict": True},
    }
    for seed in range(8):
        kw = dict(
            model=MODEL,
            messages=MSGS,
            response_format=rf,
            seed=seed,
            extra_body={"chat_template_kwargs": {"enable_thinking": False}},
        )
        if stream:
            text = "".join(
                ch.choices[0].delta.content or ""
                for ch in c.chat.completions.create(stream=True, **kw)
                if ch.choices
            )
        else:
            text = c.chat.completions.create(**kw).choices[0].message.content
        jsonschema.validate(json.loads(text), JUDGE_SCHEMA)


def test_pydantic_schema_from_council_judge_validates(sim):
    from council_agents.nodes.judge import judgement_model

    model = judgement_model(("P1", "P2"), ("coverage", "root cause"))
    schema = model.model_json_schema(by_alias=True)
    r = client(sim).chat.completions.create(
        model=MODEL,
        messages=MSGS,
        response_format={"type": "json_schema", "json_schema": {"name": "j", "schema": schema}},
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )
    parsed = model.model_validate_json(r.choices[0].message.content).model_dump(by_alias=True)
    assert set(parsed) == {"P1", "P2"}
    assert set(parsed["P1"]["scores"]) == {"coverage", "root cause"}


def test_reasoning_on_off_and_parsed():
    with ServerThread(SimVLLM(SimConfig(time_scale=0, reasoning_parser=True))) as s:
        r = client(s).chat.completions.create(model=MODEL, messages=MSGS)
        msg = r.choices[0].message
        assert "<think>" not in msg.content
        assert (msg.model_extra or {}).get("reasoning_content")
        # langchain: council's ChatOpenAI keeps it; the plain one drops it
        kept = VLLMChatOpenAI(model=MODEL, base_url=s.base_url, api_key="x").invoke(MSGS)
        assert kept.additional_kwargs["reasoning_content"] and "<think>" not in kept.content
        streamed = "".join(
            ch.additional_kwargs.get("reasoning_content", "")
            for ch in VLLMChatOpenAI(model=MODEL, base_url=s.base_url, api_key="x").stream(MSGS)
        )
        assert streamed == kept.additional_kwargs["reasoning_content"]
    with ServerThread(SimVLLM(SimConfig(time_scale=0))) as s:
        off = client(s).chat.completions.create(
            model=MODEL,
            messages=MSGS,
            extra_body={"chat_template_kwargs": {"enable_thinking": False}},
        )
        assert "<think>" not in off.choices[0].message.content
        on = client(s).chat.completions.create(model=MODEL, messages=MSGS)
        assert on.choices[0].message.content.startswith("<think>")


def test_langchain_chat_openai_invoke_and_stream_usage(sim):
    llm = ChatOpenAI(
        model=MODEL, base_url=sim.base_url, api_key="x", stream_usage=True, max_retries=0
    )
    msg = llm.invoke(MSGS)
    assert msg.usage_metadata["output_tokens"] > 0
    chunks = list(llm.stream(MSGS))
    total = chunks[0]
    for ch in chunks[1:]:
        total = total + ch
    assert total.usage_metadata["output_tokens"] == msg.usage_metadata["output_tokens"]
    assert total.content == msg.content


@pytest.mark.parametrize(
    "kind,exc",
    [
        ("http_500", openai.InternalServerError),
        ("http_503", openai.InternalServerError),
        ("http_429", openai.RateLimitError),
        ("drop", openai.APIConnectionError),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_faults_surface_as_client_exceptions(sim, kind, exc, stream):
    add_fault(sim, kind=kind, nth=1)
    c = client(sim)
    with pytest.raises(exc):
        if stream:
            for _ in c.chat.completions.create(model=MODEL, messages=MSGS, stream=True):
                pass
        else:
            c.chat.completions.create(model=MODEL, messages=MSGS)
    # the nth rule fired once; the next request is fine
    assert c.chat.completions.create(model=MODEL, messages=MSGS).choices[0].finish_reason == "stop"
    if kind == "drop" and stream:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            add_fault(sim, kind="drop", nth=1)
            with httpx.stream(
                "POST",
                sim.base_url + "/chat/completions",
                json={"model": MODEL, "messages": MSGS, "stream": True},
            ) as r:
                for _ in r.iter_lines():
                    pass


def test_stall_times_out_the_client(sim):
    add_fault(sim, kind="stall", nth=1, stall_seconds=30)
    with pytest.raises(openai.APITimeoutError):
        client(sim, timeout=0.5).chat.completions.create(model=MODEL, messages=MSGS)


def test_truncated_invalid_and_garbage_answers(sim):
    rf = {"type": "json_schema", "json_schema": {"name": "j", "schema": JUDGE_SCHEMA}}
    c = client(sim)
    add_fault(sim, kind="truncated_json", nth=1)
    r = c.chat.completions.create(model=MODEL, messages=MSGS, response_format=rf)
    assert r.choices[0].finish_reason == "length"
    with pytest.raises(ValueError):
        json.loads(r.choices[0].message.content.split("</think>")[-1])
    add_fault(sim, kind="invalid_json", nth=1)
    r = c.chat.completions.create(model=MODEL, messages=MSGS, response_format=rf)
    assert r.choices[0].finish_reason == "stop"
    with pytest.raises(ValueError):
        json.loads(r.choices[0].message.content.split("</think>")[-1])
    add_fault(sim, kind="garbage", nth=1)
    from council_agents.llm.client import looks_like_garbage, split_reasoning

    text = c.chat.completions.create(model=MODEL, messages=MSGS).choices[0].message.content
    assert looks_like_garbage(split_reasoning(text)[0])


def test_probability_fault_and_stage_match(sim):
    add_fault(sim, kind="http_500", probability=1.0, stage="critique")
    c = client(sim)
    assert c.chat.completions.create(
        model=MODEL, messages=MSGS, extra_headers={"X-Council-Stage": "propose"}
    ).choices
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(
            model=MODEL, messages=MSGS, extra_headers={"X-Council-Stage": "critique"}
        )
    httpx.delete(sim_admin(sim, "/admin/faults"))
    assert c.chat.completions.create(
        model=MODEL, messages=MSGS, extra_headers={"X-Council-Stage": "critique"}
    ).choices


def test_bad_requests_get_openai_errors(sim):
    c = client(sim)
    with pytest.raises(openai.BadRequestError, match="messages"):
        c.chat.completions.create(model=MODEL, messages=[])
    with pytest.raises(openai.NotFoundError, match="no-such-model"):
        c.chat.completions.create(model="no-such-model", messages=MSGS)
    r = httpx.post(
        sim.base_url + "/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and "Malformed JSON" in r.json()["error"]["message"]
    bad_schema = {
        "type": "object",
        "properties": {"x": {"type": "integer", "minimum": 5, "maximum": 1}},
        "required": ["x"],
    }
    with pytest.raises(openai.BadRequestError, match="minimum 5 > maximum 1"):
        c.chat.completions.create(
            model=MODEL,
            messages=MSGS,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": bad_schema},
            },
        )
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        c.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=10**6)


def test_metrics_parse_with_vllm_names(sim):
    c = client(sim)
    for _ in range(3):
        c.chat.completions.create(model=MODEL, messages=MSGS)
    text = httpx.get(sim_admin(sim, "/metrics")).text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:prompt_tokens",
        "vllm:generation_tokens",
        "vllm:prefix_cache_queries",
        "vllm:prefix_cache_hits",
        "vllm:time_to_first_token_seconds",
    ):
        assert name in fams, name

    def value(fam: str, sample: str) -> float:
        return sum(s.value for s in fams[fam].samples if s.name == sample)

    log = sim_requests(sim)
    assert value("vllm:prompt_tokens", "vllm:prompt_tokens_total") == sum(
        e["prompt_tokens"] for e in log
    )
    assert value("vllm:generation_tokens", "vllm:generation_tokens_total") == sum(
        e["completion_tokens"] for e in log
    )
    # the same prompt three times: the 2nd and 3rd are served from the prefix cache
    assert value("vllm:prefix_cache_hits", "vllm:prefix_cache_hits_total") >= 2 * 16 * (
        log[0]["prompt_tokens"] // 16
    )
    assert value("vllm:time_to_first_token_seconds", "vllm:time_to_first_token_seconds_count") == 3


def test_request_log_records_who_asked(sim):
    client(sim).chat.completions.create(model=MODEL, messages=MSGS, user="d1/agent-qa-002/critique")
    client(sim).chat.completions.create(
        model=MODEL,
        messages=MSGS,
        extra_headers={
            "X-Council-Agent": "agent-qa-001",
            "X-Council-Stage": "propose",
            "X-Council-Deliberation": "d2",
        },
    )
    log = sim_requests(sim)
    assert [(e["deliberation"], e["agent"], e["stage"]) for e in log] == [
        ("d1", "agent-qa-002", "critique"),
        ("d2", "agent-qa-001", "propose"),
    ]
    for e in log:
        assert e["t_in"] <= e["t_first_token"] <= e["t_out"]
        assert e["model_s"] >= e["prefill_s"] + e["decode_s"] - 1e-9


# ---- latency model, through the server's own accounting --------------------------------------


def _run_parallel(sim: ServerThread, n: int, max_tokens: int) -> list[dict]:
    async def go():
        async with openai.AsyncOpenAI(base_url=sim.base_url, api_key="x", max_retries=0) as c:
            await asyncio.gather(
                *[
                    c.chat.completions.create(
                        model=MODEL,
                        messages=[
                            {"role": "user", "content": f"request {i}: {MSGS[1]['content']}"}
                        ],
                        max_tokens=max_tokens,
                        extra_body={"ignore_eos": True},
                    )
                    for i in range(n)
                ]
            )

    httpx.delete(sim_admin(sim, "/admin/requests"))
    asyncio.run(go())
    return sim_requests(sim)


def test_more_tokens_more_decode_time():
    with ServerThread(SimVLLM(SimConfig(time_scale=0.001))) as s:
        short = _run_parallel(s, 1, 20)[0]
        long = _run_parallel(s, 1, 200)[0]
    assert long["completion_tokens"] > short["completion_tokens"]
    assert long["decode_s"] > short["decode_s"] * 5


def test_larger_batch_slower_decode_per_token():
    with ServerThread(SimVLLM(SimConfig(time_scale=0.25))) as s:
        alone = _run_parallel(s, 1, 64)
        crowd = _run_parallel(s, 16, 64)
    per_tok_alone = alone[0]["decode_s"] / alone[0]["completion_tokens"]
    per_tok_crowd = max(e["decode_s"] / e["completion_tokens"] for e in crowd)
    assert max(e["batch_max"] for e in crowd) > 4
    assert per_tok_crowd > per_tok_alone * 1.05


def test_max_num_seqs_makes_the_rest_wait():
    with ServerThread(SimVLLM(SimConfig(time_scale=0.25, max_num_seqs=2))) as s:
        log = _run_parallel(s, 6, 32)
    assert max(e["batch_max"] for e in log) <= 2
    assert sum(1 for e in log if e["queue_s"] > 0.01) >= 3


def test_prefix_hits_shorten_prefill():
    with ServerThread(SimVLLM(SimConfig(time_scale=0))) as s:
        c = client(s)
        long_prompt = [{"role": "system", "content": "Shared context. " * 400}, MSGS[1]]
        c.chat.completions.create(model=MODEL, messages=long_prompt, max_tokens=5)
        c.chat.completions.create(model=MODEL, messages=long_prompt, max_tokens=5)
        first, second = sim_requests(s)
    assert first["cached_tokens"] == 0
    assert second["cached_tokens"] >= second["prompt_tokens"] - 16
    assert second["prefill_s"] < first["prefill_s"] / 5


# ---- fidelity: structured output, the reasoning field, max_model_len, /tokenize -------------

SCHEMA_RF = {
    "type": "json_schema",
    "json_schema": {"name": "judge", "schema": JUDGE_SCHEMA, "strict": True},
}


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_without_reasoning_parser_is_json_from_the_first_token(sim, stream):
    # thinking on (Qwen3's default) and no reasoning parser: vLLM's grammar still constrains
    # the output from its first token, so a plain client can json.loads the content
    kw = dict(model=MODEL, messages=MSGS, response_format=SCHEMA_RF, seed=3)
    if stream:
        chunks = list(client(sim).chat.completions.create(stream=True, **kw))
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    else:
        text = client(sim).chat.completions.create(**kw).choices[0].message.content
    jsonschema.validate(json.loads(text), JUDGE_SCHEMA)


def test_json_schema_with_reasoning_parser_puts_reasoning_in_its_field():
    with ServerThread(SimVLLM(SimConfig(time_scale=0, reasoning_parser=True))) as s:
        r = client(s).chat.completions.create(model=MODEL, messages=MSGS, response_format=SCHEMA_RF)
        message = r.choices[0].message
        jsonschema.validate(json.loads(message.content), JUDGE_SCHEMA)
        assert (message.model_extra or {}).get("reasoning_content")


@pytest.mark.parametrize(
    "version,fields",
    [
        ("0.10.2", {"reasoning_content"}),
        ("0.11.0", {"reasoning_content"}),
        ("0.11.1", {"reasoning", "reasoning_content"}),
        ("0.13.0", {"reasoning", "reasoning_content"}),
        ("0.16.0", {"reasoning"}),
        ("0.19.1", {"reasoning"}),
    ],
)
def test_reasoning_field_is_named_as_the_simulated_vllm_release(version, fields):
    config = SimConfig(time_scale=0, reasoning_parser=True, vllm_version=version)
    with ServerThread(SimVLLM(config)) as s:
        body = {"model": MODEL, "messages": MSGS, "seed": 1}
        message = httpx.post(s.base_url + "/chat/completions", json=body).json()["choices"][0][
            "message"
        ]
        assert {k for k in message if k.startswith("reasoning")} == fields
        assert all(message[f] for f in fields) and "<think>" not in message["content"]
        with httpx.stream(
            "POST", s.base_url + "/chat/completions", json={**body, "stream": True}
        ) as r:
            deltas = [
                json.loads(line.removeprefix("data: "))["choices"][0]["delta"]
                for line in r.iter_lines()
                if line.startswith("data: {") and '"choices": [{' in line
            ]
        named = [{k for k in d if k.startswith("reasoning")} for d in deltas]
        assert {frozenset(n) for n in named if n} == {frozenset(fields)}
        # council reads whichever the release sends, streaming or not
        llm = VLLMChatOpenAI(model=MODEL, base_url=s.base_url, api_key="x", seed=1)
        kept = llm.invoke(MSGS)
        assert kept.additional_kwargs["reasoning_content"] == message[next(iter(fields))]
        streamed = "".join(
            ch.additional_kwargs.get("reasoning_content", "") for ch in llm.stream(MSGS)
        )
        assert streamed == kept.additional_kwargs["reasoning_content"]


def test_without_reasoning_parser_the_field_is_null_as_vllm_sends_it(sim):
    body = {"model": MODEL, "messages": MSGS, "max_tokens": 20}
    message = httpx.post(sim.base_url + "/chat/completions", json=body).json()["choices"][0][
        "message"
    ]
    assert message["reasoning_content"] is None and message["content"].startswith("<think>")


def _context_error(sim: ServerThread, max_tokens: int | None, words: int) -> dict:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "word " * words}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    r = httpx.post(sim.base_url + "/chat/completions", json=body)
    assert r.status_code == 400
    return r.json()


def test_max_model_len_errors_as_vllm_0_11_sends_them():
    with ServerThread(SimVLLM(SimConfig(time_scale=0, max_model_len=512))) as s:
        prompt = httpx.post(
            s.base_url.removesuffix("/v1") + "/tokenize",
            json={"model": MODEL, "messages": [{"role": "user", "content": "word " * 300}]},
        ).json()["count"]
        over = _context_error(s, 400, 300)
        assert over == {
            "error": {
                "message": f"'max_tokens' or 'max_completion_tokens' is too large: 400. This "
                f"model's maximum context length is 512 tokens and your request has {prompt} "
                f"input tokens (400 > 512 - {prompt}). None",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        }
        alone = _context_error(s, None, 600)["error"]
        assert alone["message"].startswith(
            "This model's maximum context length is 512 tokens. However, your request has "
        )
        assert alone["message"].endswith(
            " input tokens. Please reduce the length of the input messages. None"
        )
        # without max_tokens, a prompt that fits may use the rest of the window
        rest = client(s).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "word " * 300}],
            extra_body={"ignore_eos": True},
        )
        assert rest.usage.completion_tokens == 512 - prompt
        assert rest.choices[0].finish_reason == "length"


def test_max_model_len_errors_name_the_parameter_from_vllm_0_13():
    config = SimConfig(time_scale=0, max_model_len=512, vllm_version="0.13.0")
    with ServerThread(SimVLLM(config)) as s:
        over = _context_error(s, 400, 300)["error"]
        assert over["param"] == "max_tokens"
        assert over["message"].endswith(" (parameter=max_tokens, value=400)")
        alone = _context_error(s, None, 600)["error"]
        prompt = re.search(r"your request has (\d+) input tokens", alone["message"]).group(1)
        assert alone["param"] == "input_tokens"
        assert alone["message"].endswith(f"messages. (parameter=input_tokens, value={prompt})")


def test_tokenize_counts_what_chat_completions_counts(sim):
    root = sim.base_url.removesuffix("/v1")
    counted = httpx.post(root + "/tokenize", json={"model": MODEL, "messages": MSGS}).json()
    assert counted["max_model_len"] == 32768 and len(counted["tokens"]) == counted["count"]
    used = client(sim).chat.completions.create(model=MODEL, messages=MSGS, max_tokens=4).usage
    assert counted["count"] == used.prompt_tokens
    bare = httpx.post(
        root + "/tokenize", json={"model": MODEL, "messages": MSGS, "add_generation_prompt": False}
    ).json()
    assert bare["count"] < counted["count"]
    prompt = httpx.post(root + "/tokenize", json={"prompt": "hello world"}).json()
    assert prompt["count"] == content.count_tokens("hello world")
    assert httpx.post(root + "/tokenize", json={"model": "nope", "prompt": "x"}).status_code == 404
