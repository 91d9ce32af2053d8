"""The simulator's realistic setting (``sim_vllm.truth``): each behaviour happens at its rate
(seeded, so every count is the same on every run; the tolerances are four standard errors: a
rate off by a few points fails, chance does not), the scripts stay what they were, and
``Truth.fitted_smollm2()`` holds what ``bench.fit_smollm2`` fits from the committed records and
probes.
"""

from __future__ import annotations

import json
import statistics

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from council_agents.checks.artifact import dropped
from council_agents.core.context import Context
from council_agents.core.settings import LLMSettings, Settings
from council_agents.llm.client import looks_like_garbage
from council_agents.nodes.critique import CritiqueAnswer
from council_agents.nodes.judge import judgement_model
from council_agents.sim_vllm import (
    HumanEvalScript,
    ServerThread,
    SimConfig,
    SimVLLM,
    Truth,
    answers,
)
from council_agents.sim_vllm.humaneval import DROPPED, correct_code
from council_agents.sim_vllm.problems import read_problems
from council_agents.sim_vllm.protocol import Caller, ChatRequest
from council_agents.sim_vllm.truth import Authors, shape, similarity
from tests.helpers import TASKS, deliberate

N = 1000


def ask(
    config: SimConfig,
    authors: Authors,
    prompt: str,
    stage: str,
    *,
    seed: int = 1,
    deliberation: str = "d-1",
    agent: str = "agent-dev-001",
    schema: dict | None = None,
) -> str:
    """The simulator's answer to one request (its content)."""
    fmt = (
        {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}} if schema else None
    )
    req = ChatRequest(
        messages=[{"role": "user", "content": prompt}],
        seed=seed,
        response_format=fmt,
        chat_template_kwargs={"enable_thinking": False},
    )
    who = Caller(deliberation=deliberation, agent=agent, stage=stage, round="1", prompt_tokens=99)
    plan = answers.plan_answer(
        req, prompt, who, None, config=config, humaneval=None, authors=authors
    )
    return "".join(text for kind, text in plan.pieces if kind == "content")


def proposal(config: SimConfig, authors: Authors, deliberation: str = "d-1") -> str:
    return ask(
        config, authors, f"## Task\n{TASKS[0]['task']}", "propose", deliberation=deliberation
    )


def under_review(text: str) -> str:
    return (
        f"## Task\n{TASKS[0]['task']}\n\n## Proposal under review (version 0)\n{text}\n\n"
        "## Critiques of this proposal (round 1)\n- **major** (Steps): no rollback\n\n"
        "## Your assignment\nRevise it."
    )


def within(count: int, p: float, n: int = N) -> bool:
    """``count`` of ``n`` is within four standard errors of ``p``."""
    return abs(count / n - p) <= 4 * (p * (1 - p) / n) ** 0.5 + 1e-9


def test_the_scripts_are_not_the_realistic_setting():
    scripts = Truth(quality={"a": 7.0}, position_bias=3.0, noise=0.6, vote_noise=1.0)
    assert not Truth().realistic and not scripts.realistic
    assert not Truth(major_until_round=2, seed=5).realistic
    assert Truth(revise_drop=0.1).realistic and Truth(invalid={"judge": 0.1}).realistic
    assert Truth.fitted_smollm2().realistic
    assert Truth.fitted_smollm2(judge_skill=0.25).judge_skill == 0.25


def test_scripts_draw_from_the_request_alone_the_realistic_setting_per_deliberation_too():
    judge = "## Proposal P1\nsome text\n\n## Proposal P2\nother text\n\n## Your assignment\nJudge."
    schema = judgement_model(("P1", "P2"), ("correctness", "risk")).model_json_schema()
    scripts = SimConfig(truth=Truth(noise=2.0))
    one, two = (
        ask(scripts, Authors(), judge, "judge", schema=schema, deliberation=d) for d in "ab"
    )
    assert one == two  # as before: the same request, the same answer
    realistic = SimConfig(truth=Truth(noise=2.0, impression_noise=2.0))
    one, two = (
        ask(realistic, Authors(), judge, "judge", schema=schema, deliberation=d) for d in "ab"
    )
    assert one != two


def test_first_proposals_vary_per_deliberation_around_their_authors_quality():
    truth = Truth(quality={"agent-dev-001": 6.0}, task_noise=1.5)
    draws = [truth.first_quality(f"d-{i}", "agent-dev-001") for i in range(N)]
    assert abs(statistics.fmean(draws) - 6.0) < 0.15
    assert abs(statistics.stdev(draws) - 1.5) < 0.1
    assert truth.first_quality("d-1", "agent-dev-001") == draws[1]
    config, authors = SimConfig(truth=truth), Authors()
    text = proposal(config, authors, "d-7")
    assert authors.quality[text.strip()] == draws[7]


