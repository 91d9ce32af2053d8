"""Routers: what runs next, decided from the state itself (so resuming needs no counter)."""

from __future__ import annotations

from typing import Any, Literal

from langgraph.types import Send

from graph.state import Agent, AgentTask, Brief, Council, CouncilState, Critique


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


def route(state: CouncilState) -> list[Send] | Literal["select"]:
    """Send the next stage's parallel tasks, or go to select when every round is done.

    propose: one task per agent without a draft; critique: one per ordered (critic, author)
    pair of the round; revise: one per author, with the critiques it received.
    """
    council = state["council"]
    agents = council["agents"]
    versions = versions_done(state)
    missing = [agent for agent in agents if agent["agent_id"] not in versions]
    if missing:
        return [Send("propose", _task(state, agent, round=0)) for agent in missing]
    done = min(versions.values())
    if done >= council["rounds"]:
        return "select"
    this_round = done + 1
    finals = latest_drafts(state)
    received = [c for c in state.get("critiques", []) if c["round"] == this_round]
    if not received:
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
            for author in agents
            for critic in agents
            if critic["agent_id"] != author["agent_id"]
        ]
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
        for agent in agents
        if versions[agent["agent_id"]] < this_round
    ]


def critiques_for(critiques: list[Critique], author: str) -> list[Critique]:
    """The critiques of ``author``'s proposal, in critic order."""
    return sorted((c for c in critiques if c["author"] == author), key=lambda c: c["critic"])


def after_select(state: CouncilState) -> Literal["approve", "publish"]:
    """Human approval when the council requires it."""
    return "approve" if state["council"]["require_approval"] else "publish"
