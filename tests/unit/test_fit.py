"""Fitting calls into the context window: the shortening rules, the numbers of a rejection,
and whole deliberations on a simulated vLLM with a small ``max_model_len``.
"""

from __future__ import annotations

import httpx
import httpx2
import openai
import pytest
from langgraph.checkpoint.memory import InMemorySaver

from council_agents.core.context import Context
from council_agents.core.request import RequestError
from council_agents.core.settings import LLMSettings, Settings
from council_agents.core.state import Agent, Critique, Defect, ProposeTask
from council_agents.llm import answer_schema, endpoints
from council_agents.llm.client import LLM, structured
from council_agents.llm.endpoints import overflow
from council_agents.llm.fit import MARGIN, ContextOverflow
from council_agents.llm.prompt import Critiques, Oldest, Prompt, critique_text
from council_agents.llm.stage import brief, proposals_piece, stage_prompt
from council_agents.llm.tokens import estimate, wire
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from tests.helpers import TASKS, council, deliberate, sim_admin, sim_requests

MODEL = "Qwen/Qwen3-0.6B"


def agent(base_url: str) -> Agent:
    return Agent(
        agent_id="agent-dev-001",
        role="DEV",
        model=MODEL,
        base_url=base_url,
        api_key_name=None,
        temperature=0.7,
        seed=1,
    )


# ---- the shortening rules ---------------------------------------------------------------


def test_oldest_paragraphs_go_first_and_a_marker_says_how_much():
    text = "\n\n".join(f"Paragraph {i}: " + "word " * 40 for i in range(10))
    piece = Oldest("proposal under revision", text)
    assert piece.text(len(text)) == (text, None)
    short, note = piece.text(700)
    assert len(short) <= 700
    assert "Paragraph 9" in short and "Paragraph 0" not in short and short.endswith(text[-200:])
    omitted = len(text) - len(short.split("\n\n", 1)[1])
    assert short.startswith(f"[… {omitted:,} characters omitted to fit the model's context window")
    assert note == f"proposal under revision: first {omitted:,} of {len(text):,} characters omitted"


def _critique(critic: str, *severities: str) -> Critique:
    defects = [
        Defect(severity=s, where=f"step {i}", what=f"{s} problem {i}", fix="fix it")  # type: ignore[typeddict-item]
        for i, s in enumerate(severities)
    ]
    return Critique(
        round=1,
        critic=critic,
        author="x",
        summary=f"summary by {critic}",
        defects=defects,
        violations=[],
    )


def test_critiques_lose_minor_defects_first_then_major_and_keep_every_heading():
    critiques = [
        _critique("agent-a", "blocker", "minor", "major"),
        _critique("agent-b", "minor", "major"),
    ]
    piece = Critiques(critiques)
    full, none = piece.text(piece.size())
    assert none is None and full == "\n\n".join(critique_text(c) for c in critiques)
    for limit in range(piece.size(), 0, -20):  # minor, then major, then blocker lines go
        text, _ = piece.text(limit)
        assert "### From agent-a" in text and "### From agent-b" in text
        if "major problem" in text:
            assert text.count("major problem") == 2 or "minor problem" not in text
        if "blocker problem" not in text:
            assert "major problem" not in text
    text, note = piece.text(piece.size() - 1)  # the marker costs a line: both minor lines go
    assert text.count("major problem") == 2 and note == "critiques: 2 lines omitted (2 minor)"
    shortest, note = piece.text(0)
    assert "blocker problem" not in shortest and "summary by" not in shortest
    assert note == "critiques: 7 lines omitted (2 minor, 2 major, 1 blocker, 2 summary)"
    assert shortest.endswith("characters omitted to fit the model's context window …]")


def test_judged_proposals_are_cut_to_one_length_keeping_their_beginnings():
    proposals = {
        "a": "A-start " + "a " * 900,
        "b": "B-start " + "b " * 60,
        "c": "C-start " + "c " * 400,
    }
    piece = proposals_piece(["c", "a", "b"], proposals)
    text, note = piece.text(1500)
    assert len(text) <= 1500
    assert proposals["b"] in text  # shorter than the common length: untouched
    assert all(f"{x}-start" in text for x in "ABC")
    assert text.index("## Proposal P1") < text.index("C-start")  # labels follow the order
    assert note is not None and note.startswith("proposals: 2 of 3 cut to their first ")


