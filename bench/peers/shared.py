"""What the peer runners share: the run spec, council's prompt files, the answer schemas.

Runs inside each framework's own virtualenv (see ``bench/peers.py``), so it imports only the
standard library and pydantic (which both AutoGen and CrewAI depend on), never council. The
schemas are copies of council's (``nodes/critique.py``, ``nodes/revise.py``, ``nodes/judge.py``,
``nodes/vote.py``), so every framework asks the server for the same JSON documents.
"""

from __future__ import annotations

import functools
import json
import random
import sys
import time
from pathlib import Path
from string import Template
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

STAGE_ROUND = {"propose": 0, "critique": 1, "revise": 1, "judge": 1, "vote": 1}


def load_spec() -> dict[str, Any]:
    """The run spec written by ``bench/peers.py``: path in argv[1]."""
    return json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))


def render(spec: dict[str, Any], name: str, **values: object) -> str:
    """``prompts/<name>.md`` with ``${placeholder}`` values, as council renders it."""
    text = (Path(spec["prompts_dir"]) / f"{name}.md").read_text(encoding="utf-8")
    return Template(text).substitute({k: str(v) for k, v in values.items()}).strip()


def shared_values(spec: dict[str, Any]) -> dict[str, str]:
    """Task, constraints and rubric (as council lists it): the block every stage opens with."""
    return {
        "task": spec["task"],
        "constraints": spec["constraints"] or "(none)",
        "rubric": spec["rubric_text"],
        "evidence": "(no checks ran)",  # the peers run no checkers (council's ``nodes.ground``)
    }


def split_shared(text: str) -> tuple[str, str]:
    """A rendered stage prompt cut into (task/constraints/rubric block, the rest)."""
    lines = text.split("\n")
    cut = len(lines)
    seen_rubric = False
    for i, line in enumerate(lines):
        if line.startswith("## Rubric"):
            seen_rubric = True
        elif seen_rubric and line.startswith("## "):
            cut = i
            break
    return "\n".join(lines[:cut]).strip(), "\n".join(lines[cut:]).strip()


def presentation_order(spec: dict[str, Any], ids: list[str], salt: str = "") -> list[str]:
    """Council's fixed shuffle per deliberation (``graph.routing.presentation_order``)."""
    order = sorted(ids)
    random.Random(f"{spec['deliberation_id']}{salt}").shuffle(order)
    return order


def labels_for(order: list[str]) -> dict[str, str]:
    """Neutral labels P1, P2, ... in presentation order -> agent id."""
    return {f"P{i}": agent_id for i, agent_id in enumerate(order, 1)}


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DefectAnswer(_Doc):
    """One defect."""

    severity: Literal["blocker", "major", "minor"]
    where: str = Field(max_length=200)
    what: str = Field(min_length=1, max_length=800)
    fix: str = Field(max_length=800)


class CritiqueAnswer(_Doc):
    """What a critic answers."""

    defects: list[DefectAnswer] = Field(max_length=12)
    violations: list[str] = Field(max_length=8)
    summary: str = Field(max_length=800)


class ChangeAnswer(_Doc):
    """One defect and the author's response to it."""

    defect: str = Field(max_length=800)
    response: str = Field(max_length=800)


class RevisionAnswer(_Doc):
    """What an author answers."""

    addressed: list[ChangeAnswer] = Field(max_length=24)
    rejected: list[ChangeAnswer] = Field(max_length=24)
    proposal: str = Field(min_length=1)


@functools.lru_cache(maxsize=16)
def judgement_model(labels: tuple[str, ...], criteria: tuple[str, ...]) -> type[BaseModel]:
    """What a judge answers: per label, evidence, integer scores per criterion, a verdict."""
    forbid = ConfigDict(extra="forbid", populate_by_name=False)
    per_criterion: dict[str, Any] = {
        f"c{i}": (int, Field(ge=0, le=10, alias=name)) for i, name in enumerate(criteria)
    }
    scores = create_model("Scores", __config__=forbid, **per_criterion)
    assessment = create_model(
        "Assessment",
        __config__=forbid,
        strengths=(list[str], Field(max_length=6)),
        defects=(list[str], Field(max_length=6)),
        scores=(scores, ...),
        verdict=(str, Field(min_length=1, max_length=600)),
    )
    per_label: dict[str, Any] = {
        f"p{i}": (assessment, Field(alias=label)) for i, label in enumerate(labels)
    }
    return create_model("Judgement", __config__=forbid, **per_label)


@functools.lru_cache(maxsize=16)
def ballot_model(labels: tuple[str, ...]) -> type[BaseModel]:
    """What a voter answers: a reason, then every label exactly once, best first."""
    label = Literal[labels]  # type: ignore[valid-type]

    def every_label_once(cls: type, ranking: list[str]) -> list[str]:
        if sorted(ranking) != sorted(labels):
            raise ValueError(f"rank every proposal exactly once: {', '.join(labels)}")
        return ranking

    return create_model(
        "Ballot",
        __config__=ConfigDict(extra="forbid"),
        __validators__={
            "_every_label_once": field_validator("ranking")(classmethod(every_label_once))  # type: ignore[dict-item]
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


def judgement(spec: dict[str, Any], order: list[str], answer: BaseModel) -> dict[str, Any]:
    """A judge's answer mapped back from labels to agent ids (council's ``Judgement``)."""
    doc = answer.model_dump(by_alias=True)
    return {
        "judge": spec["judge"]["agent_id"],
        "model": spec["model"],
        "order": order,
        "assessments": {agent_id: doc[label] for label, agent_id in labels_for(order).items()},
    }


def ballot(voter: str, order: list[str], answer: Any) -> dict[str, Any]:
    """A voter's answer mapped back from labels to agent ids (council's ``Ballot``)."""
    labels = labels_for(order)
    return {
        "voter": voter,
        "ranking": [labels[label] for label in answer.ranking],
        "reason": answer.reason,
    }


def headers(spec: dict[str, Any], agent_id: str, stage: str) -> dict[str, str]:
    """Who is calling, for the simulator's request log (it splits the figures by these)."""
    return {
        "X-Council-Deliberation": spec["deliberation_id"],
        "X-Council-Agent": agent_id,
        "X-Council-Stage": stage,
        "X-Council-Round": str(STAGE_ROUND[stage]),
    }


class Clock:
    """Wall time of the deliberation itself (after imports and set-up, as council's own)."""

    def __enter__(self) -> Clock:
        self.started = time.time()  # the simulator's log uses the same clock
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.monotonic() - self.t0
        self.ended = time.time()


def report(
    spec: dict[str, Any],
    version: str,
    clock: Clock,
    judgements: list[dict[str, Any]],
    ballots: list[dict[str, Any]],
    **extra: Any,
) -> None:
    """The runner's result: one JSON line on stdout, read by ``bench/peers.py`` (which decides
    the winner from the judgements and ballots with council's own aggregation).
    """
    print(
        json.dumps(
            {
                "framework": spec["framework"],
                "version": version,
                "wall_s": round(clock.wall_s, 3),
                "started": clock.started,
                "ended": clock.ended,
                "judgements": judgements,
                "ballots": ballots,
                **extra,
            }
        ),
        flush=True,
    )
