"""What the agent stages share: the prompt, the call, the news for streaming clients, and the
up-front checks: every prompt file a deliberation renders is there with only known placeholders
(``check_prompts``), and its shortest prompts fit its models' context windows (``check_fits``).

Proposals are data: what agents wrote reaches another agent's prompt fenced
(``llm.prompt.fence``): the proposals judges and voters read (``labelled``), and every
placeholder named in ``PEER_TEXT`` (the proposal under critique or revision, the critiques),
whether given as a value or as a piece that may be shortened. A stage that embeds another
agent's text names its placeholder there.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from langgraph.config import get_config, get_stream_writer
from pydantic import BaseModel

from council_agents.core.errors import AnswerRejected, CouncilError
from council_agents.core.request import RequestError, salt_of
from council_agents.core.state import (
    Agent,
    AgentTask,
    Brief,
    Council,
    Omission,
    ProposeTask,
    ShowTask,
)
from council_agents.core.terms import Stage
from council_agents.llm.client import LLM, Answer, structured
from council_agents.llm.fit import MARGIN, ContextOverflow, OverBudget, floor
from council_agents.llm.prompt import MARKER, EvenCap, Fenced, Oldest, Piece, Prompt, fence
from council_agents.llm.prompt_files import (
    Problem,
    PromptError,
    PromptFiles,
    Snapshot,
    check_text,
    rubric_text,
)
from council_agents.llm.tokens import estimate


def shared_values(task: AgentTask) -> dict[str, Any]:
    """Placeholders every stage prompt can use."""
    council = task["council"]
    return {
        "task": task["task"],
        "constraints": council["constraints"] or "(none)",
        "rubric": rubric_text(council["rubric"]),
        "agent_id": task["agent"]["agent_id"],
        # the checkers' findings hold program output: data, fenced like what agents wrote
        "evidence": fence(task.get("evidence") or "(no checks ran)"),
    }


def labels_for(order: list[str]) -> dict[str, str]:
    """Neutral labels (P1, P2, ... in presentation order) -> agent."""
    return {f"P{i}": agent_id for i, agent_id in enumerate(order, 1)}


def labelled(order: list[str], proposals: dict[str, str]) -> tuple[dict[str, str], str]:
    """Neutral labels -> agent, and the proposals as the judge or voter reads them: each under
    its label's heading, fenced as data (``llm.prompt.fence``).
    """
    labels = labels_for(order)
    text = "\n\n".join(
        f"## Proposal {label}\n{fence(proposals[agent_id])}" for label, agent_id in labels.items()
    )
    return labels, text


ANONYMOUS = "[a council member]"
"""What an agent id inside a proposal shown to judges and voters becomes."""


def anonymous(proposals: dict[str, str], ids: list[str]) -> dict[str, str]:
    """``proposals`` with every agent id of ``ids`` in their texts replaced by ``ANONYMOUS``:
    a proposal that names its author (or a peer) must not tell the judges whose it is.
    """
    if not ids:
        return proposals
    pattern = re.compile("|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True)))
    return {a: pattern.sub(ANONYMOUS, text) for a, text in proposals.items()}


def shown(task: ShowTask) -> dict[str, str]:
    """The proposals of a judge's or voter's task as they read them: without any agent's id."""
    return anonymous(task["proposals"], [*task["order"], task["agent"]["agent_id"]])


PEER_TEXT = frozenset({"proposal", "critiques"})
"""Placeholders that hold what an agent wrote: fenced as data wherever they appear. In
``revise`` the proposal is the author's own: fenced, its headings kept as written (it copies
them back)."""


def fenced(
    stage: Stage, pieces: dict[str, Piece], values: dict[str, Any]
) -> tuple[dict[str, Piece], dict[str, Any]]:
    """``pieces`` and ``values`` with every ``PEER_TEXT`` placeholder fenced."""

    def headings(name: str) -> bool:
        return not (stage == "revise" and name == "proposal")

    return (
        {n: Fenced(p, headings(n)) if n in PEER_TEXT else p for n, p in pieces.items()},
        {
            n: fence(v, headings(n)) if n in PEER_TEXT and isinstance(v, str) else v
            for n, v in values.items()
        },
    )


def announce(stage: Stage, task: AgentTask, answer: Answer) -> None:
    """Tell streaming clients (stream mode ``custom``) that an agent finished a stage."""
    try:
        writer = get_stream_writer()
    except RuntimeError:  # not running inside a graph
        return
    record = answer.records[-1]
    writer(
        {
            "event": "agent_finished",
            "stage": stage,
            "agent_id": task["agent"]["agent_id"],
            "round": task["round"],
            "completion_tokens": record["completion_tokens"],
            "latency_s": record["latency_s"],
            "content": answer.content,
        }
    )


