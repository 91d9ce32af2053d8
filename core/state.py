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
from typing import Annotated, NotRequired, Required

from langgraph.channels import UntrackedValue
from langgraph.types import Overwrite
from typing_extensions import TypedDict

from council_agents.core.events import DeliberationCompleted
from council_agents.core.terms import (
    Aggregator,
    Checker,
    DecidedBy,
    Origin,
    Presentation,
    Role,
    Severity,
    Stage,
    StopReason,
)


class Agent(TypedDict):
    """One member of a council (or its judge), with the endpoint its calls go to."""

    agent_id: str
    """Stable id, e.g. ``agent-dev-001``."""
    role: Role
    """The council's role."""
    model: str
    """Model name at the LLM server ("" until ``prepare`` adopts the server's first model)."""
    base_url: str
    """OpenAI-compatible base URL of the LLM server (settings, or an admin's stored council)."""
    api_key_name: str | None
    """Name of the setting that holds this endpoint's key (never the key); None: the default."""
    temperature: float
    """Sampling temperature."""
    seed: int | None
    """Sampling seed (vLLM honours it), so a deliberation can be replayed."""


class Council(TypedDict):
    """The effective council, fixed when a deliberation starts; resuming uses it as it is."""

    role: Role
    """DEV, QA, ARCHITECT, DEVOPS or DATA."""
    name: str | None
    """The stored council it came from, if any."""
    agents: list[Agent]
    """The members, in id order."""
    judge: Agent
    """Who scores the final proposals (twice, in opposite orders)."""
    rounds: int
    """Most critique and revise rounds (0: propose, then select); fewer when converged."""
    rubric: dict[str, Criterion]
    """Criterion name -> what it means, its weight and anchors; judges score each 0..10."""
    aggregator: Aggregator
    """How the winner is decided: ``judge``, ``vote`` or ``judge+vote``."""
    presentation: Presentation
    """How the judges are shown the proposals: ``pair``, ``rotations`` or ``pointwise``."""
    token_budget: int | None
    """Most prompt + completion tokens for the whole deliberation (None: no budget)."""
    max_tokens: dict[str, int]
    """Completion-token budget per stage, fixed from the settings when the council is admitted:
    the calls use it and the router plans the token budget with it."""
    constraints: str
    """Constraints every agent must respect (empty: none)."""
    require_approval: bool
    """Interrupt after select for a human approval or override."""
    critics: NotRequired[int | None]
    """Critics per proposal (None or absent: every peer). With fewer than the peers, the
    critics of each author form a sparse ring: agent i is critiqued by agents i+1..i+k (mod the
    agents still in, in id order)."""
    checkers: NotRequired[list[Checker] | None]
    """The checkers run on every new draft and on critiques' and judges' quotes (``checks/``);
    None until ``prepare`` fills the default by the task's kind (a code task: ``code`` and
    ``quotes``; anything else: ``plan`` and ``quotes``)."""
    execute: NotRequired[bool]
    """Run the answers' code on the task's examples (only in the sandbox; refused where there
    is none). Off unless the council or the run turns it on."""
    gate: NotRequired[float | None]
    """The agreement gate: the share of answers that must agree for the council to stop and
    decide by agreement (None: off)."""


class Criterion(TypedDict):
    """One rubric criterion."""

    meaning: str
    """What it measures."""
    weight: float
    """Its weight in the weighted mean score (> 0)."""
    anchors: dict[str, str]
    """What a score of "0", "5" and "10" means."""


class Defect(TypedDict):
    """One defect a critic found."""

    severity: Severity
    """``blocker`` (must change), ``major`` (should change) or ``minor`` (could change)."""
    where: str
    """The part of the proposal it is in."""
    what: str
    """What is wrong."""
    fix: str
    """The suggested fix."""


class Change(TypedDict):
    """How a revision answered one defect."""

    defect: str
    """The defect (as the critic put it)."""
    response: str
    """The change made, or why the defect is rejected."""


class Brief(TypedDict):
    """What an agent's task needs of its council (not the other members, not the judge)."""

    role: Role
    """The council's role (its prompts)."""
    rubric: dict[str, Criterion]
    """Criterion -> meaning, weight and anchors."""
    constraints: str
    """Constraints every agent must respect (empty: none)."""
    checkers: NotRequired[list[Checker]]
    """The council's checkers (``quotes``: critiques and judgements citing text that is not in
    the proposal are dropped)."""