def test_revisions_at_their_rates_and_only_the_dropped_ones_are_refused():
    truth = Truth(
        revise_unchanged=0.2,
        revise_drop=0.2,
        revise_break=0.1,
        revise_improve=0.3,
        revise_gain=1.0,
        revise_loss=2.0,
    )
    config, authors = SimConfig(truth=truth), Authors()
    previous = proposal(config, authors).strip()
    before = authors.quality[previous]
    seen = {"unchanged": 0, "drop": 0, "break": 0, "improve": 0, "same": 0}
    for seed in range(N):
        answer = ask(config, authors, under_review(previous), "revise", seed=seed)
        if answer == "UNCHANGED":
            seen["unchanged"] += 1
            continue
        revised = answer.split("\n\n=== CHANGES ===")[0].strip()
        if dropped(previous, revised):
            seen["drop"] += 1
            assert revised not in authors.quality  # council refuses it: no quality kept
            continue
        change = authors.quality[revised] - before
        seen[{-2.0: "break", 0.0: "same", 1.0: "improve"}[change]] += 1
    expected = {"unchanged": 0.2, "drop": 0.2, "break": 0.1, "improve": 0.3, "same": 0.2}
    assert all(within(seen[k], p) for k, p in expected.items()), seen


def test_the_scripts_revisions_are_never_refused():
    config, authors = SimConfig(truth=Truth(major_until_round=9)), Authors()
    previous = proposal(config, authors).strip()
    for seed in range(50):
        answer = ask(config, authors, under_review(previous), "revise", seed=seed)
        assert dropped(previous, answer.split("\n\n=== CHANGES ===")[0]) is None


def test_critics_flag_false_defects_and_miss_real_ones_at_their_rates():
    truth = Truth(severe_below=5.0, critic_false=0.2, critic_miss=0.3)
    config, authors = SimConfig(truth=truth), Authors()
    good, bad = "### Approach\nA good plan.", "### Approach\nA bad plan."
    authors.remember("agent-dev-002", good, 7.0, "d-1")
    authors.remember("agent-dev-003", bad, 3.0, "d-1")
    schema = CritiqueAnswer.model_json_schema()

    def severe(text: str, seed: int) -> bool:
        doc = json.loads(
            ask(config, authors, under_review(text), "critique", seed=seed, schema=schema)
        )
        return any(d["severity"] in ("blocker", "major") for d in doc["defects"])

    false = sum(severe(good, seed) for seed in range(N))
    missed = sum(not severe(bad, seed) for seed in range(N))
    assert within(false, 0.2) and within(missed, 0.3), (false, missed)


def judged(truth: Truth, authors: Authors, texts: list[str], n: int = N) -> list[list[int]]:
    """The first criterion's score of each text, shown in order, over ``n`` judgements."""
    prompt = "".join(f"## Proposal P{i}\n{t}\n\n" for i, t in enumerate(texts, 1)) + (
        "## Your assignment\nJudge them."
    )
    out = []
    for seed in range(n):
        doc = {f"P{i}": {"scores": {"a": 0, "b": 0}} for i in range(1, len(texts) + 1)}
        rng = answers._rng(ChatRequest(messages=[{"role": "user", "content": "x"}], seed=seed), 0)
        who = {"deliberation": f"d-{seed}", "agent": "judge-dev"}
        shape(doc, "judge", prompt, who, rng, truth, authors, 10)
        out.append([doc[f"P{i}"]["scores"]["a"] for i in range(1, len(texts) + 1)])
    return out


def column(rows: list[list[int]], i: int) -> float:
    return statistics.fmean(r[i] for r in rows)


def test_judges_position_effects_by_position():
    truth = Truth(position_bias=1.0, middle_bias=-1.0, last_bias=0.5, impression_noise=1.0)
    authors = Authors()
    texts = [f"### Approach\nPlan number {i}." for i in range(4)]
    for i, t in enumerate(texts):
        authors.remember(f"agent-dev-00{i}", t, 5.0, "d")
    rows = judged(truth, authors, texts)
    means = [column(rows, i) for i in range(4)]
    assert abs(means[0] - 6.0) < 0.1 and abs(means[3] - 5.5) < 0.1
    assert abs(means[1] - 4.0) < 0.1 and abs(means[2] - 4.0) < 0.1
    alone = judged(truth, authors, texts[:1])
    assert abs(column(alone, 0) - 5.0) < 0.1  # alone: no position at all


