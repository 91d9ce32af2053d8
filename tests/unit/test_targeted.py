"""Targeted deliberation on the simulated vLLM, counted in its request log: critics per
proposal (a sparse ring), only authors with a severe defect revise, an unchanged draft is not
critiqued again, and the judges are asked only when the ballots are not unanimous.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from council_agents.core.context import Context
from council_agents.core.progress import critic_pairs, stop_reason
from council_agents.core.request import RequestError, admit
from council_agents.core.settings import LLMSettings, Settings
from council_agents.graph.routing import carried_drafts, route
from council_agents.nodes.vote import unanimous
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from council_agents.sim_vllm.truth import Truth
from tests.helpers import TASKS, council, deliberate, sim_requests

UNDER_REVIEW = re.compile(r"Review proposal (P\d+) \(round (\d+)\); your own proposal is (P\d+)")


async def run(
    truth: Truth | None, did: str, rounds: int, agents: int = 3, seed: int = 0, **context: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One deliberation on its own simulator: the final values and the simulator's log."""
    config = SimConfig(time_scale=0, truth=truth, log_prompts=True, seed=seed)
    with ServerThread(SimVLLM(config)) as sim:
        task = TASKS[0]
        outcome = await deliberate(
            InMemorySaver(),
            did,
            {"task": task["task"], "role": task["role"], "rounds": rounds},
            Context(agents=agents, **context),
            Settings(llm=LLMSettings(base_url=sim.base_url)),
        )
        assert outcome.status == "completed"
        return outcome.values, [e for e in sim_requests(sim) if e["deliberation"] == did]


def asked(log: list[dict[str, Any]], stage: str, round_: int | None = None) -> list[dict]:
    return [e for e in log if e["stage"] == stage and (round_ is None or int(e["round"]) == round_)]


# ---- critics per proposal ------------------------------------------------------------------


@pytest.mark.parametrize("agents", [3, 4])
async def test_with_one_critic_each_proposal_gets_exactly_one_critique_per_round(agents):
    values, log = await run(None, f"ring-{agents}", rounds=2, agents=agents, critics=1)
    ids = [a["agent_id"] for a in values["council"]["agents"]]
    for round_ in (1, 2):
        critiques = asked(log, "critique", round_)
        assert len(critiques) == agents  # not agents * (agents - 1)
        assert sorted(e["agent"] for e in critiques) == ids  # each agent critiques once
        reviewed = [UNDER_REVIEW.search(e["prompt"]) for e in critiques]
        assert all(reviewed)
        labels = [m.group(1) for m in reviewed if m]
        assert sorted(labels) == sorted(set(labels)) and len(labels) == agents
        assert all(m.group(1) != m.group(3) for m in reviewed if m)  # never its own
        # the ring: author i is critiqued by agent i+1
        written = [c for c in values["critiques"] if c["round"] == round_]
        assert {(c["critic"], c["author"]) for c in written} == {
            (ids[(i + 1) % agents], a) for i, a in enumerate(ids)
        }
    event = values["result"].model_dump(mode="json")
    assert all(len(p["critiques_received"]) == 2 for p in event["proposals"])


async def test_every_critic_of_a_round_reads_the_same_proposals_first():
    _, log = await run(None, "ring-prefix", rounds=1, critics=2)
    prompts = [e["prompt"] for e in asked(log, "critique", 1)]
    heads = {p[: p.index("## Your assignment")] for p in prompts}
    assert len(prompts) == 6 and len(heads) == 1  # only the last lines differ
    revisions = [e["prompt"] for e in asked(log, "revise", 1)]
    assert revisions and all(
        r.split("<|im_start|>user\n", 1)[1].startswith(
            next(iter(heads)).split("<|im_start|>user\n", 1)[1]
        )
        for r in revisions
    )


def test_critics_is_validated_at_admission_in_one_line():
    with pytest.raises(RequestError) as refused:
        admit({"task": "t"}, {"agents": 3, "critics": 3}, None, LLMSettings(model="m"))
    assert refused.value.field == "critics"
    assert str(refused.value.message).endswith("the most is 2 (every peer)")
    assert "\n" not in str(refused.value)
    assert council("QA", 5)["critics"] is None  # default: every peer
    ok = admit({"task": "t"}, {"agents": 5, "critics": 2}, None, LLMSettings(model="m"))
    assert ok["council"]["critics"] == 2