class Evidence(TypedDict):
    """What one checker found in one draft, with no LLM (``nodes.ground``)."""

    agent_id: str
    """Author."""
    version: int
    """The draft's version."""
    checker: Checker
    """Which checker (``code`` or ``plan``)."""
    hard: list[str]
    """Hard failures, one line each: a draft with any cannot win while one without exists."""
    notes: list[str]
    """What was checked and found, or not checked, one line each."""
    outputs: list[str] | None
    """Code run on the task's examples: each call's output or ``!Exception`` (None: not run)."""
    verified: NotRequired[bool]
    """The code matched every result the task states (at least one): ``checks.code``."""


class Draft(TypedDict):
    """One version of an agent's proposal: version 0 is the proposal, k the k-th revision."""

    agent_id: str
    """Author."""
    version: int
    """0 for the proposal, k for the revision of round k."""
    content: str
    """The text peers and the judges see (reasoning removed)."""
    addressed: NotRequired[list[Change]]
    """Revisions: the defects this version addresses, and how."""
    rejected: NotRequired[list[Change]]
    """Revisions: the defects it rejects, and why."""
    carried: NotRequired[str]
    """Set when this version is the previous one carried forward, and why: ``unchanged`` (the
    author said so, or had no critique to answer) or the reason its revision was rejected."""


class Critique(TypedDict):
    """A peer's critique of one proposal version."""

    round: int
    """Round it belongs to (1-based)."""
    critic: str
    """Who wrote it."""
    author: str
    """Whose proposal it critiques."""
    summary: str
    """The critic's overall view, in a few sentences."""
    defects: list[Defect]
    """What the critic found, with severities."""
    violations: list[str]
    """Constraints the proposal breaks (each counts as a blocker)."""
    dropped: NotRequired[int]
    """Defects dropped because their quote of the proposal is not in it (``checks.quotes``)."""


class Omission(TypedDict):
    """An agent left out of one task because its answers were rejected after every retry (or
    the token budget left no room for it): the deliberation went on without it.
    """

    stage: Stage
    """Where."""
    round: int
    """The stage's round (0 for propose)."""
    agent_id: str
    """Who was left out: the proposer, critic, author, voter or judge."""
    subject: str | None
    """critique: whose proposal went uncritiqued; judge: the presentation it would have judged
    (e.g. ``P1=agent-dev-002,...``); otherwise None."""
    reason: str
    """Why the last attempt was rejected."""
    attempts: int
    """Attempts made (each a call the usage counts)."""
    completion_tokens: int
    """What those attempts cost in completion tokens."""


class Assessment(TypedDict):
    """One judge's assessment of one proposal: evidence first, then the scores."""

    strengths: list[str]
    """What the proposal does well."""
    defects: list[str]
    """What is wrong with it."""
    scores: dict[str, int]
    """Criterion -> 0..10."""
    verdict: str
    """One sentence on the proposal."""


class Judgement(TypedDict):
    """One judge call: the proposals in one order, under neutral labels, mapped back."""

    judge: str
    """The judge's agent id."""
    model: str
    """The judge's model."""
    order: list[str]
    """The agents in the order they were shown (label P1 is the first)."""
    assessments: dict[str, Assessment]
    """Agent id -> the judge's assessment."""
    totals: dict[str, float]
    """Agent id -> weighted mean score."""
    dropped: NotRequired[int]
    """Strengths and defects dropped because their quote of the proposal is not in it."""


class Ballot(TypedDict):
    """One agent's ranking of its peers' final proposals (never its own)."""

    voter: str
    """Who voted."""
    ranking: list[str]
    """Peers, best first."""
    reason: str
    """Why, in the voter's words."""


class ContextFit(TypedDict):
    """How a call was fitted into its model's context window (``nodes.context_window``)."""

    window: int
    """The endpoint's context window: prompt plus answer tokens."""
    prompt_tokens: int
    """Prompt tokens counted before sending, after any shortening."""
    counted_by: str
    """``server`` (its tokenizer, ``/tokenize``) or ``estimate`` (an upper bound from bytes)."""
    asked: int
    """The completion budget the stage asked for (this attempt)."""
    max_tokens: int
    """The completion budget sent: at most what the window leaves after the prompt."""
    shortened: list[str]
    """Each input cut to make room, and by how much (empty: only ``max_tokens`` was capped)."""
    overflows: int
    """Context-length rejections (400) the server sent before this fit was accepted."""


