"""``council compare``'s pieces: tasks files, the outcome of two judgements, the blind pairwise
prompt, the statistics and the report; the simulator's scripted pairwise judge.
"""

from __future__ import annotations

import json
import random
import re

import pytest

from council_agents.core.settings import Settings
from council_agents.evals.compare import (
    PAIRWISE_DIR,
    CompareError,
    judge_agent,
    outcome_of,
    pairwise_prompt,
    read_tasks,
)
from council_agents.evals.compare_report import markdown, summarize, write_report
from council_agents.evals.stats import sign_test, wilson_interval
from council_agents.llm.prompt_files import PromptFiles
from council_agents.sim_vllm.truth import Authors, Truth, shape


@pytest.mark.parametrize(
    "verdicts,outcome",
    [
        (["candidate", "candidate"], "win"),
        (["baseline", "baseline"], "loss"),
        (["tie", "tie"], "tie"),
        (["baseline", "candidate"], "tie"),  # swayed by the order
        (["candidate", "tie"], "tie"),
        ([], "tie"),
    ],
)
def test_the_candidate_wins_only_when_both_orders_prefer_it(verdicts, outcome):
    assert outcome_of(verdicts) == outcome


def test_a_tasks_file_is_read_with_defaults(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(
        json.dumps({"task": "Add a cache to the price lookup."})
        + "\n\n"
        + json.dumps(
            {
                "id": "q1",
                "role": "QA",
                "task": "Test the refund flow.",
                "rubric": {"coverage": "every path"},
                "constraints": "no new tools",
            }
        )
        + "\n"
    )
    first, second = read_tasks(path)
    assert first == {
        "id": "line1",
        "role": "DEV",
        "task": "Add a cache to the price lookup.",
        "rubric": {},
        "constraints": "",
    }
    assert second["id"] == "q1" and second["role"] == "QA"
    assert second["rubric"] == {"coverage": "every path"}
    assert second["constraints"] == "no new tools"


@pytest.mark.parametrize(
    "lines,needle",
    [
        (['{"task": "a"}', "{not json"], ":2: not JSON"),
        (['{"task": "a", "role": "PM"}'], ":1: role: unknown role 'PM'"),
        (['{"task": ""}'], ":1: task: String should have at least 1 character"),
        (['{"task": "a", "owner": "x"}'], ":1: unknown field 'owner'"),
        (['{"id": "x", "task": "a"}', '{"id": "x", "task": "b"}'], ":2: id 'x' is repeated"),
        (["[1]"], ":1: must be a JSON object"),
        ([""], "has no task"),
    ],
)
def test_a_bad_tasks_file_names_the_line_and_the_field(tmp_path, lines, needle):
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CompareError, match="^--tasks: ") as caught:
        read_tasks(path)
    assert needle in str(caught.value)


def test_the_pairwise_prompt_shows_neutral_labels_and_nothing_of_the_sides():
    task = {
        "id": "t1",
        "role": "DEV",
        "task": "Add retries.",
        "rubric": {"correctness": "no double charge"},
        "constraints": "Python 3.11",
    }
    settings = Settings()
    agent = judge_agent(settings, "DEV", "m")
    labels, prompt = pairwise_prompt(task, agent, ["FIRST TEXT", "SECOND TEXT"], settings)
    assert labels == ["P1", "P2"]
    files = PromptFiles(PAIRWISE_DIR).snapshot()
    system, user = (m.content for m in prompt.render(files)[0])
    assert "judge of two proposals written for a DEV task" in str(system)
    text = str(user)
    # each text fenced as data under its label, in the given order
    assert re.search(r"## Proposal P1\n<data-[0-9a-f]{12}>\nFIRST TEXT\n</data-", text)
    assert text.index("FIRST TEXT") < text.index("## Proposal P2") < text.index("SECOND TEXT")
    assert "no double charge" in text and "Python 3.11" in text and "labelled P1, P2" in text
    for word in ("baseline", "candidate", "prompt set"):
        assert word not in text.lower()
    assert set(files.rendered) == {"judge.md", "compare.md"}


def _side(status: str = "completed", tokens: int = 100, wall: float = 2.0) -> dict:
    return {
        "thread": "t",
        "status": status,
        "reason": "",
        "winner": "agent-dev-001" if status == "completed" else None,
        "content": "x",
        "prompt_set": "d" if status == "completed" else None,
        "prompts_changed": False,
        "prompt_tokens": tokens,
        "cached_tokens": 0,
        "completion_tokens": tokens // 2,
        "llm_calls": 17,
        "wall_s": wall,
    }


def _record(task: str, outcome: str, disagree: bool = False, **sides: dict) -> dict:
    return {
        "task_id": task,
        "role": "DEV",
        "baseline": sides.get("baseline", _side()),
        "candidate": sides.get("candidate", _side(tokens=60, wall=1.0)),
        "verdicts": [],
        "outcome": outcome,
        "orders_disagree": disagree,
        "judge_model": "m",
        "judge_prompt_tokens": 0,
        "judge_completion_tokens": 0,
        "note": "",
    }


