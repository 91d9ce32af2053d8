"""One request, one admission: input + run context + stored council + settings -> the council.

Every door (the CLI, the HTTP middleware, the NATS worker, ``council eval``) calls ``admit``
once per request, with the stored council it looked up once; the graph receives the result in
its run configuration (``ADMISSION_KEY``) and ``prepare`` uses it as it is. Every limit
(``core.limits``) is checked here, and every refusal is a ``RequestError`` whose message names
the field and the limit.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Mapping
from typing import Annotated, Any, Literal, cast

import orjson
from langchain_core.runnables import RunnableConfig
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from council_agents.core.context import Context
from council_agents.core.limits import (
    DEFAULT_AGENTS,
    MAX_AGENTS,
    MAX_CONSTRAINTS_CHARS,
    MAX_CRITERIA,
    MAX_JSON_DEPTH,
    MAX_TASK_CHARS,
    MIN_AGENTS,
    Checkers,
    Critics,
    Gate,
    Identifier,
    Name,
    RoleName,
    Rounds,
    TokenBudget,
)
from council_agents.core.settings import KEY_NAME, LLMSettings
from council_agents.core.state import Admission, Agent, Council, Criterion, InputState
from council_agents.core.terms import Aggregator, Origin, Presentation, Role

ADMISSION_KEY = "council_admission"
"""The run configuration's key (``configurable``) that carries a door's ``Admission`` to the
graph: set only by council's doors, refused from callers (``server.app``)."""

ANCHORS = {"0": "absent or wrong", "5": "adequate, with gaps", "10": "complete and convincing"}
DEFAULT_RUBRIC: dict[str, Any] = {
    "correctness": {
        "meaning": "solves the task as stated, with no unsafe step",
        "weight": 2,
        "anchors": {
            "0": "does not solve it, or breaks something",
            "5": "solves the main case",
            "10": "solves it in every case the task implies, safely",
        },
    },
    "feasibility": {
        "meaning": "can be carried out by the team with the stated constraints",
        "weight": 1,
        "anchors": {
            "0": "cannot be done as written",
            "5": "doable with unstated work",
            "10": "every step is doable as written",
        },
    },
    "risk": {
        "meaning": "names the risks and a way back",
        "weight": 1,
        "anchors": {
            "0": "no risks, no rollback",
            "5": "main risks named",
            "10": "risks, detection and a tested rollback",
        },
    },
    "verifiability": {
        "meaning": "acceptance criteria and tests a reviewer can check",
        "weight": 1,
        "anchors": {
            "0": "nothing to check",
            "5": "some criteria, vague tests",
            "10": "measurable criteria and named tests",
        },
    },
}

ALLOWED_CONTROLS = frozenset("\t\n\r")
"""The only control characters a text may hold: tab and line breaks."""


def no_controls(text: str) -> str:
    """``text`` unchanged, or ``ValueError`` naming its first control character (NUL, ESC,
    DEL, C1 ...; tab and line breaks are text).
    """
    for i, ch in enumerate(text):
        if ch not in ALLOWED_CONTROLS and unicodedata.category(ch) == "Cc":
            raise ValueError(
                f"contains the control character U+{ord(ch):04X} at position {i + 1}; "
                "only tab and line breaks are allowed"
            )
    return text


Text = AfterValidator(no_controls)
"""Refuses control characters (``no_controls``)."""

CriterionName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True), Text
]
Meaning = Annotated[
    str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True), Text
]
Constraints = Annotated[str, Field(max_length=MAX_CONSTRAINTS_CHARS), Text]
BaseUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+(/\S*)?$", max_length=300)]
KeyName = Annotated[str, StringConstraints(pattern=f"^{KEY_NAME.pattern}$")]


class RequestError(ValueError):
    """A request council refuses: ``field: what is wrong``, with an HTTP status."""

    def __init__(self, field: str, message: str, status: int = 422):
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.status = field, message, status


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CriterionSpec(_Strict):
    """A rubric criterion with its weight and what 0, 5 and 10 mean."""

    meaning: Meaning
    weight: float = Field(1.0, gt=0, le=10)
    anchors: dict[Literal["0", "5", "10"], Meaning] = Field(default_factory=dict)


def _criterion(value: Any) -> Any:
    return {"meaning": value} if isinstance(value, str) else value


Rubric = Annotated[
    dict[CriterionName, Annotated[CriterionSpec, BeforeValidator(_criterion)]],
    Field(min_length=1, max_length=MAX_CRITERIA),
]