class CallRecord(TypedDict):
    """One finished LLM call (every attempt is recorded, rejected ones too)."""

    agent_id: str
    """Who called."""
    role: Role
    """The council's role."""
    stage: Stage
    """propose, critique, revise, judge or vote."""
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
    context_fit: NotRequired[ContextFit]
    """Present when the call was fitted into the context window: ``max_tokens`` capped, inputs
    shortened, or sent again after a context-length rejection."""
    prompts: NotRequired[dict[str, str]]
    """The prompt files this attempt rendered (``roles/dev.md``, ``propose.md``) -> the content
    hash it read (the first 16 hex digits of the file's SHA-256, as ``sha256sum`` prints it)."""
    prompt_set: NotRequired[str]
    """The digest of the whole prompt set (every prompt file) as this attempt read it."""


class PromptProvenance(TypedDict):
    """Which prompt text a deliberation used (``llm.prompt_files``): one digest of the prompt
    set, and whether the set changed while it ran.
    """

    digest: str
    """The digest of the prompt set the deliberation started with (every prompt file)."""
    changed: bool
    """True when the prompt set changed during the deliberation (its calls read several)."""
    digests: list[str]
    """Every digest its calls read, in the order first read (one unless it changed)."""
    files: dict[str, str]
    """The prompt files its calls rendered -> the content hash first read (by ``prepare``'s
    check, else by a call); before any call, every file of the set."""
    changed_files: list[str]
    """The files whose content differed between its calls (empty unless it changed)."""


class RankEntry(TypedDict):
    """One proposal's place in the final ranking."""

    rank: int
    """1 for the winner."""
    agent_id: str
    """Author."""
    scores: dict[str, float]
    """Criterion -> score 0..10, averaged over the judgements (empty when nobody judged)."""
    total: float
    """Weighted mean of the scores (0 when nobody judged)."""
    borda: int
    """Points from the peer vote (a voter's top peer gets n-2, its last 0)."""
    rationale: str
    """The judges' verdicts on this proposal."""


class Decision(TypedDict):
    """Select's outcome (and a human's, when approval is required)."""

    winner: str
    """The winning agent."""
    justification: str
    """Why it won: always about the winner, from the same aggregation that picked it."""
    ranking: list[RankEntry]
    """Every proposal, best first."""
    aggregator: Aggregator
    """``judge``, ``vote`` or ``judge+vote``."""
    decided_by: DecidedBy
    """What decided: ``judges`` (they agreed or averaged), ``vote`` (the judges disagreed, or
    the aggregator is the vote), ``human``."""
    judges_agree: bool | None
    """Whether every judgement put the same proposal first (None: fewer than two judgements)."""
    rank_agreement: float | None
    """Kendall's tau between the two judgements' rankings (-1..1; None: not judged)."""
    vote_winner: str | None
    """The Borda winner of the peer vote."""
    stop_reason: StopReason
    """converged, budget, rounds_completed, no_critiques, unchanged or human_override."""
    judges_skipped: NotRequired[str | None]
    """Why the judges were not asked (the ballots were unanimous), when they were not."""
    approved_by_human: NotRequired[bool]
    """True when a human approved or overrode the decision."""
    failed_checks: NotRequired[dict[str, list[str]]]
    """Agent -> the hard checks its final draft failed (it could not win while a draft that
    passed them existed)."""
    dropped_claims: NotRequired[int]
    """Critique defects and judges' claims dropped for quoting text the proposal does not
    have."""
    machine_justification: NotRequired[str]
    """The council's own justification, when a human overrode it."""


class CriterionInput(TypedDict, total=False):
    """A rubric criterion as a caller writes it (or just its meaning, as a string)."""

    meaning: Required[str]
    """What it measures."""
    weight: float
    """Its weight (default 1)."""
    anchors: dict[str, str]
    """What "0", "5" and "10" mean (defaults filled)."""


class InputState(TypedDict, total=False):
    """What a caller gives to start a deliberation."""

    task: Required[str]
    """The software task to deliberate on (1..8000 characters)."""
    role: Role
    """DEV, QA, ARCHITECT, DEVOPS or DATA (default: the stored council's, else DEV)."""
    rounds: int
    """Critique/revise rounds, 0..5 (default: the stored council's, else 1)."""
    constraints: str
    """Constraints for this task, added to the council's."""
    rubric: dict[str, str | CriterionInput]
    """Criterion -> what it means, or ``{meaning, weight, anchors}`` (default: the stored
    council's, else a general rubric)."""
    story_id: str | None
    """Planning story this task belongs to, if any."""
    task_id: str | None
    """Planning task id, if any."""
    deliberation_id: str
    """In the state: the deliberation's id, chosen by the server (``nodes.admit``): the thread
    id, or ``<thread>:<run>`` for a run of the HTTP API. A caller's ``deliberation_id`` is kept
    as its ``label`` and never becomes the id."""