def stage_prompt(
    task: AgentTask,
    stage: Stage,
    *,
    system: str | None = None,
    pieces: dict[str, Piece] | None = None,
    **values: Any,
) -> Prompt:
    """``<stage>.md`` for the task's agent (system prompt: its role's, or ``system``), with
    ``pieces``: the inputs that may be shortened to fit the context window, in order; what
    agents wrote is fenced (``PEER_TEXT``).
    """
    council = task["council"]
    shown, given = fenced(stage, pieces or {}, values)
    return Prompt(
        system=system or f"roles/{council['role'].lower()}",
        stage=stage,
        role=council["role"],
        # a piece replaces the shared value of its placeholder (``evidence_piece``)
        values={k: v for k, v in {**shared_values(task), **given}.items() if k not in shown},
        pieces=shown,
    )


def evidence_piece(task: AgentTask) -> Fenced:
    """What the checks found (``${evidence}``), as an input that may be shortened to fit a
    window (its first blocks go first), fenced as data like the shared value it replaces.
    """
    return Fenced(Oldest("evidence", task.get("evidence") or "(no checks ran)"))


async def run_agent(
    llm: LLM,
    task: AgentTask,
    stage: Stage,
    *,
    system: str | None = None,
    answer: type[BaseModel] | None = None,
    check: Callable[[str], Any] | None = None,
    min_answer: int | None = None,
    pieces: dict[str, Piece] | None = None,
    **values: Any,
) -> Answer:
    """Render ``<stage>.md`` for the task's agent, call its LLM (answering ``answer``'s JSON
    Schema when given, else plain text that ``check`` reads and may reject with
    ``ValueError``; ``pieces`` shortened if the window needs it), announce the answer.
    Raises ``AnswerRejected`` when every attempt was rejected.
    """
    prompt = stage_prompt(task, stage, system=system, pieces=pieces, **values)
    response_format, validate = structured(answer, stage) if answer is not None else (None, check)
    result = await llm.call(
        task["agent"],
        prompt,
        stage=stage,
        round_=task["round"],
        deliberation_id=task["deliberation_id"],
        max_tokens=task["max_tokens"],
        response_format=response_format,
        validate=validate,
        salt=_salt(),
        token_cap=task["token_cap"],
        min_answer=min_answer,
    )
    announce(stage, task, result)
    return result


LEFT_OUT = (AnswerRejected, ContextOverflow, OverBudget)
"""What leaves an agent out of a task (and the deliberation goes on): its answers were rejected
after every retry, its prompt cannot fit its model's window even shortened, or its share of the
token budget has no room for it."""


def omission(
    task: AgentTask, stage: Stage, error: CouncilError, subject: str | None = None
) -> Omission:
    """The record of an agent left out of a task, with what its attempts cost."""
    return Omission(
        stage=stage,
        round=task["round"],
        agent_id=task["agent"]["agent_id"],
        subject=subject,
        reason=error.cause,
        attempts=len(error.records),
        completion_tokens=sum(r["completion_tokens"] for r in error.records),
    )


def _salt() -> int:
    """This run's seed salt (0 outside a graph, or on a first try)."""
    try:
        return salt_of(get_config())
    except RuntimeError:  # not running inside a graph
        return 0


def proposals_piece(
    order: list[str], proposals: dict[str, str], keep: frozenset[str] = frozenset()
) -> EvenCap:
    """The proposals an agent reads, all cut to one length when they do not fit (except those
    of ``keep``: a revising author's own).
    """
    return EvenCap(order, proposals, lambda o, texts: labelled(o, texts)[1], keep)


def brief(council: Council) -> Brief:
    """What an agent's task needs of the council: a ``Send`` carries only this."""
    return Brief(
        role=council["role"],
        rubric=council["rubric"],
        constraints=council["constraints"],
        checkers=list(council.get("checkers") or []),
    )


def _base(council: Council, task: str, deliberation_id: str, agent: Agent) -> ProposeTask:
    return ProposeTask(
        deliberation_id=deliberation_id,
        task=task,
        council=brief(council),
        agent=agent,
        round=0,
        max_tokens=0,
        token_cap=None,
    )