def test_judges_prefer_length_and_their_own_model_and_see_quality_by_their_skill():
    authors = Authors()
    short, long = "### Approach\n" + "x " * 250, "### Approach\n" + "x " * 750
    authors.remember("agent-dev-001", short, 5.0, "d")
    authors.remember("agent-dev-002", long, 5.0, "d")
    longer = Truth(length_preference=2.0, impression_noise=1.0)
    gap = column(judged(longer, authors, [long]), 0) - column(judged(longer, authors, [short]), 0)
    assert abs(gap - 2.0 * (len(long) - len(short)) / 1000) < 0.15
    own = Truth(self_preference=1.0, impression_noise=1.0)
    other = "### Approach\nwritten by another model"  # this server did not write it
    gap = column(judged(own, authors, [short]), 0) - column(judged(own, authors, [other]), 0)
    assert abs(gap - 1.0) < 0.15
    authors.remember("agent-dev-003", "### Approach\ngood", 8.0, "d")
    authors.remember("agent-dev-004", "### Approach\nbad", 2.0, "d")
    skill = Truth(judge_skill=0.5, impression_noise=1.0)
    rows = judged(skill, authors, ["### Approach\ngood", "### Approach\nbad"])
    assert abs(column(rows, 0) - column(rows, 1) - 3.0) < 0.15


def test_a_judgements_calibration_shifts_every_score_it_gives():
    authors = Authors()
    texts = ["### Approach\none", "### Approach\ntwo"]
    for t in texts:
        authors.remember("agent-dev-001", t, 5.0, "d")
    rows = judged(Truth(calibration_noise=2.0), authors, texts)
    assert all(a == b for a, b in rows)  # judged together: the shift cancels
    assert abs(statistics.stdev(r[0] for r in rows) - 2.0) < 0.2  # across judgements it does not


def voted(truth: Truth, authors: Authors, texts: list[str], voter: str, n: int = N) -> int:
    """How often the first text is ranked first."""
    prompt = "".join(f"## Proposal P{i}\n{t}\n\n" for i, t in enumerate(texts, 1)) + (
        "## Your assignment\nRank them."
    )
    first = 0
    for seed in range(n):
        doc = {"ranking": [f"P{i}" for i in range(1, len(texts) + 1)]}
        rng = answers._rng(ChatRequest(messages=[{"role": "user", "content": "x"}], seed=seed), 0)
        shape(doc, "vote", prompt, {"deliberation": "d", "agent": voter}, rng, truth, authors, 10)
        first += doc["ranking"][0] == "P1"
    return first


def test_voters_position_effect_and_preference_for_what_resembles_their_own():
    authors = Authors()
    for agent, text, q in [("a1", "low one", 2.0), ("a2", "high one", 7.0), ("a3", "low two", 2.0)]:
        authors.remember(agent, text, q, "d")
    position = Truth(vote_skill=0.0, vote_first_bias=1.0, vote_noise=1.0)
    p = statistics.NormalDist().cdf(1.0 / 2**0.5)  # 0.76
    assert within(voted(position, authors, ["low one", "low two"], "a2"), p)
    # a1 (its own proposal of quality 2) against a2 (7), both shown "low two" and "high one":
    # senses 2 + 4 x 1 against 7 + 4 x 0 for a1, 2 + 0 against 7 + 4 for a2
    alike = Truth(vote_skill=1.0, vote_self_preference=4.0, vote_noise=1.0)
    p = statistics.NormalDist().cdf(-1.0 / 2**0.5)  # 0.24
    assert within(voted(alike, authors, ["low two", "high one"], "a1"), p)
    assert voted(alike, authors, ["low two", "high one"], "a2") == 0
    blind = Truth(vote_skill=0.0, vote_self_preference=4.0, vote_noise=1.0)
    assert within(voted(blind, authors, ["low two", "high one"], "a1"), 0.5)  # all alike
    assert similarity(2.0, 2.0) == 1.0 and similarity(2.0, 7.0) == 0.0


