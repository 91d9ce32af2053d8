"""Routers: what runs next, decided from the state alone (a pure function of it).

Rounds go on until the ceiling, until a round's critiques find no blocker or major defect
(converged: the revise of that round is skipped), until every critique of a round was rejected
(nothing to revise), until no draft changed (nothing left to critique: ``unchanged``), or until
the next stage could take the deliberation over its token budget (planned with the council's own
per-stage budgets; each task is given its share of what is left, retries included, as a hard
cap). Then selection: the judgements (one per presentation the council's scheme gives, unless
the vote decides alone or the judges no longer fit the budget) and one ballot per agent, then
``select`` aggregates.

Targeted deliberation (docs/DECISIONS.md): the critics of each proposal are the council's
``critics`` (every peer, or a sparse ring: ``core.progress.critic_pairs``); only authors with a
severe critique (a blocker, a major defect or a broken constraint) revise, the others' drafts
are carried forward without a call (``carried_drafts``, written by ``tally``); a draft that did
not change is not critiqued again. With ``judge+vote`` the ballots come first and the judges
are asked only when the ballots' first choices are not unanimous (``nodes.vote.unanimous``).

Grounding (``nodes.ground``, issue 23): after propose and after each revise, ``ground`` runs the
council's checkers on the new drafts before anything else; when the drafts' outputs agree (the
agreement gate) the deliberation goes straight to ``select``, without critiques, judges or
ballots; when the checks leave exactly one draft passing, the judges are skipped. The evidence
reaches each task under the names its prompt uses (``evidence``).

An agent whose answers were rejected after every retry is left out of that task (an
``Omission`` in the state) and the deliberation goes on: a proposer left out takes no further
part, while at least two proposals remain.
"""

from __future__ import annotations

import random
from typing import Literal

from langgraph.types import Send

from council_agents.core.errors import AnswerRejected
from council_agents.core.progress import (
    converged,
    critic_pairs,
    critiques_for,
    latest_drafts,
    left_out,
    severe,
    tokens_used,
    unchanged,
    versions_done,
)
from council_agents.core.state import (
    Agent,
    CouncilState,
    Critique,
    CritiqueTask,
    Draft,
    ProposeTask,
    ReviseTask,
    ShowTask,
)
from council_agents.core.terms import Stage
from council_agents.llm.prompt import critique_text
from council_agents.llm.stage import brief, labels_for
from council_agents.nodes.ground import agreed, evidence_text, singled_out, ungrounded
from council_agents.nodes.select import skipped_because

PROMPT_OVERHEAD_TOKENS = 700
"""System prompt, headings and instructions of a stage prompt (an upper estimate)."""
MIN_PROPOSALS = 2
"""A council needs at least this many accepted proposals to deliberate."""


def estimate(text_chars: int, completion: int) -> int:
    """An upper estimate of one call's tokens: ~3 characters a token, the full completion."""
    return PROMPT_OVERHEAD_TOKENS + text_chars // 3 + completion


def _base(
    state: CouncilState, agent: Agent, stage: Stage, round_: int, cap: int | None
) -> ProposeTask:
    council = state["council"]
    return ProposeTask(
        deliberation_id=state["deliberation_id"],
        task=state["task"],
        council=brief(council),
        agent=agent,
        round=round_,
        max_tokens=council["max_tokens"][stage],
        token_cap=cap,
    )


def presentation_order(state: CouncilState, ids: list[str], salt: str = "") -> list[str]:
    """A fixed shuffle of ``ids`` per deliberation (position must not decide)."""
    order = sorted(ids)
    random.Random(f"{state['deliberation_id']}{salt}").shuffle(order)
    return order


def presentations(state: CouncilState, ids: list[str]) -> list[list[str]]:
    """The orders the judges see, by the council's scheme: ``pair`` (one order and its reverse),
    ``rotations`` (each cyclic rotation: every proposal once in every position), ``pointwise``
    (each proposal alone).
    """
    order = presentation_order(state, ids)
    scheme = state["council"]["presentation"]
    if scheme == "pointwise":
        return [[a] for a in order]
    if scheme == "rotations" and len(order) > 2:
        return [order[i:] + order[:i] for i in range(len(order))]
    return [order, order[::-1]] if len(order) > 1 else [order]