def test_the_ring_skips_agents_left_out_and_unchanged_drafts():
    st = {
        "deliberation_id": "d",
        "task": "t",
        "council": {**council("QA", 4), "critics": 1},
        "drafts": [
            {"agent_id": f"agent-qa-00{i}", "version": 0, "content": f"v0 {i}"} for i in (1, 2, 4)
        ],
    }  # agent-qa-003 was left out: the ring closes over the others
    assert critic_pairs(st) == [
        ("agent-qa-002", "agent-qa-001"),
        ("agent-qa-004", "agent-qa-002"),
        ("agent-qa-001", "agent-qa-004"),
    ]
    st["drafts"] += [
        {"agent_id": "agent-qa-001", "version": 1, "content": "v0 1"},  # unchanged
        {"agent_id": "agent-qa-002", "version": 1, "content": "v1 2"},
        {"agent_id": "agent-qa-004", "version": 1, "content": "v1 4"},
    ]
    assert critic_pairs(st) == [("agent-qa-004", "agent-qa-002"), ("agent-qa-001", "agent-qa-004")]


# ---- who revises, and what is critiqued again ------------------------------------------------


async def test_an_author_with_only_minor_defects_is_not_revised_nor_critiqued_again():
    truth = Truth(major_until_round=10, minor_authors=["agent-dev-001"])
    values, log = await run(truth, "minor", rounds=2)
    revisers = {(e["agent"], int(e["round"])) for e in asked(log, "revise")}
    assert revisers == {(a, r) for a in ("agent-dev-002", "agent-dev-003") for r in (1, 2)}
    assert len(asked(log, "revise")) == 4  # not 6
    # round 1: every pair; round 2: agent-dev-001's draft did not change, so nobody critiques it
    assert len(asked(log, "critique", 1)) == 6 and len(asked(log, "critique", 2)) == 4
    second = [c for c in values["critiques"] if c["round"] == 2]
    assert len(second) == 4 and all(c["author"] != "agent-dev-001" for c in second)
    mine = sorted(
        (d["version"], d.get("carried"))
        for d in values["drafts"]
        if d["agent_id"] == "agent-dev-001"
    )
    assert mine == [
        (0, None),
        (1, "unchanged: no severe defect"),
        (2, "unchanged: not critiqued again (its draft did not change)"),
    ]
    event = values["result"].model_dump(mode="json")
    assert event["rounds"] == 2 and values["decision"]["stop_reason"] == "rounds_completed"
    assert all(len(p["versions"]) == 3 for p in event["proposals"])
    assert event["usage"]["calls"] == len(log)