class Admission(TypedDict):
    """What a door admitted (``core.request.admit``): the input with every default filled, and
    the effective council. It reaches the graph in the run's configuration (``ADMISSION_KEY``),
    never through the caller's input or context, and ``prepare`` writes it into the state.
    """

    input: InputState
    """The validated input, defaults filled (role, rounds, rubric, constraints)."""
    council: Council
    """The effective council (members, judge, endpoints, rounds, budgets)."""
    label: NotRequired[str | None]
    """The caller's own name for the deliberation (its input's ``deliberation_id``): a label
    in the event, scoped to its ``owner``, never the deliberation's id."""
    origin: NotRequired[Origin]
    """The door that admitted it."""
    owner: NotRequired[str | None]
    """Who asked, for the HTTP API (an API key's owner or a JWT's subject)."""


class PublishAck(TypedDict, total=False):
    """JetStream's acknowledgement of an event (empty: not published, NATS_URL unset)."""

    stream: str
    """The stream that stored it."""
    seq: int
    """Its sequence number in that stream."""
    duplicate: bool
    """JetStream had it already (same ``Nats-Msg-Id`` within the duplicate window)."""
    msg_id: str
    """The ``Nats-Msg-Id`` it was published with."""
    subject: str
    """The subject it was published on."""


class CouncilState(InputState, total=False):
    """The whole deliberation, as checkpointed after every super-step."""

    council: Council
    """The effective council, fixed when the request was admitted."""
    thread_id: str
    """The thread it runs on (its checkpoints)."""
    label: str | None
    """The caller's own name for it (``Admission.label``), if any."""
    origin: Origin | None
    """The door that admitted it."""
    owner: str | None
    """Who asked over HTTP (None from the other doors)."""
    started_at: float
    """Unix time the deliberation started."""
    drafts: Annotated[list[Draft], operator.add]
    """Every proposal and revision."""
    critiques: Annotated[list[Critique], operator.add]
    """Every critique."""
    calls: Annotated[list[CallRecord], operator.add]
    """Every finished LLM call."""
    judgements: Annotated[list[Judgement], operator.add]
    """The judges' two judgements (opposite presentation orders)."""
    ballots: Annotated[list[Ballot], operator.add]
    """The peer vote."""
    evidence: Annotated[list[Evidence], operator.add]
    """What the checkers found in each draft (``nodes.ground``, after propose and each
    revise)."""
    omissions: Annotated[list[Omission], operator.add]
    """Agents left out of a task (answers rejected after every retry, or no room left in the
    token budget): the deliberation went on without them."""
    decision: Decision
    """Select's outcome (None while a later deliberation on the thread has not selected:
    ``Admitted`` clears it)."""
    result: Annotated[DeliberationCompleted, UntrackedValue]
    """The completed event, as published: in the run's output, never checkpointed (rebuilt
    from the state with ``finished_at``)."""
    published: PublishAck
    """JetStream's acknowledgement of the completed event (stream, seq, duplicate); set
    (empty when not published) once the deliberation has finished (None while a later
    deliberation on the thread runs: ``Admitted`` clears it)."""
    finished_at: str
    """When the completed event was built (ISO 8601, UTC): its ``timestamp`` (None while a
    later deliberation on the thread runs)."""
    prompts: PromptProvenance
    """The prompt set: its digest when ``prepare`` checked it, then, once finished, what the
    calls rendered (and whether it changed during the deliberation)."""


class OutputState(TypedDict, total=False):
    """What a caller gets back."""

    deliberation_id: str
    """Id of the deliberation."""
    decision: Decision
    """The winner, why, and the ranking."""
    result: Annotated[DeliberationCompleted, UntrackedValue]
    """The completed event (``orchestration.deliberation.completed``); not checkpointed."""
    published: PublishAck
    """Where the event went (stream, seq), empty when not published."""


# --- the payload of each stage's Send ---------------------------------------------------------