# ---- what a rejection says ----------------------------------------------------------------


def _rejection(body: dict) -> openai.BadRequestError:
    request = httpx2.Request("POST", "http://llm/v1/chat/completions")
    response = httpx2.Response(400, request=request, json=body)
    return openai.BadRequestError("Error code: 400", response=response, body=body)


@pytest.mark.parametrize(
    "body,window,prompt",
    [
        (  # vLLM 0.10-0.12, prompt plus max_tokens over the window
            {
                "error": {
                    "message": "'max_tokens' or 'max_completion_tokens' is too large: 1536. This "
                    "model's maximum context length is 2048 tokens and your request has 700 "
                    "input tokens (1536 > 2048 - 700). None",
                    "type": "BadRequestError",
                    "param": None,
                    "code": 400,
                }
            },
            2048,
            700,
        ),
        (  # vLLM from 0.13, the prompt alone
            {
                "error": {
                    "message": "This model's maximum context length is 2048 tokens. However, "
                    "your request has 2300 input tokens. Please reduce the length of the input "
                    "messages. (parameter=input_tokens, value=2300)",
                    "type": "BadRequestError",
                    "param": "input_tokens",
                    "code": 400,
                }
            },
            2048,
            2300,
        ),
        (  # vLLM's newest wording (vllm/renderers/params.py)
            {
                "error": {
                    "message": "You passed 2300 input tokens and requested 512 output tokens. "
                    "However, the model's context length is only 2048 tokens, resulting in a "
                    "maximum input length of 1536 tokens. Please reduce the length of the input "
                    "prompt. (parameter=input_tokens, value=2300)",
                    "type": "BadRequestError",
                    "param": "input_tokens",
                    "code": 400,
                }
            },
            2048,
            2300,
        ),
        (  # llama.cpp's llama-server
            {
                "error": {
                    "code": 400,
                    "message": "request (2346 tokens) exceeds the available context size "
                    "(2048 tokens), try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 2346,
                    "n_ctx": 2048,
                }
            },
            2048,
            2346,
        ),
    ],
)
def test_a_context_length_rejection_gives_its_numbers(body, window, prompt):
    seen = overflow(_rejection(body))
    assert seen is not None and (seen.window, seen.prompt_tokens) == (window, prompt)


def test_other_rejections_are_not_context_length():
    body = {"error": {"message": "messages: field required", "type": "BadRequestError"}}
    assert overflow(_rejection(body)) is None


# ---- calls and deliberations on a small window --------------------------------------------


@pytest.fixture(scope="module")
def small_sim():
    # proposals near 400 tokens: a revision needs room for the whole proposal twice (in its
    # prompt and in its answer), which a 2048-token window has for about 650-token proposals
    lengths = {**SimConfig().mean_tokens, "propose": 400}
    config = SimConfig(time_scale=0, max_model_len=2048, mean_tokens=lengths)
    with ServerThread(SimVLLM(config)) as sim:
        yield sim


def _fitted_requests(sim: ServerThread, deliberation: str) -> list[dict]:
    return [e for e in sim_requests(sim) if e["deliberation"] == deliberation]