def grounded(drafts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What ``nodes.ground`` writes for drafts its checker read and passed (so the router goes
    on to the rounds, not to ``ground``)."""
    return [
        {
            "agent_id": d["agent_id"],
            "version": d["version"],
            "checker": "plan",
            "hard": [],
            "notes": [],
            "outputs": None,
        }
        for d in drafts
    ]


def test_rounds_end_when_no_draft_changed():
    drafts = [
        {"agent_id": f"agent-qa-00{i}", "version": v, "content": f"draft {i}"}
        for v in (0, 1)
        for i in (1, 2, 3)
    ]
    st = {
        "deliberation_id": "d",
        "task": "t",
        "council": council("QA", 3, 3),
        "drafts": drafts,
        "evidence": grounded(drafts),
    }
    sends = route(st)  # nothing left to critique: selection
    assert sends != "select" and {s.node for s in sends} == {"vote"}
    assert stop_reason(st) == "unchanged"


def test_drafts_are_carried_only_once_every_critique_is_in_and_someone_revises():
    ids = ["agent-qa-001", "agent-qa-002", "agent-qa-003"]
    drafts = [{"agent_id": a, "version": 0, "content": f"{a} v0"} for a in ids]

    def crit(critic: str, author: str, severity: str) -> dict[str, Any]:
        defect = {"severity": severity, "where": "w", "what": "x", "fix": "f"}
        return {
            "round": 1,
            "critic": critic,
            "author": author,
            "summary": "s",
            "defects": [defect],
            "violations": [],
        }

    minor = [crit(c, a, "minor") for a in ids for c in ids if c != a]
    st = {"deliberation_id": "d", "task": "t", "council": council("QA", 3, 2), "drafts": drafts}
    assert carried_drafts({**st, "critiques": minor}) == []  # converged: no revise stage
    severe = [crit("agent-qa-002", "agent-qa-001", "major"), *minor[1:]]
    assert carried_drafts({**st, "critiques": severe[:3]}) == []  # critiques still to come
    carried = carried_drafts({**st, "critiques": severe})
    assert [(d["agent_id"], d["version"], d["carried"]) for d in carried] == [
        ("agent-qa-002", 1, "unchanged: no severe defect"),
        ("agent-qa-003", 1, "unchanged: no severe defect"),
    ]
    assert route({**st, "critiques": severe, "drafts": drafts + carried}) == "ground"
    grounded_all = grounded(drafts + carried)  # the carried drafts are read too (copied)
    sends = route({**st, "critiques": severe, "drafts": drafts + carried, "evidence": grounded_all})
    assert [(s.node, s.arg["agent"]["agent_id"]) for s in sends] == [("revise", "agent-qa-001")]


# ---- judges only when the ballots disagree ---------------------------------------------------


async def test_unanimous_ballots_ask_no_judge():
    truth = Truth(quality={"agent-dev-001": 9.0, "agent-dev-002": 5.0, "agent-dev-003": 2.0})
    values, log = await run(truth, "unanimous", rounds=0)
    assert unanimous(values["ballots"], ["agent-dev-001", "agent-dev-002", "agent-dev-003"])
    assert asked(log, "judge") == [] and len(asked(log, "vote")) == 3
    decision = values["decision"]
    assert decision["winner"] == "agent-dev-001" and decision["decided_by"] == "vote"
    assert decision["judges_skipped"] and "unanimous" in decision["judges_skipped"]
    assert "unanimous" in decision["justification"]
    event = values["result"].model_dump(mode="json")
    assert event["schema_version"] == "1.3"
    assert event["decision"]["judges_skipped"] == decision["judges_skipped"]
    assert event["decision"]["judgements"] == []


async def test_ballots_that_disagree_send_the_judges_after_them():
    # equally good proposals, noisy voters: with this simulator seed the first choices split
    truth = Truth(vote_noise=4.0)
    values, log = await run(truth, "split", rounds=0, seed=8)
    ids = ["agent-dev-001", "agent-dev-002", "agent-dev-003"]
    assert unanimous(values["ballots"], ids) is None
    judges, votes = asked(log, "judge"), asked(log, "vote")
    assert len(judges) == 3 and len(votes) == 3  # every rotation, after the ballots
    assert max(e["t_in"] for e in votes) < min(e["t_in"] for e in judges)
    assert values["decision"]["judges_skipped"] is None
    assert Counter(e["stage"] for e in log) == {"propose": 3, "vote": 3, "judge": 3}


def test_every_critic_of_a_round_reads_the_same_evidence_under_the_proposals_labels():
    ids = ["agent-qa-001", "agent-qa-002", "agent-qa-003"]
    drafts = [{"agent_id": a, "version": 0, "content": f"{a} v0"} for a in ids]
    evidence = grounded(drafts)
    for e in evidence:
        e["notes"] = [f"note on {e['agent_id'][-3:]}"]
    st = {
        "deliberation_id": "d",
        "task": "t",
        "council": council("QA", 3, 1),
        "drafts": drafts,
        "evidence": evidence,
    }
    sends = route(st)
    assert sends != "select" and {s.node for s in sends} == {"critique"} and len(sends) == 6
    shown = {s.arg["evidence"] for s in sends}
    assert len(shown) == 1  # the shared prefix: the same for every critic
    order = sends[0].arg["order"]
    text = shown.pop()
    for i, agent in enumerate(order, 1):  # under the labels the proposals block uses
        assert f"P{i}:\n- note on {agent[-3:]}" in text
    assert "agent-qa" not in text
