"""The judge's schema rejects incomplete judgements; ranking and ties are deterministic."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from nodes.select import judgement_model, rank

IDS = ["agent-dev-001", "agent-dev-002", "agent-dev-003"]
CRIT = ["correctness", "root cause"]


def judgement(scores, winner="agent-dev-001"):
    return {
        "scores": {
            a: {"scores": dict(zip(CRIT, s, strict=True)), "rationale": f"r {a}"}
            for a, s in zip(IDS, scores, strict=True)
        },
        "winner": winner,
        "justification": "because",
    }


def test_schema_accepts_a_complete_judgement():
    m = judgement_model(tuple(IDS), tuple(CRIT))
    out = m.model_validate(judgement([(1, 2), (3, 4), (5, 6)])).model_dump(by_alias=True)
    assert out["scores"]["agent-dev-002"]["scores"] == {"correctness": 3, "root cause": 4}


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda j: j["scores"].pop("agent-dev-002"), "agent-dev-002"),
        (lambda j: j["scores"]["agent-dev-001"]["scores"].pop("root cause"), "root cause"),
        (
            lambda j: j["scores"]["agent-dev-001"]["scores"].update(correctness=11),
            "less than or equal to 10",
        ),
        (lambda j: j.update(winner="agent-dev-009"), "winner"),
        (lambda j: j.update(justification=""), "justification"),
        (lambda j: j["scores"].update({"agent-x": j["scores"]["agent-dev-001"]}), "agent-x"),
    ],
)
def test_schema_rejects_incomplete_or_invalid(mutate, needle):
    j = judgement([(1, 2), (3, 4), (5, 6)])
    mutate(j)
    with pytest.raises(ValidationError, match=needle):
        judgement_model(tuple(IDS), tuple(CRIT)).model_validate(j)


def test_schema_is_strict_json_schema_with_enums():
    schema = judgement_model(tuple(IDS), tuple(CRIT)).model_json_schema(by_alias=True)
    assert schema["properties"]["winner"]["enum"] == IDS
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["CriterionScores"]["properties"]["correctness"]["type"] == "integer"
    assert set(schema["$defs"]["Scores"]["required"]) == set(IDS)


def test_rank_by_mean_score():
    r = rank(judgement([(1, 2), (9, 9), (5, 6)]), IDS)
    assert [x["agent_id"] for x in r] == ["agent-dev-002", "agent-dev-003", "agent-dev-001"]
    assert [x["rank"] for x in r] == [1, 2, 3]
    assert r[0]["total"] == 9.0


def test_ties_go_to_judges_winner_then_lowest_id():
    tied = [(5, 5), (5, 5), (5, 5)]
    assert rank(judgement(tied, winner="agent-dev-003"), IDS)[0]["agent_id"] == "agent-dev-003"
    r = rank(judgement([(5, 5), (5, 5), (1, 1)], winner="agent-dev-003"), IDS)
    assert [x["agent_id"] for x in r] == ["agent-dev-001", "agent-dev-002", "agent-dev-003"]