def test_the_summary_counts_wins_ties_losses_with_wilson_and_the_sign_test(tmp_path):
    records = [_record(f"t{i}", "win") for i in range(8)]
    records += [_record("t8", "loss"), _record("t9", "tie", disagree=True)]
    records += [_record("t10", "tie"), _record("t9", "tie", disagree=True)]  # t9 written twice
    summary = summarize(records, "(installed prompts)", "/cand")
    assert (summary["tasks"], summary["wins"], summary["ties"], summary["losses"]) == (11, 8, 2, 1)
    assert summary["win_rate"] == pytest.approx(8 / 9)
    assert (summary["ci_low"], summary["ci_high"]) == pytest.approx(wilson_interval(8, 9))
    assert summary["sign_test_p"] == pytest.approx(2 * (1 + 9) / 2**9)  # exact binomial
    assert summary["orders_disagree"] == 1
    assert summary["disagreement_share"] == pytest.approx(1 / 11)
    base, cand = summary["sets"]
    assert (base["prompt_tokens_per_task"], cand["prompt_tokens_per_task"]) == (100, 60)
    assert (base["wall_s_per_task"], cand["wall_s_per_task"]) == (2.0, 1.0)
    text = markdown(records, summary, "title")
    assert "11 task(s): 8 won, 2 tied, 1 lost." in text
    assert "sign test p = 0.0391" in text
    write_report(records, tmp_path, baseline_dir="b", candidate_dir="c", title="a; b")
    assert json.loads((tmp_path / "summary.json").read_text())["wins"] == 8
    assert (tmp_path / "compare.png").read_bytes().startswith(b"\x89PNG")


def test_a_failed_side_is_counted_and_nothing_decided_has_no_rate():
    records = [_record("t1", "tie", candidate=_side("error"), baseline=_side("error"))]
    summary = summarize(records, "b", "c")
    assert summary["win_rate"] is None and summary["ci_low"] is None
    assert summary["sign_test_p"] == 1.0
    assert [s["failed"] for s in summary["sets"]] == [1, 1]
    assert "failed" in markdown(records, summary, "")


def test_sign_test():
    assert sign_test(0, 0) == 1.0
    assert sign_test(5, 0) == pytest.approx(2 / 32)
    assert sign_test(3, 3) == 1.0


def _pairwise_prompt(first: str, second: str) -> str:
    return (
        f"## Task\nt\n\n## Proposal P1\n{first}\n\n## Proposal P2\n{second}\n\n## Your assignment\n"
    )


@pytest.mark.parametrize(
    "points,bias,expected",
    [
        ((3.0, 0.0), 0.0, ["P1", "P2"]),  # the marked text, wherever it is shown
        ((0.0, 0.0), 0.0, ["tie", "tie"]),
        ((1.0, 0.0), 2.0, ["P1", "P1"]),  # swayed by the order
    ],
)
def test_the_simulated_pairwise_judge_prefers_the_marked_prompt_s_text(points, bias, expected):
    authors = Authors()
    truth = Truth(marks={"good": points[0], "plain": points[1]}, position_bias=bias)
    authors.remember("agent-dev-001", "better text", deliberation="d1", words=frozenset({"good"}))
    authors.remember("agent-dev-001", "other text", deliberation="d2", words=frozenset({"plain"}))
    answers = []
    for first, second in (("better text", "other text"), ("other text", "better text")):
        doc = {"comparison": "c", "preferred": "P1"}
        shaped = shape(
            doc, "judge", _pairwise_prompt(first, second), {}, random.Random(0), truth, authors, 9
        )
        answers.append(shaped["preferred"])
    assert answers == expected


def test_marks_are_points_for_a_prompt_containing_the_word_and_its_revisions():
    truth = Truth(marks={"Zephyrquux": 3.0, "Quuxzephyr": -1.0})
    assert truth.marked("You are a DEV. Zephyrquux.") == {"Zephyrquux"}
    assert truth.points(truth.marked("Zephyrquux and Quuxzephyr")) == 2.0
    assert truth.points(truth.marked("nothing")) == 0.0
    authors = Authors()
    authors.remember("a1", "proposal", deliberation="d1", words=frozenset({"Zephyrquux"}))
    doc = {"proposal": "", "addressed": []}
    who = {"agent": "a1", "deliberation": "d1", "round": "1"}
    revised = shape(doc, "revise", "revise it", who, random.Random(0), truth, authors, 30)
    assert authors.words[revised["proposal"].strip()] == {"Zephyrquux"}  # kept by the revision
    assert authors.inherited("d2", "a1") == frozenset()