def test_answers_are_invalid_at_their_rate_per_stage():
    truth = Truth(invalid={"judge": 0.4, "propose": 0.1})
    config, authors = SimConfig(truth=truth), Authors()
    schema = judgement_model(("P1",), ("correctness",)).model_json_schema()
    judge = "## Proposal P1\nplan\n\n## Your assignment\nJudge."

    def not_json(text: str) -> bool:
        try:
            json.loads(text)
        except ValueError:
            return True
        return False

    bad = sum(
        not_json(ask(config, authors, judge, "judge", seed=s, schema=schema)) for s in range(N)
    )
    garbage = sum(
        looks_like_garbage(ask(config, authors, "## Task\nplan it", "propose", seed=s))
        for s in range(N)
    )
    assert within(bad, 0.4) and within(garbage, 0.1), (bad, garbage)


def test_humaneval_revisions_and_critiques_per_attempt_at_their_rates():
    script = HumanEvalScript(
        correct=1.0, revise_drop=0.3, revise_break=0.2, critic_false=0.25, critic_miss=0.35
    )
    problem = read_problems()[7]
    right = script.answer("propose", problem["prompt"], "a", 0, None) or ""
    wrong = problem["prompt"] + "\n    return None\n"  # the problem, not its correct code
    revised = [script.answer("revise", right, "a", 1, None, nonce=n) for n in range(N)]
    assert within(revised.count(DROPPED), 0.3)
    broke = [r for r in revised if r not in (DROPPED, "UNCHANGED")]
    assert within(len(broke), 0.2) and all(correct_code(problem) not in r for r in broke)
    assert within(revised.count("UNCHANGED"), 0.5)
    assert within(
        [script.answer("revise", wrong, "a", 1, None, nonce=n) for n in range(N)].count(DROPPED),
        0.3,
    )
    schema = {"type": "object"}

    def blocker(prompt: str, nonce: int) -> bool:
        doc = json.loads(script.answer("critique", prompt, "a", 1, schema, nonce=nonce) or "{}")
        return bool(doc["defects"])

    assert within(sum(blocker(right, n) for n in range(N)), 0.25)
    assert within(sum(not blocker(wrong, n) for n in range(N)), 0.35)
    assert not HumanEvalScript().per_attempt and script.per_attempt


async def test_a_dropped_revision_is_refused_and_the_previous_version_stands():
    truth = Truth(revise_drop=1.0, severe_below=10.0)  # every critique severe: every round runs
    engine = SimVLLM(SimConfig(time_scale=0, truth=truth))
    with ServerThread(engine) as sim:
        outcome = await deliberate(
            InMemorySaver(),
            "dropped",
            {"task": TASKS[0]["task"], "role": "DEV", "rounds": 1},
            Context(agents=3),
            Settings(llm=LLMSettings(base_url=sim.base_url)),
        )
        quality = engine.authors.quality
    assert outcome.status == "completed"
    revisions = [d for d in outcome.values["drafts"] if d["version"] == 1]
    assert len(revisions) == 3
    assert all(d["carried"].startswith("revision rejected: ") for d in revisions)
    assert all("the revision drops the section" in d["carried"] for d in revisions)
    firsts = {d["agent_id"]: d["content"] for d in outcome.values["drafts"] if d["version"] == 0}
    assert all(d["content"] == firsts[d["agent_id"]] for d in revisions)
    assert all(d["content"].strip() in quality for d in revisions)
    left = [o for o in outcome.values["omissions"] if o["stage"] == "revise"]
    # a refused revision is not asked for again: the previous version is what a retry restores
    assert len(left) == 3 and all(o["attempts"] == 1 for o in left)


def test_the_fitted_preset_is_what_bench_fit_smollm2_fits():
    from bench import fit_smollm2

    fitted = {
        f.name: f.value
        for f in fit_smollm2.fit(fit_smollm2.read_records(), fit_smollm2.read_probes())
    }
    truth, script = Truth.fitted_smollm2(), HumanEvalScript.fitted_smollm2()
    for name, value in fitted.items():
        if name.startswith("invalid["):
            assert truth.invalid[name[8:-1]] == value, name
        elif name.startswith("humaneval "):
            assert getattr(script, name[10:]) == value, name
        elif hasattr(truth, name):
            assert getattr(truth, name) == value, name
    assert script.revise_drop == truth.revise_drop and script.revise_break == truth.revise_break
    assert script.critic_false == truth.critic_false and script.critic_miss == truth.critic_miss


@pytest.mark.parametrize("name", ["revise_drop", "critic_miss", "judge_skill", "position_bias"])
def test_the_fit_reports_how_every_parameter_was_obtained(name):
    from bench import fit_smollm2

    rows = {
        f.name: f for f in fit_smollm2.fit(fit_smollm2.read_records(), fit_smollm2.read_probes())
    }
    assert rows[name].how.startswith(("records:", "probe:")) and rows[name].counts