async def test_deliberation_fits_a_2048_token_window(small_sim):
    settings = Settings(llm=LLMSettings(base_url=small_sim.base_url))
    task = TASKS[0]
    outcome = await deliberate(
        InMemorySaver(),
        "fit-2048",
        {"task": task["task"], "role": task["role"], "rounds": 1, "rubric": task["rubric"]},
        Context(agents=3),
        settings,
    )
    assert outcome.status == "completed"
    calls = outcome.values["calls"]
    judges = 0 if outcome.values["decision"].get("judges_skipped") else 3  # each rotation
    # a revising author whose own proposal (never cut) leaves its answer no room, with every
    # other input shortened and the checks' findings shown, is left out: its draft stands
    overflowed = [o for o in outcome.values.get("omissions", []) if o["stage"] == "revise"]
    assert len(overflowed) <= 1
    assert all("over the context window" in o["reason"] and not o["attempts"] for o in overflowed)
    revised = 3 - len(overflowed)
    assert len([c for c in calls if c["accepted"]]) == 3 + 6 + revised + judges + 3
    sent = _fitted_requests(small_sim, "fit-2048")
    assert len(sent) == len(calls)  # no request was rejected
    assert all(e["prompt_tokens"] + e["max_tokens"] <= 2048 - MARGIN for e in sent)
    fitted = [c for c in calls if "context_fit" in c]
    assert {c["stage"] for c in fitted} >= {"revise"} | ({"judge"} if judges else set())
    shortened = [line for c in fitted for line in c["context_fit"]["shortened"]]
    assert any(line.startswith("critiques:") for line in shortened)
    assert any(line.startswith("proposals:") for line in shortened)
    for c in fitted:
        fit = c["context_fit"]
        assert fit["window"] == 2048 and fit["counted_by"] == "server"
        assert fit["max_tokens"] <= fit["asked"]
        assert c["prompt_tokens"] == fit["prompt_tokens"]  # the server's count, before sending


async def test_a_task_that_cannot_fit_is_refused_up_front_with_the_numbers(small_sim):
    settings = Settings(llm=LLMSettings(base_url=small_sim.base_url))
    before = len(sim_requests(small_sim))
    with pytest.raises(RequestError) as refused:
        await deliberate(
            InMemorySaver(),
            "too-long",
            {"task": "Migrate the billing service. " * 250},
            None,
            settings,
        )
    message = str(refused.value)
    assert message.startswith(f"task: does not fit the context window of {MODEL} at ")
    assert "(2048 tokens): the shortest propose prompt is " in message
    assert "tokens (server) and its answer needs at least 768" in message
    assert len(sim_requests(small_sim)) == before  # no LLM call was made


async def test_a_window_setting_overrides_the_server(small_sim):
    settings = Settings(llm=LLMSettings(base_url=small_sim.base_url, context_window={"": 1600}))
    prompt = stage_prompt(_task(small_sim), "propose")
    answer = await LLM(settings.llm).call(
        agent(small_sim.base_url),
        prompt,
        stage="propose",
        round_=0,
        deliberation_id="setting",
        max_tokens=1536,
    )
    fit = answer.records[-1]["context_fit"]
    assert fit["window"] == 1600 and fit["max_tokens"] == 1600 - 16 - fit["prompt_tokens"]
    assert _fitted_requests(small_sim, "setting")[-1]["max_tokens"] == fit["max_tokens"]


def _task(sim: ServerThread) -> ProposeTask:
    return ProposeTask(
        deliberation_id="d",
        task=TASKS[0]["task"],
        council=brief(council("DEV")),
        agent=agent(sim.base_url),
        round=0,
        max_tokens=1536,
    )


async def test_a_context_length_rejection_is_fitted_and_sent_again():
    with ServerThread(SimVLLM(SimConfig(time_scale=0, max_model_len=4096))) as sim:
        llm = LLM(LLMSettings(base_url=sim.base_url))
        member = agent(sim.base_url)
        await llm.windows.endpoint(member)  # learned: 4096
        # the server restarts with a smaller window: the next call is rejected, then fitted
        httpx.patch(sim_admin(sim, "/admin/config"), json={"max_model_len": 1600})
        answer = await llm.call(
            member,
            Prompt("roles/dev", "propose", "DEV", _shared(sim)),
            stage="propose",
            round_=0,
            deliberation_id="shrunk",
            max_tokens=1536,
        )
        fit = answer.records[-1]["context_fit"]
        assert fit["overflows"] == 1 and fit["window"] == 1600
        assert fit["prompt_tokens"] + fit["max_tokens"] <= 1600
        assert (await llm.windows.endpoint(member)).source == "error"


