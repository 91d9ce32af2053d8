"""Grounding and the agreement gate on the simulator (``nodes.ground``, ``graph.routing``,
``nodes.select``): the calls counted in the simulator's request log."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from council_agents.checks import sandbox
from council_agents.core.context import Context
from council_agents.core.request import RequestError
from council_agents.core.settings import LLMSettings, Settings
from council_agents.evals.humaneval import load_problems, task_text
from council_agents.nodes.ground import agreed, evidence_text, failed_checks, singled_out
from council_agents.sim_vllm import HumanEvalScript, ServerThread, SimConfig, SimVLLM
from tests.helpers import council, deliberate, sim_requests

PROBLEM = load_problems("all")[0]
needs_sandbox = pytest.mark.skipif(not sandbox.available(), reason="bubblewrap is not installed")


def _stages(sim: ServerThread, deliberation: str) -> Counter[str]:
    return Counter(e["stage"] for e in sim_requests(sim) if e["deliberation"] == deliberation)


async def _run(sim: ServerThread, thread: str, **context: object):
    settings = Settings(llm=LLMSettings(base_url=sim.base_url))
    inp = {"task": task_text(PROBLEM), "role": "DEV", "rounds": 1}
    return await deliberate(
        InMemorySaver(),
        thread,
        inp,
        Context(agents=3, **context),
        settings,  # type: ignore[arg-type]
    )


@needs_sandbox
async def test_proposals_that_agree_are_decided_without_critique_or_judge():
    script = HumanEvalScript(correct=1.0)  # every agent answers the canonical solution
    with ServerThread(SimVLLM(SimConfig(time_scale=0), humaneval=script)) as sim:
        outcome = await _run(sim, "agree", execute=True)
        assert outcome.status == "completed"
        assert _stages(sim, "agree") == {"propose": 3}  # no critique, revise, judge or vote
        decision = outcome.values["decision"]
        assert decision["stop_reason"] == "agreed" and decision["decided_by"] == "agreement"
        assert decision["winner"] == "agent-dev-001"  # the first of the agreeing group
        evidence = outcome.values["evidence"]
        assert len(evidence) == 3 and all(e["outputs"] == ["False", "True"] for e in evidence)
        assert outcome.values["result"].stop_reason == "agreed"

        # the gate off: the same answers are deliberated as before (critiques, judges, vote)
        outcome = await _run(sim, "gate-off", execute=True, gate="off")
        stages = _stages(sim, "gate-off")
        assert stages["critique"] == 6 and stages["vote"] == 3
        # the ballots come first; the judges only when they are not unanimous (targeted)
        skipped = outcome.values["decision"].get("judges_skipped")
        assert stages["judge"] == (0 if skipped else 3)
        assert outcome.values["decision"]["stop_reason"] != "agreed"


@needs_sandbox
async def test_answers_that_disagree_are_deliberated_and_shown_the_evidence():
    script = HumanEvalScript(correct=0.5, seed=1)
    config = SimConfig(time_scale=0, log_prompts=True)
    with ServerThread(SimVLLM(config, humaneval=script)) as sim:
        right = [script.first_correct(PROBLEM, f"agent-dev-00{i}") for i in (1, 2, 3)]
        assert len(set(right)) == 2, "the seed must give both right and broken first answers"
        # the gate on: the answer that matches every result the task states decides at once
        outcome = await _run(sim, "verified", execute=True)
        assert _stages(sim, "verified") == {"propose": 3}
        decision = outcome.values["decision"]
        assert decision["stop_reason"] == "agreed" and decision["decided_by"] == "agreement"
        winner = f"agent-dev-00{right.index(True) + 1}"
        assert decision["winner"] == winner
        assert decision["justification"].startswith(f"{winner} was chosen by the checks: ")
        wrong = [e for e in outcome.values["evidence"] if not e.get("verified")]
        assert wrong and all(
            "contradicts the examples the task states" in e["hard"][0] for e in wrong
        )
        # the gate off: they are deliberated, and everyone is shown what the checks found
        outcome = await _run(sim, "disagree", execute=True, gate="off")
        assert outcome.status == "completed"
        assert _stages(sim, "disagree")["critique"] == 6
        assert outcome.values["decision"]["stop_reason"] != "agreed"
        shown = evidence_text(outcome.values, {"agent-dev-001": "The proposal"})
        assert shown.startswith("The proposal:\n- its code parses")
        # the judges are asked when the ballots are not unanimous: with aggregator judge, always
        judged = await _run(sim, "disagree-judged", execute=True, gate="off", aggregator="judge")
        assert judged.status == "completed" and _stages(sim, "disagree-judged")["judge"] == 3
        # every critic, author, judge and voter was shown what the checks found, as data
        prompts = {
            e["stage"]: e["prompt"]
            for e in sim_requests(sim)
            if e["deliberation"] in ("disagree", "disagree-judged") and e["stage"] != "propose"
        }
        assert set(prompts) == {"critique", "revise", "judge", "vote"}
        for stage, prompt in prompts.items():
            found = prompt[prompt.index("## What the checks found") :]
            assert "<data-" in found and "has_close_elements([1.0, 2.0, 3.0], 0.5)" in found, stage
        # P1's findings (a failed check first, when it has one), under the judge's label
        assert re.search(r"P1:\n(?:- .*\n)*?- its code parses", prompts["judge"])


async def test_execution_without_a_sandbox_is_refused_before_any_llm_call(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with ServerThread(SimVLLM(SimConfig(time_scale=0))) as sim:
        with pytest.raises(RequestError, match="^execute: refused: running code from answers"):
            await _run(sim, "no-sandbox", execute=True)
        assert _stages(sim, "no-sandbox") == {}


def _state(evidence: list[dict[str, object]], gate: float | None = 1.0) -> dict[str, object]:
    c = council("DEV", 3, 1)
    c["gate"] = gate
    ids = [a["agent_id"] for a in c["agents"]]
    return {
        "task": "t",
        "council": c,
        "drafts": [{"agent_id": a, "version": 0, "content": "x"} for a in ids],
        "evidence": [
            {"agent_id": a, "version": 0, "checker": "code", "notes": [], **e}
            for a, e in zip(ids, evidence, strict=True)
        ],
    }


def test_the_gate_needs_its_share_of_agreeing_drafts_that_pass_the_hard_checks():
    same = {"hard": [], "outputs": ["1"]}
    other = {"hard": [], "outputs": ["2"]}
    assert agreed(_state([same, same, same])) == ["agent-dev-001", "agent-dev-002", "agent-dev-003"]
    assert agreed(_state([same, other, same])) == []  # 2 of 3 < all
    assert agreed(_state([other, same, same], gate=0.6)) == ["agent-dev-002", "agent-dev-003"]
    assert agreed(_state([same, same, same], gate=None)) == []  # off
    crash = {"hard": [], "outputs": ["!ValueError"]}
    assert agreed(_state([crash, crash, crash])) == []  # agreeing on exceptions decides nothing
    unrun = {"hard": [], "outputs": None}
    assert agreed(_state([unrun, unrun, unrun])) == []


def test_one_draft_passing_the_hard_checks_is_singled_out_and_wins():
    from council_agents.nodes.select import decide

    fail = {"hard": ["its code does not parse: line 1: invalid syntax"], "outputs": None}
    ok = {"hard": [], "outputs": None}
    state = _state([fail, ok, fail])
    assert singled_out(state) == "agent-dev-002"
    assert set(failed_checks(state)) == {"agent-dev-001", "agent-dev-003"}
    decision = decide(state)  # type: ignore[arg-type]
    assert decision["winner"] == "agent-dev-002" and decision["decided_by"] == "checks"
    assert set(decision["failed_checks"]) == {"agent-dev-001", "agent-dev-003"}


def test_a_draft_failing_a_hard_check_cannot_win_while_one_passes():
    from council_agents.nodes.select import decide

    fail = {"hard": ["it does not define f()"], "outputs": None}
    ok = {"hard": [], "outputs": None}
    state = _state([fail, ok, ok])
    ids = ["agent-dev-001", "agent-dev-002", "agent-dev-003"]
    # every judgement and ballot prefers the failing draft
    state["judgements"] = [
        {
            "judge": "j",
            "model": "m",
            "order": ids,
            "assessments": {
                a: {"strengths": [], "defects": [], "scores": {"c": score}, "verdict": "v"}
                for a, score in zip(ids, (9, 5, 4), strict=True)
            },
            "totals": {"agent-dev-001": 9.0, "agent-dev-002": 5.0, "agent-dev-003": 4.0},
        }
    ] * 2
    state["ballots"] = [
        {"voter": v, "ranking": [a for a in ids if a != v], "reason": "r"} for v in ids
    ]
    state["council"]["aggregator"] = "judge"
    state["council"]["rubric"] = {"c": {"meaning": "m", "weight": 1.0, "anchors": {}}}
    decision = decide(state)  # type: ignore[arg-type]
    assert decision["ranking"][-1]["total"] == 9.0  # the judges' favourite, ranked last
    assert decision["winner"] == "agent-dev-002"
    assert [r["agent_id"] for r in decision["ranking"]][-1] == "agent-dev-001"
    assert "cannot win while one passes" in decision["justification"]


def test_the_command_line_and_the_context_set_the_grounding_each_refusal_one_line():
    from council_agents.cli.commands import run_context
    from council_agents.cli.main import parser

    args = parser().parse_args(
        ["deliberate", "t", "--checkers", "code,quotes", "--execute", "--gate", "0.75"]
    )
    context = run_context(args)
    assert (context.checkers, context.execute, context.gate) == (["code", "quotes"], True, 0.75)
    none = run_context(parser().parse_args(["deliberate", "t", "--checkers", "none"]))
    assert (none.checkers, none.execute, none.gate) == ([], None, None)
    for flags, message in [
        (["--gate", "0.3"], "context.gate: must be 'off', 'all' or the share of answers"),
        (["--checkers", "code,lint"], "context.checkers: unknown checker 'lint'; known: code"),
    ]:
        with pytest.raises(RequestError, match=f"^{message}"):
            run_context(parser().parse_args(["deliberate", "t", *flags]))


def test_the_council_settings_default_to_no_execution_and_the_gate_on():
    from council_agents.core.request import CouncilSpec, admit

    settings = LLMSettings(model="m")
    built_in = admit({"task": "t"}, None, None, settings)["council"]
    assert (built_in["checkers"], built_in["execute"], built_in["gate"]) == (None, False, 1.0)
    stored = CouncilSpec.model_validate(
        {
            "name": "c",
            "role": "DEV",
            "agents": [{"agent_id": "a"}, {"agent_id": "b"}],
            "checkers": ["quotes"],
            "execute": True,
            "gate": "off",
        }
    )
    council_ = admit({"task": "t"}, {"council": "c"}, stored, settings)["council"]
    assert (council_["checkers"], council_["execute"], council_["gate"]) == (["quotes"], True, None)
    # the run's context overrides the stored council's
    council_ = admit({"task": "t"}, {"council": "c", "gate": 0.6}, stored, settings)["council"]
    assert council_["gate"] == 0.6
