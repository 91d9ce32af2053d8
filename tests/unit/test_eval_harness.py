"""``council eval`` on the simulated vLLM with scripted HumanEval answers: every strategy's pass@1,
calls and tokens are what the script implies, and a stopped eval re-asks nothing it finished.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from council_agents.core.settings import LLMSettings, Settings
from council_agents.evals.harness import Plan, Runner, eval_settings, run_id, slug
from council_agents.evals.humaneval import load_problems
from council_agents.evals.report import RESULTS_FILE, read_results, write_report
from council_agents.evals.stats import summarize
from council_agents.evals.strategies import STRATEGIES
from council_agents.llm.client import LLM
from council_agents.llm.prompt_files import PromptFiles
from council_agents.sim_vllm import FaultRule, HumanEvalScript, ServerThread, SimConfig, SimVLLM
from tests.eval_script import SCRIPT, N, expected, expected_council
from tests.helpers import sim_requests
from tests.unit.test_prompts import STAGE_VALUES

PROBLEMS = load_problems("test", 6)
ALL = ["single", "vote", "judge", "peervote", "council1", "council2", "oracle"]
THREAD = {name: name for name in ALL} | {"vote": "samples", "oracle@3": "samples"}


@pytest.fixture(scope="module")
def scripted_sim():
    with ServerThread(SimVLLM(SimConfig(time_scale=0), humaneval=SCRIPT)) as sim:
        yield sim


async def served_settings(base_url: str) -> Settings:
    """Settings naming the model the server serves (as ``council eval`` fixes it)."""
    settings = Settings(llm=LLMSettings(base_url=base_url))
    return settings.with_llm(model=await LLM(settings.llm).default_model())


def run_eval(sim, out, names, problems=PROBLEMS, saver=None, rid=None):
    async def main():
        settings = await served_settings(sim.base_url)
        strategies = [STRATEGIES[n] if isinstance(n, str) else n for n in names]
        plan = Plan(problems, strategies, N, out)
        runner = Runner(
            plan,
            eval_settings(settings),
            saver or InMemorySaver(),
            rid or run_id(out, {}),
        )
        return await runner.run()

    return asyncio.run(main())


# --- the tests -----------------------------------------------------------------------------------


def test_every_strategy_matches_the_script(scripted_sim, tmp_path):
    assert run_eval(scripted_sim, tmp_path, ALL) == len(PROBLEMS) * (len(ALL) - 1)
    results = read_results(tmp_path / RESULTS_FILE)
    assert len(results) == len(PROBLEMS) * len(ALL)
    log = sim_requests(scripted_sim)
    for record in results:
        problem = next(p for p in PROBLEMS if p["task_id"] == record["task_id"])
        passed, calls, tokens = expected(problem, record["strategy"])
        got = (record["passed"], record["llm_calls"], record["completion_tokens"])
        assert got == (passed, calls, tokens), (record["task_id"], record["strategy"])
        # the server's own count of the same calls (vote and oracle share theirs)
        asked = [
            e
            for e in log
            if e["deliberation"].split(".")[1:] == [slug(problem), THREAD[record["strategy"]]]
        ]
        assert len(asked) == calls
        assert sum(e["prompt_tokens"] for e in asked) == record["prompt_tokens"]
        assert sum(e["cached_tokens"] for e in asked) == record["cached_tokens"]
        assert sum(e["completion_tokens"] for e in asked) == tokens
    # the script makes the strategies differ, so the comparison above tells them apart
    outcomes = {
        name: tuple(r["passed"] for r in results if r["strategy"] == name)
        for name in {r["strategy"] for r in results}
    }
    assert len(set(outcomes.values())) >= 4, outcomes
    # and the summary is computed from these very records
    summaries = {s["strategy"]: s for s in write_report(results, tmp_path)}
    for name, passes in outcomes.items():
        assert summaries[name]["passed"] == sum(passes)
        assert summaries[name]["pass_at_1"] == sum(passes) / len(PROBLEMS)
    assert (tmp_path / "summary.md").exists() and (tmp_path / "pass_vs_tokens.png").exists()


def test_an_ungrounded_council_deliberates_where_the_checks_would_have_decided(
    scripted_sim, tmp_path
):
    plain = dataclasses.replace(STRATEGIES["council1"], grounded=False)
    run_eval(scripted_sim, tmp_path, [plain])
    results = {r["task_id"]: r for r in read_results(tmp_path / RESULTS_FILE)}
    differ = 0
    for problem in PROBLEMS:
        record = results[problem["task_id"]]
        got = (record["passed"], record["llm_calls"], record["completion_tokens"])
        assert got == expected_council(problem, 1, grounded=False), problem["task_id"]
        differ += got != expected(problem, "council1")
    # the script has problems where the grounded council decides at once (a verified answer)
    assert differ >= 1


def asked_about(log, problems) -> list[dict]:
    slugs = {slug(p) for p in problems}
    return [e for e in log if e["deliberation"].split(".")[1] in slugs]


def test_a_resumed_eval_asks_only_what_it_had_not_finished(scripted_sim, tmp_path):
    names = ["single", "vote", "council1", "oracle"]
    saver = InMemorySaver()
    before = len(sim_requests(scripted_sim))
    assert run_eval(scripted_sim, tmp_path, names, PROBLEMS[:2], saver, "r1") == 2 * 3
    first = sim_requests(scripted_sim)[before:]
    # stopped after two problems; the same eval over four runs only the two new ones
    assert run_eval(scripted_sim, tmp_path, names, PROBLEMS[:4], saver, "r1") == 2 * 3
    second = sim_requests(scripted_sim)[before + len(first) :]
    assert asked_about(second, PROBLEMS[:2]) == []
    calls = sum(expected(p, n)[1] for p in PROBLEMS[2:4] for n in ("single", "vote", "council1"))
    assert len(second) == len(asked_about(second, PROBLEMS[2:4])) == calls
    # nothing left: nothing asked
    done = len(sim_requests(scripted_sim))
    assert run_eval(scripted_sim, tmp_path, names, PROBLEMS[:4], saver, "r1") == 0
    assert len(sim_requests(scripted_sim)) == done
    results = read_results(tmp_path / RESULTS_FILE)
    assert len(results) == len({(r["task_id"], r["strategy"]) for r in results}) == 4 * 4


class Misbehaving(HumanEvalScript):
    """First answers that hang (problem 82) or allocate without bound (problem 83)."""

    CODE = {
        82: "def {name}(*args):\n    while True:\n        pass\n",
        83: "def {name}(*args):\n    chunks = []\n    while True:\n"
        "        chunks.append(bytearray(1 << 24))\n",
    }

    def answer(self, stage, prompt, agent, round_, schema):
        problem = self.problem_in(prompt)
        if problem is not None and schema is None and problem["index"] in self.CODE:
            code = self.CODE[problem["index"]].format(name=problem["entry_point"])
            return f"```python\n{code}```\n"
        return super().answer(stage, prompt, agent, round_, schema)


def test_code_that_hangs_or_allocates_is_a_recorded_failure_and_the_eval_goes_on(tmp_path):
    script = Misbehaving(correct=1.0)
    with ServerThread(SimVLLM(SimConfig(time_scale=0), humaneval=script)) as sim:

        async def main():
            settings = await served_settings(sim.base_url)
            plan = Plan(
                PROBLEMS[:3],
                [STRATEGIES["single"], STRATEGIES["vote"]],
                N,
                tmp_path,
                timeout_s=2,
                memory_mb=256,
            )
            return await Runner(plan, eval_settings(settings), InMemorySaver(), "m").run()

        assert asyncio.run(main()) == 6
    results = {(r["task_id"], r["strategy"]): r for r in read_results(tmp_path / RESULTS_FILE)}
    assert results["HumanEval/82", "single"]["status"] == "timeout"
    assert results["HumanEval/83", "single"]["status"] == "memory"
    for strategy in ("single", "vote"):  # the problem after them is scored as usual
        assert results["HumanEval/84", strategy]["passed"]
    # answers that do not run on the examples cannot win the vote, nor pass
    assert not results["HumanEval/82", "vote"]["passed"]
    summary = {s["strategy"]: s for s in summarize(results.values())}
    assert summary["single"]["passed"] == 1 and summary["single"]["problems"] == 3


def test_an_out_dir_of_another_model_is_refused(tmp_path):
    run_id(tmp_path, {"model": "a", "samples": 3})
    assert (
        run_id(tmp_path, {"model": "a", "samples": 3})
        == json.loads((tmp_path / "eval.json").read_text())["run_id"]
    )
    with pytest.raises(ValueError, match="holds an eval with model 'a', not 'b'"):
        run_id(tmp_path, {"model": "b", "samples": 3})


def test_an_agent_without_an_acceptable_answer_is_a_failure_with_its_cost(tmp_path):
    """Garbage from the first agent, three times: single fails and counts the three attempts;
    vote goes on with the answers it has; the council leaves that proposer out and decides
    between the other two; the eval goes on.
    """
    sim = SimVLLM(
        SimConfig(time_scale=0),
        faults=[FaultRule(kind="garbage", stage="propose", agent="agent-dev-001")],
        humaneval=HumanEvalScript(correct=1.0),
    )
    with ServerThread(sim) as server:
        assert run_eval(server, tmp_path, ["single", "vote", "judge"], PROBLEMS[:2]) == 6
        log = sim_requests(server)
    results = {(r["task_id"], r["strategy"]): r for r in read_results(tmp_path / RESULTS_FILE)}
    single = results["HumanEval/82", "single"]
    assert (single["passed"], single["status"], single["llm_calls"]) == (False, "error", 3)
    assert single["reason"].startswith("no answer: propose failed for agent-dev-001: garbage")
    asked = [e for e in log if e["deliberation"].endswith("HumanEval-82.single")]
    assert single["completion_tokens"] == sum(e["completion_tokens"] for e in asked) > 0
    vote = results["HumanEval/82", "vote"]
    assert vote["passed"] and vote["llm_calls"] == 3 + 2 and vote["chosen"] == "agent-dev-002"
    assert (single["answered"], vote["answered"]) == (False, True)
    summary = {s["strategy"]: s for s in summarize(results.values())}
    assert [summary[name]["unanswered"] for name in ("single", "vote", "judge")] == [2, 0, 0]
    judge = results["HumanEval/82", "judge"]  # agent 1 is left out; two proposals remain
    assert judge["passed"] and judge["chosen"] in ("agent-dev-002", "agent-dev-003")
    asked = [e for e in log if e["deliberation"].endswith("HumanEval-82.judge")]
    assert judge["llm_calls"] == len(asked) and judge["prompt_tokens"] == sum(
        e["prompt_tokens"] for e in asked
    )


@pytest.mark.parametrize("stage", list(STAGE_VALUES))
def test_eval_prompts_render_for_every_stage(stage):
    """The eval's prompt files (package data) know every placeholder they use; proposals shown
    to judges and voters are followed by the assignment (where the simulator finds their end).
    """
    prompts = PromptFiles(eval_settings(Settings()).llm.prompts_dir)
    text = prompts.render(stage, **STAGE_VALUES[stage])
    system = prompts.render("roles/judge" if stage == "judge" else "roles/dev", role="DEV")
    assert text.startswith("T") and "Python" in system
    if stage in ("judge", "vote"):
        assert "P\n\n## Your assignment" in text


def test_adaptive_is_decided_by_the_checks_when_an_answer_matches_the_stated_results(
    scripted_sim, tmp_path
):
    """An answer that matches every result the docstring states decides at once: the N first
    answers and nothing else (no critique, no ballot, no judge).
    """
    from council_agents.checks import code

    run_eval(scripted_sim, tmp_path, ["adaptive"])
    results = {r["task_id"]: r for r in read_results(tmp_path / RESULTS_FILE)}
    settled = 0
    for problem in PROBLEMS:
        record = results[problem["task_id"]]
        assert record.get("answered", True), problem["task_id"]
        right = [SCRIPT.first_correct(problem, f"agent-dev-00{i}") for i in range(1, N + 1)]
        if any(right) and code.expectations(problem["prompt"], problem["entry_point"]):
            assert record["passed"] and record["llm_calls"] == N, problem["task_id"]
            settled += 1
    assert settled >= 2  # the script gives some problems a right first answer