def shortest_prompts(council: Council, task: ProposeTask) -> list[tuple[Stage, Prompt]]:
    """Each stage the council runs, for ``task``'s agent, with every input that may be shortened
    at its shortest: what must fit whatever the proposals and critiques turn out to be.
    """
    stub = MARKER.format(n=0)
    n = len(council["agents"])
    labels = [f"P{i}" for i in range(1, n + 1)]
    shown = dict.fromkeys(labels, stub)
    prompts: list[tuple[Stage, Prompt]] = [("propose", stage_prompt(task, "propose"))]
    _, text = labelled(labels, shown)
    if council["rounds"] > 0 and n > 1:
        on: dict[str, Any] = {"author": "-", "version": 0, "proposal": stub, "round": 1}
        on["label"] = "P2"
        prompts.append(("critique", stage_prompt(task, "critique", proposals=text, own="P1", **on)))
        prompts.append(
            (
                "revise",
                stage_prompt(task, "revise", proposals=text, critiques=stub, own="P2", **on),
            )
        )
    peers = ", ".join(labels[1:]) or "P1"
    prompts.append(("vote", stage_prompt(task, "vote", proposals=text, labels=peers, own="P1")))
    return prompts


def judge_prompt(council: Council, task: ProposeTask) -> Prompt:
    """The judge's prompt with every proposal at its shortest."""
    labels = [f"P{i}" for i in range(1, len(council["agents"]) + 1)]
    _, text = labelled(labels, dict.fromkeys(labels, MARKER.format(n=0)))
    return stage_prompt(
        task, "judge", system="roles/judge", proposals=text, labels=", ".join(labels)
    )


def _checks(council: Council, task: str, deliberation_id: str) -> list[tuple[Agent, Stage, Prompt]]:
    """Every agent's shortest prompt of every stage the council runs, and the judge's."""
    checks: list[tuple[Agent, Stage, Prompt]] = []
    for agent in council["agents"]:
        base = _base(council, task, deliberation_id, agent)
        checks += [(agent, stage, prompt) for stage, prompt in shortest_prompts(council, base)]
    if council["aggregator"] != "vote":
        judge = council["judge"]
        checks.append((judge, "judge", judge_prompt(council, _base(council, task, "-", judge))))
    return checks


def prompt_files_used(council: Council) -> set[str]:
    """The prompt files ``council``'s stages render (``propose.md``, ``roles/dev.md``, ...)."""
    return {
        f"{name}.md"
        for _, _, prompt in _checks(council, "(task)", "-")
        for name in (prompt.system, prompt.stage)
    }


def prompt_problems(files: Snapshot, council: Council, task: str = "(task)") -> list[Problem]:
    """Every problem of the prompt files ``council``'s stages render (missing files, malformed
    or unknown placeholders), each once, rendered with representative values.
    """
    problems: dict[tuple[str, int | None, str], Problem] = {}
    for _, _, prompt in _checks(council, task, "-"):
        given = [(prompt.system, {"role"}), (prompt.stage, {*prompt.values, *prompt.pieces})]
        for name, known in given:
            try:
                text = files.text(name)
            except PromptError as e:
                found = e.problems
            else:
                found = check_text(f"{name}.md", text, known)
            for p in found:
                problems.setdefault((p.file, p.line, p.what), p)
        if not problems:
            prompt.render(files)
    return list(problems.values())


def check_prompts(files: PromptFiles, council: Council) -> Snapshot:
    """The prompt set as read now, when every file ``council`` renders is there and fills only
    placeholders its stage gives (``PromptError`` naming each problem: bad input, before any
    LLM call).
    """
    snapshot = files.snapshot()
    problems = prompt_problems(snapshot, council)
    if problems:
        raise PromptError(snapshot.root, problems)
    snapshot.rendered.clear()
    return snapshot


async def check_fits(llm: LLM, council: Council, task: str, deliberation_id: str) -> None:
    """Refuse (``RequestError`` on ``task``, with the numbers) a deliberation whose shortest
    prompts do not leave their answers room in some agent's context window.
    """
    checks = _checks(council, task, deliberation_id)
    files = await asyncio.to_thread(llm.prompts.snapshot)  # disk reads: off the event loop
    seen: set[tuple[str, str, str]] = set()
    for agent, stage, prompt in checks:
        key = (agent["base_url"], agent["model"], stage)
        if key in seen:
            continue
        seen.add(key)
        known = await llm.windows.endpoint(agent)
        if known.window is None:
            continue
        messages, _ = prompt.render(files)
        need = floor(council["max_tokens"][stage])
        room = known.window - MARGIN
        if estimate(messages) * known.scale + need <= room:
            continue  # clearly fits: no need to ask the server
        tokens, counted_by = await llm.windows.count(agent, messages, known)
        if tokens + need > room:
            raise RequestError(
                "task",
                f"does not fit the context window of {agent['model']} at {agent['base_url']} "
                f"({known.window} tokens): the shortest {stage} prompt is {tokens} tokens "
                f"({counted_by}) and its answer needs at least {need}; shorten the task, "
                "constraints or rubric, or use a model with a larger window",
            )
