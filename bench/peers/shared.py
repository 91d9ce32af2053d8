"""What the peer runners share: the run spec, council's prompt files, the judge's schema.

Runs inside each framework's own virtualenv (see ``bench/peers.py``), so it imports only the
standard library and pydantic (which both AutoGen and CrewAI depend on), never council.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from string import Template
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

SHARED_HEADINGS = ("## Task", "## Constraints", "## Rubric")


def load_spec() -> dict[str, Any]:
    """The run spec written by ``bench/peers.py``: path in argv[1]."""
    return json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))


def render(spec: dict[str, Any], name: str, **values: object) -> str:
    """``prompts/<name>.md`` with ``${placeholder}`` values, as council renders it."""
    text = (Path(spec["prompts_dir"]) / f"{name}.md").read_text(encoding="utf-8")
    return Template(text).substitute({k: str(v) for k, v in values.items()}).strip()


def rubric_text(rubric: dict[str, str]) -> str:
    """The rubric as council lists it in every prompt."""
    return "\n".join(f"- **{k}**: {v}" for k, v in rubric.items())


def shared_values(spec: dict[str, Any]) -> dict[str, str]:
    """Task, constraints and rubric: the block every stage prompt opens with."""
    return {
        "task": spec["task"],
        "constraints": spec["constraints"] or "(none)",
        "rubric": rubric_text(spec["rubric"]),
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


def judge_order(spec: dict[str, Any], ids: list[str]) -> list[str]:
    """The order the judge reads the proposals in, shuffled by the deliberation id (as council)."""
    order = sorted(ids)
    random.Random(spec["deliberation_id"]).shuffle(order)
    return order


def judgement_model(agent_ids: list[str], criteria: list[str]) -> type[BaseModel]:
    """The judge's answer, the same shape council asks for: integer scores 0-10 per criterion
    per proposal, a rationale each, the winner and a justification."""
    forbid = ConfigDict(extra="forbid")
    scores = create_model(
        "CriterionScores",
        __config__=forbid,
        **{f"c{i}": (int, Field(ge=0, le=10, alias=name)) for i, name in enumerate(criteria)},
    )
    proposal = create_model(
        "ProposalScore",
        __config__=forbid,
        scores=(scores, ...),
        rationale=(str, Field(min_length=1)),
    )
    per_agent = create_model(
        "Scores",
        __config__=forbid,
        **{f"a{i}": (proposal, Field(alias=aid)) for i, aid in enumerate(agent_ids)},
    )
    return create_model(
        "Judgement",
        __config__=forbid,
        scores=(per_agent, ...),
        winner=(Literal[tuple(agent_ids)], ...),  # type: ignore[valid-type]
        justification=(str, Field(min_length=1)),
    )


def headers(spec: dict[str, Any], agent_id: str, stage: str) -> dict[str, str]:
    """Who is calling, for the simulator's request log (it splits the figures by these)."""
    return {
        "X-Council-Deliberation": spec["deliberation_id"],
        "X-Council-Agent": agent_id,
        "X-Council-Stage": stage,
        "X-Council-Round": "0" if stage == "propose" else "1",
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
    spec: dict[str, Any], version: str, clock: Clock, winner: str, justification: str, **extra: Any
) -> None:
    """The runner's result: one JSON line on stdout, read by ``bench/peers.py``."""
    print(
        json.dumps(
            {
                "framework": spec["framework"],
                "version": version,
                "wall_s": round(clock.wall_s, 3),
                "started": clock.started,
                "ended": clock.ended,
                "winner": winner,
                "justification": justification,
                **extra,
            }
        ),
        flush=True,
    )