class _AgentTask(TypedDict):
    """What every stage's ``Send`` carries: one agent's work."""

    deliberation_id: str
    """The deliberation."""
    task: str
    """The software task."""
    council: Brief
    """What the agent needs of the effective council (role, rubric, constraints)."""
    agent: Agent
    """Who does the work."""
    round: int
    """Round of the stage (0 for propose)."""
    max_tokens: int
    """The stage's completion-token budget (the council's)."""
    token_cap: int | None
    """Most prompt + completion tokens this task may spend, retries included (its share of what
    is left of the council's token budget; None: no budget)."""
    evidence: NotRequired[str]
    """What the checkers found in the drafts this task shows, under the neutral labels its
    proposals use (the same for every task of a round): the ``${evidence}`` placeholder."""


class ProposeTask(_AgentTask):
    """propose: the agent writes its first version."""


class CritiqueTask(_AgentTask):
    """critique: the agent critiques a peer's latest version."""

    author: str
    """Whose proposal is critiqued."""
    proposal: str
    """The proposal's latest version."""
    order: NotRequired[list[str]]
    """Every agent still in, in the deliberation's fixed order: the latest versions are shown
    in this order under neutral labels (P1 first), the same for every critic and author of the
    round so the prefix cache serves them (absent: the proposal alone)."""
    proposals: NotRequired[dict[str, str]]
    """Agent id -> latest version, for ``order``."""


class ReviseTask(_AgentTask):
    """revise: the agent revises its own proposal from the critiques it received."""

    proposal: str
    """Its latest version."""
    critiques: list[Critique]
    """The critiques it received this round, in critic order."""
    order: NotRequired[list[str]]
    """As ``CritiqueTask.order``: the same proposals, in the same order, as the critics saw."""
    proposals: NotRequired[dict[str, str]]
    """Agent id -> the version the critics saw, for ``order``."""


class ShowTask(_AgentTask):
    """judge and vote: the final proposals, shown under neutral labels in ``order``."""

    order: list[str]
    """The agents whose final proposals are shown, in that order (label P1 first)."""
    proposals: dict[str, str]
    """Agent id -> final proposal."""


AgentTask = ProposeTask | CritiqueTask | ReviseTask | ShowTask
"""Any stage's payload."""


# --- what each node writes --------------------------------------------------------------------


class DraftUpdate(TypedDict, total=False):
    """propose and revise: a new version (or, for a proposer left out, an omission), and what
    its calls cost.
    """

    drafts: list[Draft]
    omissions: list[Omission]
    calls: Required[list[CallRecord]]


class CritiqueUpdate(TypedDict, total=False):
    """critique: one critique (or an omission), and what its calls cost."""

    critiques: list[Critique]
    omissions: list[Omission]
    calls: Required[list[CallRecord]]


class JudgementUpdate(TypedDict, total=False):
    """judge: one judgement (or an omission), and what its calls cost."""

    judgements: list[Judgement]
    omissions: list[Omission]
    calls: Required[list[CallRecord]]


class BallotUpdate(TypedDict, total=False):
    """vote: one ballot (or an omission), and what its calls cost."""

    ballots: list[Ballot]
    omissions: list[Omission]
    calls: Required[list[CallRecord]]


class GroundUpdate(TypedDict):
    """ground: the checkers' evidence on the new drafts."""

    evidence: list[Evidence]


class DecisionUpdate(TypedDict):
    """select and approve: the decision."""

    decision: Decision


class Admitted(InputState, total=False):
    """admit: the admitted input (defaults filled), the council and who asked; a later
    deliberation on the same thread also clears the one before (its lists overwritten, its
    outcome None), so each deliberation is a new one with its own event.
    """

    council: Council
    thread_id: str
    label: str | None
    origin: Origin | None
    owner: str | None
    drafts: Overwrite
    critiques: Overwrite
    calls: Overwrite
    judgements: Overwrite
    ballots: Overwrite
    evidence: Overwrite
    omissions: Overwrite
    decision: None
    published: None
    finished_at: None


class Prepared(TypedDict):
    """prepare: the council with every model named, when the deliberation started, and the
    prompt set it checked.
    """

    council: Council
    started_at: float
    prompts: NotRequired[PromptProvenance]


class Published(TypedDict):
    """publish: the event, where it went, and when it was built."""

    result: DeliberationCompleted
    published: PublishAck
    finished_at: str
    prompts: NotRequired[PromptProvenance]
