"""The router decides every stage from the drafts and critiques alone."""

from __future__ import annotations

import pytest
from langgraph.types import Send

from council_agents.graph.routing import after_select, route
from tests.helpers import council


def state(n=3, rounds=1, drafts=(), critiques=()):
    return {
        "deliberation_id": "d",
        "task": "t",
        "council": council("QA", n, rounds),
        "drafts": list(drafts),
        "critiques": list(critiques),
        "evidence": [grounded(d) for d in drafts],  # the checkers read every draft (passed)
    }


def grounded(draft, hard=(), outputs=None, checker="plan"):
    """What ``nodes.ground`` writes for a draft its checker read."""
    return {
        "agent_id": draft["agent_id"],
        "version": draft["version"],
        "checker": checker,
        "hard": list(hard),
        "notes": [],
        "outputs": outputs,
    }


def ids(n=3):
    return [f"agent-qa-{i:03d}" for i in range(1, n + 1)]


def drafts(version, n=3):
    return [
        {"agent_id": a, "version": v, "content": f"{a} v{v}"}
        for v in range(version + 1)
        for a in ids(n)
    ]


def crits(rnd, n=3, severity="major"):
    defect = {"severity": severity, "where": "Steps", "what": "w", "fix": "f"}
    return [
        {
            "round": rnd,
            "critic": c,
            "author": a,
            "summary": f"{c} on {a} r{rnd}",
            "defects": [defect],
            "violations": [],
        }
        for a in ids(n)
        for c in ids(n)
        if c != a
    ]


def test_start_sends_one_propose_per_agent():
    sends = route(state())
    assert all(isinstance(s, Send) and s.node == "propose" for s in sends)
    assert [s.arg["agent"]["agent_id"] for s in sends] == ids()


def test_only_missing_proposals_are_sent_again():
    sends = route(state(drafts=drafts(0)[:2]))
    assert [s.arg["agent"]["agent_id"] for s in sends] == ["agent-qa-003"]


def test_zero_rounds_goes_straight_to_selection_then_select():
    sends = route(state(rounds=0, drafts=drafts(0)))
    # judge+vote: the ballots first, every voter reading every proposal in one fixed order
    assert {s.node for s in sends} == {"vote"}
    votes = [s for s in sends if s.node == "vote"]
    assert [v.arg["agent"]["agent_id"] for v in votes] == ids()
    assert len({tuple(v.arg["order"]) for v in votes}) == 1
    for v in votes:  # a voter reads every proposal (it ranks only its peers: nodes.vote)
        assert sorted(v.arg["order"]) == ids() and set(v.arg["proposals"]) == set(ids())
    split = [  # first choices not unanimous: the judges are asked
        {"voter": "agent-qa-001", "ranking": ["agent-qa-002", "agent-qa-003"]},
        {"voter": "agent-qa-002", "ranking": ["agent-qa-003", "agent-qa-001"]},
        {"voter": "agent-qa-003", "ranking": ["agent-qa-001", "agent-qa-002"]},
    ]
    judges = route({**state(rounds=0, drafts=drafts(0)), "ballots": split})
    assert {s.node for s in judges} == {"judge"}
    # the default presentation: every rotation, so each proposal is shown once in each position
    orders = [j.arg["order"] for j in judges]
    assert len(orders) == 3 and all(sorted(o) == ids() for o in orders)
    assert all(sorted(o[k] for o in orders) == ids() for k in range(3))
    done = {"judgements": [{"order": o} for o in orders], "ballots": split}
    assert route({**state(rounds=0, drafts=drafts(0)), **done}) == "select"
    half = {"judgements": done["judgements"][:1], "ballots": split}
    again = route({**state(rounds=0, drafts=drafts(0)), **half})
    assert [(s.node, s.arg["agent"]["agent_id"]) for s in again] == [("judge", "judge-qa")] * 2
    unanimous = [  # every voter who could put agent-qa-001 first did: no judge is asked
        {"voter": "agent-qa-001", "ranking": ["agent-qa-003", "agent-qa-002"]},
        {"voter": "agent-qa-002", "ranking": ["agent-qa-001", "agent-qa-003"]},
        {"voter": "agent-qa-003", "ranking": ["agent-qa-001", "agent-qa-002"]},
    ]
    assert route({**state(rounds=0, drafts=drafts(0)), "ballots": unanimous}) == "select"
    judge_only = state(rounds=0, drafts=drafts(0))
    judge_only["council"] = {**judge_only["council"], "aggregator": "judge"}
    assert {s.node for s in route(judge_only)} == {"judge", "vote"}  # together, as before