class AgentSpec(_Strict):
    """A member (or the judge) of a stored council; endpoints only from an admin."""

    agent_id: Name
    model: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    temperature: float = Field(0.7, ge=0, le=2)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    base_url: BaseUrl | None = None
    """Its own OpenAI-compatible endpoint (must be on the server's allow-list)."""
    api_key_name: KeyName | None = None
    """The setting that holds that endpoint's key (``COUNCIL_<NAME>_API_KEY``), never a key."""


class CouncilSpec(_Strict):
    """A named council as an admin stores it (``POST /councils``)."""

    name: Name
    role: RoleName
    agents: list[AgentSpec] = Field(min_length=MIN_AGENTS, max_length=MAX_AGENTS)
    judge: AgentSpec | None = None
    rounds: Rounds = 1
    rubric: Rubric = Field(default_factory=lambda: dict(DEFAULT_RUBRIC), validate_default=True)
    constraints: Constraints = ""
    require_approval: bool = False
    aggregator: Aggregator = "judge+vote"
    presentation: Presentation = "rotations"
    token_budget: TokenBudget | None = None
    critics: Critics | None = None
    """Critics per proposal (None: every peer; fewer make a sparse ring)."""
    checkers: Checkers | None = None
    """None: by the task's kind (``prepare``)."""
    execute: bool = False
    """Run the answers' code on the task's examples (in the sandbox only)."""
    gate: Gate = 1.0
    """The agreement gate (0: off)."""

    @field_validator("agents")
    @classmethod
    def _unique_agents(cls, agents: list[AgentSpec]) -> list[AgentSpec]:
        ids = [a.agent_id for a in agents]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"agent ids must be unique; repeated: {', '.join(repeated)}")
        return agents

    @field_validator("judge")
    @classmethod
    def _judge_apart(cls, judge: AgentSpec | None, info: ValidationInfo) -> AgentSpec | None:
        members = {a.agent_id for a in info.data.get("agents") or []}
        if judge is not None and judge.agent_id in members:
            raise ValueError(
                f"agent ids must be unique: {judge.agent_id!r} is a member; "
                "the judge needs an id of its own"
            )
        return judge


class DeliberationRequest(_Strict):
    """A deliberation's input, validated; unset fields come from the council."""

    task: str = Field(min_length=1, max_length=MAX_TASK_CHARS)
    role: RoleName | None = None
    rounds: Rounds | None = None
    rubric: Rubric | None = None
    constraints: Constraints = ""
    story_id: Identifier | None = None
    task_id: Identifier | None = None
    deliberation_id: Identifier | None = None

    @field_validator("task")
    @classmethod
    def _task_not_blank(cls, v: str) -> str:
        no_controls(v)
        if not v.strip():
            raise ValueError("is empty or only whitespace")
        return v.strip()


