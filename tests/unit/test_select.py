"""Judge and ballot schemas, and the one aggregation that decides (and justifies) the winner."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from council_agents.core.request import normal_rubric
from council_agents.nodes.judge import judgement_model, weighted_total
from council_agents.nodes.select import decide, kendall_tau
from council_agents.nodes.vote import ballot_model, borda
from tests.helpers import council

IDS = ["agent-dev-001", "agent-dev-002", "agent-dev-003"]
RUBRIC = normal_rubric({"correctness": {"meaning": "m", "weight": 3}, "risk": "r"})


def assessment(score: int, verdict: str) -> dict:
    return {
        "strengths": [f"strong {verdict}"],
        "defects": [],
        "verdict": verdict,
        "scores": {"correctness": score, "risk": score},
    }


def judgement(order: list[str], scores: dict[str, int]) -> dict:
    assessments = {a: assessment(scores[a], f"verdict on {a}") for a in order}
    return {
        "judge": "judge-dev",
        "model": "m",
        "order": order,
        "assessments": assessments,
        "totals": {a: weighted_total(x["scores"], RUBRIC) for a, x in assessments.items()},
    }


def state(judgements: list[dict], ballots: list[dict], aggregator: str = "judge+vote") -> dict:
    c = {**council("DEV", 3, 1), "rubric": RUBRIC, "aggregator": aggregator}
    return {
        "deliberation_id": "d",
        "task": "t",
        "council": c,
        "drafts": [{"agent_id": a, "version": 1, "content": a} for a in IDS],
        "critiques": [],
        "judgements": judgements,
        "ballots": ballots,
    }


def ballots(*rankings: list[str]) -> list[dict]:
    return [{"voter": f"v{i}", "ranking": r, "reason": "r"} for i, r in enumerate(rankings)]


def test_judge_schema_wants_evidence_then_scores_for_every_label():
    model = judgement_model(("P1", "P2"), ("correctness", "risk"))
    schema = model.model_json_schema(by_alias=True)
    assert schema["required"] == ["P1", "P2"]
    assessment_schema = schema["$defs"]["Assessment"]
    assert list(assessment_schema["properties"]) == ["strengths", "defects", "scores", "verdict"]
    ok = {"P1": assessment(7, "a"), "P2": assessment(5, "b")}
    model.model_validate(ok)
    with pytest.raises(ValidationError):
        model.model_validate({"P1": ok["P1"]})  # a proposal left out
    with pytest.raises(ValidationError):
        model.model_validate({**ok, "P2": {**ok["P2"], "scores": {"correctness": 11, "risk": 1}}})


def test_ballot_must_rank_every_peer_exactly_once():
    model = ballot_model(("P1", "P2", "P3"))
    model.model_validate({"reason": "r", "ranking": ["P3", "P1", "P2"]})
    for bad in (["P1", "P1", "P2"], ["P1", "P2"], ["P1", "P2", "P4"]):
        with pytest.raises(ValidationError):
            model.model_validate({"reason": "r", "ranking": bad})
    assert model.model_json_schema()["properties"]["ranking"]["uniqueItems"] is True


def test_borda_and_weighted_total():
    points = borda(ballots(["a", "b"], ["a", "c"], ["b", "c"]), ["a", "b", "c"])
    assert points == {"a": 2, "b": 1, "c": 0}
    assert weighted_total({"correctness": 8, "risk": 4}, RUBRIC) == 7.0  # (8*3 + 4*1) / 4


def test_kendall_tau():
    assert kendall_tau({"a": 3, "b": 2, "c": 1}, {"a": 9, "b": 5, "c": 0}) == 1.0
    assert kendall_tau({"a": 3, "b": 2, "c": 1}, {"a": 0, "b": 5, "c": 9}) == -1.0


def test_agreeing_judges_decide_and_the_story_is_about_the_winner():
    scores = {"agent-dev-001": 6, "agent-dev-002": 8, "agent-dev-003": 5}
    st = state(
        [judgement(IDS, scores), judgement(IDS[::-1], scores)],
        ballots(
            ["agent-dev-001", "agent-dev-003"],
            ["agent-dev-001", "agent-dev-003"],
            ["agent-dev-001", "agent-dev-002"],
        ),
    )
    d = decide(st)
    assert d["winner"] == "agent-dev-002" and d["decided_by"] == "judges"
    assert d["judges_agree"] is True and d["rank_agreement"] == 1.0
    assert d["vote_winner"] == "agent-dev-001"  # recorded, not used: the judges agreed
    assert d["justification"].startswith("agent-dev-002 has the best weighted mean score, 8.00")
    assert "verdict on agent-dev-002" in d["justification"]
    assert "verdict on agent-dev-001" not in d["justification"]
    assert [r["agent_id"] for r in d["ranking"]] == [
        "agent-dev-002",
        "agent-dev-001",
        "agent-dev-003",
    ]


def test_disagreeing_judges_hand_the_decision_to_the_peer_vote():
    first = judgement(IDS, {"agent-dev-001": 9, "agent-dev-002": 6, "agent-dev-003": 5})
    second = judgement(IDS[::-1], {"agent-dev-001": 5, "agent-dev-002": 6, "agent-dev-003": 9})
    st = state(
        [first, second],
        ballots(
            ["agent-dev-002", "agent-dev-003"],
            ["agent-dev-002", "agent-dev-003"],
            ["agent-dev-002", "agent-dev-001"],
        ),
    )
    d = decide(st)
    assert d["judges_agree"] is False and d["decided_by"] == "vote"
    assert d["winner"] == d["vote_winner"] == "agent-dev-002"
    assert d["justification"].startswith("agent-dev-002 won the peer vote, which decided")
    # the judges alone average 7, 6 and 7: a tie, broken by the vote and said so
    judge_only = decide(state([first, second], st["ballots"], aggregator="judge"))
    assert judge_only["decided_by"] == "tiebreak"
    assert judge_only["winner"] in ("agent-dev-001", "agent-dev-003")
    assert "tie-break" in judge_only["justification"]


def test_vote_aggregator_needs_no_judge():
    d = decide(
        state(
            [],
            ballots(
                ["agent-dev-003", "agent-dev-001"],
                ["agent-dev-003", "agent-dev-002"],
                ["agent-dev-001", "agent-dev-002"],
            ),
            aggregator="vote",
        )
    )
    assert d["winner"] == "agent-dev-003" and d["judges_agree"] is None
    assert d["justification"].startswith("agent-dev-003 won the peer vote, which decided")


def test_a_two_agent_vote_cannot_decide_and_says_so():
    two = IDS[:2]
    st = {
        **state(
            [],
            [
                {"voter": IDS[0], "ranking": [IDS[1]], "reason": "r"},
                {"voter": IDS[1], "ranking": [IDS[0]], "reason": "r"},
            ],
            aggregator="vote",
        ),
        "drafts": [{"agent_id": a, "version": 0, "content": a} for a in two],
    }
    d = decide(st)
    assert d["decided_by"] == "tiebreak" and d["winner"] == IDS[0]  # the lower id
    assert "a vote between two agents cannot decide" in d["justification"]
    assert "lower agent id" in d["justification"]


def test_one_judgement_cannot_agree_with_itself():
    only = judgement(IDS, {"agent-dev-001": 9, "agent-dev-002": 6, "agent-dev-003": 5})
    d = decide(state([only], ballots([IDS[1], IDS[2]])))
    assert d["judges_agree"] is None and d["rank_agreement"] is None
    assert d["decided_by"] == "judges" and d["winner"] == IDS[0]


def test_pointwise_judgements_are_averaged_per_proposal():
    alone = [judgement([a], {a: s}) for a, s in zip(IDS, (4, 8, 6), strict=True)]
    d = decide(state(alone, []))
    assert d["winner"] == IDS[1] and d["judges_agree"] is None and d["decided_by"] == "judges"
    assert [r["agent_id"] for r in d["ranking"]] == [IDS[1], IDS[2], IDS[0]]


def test_with_neither_a_judgement_nor_a_ballot_the_deliberation_fails():
    from council_agents.core.errors import AnswerRejected

    with pytest.raises(AnswerRejected, match="no judgement and no ballot"):
        decide(state([], []))
