"""vote: each agent ranks its peers' final proposals (never its own), all in parallel.

Every voter reads the same final proposals in the deliberation's fixed order (the prefix cache
serves all but the first voter's); which label is its own, and the labels it ranks, come last.

Every deliberation records the ballots' Borda count, the judge-free baseline the literature
says to compare a judge against. Because nobody votes on their own proposal, the best
proposal's author always gives its points to a rival; the vote's winner is therefore decided by
head-to-head majorities among neutral voters (Copeland), Borda breaking ties.
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from council_agents.core.state import Ballot, BallotUpdate, ShowTask
from council_agents.llm.client import LLM
from council_agents.llm.stage import (
    LEFT_OUT,
    labels_for,
    omission,
    proposals_piece,
    run_agent,
    shown,
)


@functools.lru_cache(maxsize=64)
def ballot_model(labels: tuple[str, ...]) -> type[BaseModel]:
    """The schema a voter answers: a reason, then every label exactly once, best first."""
    label = Literal[labels]  # type: ignore[valid-type]

    def every_label_once(cls: type, ranking: list[str]) -> list[str]:
        if sorted(ranking) != sorted(labels):
            raise ValueError(f"rank every proposal exactly once: {', '.join(labels)}")
        return ranking

    return create_model(
        "Ballot",
        __config__=ConfigDict(extra="forbid"),
        __validators__={
            "_every_label_once": field_validator("ranking")(
                classmethod(every_label_once)  # type: ignore[dict-item]
            )
        },
        reason=(str, Field(min_length=1, max_length=800)),
        ranking=(
            list[label],
            Field(
                min_length=len(labels),
                max_length=len(labels),
                json_schema_extra={"uniqueItems": True},
            ),
        ),
    )


def borda(ballots: list[Ballot], agent_ids: list[str]) -> dict[str, int]:
    """Borda points: on a ballot of k peers the first gets k-1, the last 0."""
    points = dict.fromkeys(agent_ids, 0)
    for ballot in ballots:
        k = len(ballot["ranking"])
        for place, agent_id in enumerate(ballot["ranking"]):
            points[agent_id] = points.get(agent_id, 0) + (k - 1 - place)
    return points


def head_to_head(ballots: list[Ballot], x: str, y: str) -> int:
    """Voters (neither ``x`` nor ``y``) who rank ``x`` above ``y``, minus those who rank ``y``
    above ``x``: a peer never votes on its own proposal, so only neutral voters count.
    """
    margin = 0
    for ballot in ballots:
        if ballot["voter"] in (x, y) or x not in ballot["ranking"] or y not in ballot["ranking"]:
            continue
        margin += 1 if ballot["ranking"].index(x) < ballot["ranking"].index(y) else -1
    return margin


def copeland(ballots: list[Ballot], agent_ids: list[str]) -> dict[str, float]:
    """Head-to-head wins among neutral voters (a tie counts half)."""
    wins = dict.fromkeys(agent_ids, 0.0)
    for i, x in enumerate(agent_ids):
        for y in agent_ids[i + 1 :]:
            margin = head_to_head(ballots, x, y)
            wins[x] += 1.0 if margin > 0 else 0.5 if margin == 0 else 0.0
            wins[y] += 1.0 if margin < 0 else 0.5 if margin == 0 else 0.0
    return wins


def unanimous(ballots: list[Ballot], agent_ids: list[str]) -> str | None:
    """The proposal every ballot that could put it first did put first (its author cannot vote
    for it), when at least two such ballots were cast; None otherwise.
    """
    for candidate in agent_ids:
        neutral = [b for b in ballots if b["voter"] != candidate]
        if len(neutral) >= 2 and all(b["ranking"][:1] == [candidate] for b in neutral):
            return candidate
    return None


async def vote(task: ShowTask, *, llm: LLM) -> BallotUpdate:
    """The agent's ranking of its peers (or, when its answers are rejected after every retry,
    an omission: it casts no ballot).
    """
    voter = task["agent"]["agent_id"]
    every = labels_for(task["order"])
    labels = {label: a for label, a in every.items() if a != voter}
    own = next((label for label, a in every.items() if a == voter), "none of them")
    try:
        answer = await run_agent(
            llm,
            task,
            "vote",
            answer=ballot_model(tuple(labels)),
            labels=", ".join(labels),
            own=own,
            pieces={"proposals": proposals_piece(task["order"], shown(task))},
        )
    except LEFT_OUT as e:
        return BallotUpdate(omissions=[omission(task, "vote", e)], calls=e.records)
    ballot = Ballot(
        voter=task["agent"]["agent_id"],
        reason=answer.parsed.reason,
        ranking=[labels[label] for label in answer.parsed.ranking],
    )
    return BallotUpdate(ballots=[ballot], calls=answer.records)