def json_depth(doc: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply ``doc`` nests objects and arrays (a scalar: 0, ``{}``: 1), counted without
    recursion; counting stops past ``limit``.
    """
    if not isinstance(doc, dict | list):
        return 0
    deepest, stack = 0, [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest


def load_json(raw: bytes | str, field: str = "body") -> Any:
    """A JSON document, refused (``RequestError`` on ``field``) when it is malformed (400) or
    nests deeper than ``MAX_JSON_DEPTH`` (422): parsed by orjson, which never recurses past
    1024 levels, so no document can exhaust the interpreter's stack.
    """
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if "depth" in str(e):
            raise RequestError(
                field, f"JSON nested more than 1024 levels deep; the limit is {MAX_JSON_DEPTH}"
            ) from None
        raise RequestError(field, f"malformed JSON: {e}", status=400) from None
    depth = json_depth(doc)
    if depth > MAX_JSON_DEPTH:
        raise RequestError(
            field,
            f"JSON nested more than {MAX_JSON_DEPTH} levels deep; the limit is {MAX_JSON_DEPTH}",
        )
    return doc


def default_council(
    role: Role, agents: int = DEFAULT_AGENTS, name: str | None = None
) -> CouncilSpec:
    """The built-in council of a role: ``agent-<role>-001`` ... with seeds 1001 ..."""
    members = [
        AgentSpec(agent_id=f"agent-{role.lower()}-{i:03d}", seed=1000 + i)
        for i in range(1, agents + 1)
    ]
    return CouncilSpec(name=name or role.lower(), role=role, agents=members)


def _clipped(value: Any) -> str:
    """``repr(value)``, shortened when long: a refusal never echoes 10 KB back."""
    if isinstance(value, str) and len(value) > 64:
        return f"{value[:32]!r}... ({len(value)} characters)"
    return repr(value)


def one_line(e: ValidationError, prefix: str = "") -> RequestError:
    """The first problem of a pydantic error as ``field: message`` (the limit included)."""
    err = e.errors()[0]
    loc = ".".join(str(x) for x in (prefix, *err["loc"]) if x != "") or "input"
    msg = err["msg"].removeprefix("Value error, ")
    given = err.get("input")
    if err["type"] in ("string_too_long", "too_long") and isinstance(given, str | list | dict):
        msg = f"{msg} (got {len(given)})"
    elif err["type"] == "string_pattern_mismatch":
        msg = f"{_clipped(given)} does not match {err['ctx']['pattern']}"
    elif err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        msg = "unknown field"
    more = len(e.errors()) - 1
    return RequestError(loc, msg + (f" (and {more} more problem(s))" if more else ""))


_context_adapter = TypeAdapter(Context)


def parse_context(context: Context | Mapping[str, Any] | None) -> Context:
    """A run's context, validated (unknown keys refused)."""
    if isinstance(context, Context):
        context = dataclasses.asdict(context)
    try:
        return _context_adapter.validate_python(dict(context or {}))
    except ValidationError as e:
        raise one_line(e, "context") from None


def parse_input(inp: Mapping[str, Any] | Any) -> DeliberationRequest:
    """A run's input, validated."""
    if not isinstance(inp, Mapping):
        raise RequestError("input", "must be an object with at least 'task'")
    try:
        return DeliberationRequest.model_validate(dict(inp))
    except ValidationError as e:
        raise one_line(e) from None


def parse_council(doc: Any, settings: LLMSettings | None = None) -> CouncilSpec:
    """A council definition, validated (and, with ``settings``, its endpoints and key names)."""
    try:
        council = CouncilSpec.model_validate(doc)
    except ValidationError as e:
        raise one_line(e) from None
    if settings is not None:
        _check_endpoints(council, settings)
    return council


_rubric_adapter: TypeAdapter[dict[str, CriterionSpec]] = TypeAdapter(Rubric)


def normal_rubric(rubric: Mapping[str, Any]) -> dict[str, Criterion]:
    """Every criterion with its meaning, weight and 0/5/10 anchors (defaults filled)."""
    specs = _rubric_adapter.validate_python(
        {k: v.model_dump() if isinstance(v, CriterionSpec) else v for k, v in rubric.items()}
    )
    return {
        name: Criterion(
            meaning=spec.meaning,
            weight=spec.weight,
            anchors={**ANCHORS, **{str(k): v for k, v in spec.anchors.items()}},
        )
        for name, spec in specs.items()
    }


def _check_endpoints(council: CouncilSpec, settings: LLMSettings) -> None:
    members = [(f"agents.{i}", a) for i, a in enumerate(council.agents)]
    for where, spec in members + ([("judge", council.judge)] if council.judge else []):
        if spec.base_url is not None and not settings.allows(spec.base_url):
            raise RequestError(
                f"{where}.base_url",
                f"{spec.base_url} is not on the server's allow-list (COUNCIL_LLM_ALLOWED_URLS)",
            )
        if spec.api_key_name is not None and spec.api_key_name not in settings.api_keys:
            raise RequestError(
                f"{where}.api_key_name", f"no setting {spec.api_key_name} on this server"
            )


def _agent(spec: AgentSpec, role: Role, settings: LLMSettings) -> Agent:
    return Agent(
        agent_id=spec.agent_id,
        role=role,
        model=spec.model or settings.model or "",
        base_url=spec.base_url or settings.base_url,
        api_key_name=spec.api_key_name,
        temperature=spec.temperature,
        seed=spec.seed,
    )


def admit(
    inp: Mapping[str, Any] | DeliberationRequest,
    context: Context | Mapping[str, Any] | None,
    stored: CouncilSpec | None,
    settings: LLMSettings,
    *,
    origin: Origin = "cli",
    owner: str | None = None,
) -> Admission:
    """The validated input (defaults filled) and the effective council of one deliberation.

    Precedence: the input, then the run context, then the stored council named by
    ``context.council`` (looked up once by the door), then the built-in council of the role.
    Endpoints, models and key names come only from ``settings`` and the stored council
    (checked against the allow-list), never from the caller; each stage's token budget is
    fixed from the settings here. ``origin`` is the door, ``owner`` who asked (HTTP); the
    input's ``deliberation_id`` becomes the admission's ``label``: the deliberation's id is
    the server's (``nodes.admit``).
    """
    req = inp if isinstance(inp, DeliberationRequest) else parse_input(inp)
    ctx = parse_context(context)
    if ctx.council is not None and stored is None:
        raise RequestError("context.council", f"unknown council {ctx.council!r}", status=404)
    if stored is not None and ctx.agents is not None:
        raise RequestError(
            "context.agents", f"council {stored.name!r} fixes its agents; leave it out"
        )
    role: Role = req.role or (stored.role if stored else "DEV")
    if stored is not None and role != stored.role:
        raise RequestError(
            "role", f"council {stored.name!r} is a {stored.role} council, not {role}"
        )
    spec = stored or default_council(role, ctx.agents or DEFAULT_AGENTS)
    _check_endpoints(spec, settings)
    constraints = "\n".join(x for x in (spec.constraints, req.constraints) if x)
    if len(constraints) > MAX_CONSTRAINTS_CHARS:
        raise RequestError(
            "constraints",
            f"with the council's, {len(constraints)} characters; "
            f"the maximum is {MAX_CONSTRAINTS_CHARS}",
        )
    specs = req.rubric or spec.rubric
    req = req.model_copy(
        update={
            "role": role,
            "rounds": spec.rounds if req.rounds is None else req.rounds,
            "rubric": specs,
            "constraints": constraints,
        }
    )
    critics = ctx.critics if ctx.critics is not None else spec.critics
    if critics is not None and critics > len(spec.agents) - 1:
        raise RequestError(
            "critics",
            f"{critics} critics per proposal with {len(spec.agents)} agents; "
            f"the most is {len(spec.agents) - 1} (every peer)",
        )
    judge = spec.judge or AgentSpec(agent_id=f"judge-{role.lower()}", temperature=0.0, seed=7)
    agents = sorted(spec.agents, key=lambda a: a.agent_id)
    council = Council(
        role=role,
        name=stored.name if stored else None,
        agents=[_agent(a, role, settings) for a in agents],
        judge=_agent(judge, role, settings),
        rounds=req.rounds or 0,
        rubric=normal_rubric(specs),
        constraints=constraints,
        require_approval=bool(
            spec.require_approval if ctx.require_approval is None else ctx.require_approval
        ),
        aggregator=ctx.aggregator or spec.aggregator,
        presentation=ctx.presentation or spec.presentation,
        token_budget=ctx.token_budget if ctx.token_budget is not None else spec.token_budget,
        max_tokens=dict(settings.max_tokens),
        critics=critics,
        checkers=ctx.checkers if ctx.checkers is not None else spec.checkers,
        execute=ctx.execute if ctx.execute is not None else spec.execute,
        gate=(ctx.gate if ctx.gate is not None else spec.gate) or None,
    )
    given = req.model_dump(mode="json", exclude_none=True)
    label = given.pop("deliberation_id", None)
    return Admission(
        input=cast(InputState, given),
        council=council,
        label=label,
        origin=origin,
        owner=owner,
    )


_admission_adapter: TypeAdapter[Admission] = TypeAdapter(Admission)


SALT_KEY = "council_salt"
"""The run configuration's key that varies the sampling seeds of a deliberation tried again (a
resume, a redelivery): set by council's doors, so a rejected answer is not asked for again with
the same seed."""


def with_salt(config: RunnableConfig, salt: int) -> RunnableConfig:
    """``config`` with a seed salt (0 leaves it as it is)."""
    if not salt:
        return config
    configurable = {**(config.get("configurable") or {}), SALT_KEY: salt}
    return cast(RunnableConfig, {**config, "configurable": configurable})


def salt_of(config: RunnableConfig) -> int:
    """The seed salt of a run (0: a first try)."""
    salt = (config.get("configurable") or {}).get(SALT_KEY, 0)
    return salt if isinstance(salt, int) else 0


def admission_of(config: RunnableConfig) -> Admission | None:
    """The admission a door put into a run's configuration (None: none was given). Only
    council's doors write it (callers' ``configurable`` is refused), but it is parsed as
    what it claims to be before the graph trusts it.
    """
    raw = (config.get("configurable") or {}).get(ADMISSION_KEY)
    if raw is None:
        return None
    try:
        return _admission_adapter.validate_python(raw)
    except ValidationError as e:
        raise one_line(e, ADMISSION_KEY) from None


def with_admission(config: RunnableConfig, admission: Admission) -> RunnableConfig:
    """``config`` carrying ``admission`` to the graph."""
    configurable = {**(config.get("configurable") or {}), ADMISSION_KEY: admission}
    return cast(RunnableConfig, {**config, "configurable": configurable})