@pytest.mark.parametrize("scheme,shown", [("pair", 2), ("pointwise", 3), ("rotations", 3)])
def test_each_presentation_scheme_shows_what_it_says(scheme, shown):
    st = state(rounds=0, drafts=drafts(0))
    st["council"] = {**st["council"], "presentation": scheme, "aggregator": "judge"}
    orders = [s.arg["order"] for s in route(st) if s.node == "judge"]
    assert len(orders) == shown
    if scheme == "pair":
        assert orders[0] == orders[1][::-1]
    if scheme == "pointwise":
        assert sorted(o[0] for o in orders) == ids() and all(len(o) == 1 for o in orders)


def test_a_round_without_severe_defects_converges_before_revising():
    sends = route(state(rounds=3, drafts=drafts(0), critiques=crits(1, severity="minor")))
    assert {s.node for s in sends} == {"vote"}  # selection: the ballots first
    sends = route(state(rounds=3, drafts=drafts(0), critiques=crits(1, severity="blocker")))
    assert {s.node for s in sends} == {"revise"}


def test_budget_goes_to_selection_before_a_stage_that_could_exceed_it():
    st = state(rounds=2, drafts=drafts(0))
    st["calls"] = [{"prompt_tokens": 3000, "completion_tokens": 1000}]
    st["council"] = {**st["council"], "token_budget": 1_000_000, "aggregator": "judge"}
    assert {s.node for s in route(st)} == {"critique"}
    st["council"] = {**st["council"], "token_budget": 20_000}
    assert {s.node for s in route(st)} == {"judge", "vote"}
    # when the judges no longer fit, the vote decides alone
    st["council"] = {**st["council"], "token_budget": 12_000}
    assert {s.node for s in route(st)} == {"vote"}
    caps = [s.arg["token_cap"] for s in route(st)]
    assert all(c is not None and 3 * c <= 12_000 - 4000 for c in caps)


def test_critique_every_ordered_pair_of_distinct_agents():
    sends = route(state(n=4, drafts=drafts(0, 4)))
    pairs = {(s.arg["agent"]["agent_id"], s.arg["author"]) for s in sends}
    assert len(sends) == 12 and len(pairs) == 12
    assert all(critic != author for critic, author in pairs)
    assert all(s.node == "critique" and s.arg["round"] == 1 for s in sends)
    assert all(s.arg["proposal"] == f"{s.arg['author']} v0" for s in sends)


def test_each_author_revises_its_own_with_the_critiques_it_received():
    sends = route(state(drafts=drafts(0), critiques=crits(1)))
    assert [s.node for s in sends] == ["revise"] * 3
    for s in sends:
        me = s.arg["agent"]["agent_id"]
        assert s.arg["proposal"] == f"{me} v0"
        assert [c["critic"] for c in s.arg["critiques"]] == sorted(i for i in ids() if i != me)
        assert all(c["author"] == me for c in s.arg["critiques"])


def test_second_round_critiques_the_revisions_then_selects():
    st = state(rounds=2, drafts=drafts(1), critiques=crits(1))
    sends = route(st)
    assert {s.node for s in sends} == {"critique"} and {s.arg["round"] for s in sends} == {2}
    assert all(s.arg["proposal"].endswith("v1") for s in sends)
    final = route(state(rounds=2, drafts=drafts(2), critiques=crits(1) + crits(2)))
    assert {s.node for s in final} == {"vote"}


def test_after_select_asks_for_approval_only_when_required():
    assert after_select({"council": {**council(), "require_approval": True}}) == "approve"
    assert after_select({"council": council()}) == "publish"
