"""Routers: what runs next, decided from the state itself (so resuming needs no counter).

Rounds go on until the ceiling, until a round's critiques find no blocker or major defect
(converged: the revise of that round is skipped), or until the next stage could take the
deliberation over its token budget. Then selection: two judge tasks (opposite presentation
orders) and one vote per agent, all in parallel, then ``select`` aggregates.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from langgraph.types import Send

from council_agents.core import settings
from council_agents.core.state import Agent, AgentTask, Brief, Council, CouncilState, Critique

SEVERE = ("blocker", "major")
PROMPT_OVERHEAD_TOKENS = 700
"""System prompt, headings and instructions of a stage prompt (an upper estimate)."""


def latest_drafts(state: CouncilState) -> dict[str, str]:
    """Each agent's newest version."""
    newest: dict[str, tuple[int, str]] = {}
    for draft in state.get("drafts", []):
        known = newest.get(draft["agent_id"])
        if known is None or draft["version"] > known[0]:
            newest[draft["agent_id"]] = (draft["version"], draft["content"])
    return {agent_id: content for agent_id, (_, content) in newest.items()}


def versions_done(state: CouncilState) -> dict[str, int]:
    """Each agent's newest version number."""
    versions: dict[str, int] = {}
    for draft in state.get("drafts", []):
        versions[draft["agent_id"]] = max(versions.get(draft["agent_id"], -1), draft["version"])
    return versions


def critiques_for(critiques: list[Critique], author: str) -> list[Critique]:
    """The critiques of ``author``'s proposal, in critic order."""
    return sorted((c for c in critiques if c["author"] == author), key=lambda c: c["critic"])


def severe(critique: Critique) -> bool:
    """A blocker, a major defect or a broken constraint."""
    return bool(critique.get("violations")) or any(
        d["severity"] in SEVERE for d in critique.get("defects", [])
    )


def converged(critiques: list[Critique]) -> bool:
    """A round whose critiques (all in) found nothing that must or should change."""
    return bool(critiques) and not any(severe(c) for c in critiques)


def tokens_used(state: CouncilState) -> int:
    """Prompt and completion tokens of every call so far."""
    return sum(c["prompt_tokens"] + c["completion_tokens"] for c in state.get("calls", []))


def estimate(text_chars: int, completion: int) -> int:
    """An upper estimate of one call's tokens: ~3 characters a token, the full completion."""
    return PROMPT_OVERHEAD_TOKENS + text_chars // 3 + completion


def brief(council: Council) -> Brief:
    """What an agent's task needs of the council: a ``Send`` carries only this."""
    return Brief(role=council["role"], rubric=council["rubric"], constraints=council["constraints"])


def _task(state: CouncilState, agent: Agent, **extra: Any) -> AgentTask:
    task = AgentTask(
        deliberation_id=state["deliberation_id"],
        task=state["task"],
        council=brief(state["council"]),
        agent=agent,
    )
    task.update(extra)  # type: ignore[typeddict-item]
    return task


def presentation_order(state: CouncilState, ids: list[str], salt: str = "") -> list[str]:
    """A fixed shuffle of ``ids`` per deliberation (position must not decide)."""
    order = sorted(ids)
    random.Random(f"{state['deliberation_id']}{salt}").shuffle(order)
    return order


def selection(state: CouncilState) -> list[Send]:
    """The selection tasks not yet done: two judgements (one order and its reverse, unless the
    council decides by vote alone) and one ballot per agent (its peers only)."""
    council = state["council"]
    finals = latest_drafts(state)
    order = presentation_order(state, list(finals))
    sends = []
    if council["aggregator"] != "vote":
        judged = [j["order"] for j in state.get("judgements", [])]
        for shown in (order, order[::-1]):
            if shown not in judged:
                sends.append(
                    Send(
                        "judge",
                        _task(
                            state,
                            council["judge"],
                            order=shown,
                            proposals=finals,
                            round=council["rounds"],
                        ),
                    )
                )
    voted = {b["voter"] for b in state.get("ballots", [])}
    for agent in council["agents"]:
        if agent["agent_id"] not in voted:
            peers = [
                a
                for a in presentation_order(state, list(finals), agent["agent_id"])
                if a != agent["agent_id"]
            ]
            sends.append(
                Send(
                    "vote",
                    _task(
                        state,
                        agent,
                        order=peers,
                        round=council["rounds"],
                        proposals={a: finals[a] for a in peers},
                    ),
                )
            )
    return sends


def over_budget(state: CouncilState, stage: str, calls: list[tuple[int, int]]) -> bool:
    """Whether the next stage (``(prompt chars, max tokens)`` per call) and the selection after
    it could take the deliberation over its token budget."""
    budget = state["council"]["token_budget"]
    if budget is None:
        return False
    finals = latest_drafts(state)
    n = len(finals)
    shown = sum(len(t) for t in finals.values()) + len(state["task"])
    limit = settings.current().max_tokens
    judges = 0 if state["council"]["aggregator"] == "vote" else 2
    select_cost = judges * estimate(shown, limit["judge"]) + n * estimate(shown, limit["vote"])
    return tokens_used(state) + sum(estimate(c, m) for c, m in calls) + select_cost > budget


def route(state: CouncilState) -> list[Send] | Literal["select"]:
    """Send the next stage's parallel tasks, or go to select when selection is complete.

    propose: one task per agent without a draft; critique: one per ordered (critic, author)
    pair of the round; revise: one per author, with the critiques it received; then the
    selection tasks; then select.
    """
    council = state["council"]
    agents = council["agents"]
    versions = versions_done(state)
    missing = [agent for agent in agents if agent["agent_id"] not in versions]
    if missing:
        return [Send("propose", _task(state, agent, round=0)) for agent in missing]
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
    agents = state["council"]["agents"]
    finals = latest_drafts(state)
    limit = settings.current().max_tokens
    if not received:
        pairs = [(c, a) for a in agents for c in agents if c["agent_id"] != a["agent_id"]]
        cost = [
            (len(finals[a["agent_id"]]) + len(state["task"]), limit["critique"]) for _, a in pairs
        ]
        if over_budget(state, "critique", cost):
            return []
        return [
            Send(
                "critique",
                _task(
                    state,
                    critic,
                    round=this_round,
                    author=author["agent_id"],
                    proposal=finals[author["agent_id"]],
                ),
            )
            for critic, author in pairs
        ]
    versions = versions_done(state)
    authors = [a for a in agents if versions[a["agent_id"]] < this_round]
    cost = [
        (
            len(finals[a["agent_id"]]) * 2
            + sum(len(c["content"]) for c in received)
            + len(state["task"]),
            limit["revise"],
        )
        for a in authors
    ]
    if over_budget(state, "revise", cost):
        return []
    return [
        Send(
            "revise",
            _task(
                state,
                agent,
                round=this_round,
                proposal=finals[agent["agent_id"]],
                critiques=critiques_for(received, agent["agent_id"]),
            ),
        )
        for agent in authors
    ]


def stop_reason(state: CouncilState) -> str:
    """Why the rounds ended: ``rounds_completed``, ``converged`` or ``budget``."""
    versions = versions_done(state)
    done = min(versions.values()) if versions else 0
    if done >= state["council"]["rounds"]:
        return "rounds_completed"
    received = [c for c in state.get("critiques", []) if c["round"] == done + 1]
    return "converged" if converged(received) else "budget"


def after_select(state: CouncilState) -> Literal["approve", "publish"]:
    """Human approval when the council requires it."""
    return "approve" if state["council"]["require_approval"] else "publish"