def _share(state: CouncilState, reserve: int, tasks: int) -> int | None:
    """Each of ``tasks`` tasks' share of the token budget left after ``reserve``."""
    budget = state["council"]["token_budget"]
    if budget is None or tasks == 0:
        return None
    return max(0, (budget - tokens_used(state) - reserve) // tasks)


def _selection_cost(state: CouncilState, judges: int) -> int:
    finals = latest_drafts(state)
    shown = sum(len(t) for t in finals.values()) + len(state["task"])
    limit = state["council"]["max_tokens"]
    return judges * estimate(shown, limit["judge"]) + len(finals) * estimate(shown, limit["vote"])


def _judged(state: CouncilState) -> list[list[str]]:
    """The presentations judged already, or whose judge was left out."""
    done = [j["order"] for j in state.get("judgements", [])]
    done += [
        (o["subject"] or "").split(",") for o in state.get("omissions", []) if o["stage"] == "judge"
    ]
    return done


def _voters(state: CouncilState) -> list[Agent]:
    """The agents still in that have neither voted nor been left out of the vote."""
    finals = latest_drafts(state)
    voted = {b["voter"] for b in state.get("ballots", [])}
    voted |= {o["agent_id"] for o in state.get("omissions", []) if o["stage"] == "vote"}
    return [
        a
        for a in state["council"]["agents"]
        if a["agent_id"] in finals and a["agent_id"] not in voted
    ]


def selection(state: CouncilState) -> list[Send]:
    """The selection tasks not yet done: one ballot per agent still in (every final version in
    the deliberation's fixed order, ranking its peers only), and the judgements (unless the
    council decides by vote alone, or they no longer fit the token budget: then the vote
    decides). With ``judge+vote`` the ballots come first, and the judges only when the ballots'
    first choices are not unanimous (``nodes.select.skipped_because``).
    """
    council = state["council"]
    finals = latest_drafts(state)
    ids = sorted(finals)
    shown = presentations(state, ids)
    judging = (
        council["aggregator"] != "vote"
        and not (_over(state, _selection_cost(state, len(shown))) and not state.get("judgements"))
        and singled_out(state) is None  # grounded checks decide: no judge needed
    )
    voters = _voters(state)
    if council["aggregator"] == "judge+vote" and (voters or skipped_because(state)):
        judging = False  # the ballots first; the judges only when they are not unanimous
    judges = [order for order in shown if order not in _judged(state)] if judging else []
    cap = _share(state, 0, len(judges) + len(voters))
    sends = [_show(state, council["judge"], "judge", order, cap) for order in judges]
    order = presentation_order(state, ids)
    for agent in voters:
        sends.append(_show(state, agent, "vote", order, cap))
    return sends


def _show(
    state: CouncilState, agent: Agent, stage: Stage, order: list[str], cap: int | None
) -> Send:
    finals = latest_drafts(state)
    task = ShowTask(
        **_base(state, agent, stage, state["council"]["rounds"], cap),
        order=order,
        proposals={a: finals[a] for a in order},
    )
    task["evidence"] = evidence_text(state, {a: f"P{i}" for i, a in enumerate(order, 1)})
    return Send(stage, task)


def _over(state: CouncilState, cost: int) -> bool:
    budget = state["council"]["token_budget"]
    return budget is not None and tokens_used(state) + cost > budget


def over_budget(state: CouncilState, calls: list[tuple[int, int]]) -> bool:
    """Whether the next stage (``(prompt chars, max tokens)`` per call) and the selection after
    it could take the deliberation over its token budget.
    """
    judges = (
        0
        if state["council"]["aggregator"] == "vote"
        else len(presentations(state, sorted(latest_drafts(state))))
    )
    return _over(state, sum(estimate(c, m) for c, m in calls) + _selection_cost(state, judges))


def route(state: CouncilState) -> list[Send] | Literal["select", "ground"]:
    """Send the next stage's parallel tasks, or go to select when selection is complete.

    propose: one task per agent without a draft (or an omission); critique: one per
    (critic, author) pair of the round (``core.progress.critic_pairs``); revise: one per author
    with a severe critique (the others' drafts were carried by ``tally``), with the critiques
    it received; then the selection tasks; then select. Raises ``AnswerRejected`` when fewer than
    two proposals were accepted.
    """
    council = state["council"]
    out = left_out(state)
    versions = versions_done(state)
    missing = [a for a in council["agents"] if a["agent_id"] not in set(versions) | out]
    if missing:
        return [Send("propose", _base(state, a, "propose", 0, None)) for a in missing]
    if len(versions) < MIN_PROPOSALS:
        reasons = "; ".join(
            f"{o['agent_id']}: {o['reason']}"
            for o in state.get("omissions", [])
            if o["stage"] == "propose"
        )
        raise AnswerRejected(
            "propose",
            "-",
            f"{len(versions)} of {len(council['agents'])} proposals were accepted and a council "
            f"needs {MIN_PROPOSALS} ({reasons})",
        )
    if ungrounded(state):  # new drafts: the checkers read them first
        return "ground"
    if agreed(state):  # the agreement gate: decided without critiques or judges
        return "select"
    done = min(versions.values())
    this_round = done + 1
    received = [c for c in state.get("critiques", []) if c["round"] == this_round]
    selecting = (
        done >= council["rounds"]
        or converged(received)
        or all_critiques_rejected(state, this_round)
        or not (received or critic_pairs(state))
        or state.get("judgements")
        or state.get("ballots")
    )
    if not selecting:
        sends = _round(state, this_round, received)
        if sends:
            return sends
    pending = selection(state)
    return pending if pending else "select"


def _pairs(state: CouncilState) -> list[tuple[Agent, Agent]]:
    """The round's (critic, author) pairs (``core.progress.critic_pairs``: every peer or a
    sparse ring, never an unchanged draft).
    """
    agents = {a["agent_id"]: a for a in state["council"]["agents"]}
    return [(agents[c], agents[a]) for c, a in critic_pairs(state)]


def carried_drafts(state: CouncilState) -> list[Draft]:
    """The drafts carried forward without a call, once a round's critiques are all in and some
    author must revise: each author still at the previous version with no severe critique
    (only minor defects, none, or not critiqued because its draft did not change). ``tally``
    writes them, so no revise task is sent for them and the rounds still count from the drafts.
    """
    versions = versions_done(state)
    if not versions or state.get("judgements") or state.get("ballots"):
        return []
    done = min(versions.values())
    this_round = done + 1
    if done >= state["council"]["rounds"]:
        return []
    received = [c for c in state.get("critiques", []) if c["round"] == this_round]
    if not any(severe(c) for c in received):
        return []  # converged, rejected or not yet critiqued: no revise stage follows
    if any((c, a) not in _critiqued(state, this_round) for c, a in critic_pairs(state)):
        return []
    finals = latest_drafts(state)
    same = unchanged(state)
    carried = []
    for agent_id in sorted(versions):
        mine = critiques_for(received, agent_id)
        if versions[agent_id] >= this_round or any(severe(c) for c in mine):
            continue
        why = (
            "unchanged: no severe defect"
            if mine
            else "unchanged: not critiqued again (its draft did not change)"
            if agent_id in same
            else "unchanged: no critique to answer"
        )
        carried.append(
            Draft(agent_id=agent_id, version=this_round, content=finals[agent_id], carried=why)
        )
    return carried


def _critiqued(state: CouncilState, this_round: int) -> set[tuple[str, str]]:
    """The (critic, author) pairs of a round done: critiqued, or the critic left out."""
    done = {
        (c["critic"], c["author"]) for c in state.get("critiques", []) if c["round"] == this_round
    }
    done |= {
        (o["agent_id"], o["subject"] or "")
        for o in state.get("omissions", [])
        if o["stage"] == "critique" and o["round"] == this_round
    }
    return done


def all_critiques_rejected(state: CouncilState, this_round: int) -> bool:
    """Every critique of the round was asked for and rejected: nothing to revise."""
    pairs = {(c["agent_id"], a["agent_id"]) for c, a in _pairs(state)}
    received = [c for c in state.get("critiques", []) if c["round"] == this_round]
    return bool(pairs) and not received and pairs <= _critiqued(state, this_round)


def _round(state: CouncilState, this_round: int, received: list[Critique]) -> list[Send]:
    """The critique or revise tasks of a round ([] when the budget forbids them)."""
    council = state["council"]
    limit = council["max_tokens"]
    finals = latest_drafts(state)
    pending = [
        (c, a)
        for c, a in _pairs(state)
        if (c["agent_id"], a["agent_id"]) not in _critiqued(state, this_round)
    ]
    order = presentation_order(state, sorted(versions_done(state)))
    shown = {a: finals[a] for a in order}
    shown_chars = sum(len(t) for t in shown.values())
    # the same for every critic and author of the round: part of the shared prefix
    evidence = evidence_text(state, {a: label for label, a in labels_for(order).items()})
    if pending:
        cost = [(shown_chars + len(state["task"]), limit["critique"]) for _ in pending]
        if over_budget(state, cost):
            return []
        cap = _share(state, _selection_cost(state, 2), len(pending))
        return [
            Send(
                "critique",
                CritiqueTask(
                    **_base(state, critic, "critique", this_round, cap),
                    author=author["agent_id"],
                    proposal=finals[author["agent_id"]],
                    order=order,
                    proposals=shown,
                    evidence=evidence,
                ),
            )
            for critic, author in pending
        ]
    versions = versions_done(state)
    authors = [a for a in council["agents"] if versions.get(a["agent_id"], this_round) < this_round]
    received_chars = sum(len(critique_text(c)) for c in received)
    cost = [
        (
            shown_chars + len(finals[a["agent_id"]]) + received_chars + len(state["task"]),
            limit["revise"],
        )
        for a in authors
    ]
    if over_budget(state, cost):
        return []
    cap = _share(state, _selection_cost(state, 2), len(authors))
    return [
        Send(
            "revise",
            ReviseTask(
                **_base(state, agent, "revise", this_round, cap),
                proposal=finals[agent["agent_id"]],
                critiques=critiques_for(received, agent["agent_id"]),
                order=order,
                proposals=shown,
                evidence=evidence,
            ),
        )
        for agent in authors
    ]


def after_select(state: CouncilState) -> Literal["approve", "publish"]:
    """Human approval when the council requires it."""
    return "approve" if state["council"]["require_approval"] else "publish"
