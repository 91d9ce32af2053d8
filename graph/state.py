"""The deliberation's data: small, typed, and every field documented.

The same types serve the graph state and the ``Send`` payloads. Lists grow through
``operator.add`` so the parallel tasks of one stage each add their own result; nothing a
finished task wrote is lost when a sibling fails.

Each piece is checkpointed once (docs/STORAGE.md): an accepted answer is stored as what it
became (a draft, a critique, the decision), not again in its call record; a ``Send`` carries
only the part of the council its agent uses (``Brief``); the completed event is a function of
the state, so it is not checkpointed (``result`` is an ``UntrackedValue``) but rebuilt from the
state and ``finished_at`` when needed (``nodes.publish.completed_event``).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, NotRequired, Required

from langgraph.channels import UntrackedValue
from typing_extensions import TypedDict


class Agent(TypedDict):
    """One member of a council (or its judge), with the endpoint its calls go to."""

    agent_id: str
    """Stable id, e.g. ``agent-dev-001``."""
    role: str
    """The council's role."""
    model: str
    """Model name at the LLM server."""
    base_url: str
    """OpenAI-compatible base URL of the LLM server (from the server's settings)."""
    temperature: float
    """Sampling temperature."""
    seed: int | None
    """Sampling seed (vLLM honours it), so a deliberation can be replayed."""


class Council(TypedDict):
    """The effective council, fixed when a deliberation starts; resuming uses it as it is."""

    role: str
    """DEV, QA, ARCHITECT, DEVOPS or DATA."""
    name: str | None
    """The stored council it came from, if any."""
    agents: list[Agent]
    """The members, in id order."""
    judge: Agent
    """Who scores the final proposals in select."""
    rounds: int
    """Critique and revise rounds (0: propose, then select)."""
    rubric: dict[str, str]
    """Criterion -> what it means; the judge scores every proposal on each."""
    constraints: str
    """Constraints every agent must respect (empty: none)."""
    require_approval: bool
    """Interrupt after select for a human approval or override."""


class Brief(TypedDict):
    """What an agent's task needs of its council (not the other members, not the judge)."""

    role: str
    """The council's role (its prompts)."""
    rubric: dict[str, str]
    """Criterion -> what it means."""
    constraints: str
    """Constraints every agent must respect (empty: none)."""


class Draft(TypedDict):
    """One version of an agent's proposal: version 0 is the proposal, k the k-th revision."""

    agent_id: str
    """Author."""
    version: int
    """0 for the proposal, k for the revision of round k."""
    content: str
    """The text peers and the judge see (reasoning removed)."""


class Critique(TypedDict):
    """A peer's critique of one proposal version."""

    round: int
    """Round it belongs to (1-based)."""
    critic: str
    """Who wrote it."""
    author: str
    """Whose proposal it critiques."""
    content: str
    """The critique."""


class CallRecord(TypedDict):
    """One finished LLM call (every attempt is recorded, rejected ones too)."""

    agent_id: str
    """Who called."""
    role: str
    """The council's role."""
    stage: str
    """propose, critique, revise or select."""
    round: int
    """Round of the stage (0 for propose)."""
    attempt: int
    """1 for the first attempt; more when an answer was rejected."""
    model: str | None
    """Model that answered, as the server named it."""
    content: NotRequired[str]
    """The answer, reasoning removed: kept on rejected attempts only. An accepted answer is
    stored once, as what it became (the draft, the critique or the decision); the log has
    every answer in full."""
    reasoning: str
    """Reasoning (``<think>`` or the server's reasoning field), never shown to peers."""
    finish_reason: str | None
    """Why generation stopped (``stop``, ``length``)."""
    prompt_tokens: int
    """Prompt tokens, as the server counted."""
    completion_tokens: int
    """Completion tokens, as the server counted."""
    cached_tokens: int
    """Prompt tokens served from the server's prefix cache."""
    latency_s: float
    """Wall time of the request."""
    accepted: bool
    """False when the answer was rejected (empty, garbage, invalid) and retried."""
    problem: str | None
    """Why it was rejected."""


