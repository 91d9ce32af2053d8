"""Routers: what runs next, decided from the state alone (a pure function of it).

Rounds go on until the ceiling, until a round's critiques find no blocker or major defect
(converged: the revise of that round is skipped), or until the next stage could take the
deliberation over its token budget (planned with the council's own per-stage budgets, fixed
when it was admitted). Then selection: two judge tasks (opposite presentation orders) and one
vote per agent, all in parallel, then ``select`` aggregates.
"""

from __future__ import annotations

import random
from typing import Literal

from langgraph.types import Send

from council_agents.core.progress import (
    converged,
    critiques_for,
    latest_drafts,
    tokens_used,
    versions_done,
)
from council_agents.core.state import (
    Agent,
    CouncilState,
    Critique,
    CritiqueTask,
    ProposeTask,
    ReviseTask,
    ShowTask,
)
from council_agents.core.terms import Stage
from council_agents.llm.prompt import critique_text
from council_agents.llm.stage import brief

PROMPT_OVERHEAD_TOKENS = 700
"""System prompt, headings and instructions of a stage prompt (an upper estimate)."""

Next = Literal["propose", "critique", "revise", "judge", "vote", "select"]
"""Where ``route`` may send the deliberation."""


def estimate(text_chars: int, completion: int) -> int:
    """An upper estimate of one call's tokens: ~3 characters a token, the full completion."""
    return PROMPT_OVERHEAD_TOKENS + text_chars // 3 + completion


def _base(state: CouncilState, agent: Agent, stage: Stage, round_: int) -> ProposeTask:
    council = state["council"]
    return ProposeTask(
        deliberation_id=state["deliberation_id"],
        task=state["task"],
        council=brief(council),
        agent=agent,
        round=round_,
        max_tokens=council["max_tokens"][stage],
    )


def presentation_order(state: CouncilState, ids: list[str], salt: str = "") -> list[str]:
    """A fixed shuffle of ``ids`` per deliberation (position must not decide)."""
    order = sorted(ids)
    random.Random(f"{state['deliberation_id']}{salt}").shuffle(order)
    return order


def _show(state: CouncilState, agent: Agent, stage: Stage, order: list[str]) -> Send:
    finals = latest_drafts(state)
    task = ShowTask(
        **_base(state, agent, stage, state["council"]["rounds"]),
        order=order,
        proposals={a: finals[a] for a in order},
    )
    return Send(stage, task)


def selection(state: CouncilState) -> list[Send]:
    """The selection tasks not yet done: two judgements (one order and its reverse, unless the
    council decides by vote alone) and one ballot per agent (its peers only).
    """
    council = state["council"]
    order = presentation_order(state, list(latest_drafts(state)))
    sends = []
    if council["aggregator"] != "vote":
        judged = [j["order"] for j in state.get("judgements", [])]
        for shown in (order, order[::-1]):
            if shown not in judged:
                sends.append(_show(state, council["judge"], "judge", shown))
    voted = {b["voter"] for b in state.get("ballots", [])}
    for agent in council["agents"]:
        if agent["agent_id"] not in voted:
            peers = [
                a
                for a in presentation_order(state, list(order), agent["agent_id"])
                if a != agent["agent_id"]
            ]
            sends.append(_show(state, agent, "vote", peers))
    return sends


def over_budget(state: CouncilState, calls: list[tuple[int, int]]) -> bool:
    """Whether the next stage (``(prompt chars, max tokens)`` per call) and the selection after
    it could take the deliberation over its token budget.
    """
    council = state["council"]
    budget = council["token_budget"]
    if budget is None:
        return False
    finals = latest_drafts(state)
    shown = sum(len(t) for t in finals.values()) + len(state["task"])
    limit = council["max_tokens"]
    judges = 0 if council["aggregator"] == "vote" else 2
    select_cost = judges * estimate(shown, limit["judge"]) + len(finals) * estimate(
        shown, limit["vote"]
    )
    return tokens_used(state) + sum(estimate(c, m) for c, m in calls) + select_cost > budget


def route(state: CouncilState) -> list[Send] | Literal["select"]:
    """Send the next stage's parallel tasks, or go to select when selection is complete.

    propose: one task per agent without a draft; critique: one per ordered (critic, author)
    pair of the round; revise: one per author, with the critiques it received; then the
    selection tasks; then select.
    """
    council = state["council"]
    versions = versions_done(state)
    missing = [agent for agent in council["agents"] if agent["agent_id"] not in versions]
    if missing:
        return [Send("propose", _base(state, agent, "propose", 0)) for agent in missing]
    done = min(versions.values())
    this_round = done + 1
    received = [c for c in state.get("critiques", []) if c["round"] == this_round]
    selecting = (
        done >= council["rounds"]
        or converged(received)
        or state.get("judgements")
        or state.get("ballots")
    )
    if not selecting:
        sends = _round(state, this_round, received)
        if sends:
            return sends
    pending = selection(state)
    return pending if pending else "select"


def _round(state: CouncilState, this_round: int, received: list[Critique]) -> list[Send]:
    """The critique or revise tasks of a round ([] when the budget forbids them)."""
    council = state["council"]
    agents, limit = council["agents"], council["max_tokens"]
    finals = latest_drafts(state)
    if not received:
        pairs = [(c, a) for a in agents for c in agents if c["agent_id"] != a["agent_id"]]
        cost = [
            (len(finals[a["agent_id"]]) + len(state["task"]), limit["critique"]) for _, a in pairs
        ]
        if over_budget(state, cost):
            return []
        return [
            Send(
                "critique",
                CritiqueTask(
                    **_base(state, critic, "critique", this_round),
                    author=author["agent_id"],
                    proposal=finals[author["agent_id"]],
                ),
            )
            for critic, author in pairs
        ]
    versions = versions_done(state)
    authors = [a for a in agents if versions[a["agent_id"]] < this_round]
    received_chars = sum(len(critique_text(c)) for c in received)
    cost = [
        (len(finals[a["agent_id"]]) * 2 + received_chars + len(state["task"]), limit["revise"])
        for a in authors
    ]
    if over_budget(state, cost):
        return []
    return [
        Send(
            "revise",
            ReviseTask(
                **_base(state, agent, "revise", this_round),
                proposal=finals[agent["agent_id"]],
                critiques=critiques_for(received, agent["agent_id"]),
            ),
        )
        for agent in authors
    ]


def after_select(state: CouncilState) -> Literal["approve", "publish"]:
    """Human approval when the council requires it."""
    return "approve" if state["council"]["require_approval"] else "publish"