def _shared(sim: ServerThread) -> dict:
    from council_agents.llm.stage import shared_values

    return shared_values(_task(sim))


async def test_a_call_too_long_even_when_shortened_fails_naming_the_numbers():
    with ServerThread(SimVLLM(SimConfig(time_scale=0, max_model_len=700))) as sim:
        settings = Settings(llm=LLMSettings(base_url=sim.base_url))
        prompt = stage_prompt(
            _task(sim),
            "critique",
            author="x",
            version=0,
            round=1,
            label="P1",
            own="P2",
            proposal="word " * 400,
            pieces={"proposals": proposals_piece(["x"], {"x": "word " * 400})},
        )
        with pytest.raises(ContextOverflow, match="over the context window of"):
            await LLM(settings.llm).call(
                agent(sim.base_url),
                prompt,
                stage="critique",
                round_=1,
                deliberation_id="hopeless",
                max_tokens=768,
            )


async def test_a_large_window_costs_no_extra_request(monkeypatch):
    asked: list[int] = []
    real_count = endpoints.tokenize

    async def counting(*args, **kwargs):
        asked.append(1)
        return await real_count(*args, **kwargs)

    monkeypatch.setattr(endpoints, "tokenize", counting)
    with ServerThread(SimVLLM(SimConfig(time_scale=0))) as sim:  # 32,768 tokens
        outcome = await deliberate(
            InMemorySaver(),
            "roomy",
            {"task": TASKS[1]["task"], "rounds": 1},
            None,
            Settings(llm=LLMSettings(base_url=sim.base_url)),
        )
    assert outcome.status == "completed"
    assert not any("context_fit" in c for c in outcome.values["calls"])
    assert asked == []  # the estimate decided every call and the up-front check


async def test_a_server_without_a_tokenizer_is_counted_by_the_estimate(small_sim):
    llm = LLM(LLMSettings(base_url=small_sim.base_url))
    member = agent(small_sim.base_url)
    known = await llm.windows.endpoint(member)
    known.tokenizer = "llama.cpp"  # the simulator has no /apply-template: the count falls back
    messages, _ = stage_prompt(_task(small_sim), "propose").render(llm.prompts)
    counted, by = await llm.windows.count(member, messages, known)
    assert (counted, by) == (estimate(messages), "estimate")
    assert known.tokenizer is None  # not asked again
    served = httpx.post(
        sim_admin(small_sim, "/tokenize"),
        json={"model": MODEL, "messages": wire(messages)},
    ).json()["count"]
    assert counted >= served  # the estimate is an upper bound on the simulator's count too


@pytest.mark.parametrize("max_tokens", [300, 800, 1500])
def test_a_fitted_answer_schema_ends_inside_the_room(max_tokens):
    import json
    import random

    from council_agents.nodes.critique import CritiqueAnswer
    from council_agents.nodes.judge import judgement_model
    from council_agents.nodes.vote import ballot_model
    from council_agents.sim_vllm.content import from_schema

    models = {
        "critique": CritiqueAnswer,
        "judge": judgement_model(("P1", "P2", "P3"), ("correctness", "risk")),
        "vote": ballot_model(("P1", "P2")),
    }
    for name, model in models.items():
        response_format, validate = structured(model, name)
        fitted, note = answer_schema.fit_answer(response_format, max_tokens)
        schema = fitted["json_schema"]["schema"]
        room = int(max_tokens * answer_schema.ANSWER_CHARS_PER_TOKEN)
        fixed, strings = answer_schema._size(schema, schema.get("$defs", {}), None, room, True)
        assert fixed + strings <= room
        if name == "vote":  # the ranking keeps every label; untouched when short enough
            assert schema["properties"]["ranking"]["maxItems"] == 2
            assert (fitted == response_format) == (max_tokens >= 400)
        else:
            assert note is not None and note.startswith("answer schema: lists at most ")
        for seed in range(5):  # whatever the grammar lets through, the stage's model accepts
            document = from_schema(schema, random.Random(seed), "rollout canary migration")
            validate(json.dumps(document))