class RankEntry(TypedDict):
    """One proposal's place in the judge's ranking."""

    rank: int
    """1 for the winner."""
    agent_id: str
    """Author."""
    scores: dict[str, int]
    """Criterion -> score 0..10."""
    total: float
    """Mean of the scores."""
    rationale: str
    """The judge's reason for these scores."""


class Decision(TypedDict):
    """Select's outcome (and a human's, when approval is required)."""

    winner: str
    """The winning agent."""
    justification: str
    """Why it won."""
    ranking: list[RankEntry]
    """Every proposal, best first."""
    judge: str
    """Judge agent id."""
    judge_winner: str
    """The winner the judge named."""
    presented_order: list[str]
    """Order the proposals were shown to the judge."""
    stop_reason: str
    """rounds_completed, approved or human_override."""
    approved_by_human: NotRequired[bool]
    """True when a human approved or overrode the decision."""
    judge_justification: NotRequired[str]
    """The judge's justification, when a human overrode it."""


class InputState(TypedDict, total=False):
    """What a caller gives to start a deliberation."""

    task: Required[str]
    """The software task to deliberate on (1..8000 characters)."""
    role: str
    """DEV, QA, ARCHITECT, DEVOPS or DATA (default: the stored council's, else DEV)."""
    rounds: int
    """Critique/revise rounds, 0..5 (default: the stored council's, else 1)."""
    constraints: str
    """Constraints for this task, added to the council's."""
    rubric: dict[str, str]
    """Criterion -> what it means (default: the stored council's, else a general rubric)."""
    story_id: str | None
    """Planning story this task belongs to, if any."""
    task_id: str | None
    """Planning task id, if any."""
    deliberation_id: str
    """Id of this deliberation (default: the thread id)."""


class CouncilState(InputState, total=False):
    """The whole deliberation, as checkpointed after every super-step."""

    council: Council
    """The effective council, fixed by prepare."""
    started_at: float
    """Unix time the deliberation started."""
    drafts: Annotated[list[Draft], operator.add]
    """Every proposal and revision."""
    critiques: Annotated[list[Critique], operator.add]
    """Every critique."""
    calls: Annotated[list[CallRecord], operator.add]
    """Every finished LLM call."""
    decision: Decision
    """Select's outcome."""
    result: Annotated[dict[str, Any], UntrackedValue]
    """The completed event, as published: in the run's output, never checkpointed (rebuilt
    from the state with ``finished_at``)."""
    published: dict[str, Any]
    """JetStream's acknowledgement of the completed event (stream, seq, duplicate); present
    (empty when not published) once the deliberation has finished."""
    finished_at: str
    """When the completed event was built (ISO 8601, UTC): its ``timestamp``."""


class OutputState(TypedDict, total=False):
    """What a caller gets back."""

    deliberation_id: str
    """Id of the deliberation."""
    decision: Decision
    """The winner, why, and the ranking."""
    result: Annotated[dict[str, Any], UntrackedValue]
    """The completed event (``orchestration.deliberation.completed``); not checkpointed."""
    published: dict[str, Any]
    """Where the event went (stream, seq), empty when not published."""


class AgentTask(TypedDict, total=False):
    """Payload of one ``Send``: one agent's work in one stage."""

    deliberation_id: Required[str]
    """The deliberation."""
    task: Required[str]
    """The software task."""
    council: Required[Brief]
    """What the agent needs of the effective council (role, rubric, constraints)."""
    agent: Required[Agent]
    """Who does the work."""
    round: int
    """Round of the stage (0 for propose)."""
    author: str
    """critique: whose proposal is critiqued."""
    proposal: str
    """critique and revise: the proposal's latest version."""
    critiques: list[Critique]
    """revise: the critiques the author received this round."""
