"""``council compare``: two prompt sets deliberate on the same tasks, and a judge compares the
two winners pairwise.

Each task is deliberated twice, by the same council (the built-in council of the task's role:
the same agents, seeds and rounds) with each prompt directory, each on its own thread
``compare-<run>.<task>.<side>`` of the given checkpointer. The two winners' final proposals are
then shown to a judge twice, in both orders, under neutral labels (``P1``, ``P2``: the judge
never learns which prompt set wrote which); the judge answers a structured verdict (its
comparison first, then ``P1``, ``P2`` or ``tie``) with its own prompt files
(``evals/pairwise/``, neither compared set's). The candidate wins a task when both orders prefer
it, loses when both prefer the baseline, and ties otherwise (so a judge swayed by the order
gives a tie, counted among the orders' disagreements).

Resumable as ``council eval``: a task whose record is in ``results.jsonl`` is not asked again,
and a deliberation that stopped part way resumes from its last checkpoint. A deliberation that
fails for good (answers still invalid after the retries) loses its task (both failing: a tie);
an LLM that cannot be reached stops the comparison, to be resumed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from pydantic import BaseModel, Field

from council_agents.core.context import Context
from council_agents.core.errors import CouncilError, LLMUnreachable
from council_agents.core.progress import latest_drafts
from council_agents.core.request import RequestError, admit, parse_input
from council_agents.core.settings import Settings
from council_agents.core.state import Agent, CallRecord, ProposeTask
from council_agents.core.terms import Role
from council_agents.evals.report import RESULTS_FILE, append_result, read_results
from council_agents.evals.results import OrderVerdict, Side, SideResult, TaskComparison, Verdict
from council_agents.llm.client import LLM, structured
from council_agents.llm.prompt import Prompt
from council_agents.llm.prompt_files import PromptFiles
from council_agents.llm.stage import brief, labelled, shared_values
from council_agents.server.runner import Deliberations, thread_config

PAIRWISE_DIR = Path(str(resources.files("council_agents.evals").joinpath("pairwise")))
"""The pairwise judge's prompt files: ``judge.md`` (its system prompt) and ``compare.md``."""
SIDES: tuple[Side, Side] = ("baseline", "candidate")


class CompareError(ValueError):
    """A comparison that cannot run as asked (names the flag or the file and line)."""


class CompareTask(TypedDict):
    """One task both prompt sets deliberate on (a line of a tasks file, or a shipped task)."""

    id: str
    role: Role
    task: str
    rubric: dict[str, Any]
    constraints: str


class PairwiseVerdict(BaseModel):
    """The pairwise judge's answer: its comparison first, then its verdict."""

    comparison: str = Field(
        max_length=1500,
        description="for each rubric criterion, which proposal does better and why (short)",
    )
    preferred: Literal["P1", "P2", "tie"] = Field(
        description="the label of the better proposal, or tie when neither is better"
    )


def read_tasks(path: Path) -> list[CompareTask]:
    """Tasks from a JSON-lines file: one object a line, with ``task`` and optionally ``id``
    (default ``line<N>``), ``role`` (default DEV), ``rubric`` and ``constraints``; each checked
    as a deliberation's input (``CompareError`` naming the file, the line and the field).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise CompareError(f"--tasks: cannot read {path}: {e.strerror}") from None
    tasks: list[CompareTask] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as e:
            raise CompareError(f"--tasks: {path}:{number}: not JSON: {e}") from None
        if not isinstance(doc, dict):
            raise CompareError(f"--tasks: {path}:{number}: must be a JSON object with 'task'")
        tasks.append(checked_task(doc, f"{path}:{number}", f"line{number}"))
        if tasks[-1]["id"] in seen:
            raise CompareError(f"--tasks: {path}:{number}: id {tasks[-1]['id']!r} is repeated")
        seen.add(tasks[-1]["id"])
    if not tasks:
        raise CompareError(f"--tasks: {path} has no task")
    return tasks


def checked_task(doc: dict[str, Any], where: str, default_id: str) -> CompareTask:
    """A task as a deliberation admits it (``CompareError`` naming ``where`` and the field)."""
    task_id = str(doc.get("id") or default_id)
    unknown = sorted(set(doc) - {"id", "role", "task", "rubric", "constraints"})
    if unknown:
        raise CompareError(
            f"--tasks: {where}: unknown field {unknown[0]!r} "
            "(known: id, role, task, rubric, constraints)"
        )
    inp: dict[str, Any] = {k: doc[k] for k in ("task", "role", "rubric", "constraints") if k in doc}
    try:
        request = parse_input({"task_id": task_id, **inp})
    except RequestError as e:
        raise CompareError(f"--tasks: {where}: {e}") from None
    return CompareTask(
        id=task_id,
        role=request.role or "DEV",
        task=request.task,
        rubric=doc.get("rubric") or {},
        constraints=request.constraints or "",
    )


@dataclass(frozen=True)
class Plan:
    """What to compare: two prompt directories, the tasks, the councils, the judge, the output."""

    baseline: Path | None
    """The baseline's prompt directory (None: the installed prompts)."""
    candidate: Path | None
    """The candidate's prompt directory (None: the installed prompts)."""
    tasks: Sequence[CompareTask]
    agents: int
    rounds: int
    out_dir: Path
    judge_model: str
    concurrency: int = 1
    """Tasks in flight at once (each runs its two deliberations at once)."""


def compare_settings(settings: Settings, prompts_dir: Path | None) -> Settings:
    """``settings`` for one side: its prompt directory, and no events published (a
    comparison's deliberations are measurements, not decisions anyone should act on).
    """
    llm = dataclasses.replace(settings.llm, prompts_dir=prompts_dir)
    events = dataclasses.replace(settings.events, nats_url=None)
    return dataclasses.replace(settings, llm=llm, events=events)


def judge_agent(settings: Settings, role: Role, model: str) -> Agent:
    """The pairwise judge: the settings' endpoint, ``model``, temperature 0, a fixed seed."""
    return Agent(
        agent_id="pairwise-judge",
        role=role,
        model=model,
        base_url=settings.llm.base_url,
        api_key_name=None,
        temperature=0.0,
        seed=7,
    )


def pairwise_prompt(
    task: CompareTask, agent: Agent, texts: Sequence[str], settings: Settings
) -> tuple[list[str], Prompt]:
    """The pairwise judge's prompt: the task, its rubric and constraints, and the two texts in
    the given order under neutral labels (``P1``, ``P2``), nothing about where they came from.
    """
    keys = [f"text{i}" for i in range(len(texts))]
    labels, shown = labelled(keys, dict(zip(keys, texts, strict=True)))
    inp: dict[str, Any] = {"task": task["task"], "role": task["role"]}
    if task["rubric"]:
        inp["rubric"] = task["rubric"]
    council = admit(inp, Context(agents=2), None, settings.llm)["council"]
    base = ProposeTask(
        deliberation_id="-",
        task=task["task"],
        council={**brief(council), "constraints": task["constraints"]},
        agent=agent,
        round=0,
        max_tokens=0,
        token_cap=None,
    )
    prompt = Prompt(
        system="judge",
        stage="compare",
        role=task["role"],
        values={**shared_values(base), "proposals": shown, "labels": ", ".join(labels)},
    )
    return list(labels), prompt


def outcome_of(verdicts: Sequence[Verdict]) -> Literal["win", "tie", "loss"]:
    """The candidate's outcome from the verdicts of both orders."""
    if verdicts and all(v == "candidate" for v in verdicts):
        return "win"
    if verdicts and all(v == "baseline" for v in verdicts):
        return "loss"
    return "tie"


class _Cost(TypedDict):
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    llm_calls: int


def _cost(calls: Sequence[CallRecord]) -> _Cost:
    return _Cost(
        prompt_tokens=sum(c["prompt_tokens"] for c in calls),
        cached_tokens=sum(c["cached_tokens"] for c in calls),
        completion_tokens=sum(c["completion_tokens"] for c in calls),
        llm_calls=len(calls),
    )


class Runner:
    """Runs a comparison's tasks against one checkpointer, writing a record per task."""

    def __init__(
        self,
        plan: Plan,
        settings: Settings,
        saver: BaseCheckpointSaver[str],
        rid: str,
        on_result: Callable[[TaskComparison], None] = lambda _: None,
    ):
        self.plan, self.settings, self.rid = plan, settings, rid
        self.on_result = on_result
        self.path = plan.out_dir / RESULTS_FILE
        dirs = {"baseline": plan.baseline, "candidate": plan.candidate}
        self.sides = {
            side: Deliberations(compare_settings(settings, dirs[side]), saver) for side in SIDES
        }
        judge_llm = dataclasses.replace(settings.llm, prompts_dir=PAIRWISE_DIR)
        self.judge = LLM(judge_llm)

    def thread(self, task: CompareTask, side: Side) -> str:
        """The thread (deliberation id) of one task and side."""
        return f"compare-{self.rid}.{task['id']}.{side}"

    def pending(self) -> list[CompareTask]:
        """The tasks whose record is not in ``results.jsonl`` yet."""
        done = {r["task_id"] for r in read_results(self.path)}
        return [t for t in self.plan.tasks if t["id"] not in done]

    async def deliberate(self, task: CompareTask, side: Side) -> SideResult:
        """One side's deliberation on ``task`` (resumed when it stopped part way)."""
        started = time.perf_counter()
        thread = self.thread(task, side)
        deliberations = self.sides[side]
        inp: dict[str, Any] = {
            "task": task["task"],
            "role": task["role"],
            "rounds": self.plan.rounds,
            "task_id": task["id"],
        }
        if task["rubric"]:
            inp["rubric"] = task["rubric"]
        if task["constraints"]:
            inp["constraints"] = task["constraints"]
        admission = admit(
            inp,
            Context(agents=self.plan.agents, require_approval=False),
            None,
            deliberations.settings.llm,
        )
        try:
            outcome = await deliberations.run(thread, admission, stream_mode=("updates",))
        except LLMUnreachable:
            raise
        except CouncilError as e:  # the council could not decide: its task is lost
            state = await deliberations.graph.aget_state(thread_config(thread))
            calls = [*state.values.get("calls", []), *e.records]
            return SideResult(
                thread=thread,
                status="error",
                reason=f"the deliberation failed: {e}"[:300],
                winner=None,
                content="",
                prompt_set=None,
                prompts_changed=False,
                wall_s=round(time.perf_counter() - started, 3),
                **_cost(calls),
            )
        values = outcome.values
        winner = values["decision"]["winner"]
        event = values["result"]
        return SideResult(
            thread=thread,
            status="completed",
            reason="",
            winner=winner,
            content=latest_drafts(values)[winner],
            prompt_set=event.prompts.digest if event.prompts else None,
            prompts_changed=bool(event.prompts and event.prompts.changed),
            wall_s=round(time.perf_counter() - started, 3),
            **_cost(values["calls"]),
        )

    async def judged(
        self, task: CompareTask, results: dict[Side, SideResult], shown: list[Side], order: int
    ) -> tuple[OrderVerdict, list[CallRecord]]:
        """One pairwise judgement (``order`` 1 or 2) of the two winners, shown in ``shown``'s
        order under neutral labels.
        """
        agent = judge_agent(self.settings, task["role"], self.plan.judge_model)
        _, prompt = pairwise_prompt(
            task, agent, [results[s]["content"] for s in shown], self.settings
        )
        deliberation_id = f"compare-{self.rid}.{task['id']}.pairwise"
        max_tokens = self.settings.llm.max_tokens["judge"]
        response_format, validate = structured(PairwiseVerdict, "pairwise")
        answer = await self.judge.call(
            agent,
            prompt,
            stage="judge",
            round_=order,
            deliberation_id=deliberation_id,
            max_tokens=max_tokens,
            response_format=response_format,
            validate=validate,
        )
        verdict: PairwiseVerdict = answer.parsed
        preferred: Verdict = (
            "tie" if verdict.preferred == "tie" else shown[int(verdict.preferred[1:]) - 1]
        )
        return (
            OrderVerdict(
                shown=list(shown),
                label=verdict.preferred,
                preferred=preferred,
                comparison=verdict.comparison,
            ),
            answer.records,
        )

    async def compare(self, task: CompareTask) -> TaskComparison:
        """Both deliberations on ``task``, then the two pairwise judgements of their winners."""
        baseline, candidate = await asyncio.gather(
            self.deliberate(task, "baseline"), self.deliberate(task, "candidate")
        )
        results: dict[Side, SideResult] = {"baseline": baseline, "candidate": candidate}
        verdicts: list[OrderVerdict] = []
        calls: list[CallRecord] = []
        note = ""
        failed = [s for s in SIDES if results[s]["status"] != "completed"]
        if failed:
            outcome = "tie" if len(failed) == 2 else ("loss" if failed == ["candidate"] else "win")
            note = f"not judged: the {' and the '.join(failed)} deliberation failed"
        else:
            try:
                orders: list[list[Side]] = [["baseline", "candidate"], ["candidate", "baseline"]]
                for order, shown in enumerate(orders, 1):
                    verdict, records = await self.judged(task, results, shown, order)
                    verdicts.append(verdict)
                    calls += records
            except LLMUnreachable:
                raise
            except CouncilError as e:  # the judge kept answering invalid verdicts
                calls += e.records
                verdicts = []
                note = f"not judged: {e}"[:300]
            outcome = outcome_of([v["preferred"] for v in verdicts]) if verdicts else "tie"
        record = TaskComparison(
            task_id=task["id"],
            role=task["role"],
            baseline=baseline,
            candidate=candidate,
            verdicts=verdicts,
            outcome=outcome,  # type: ignore[typeddict-item]
            orders_disagree=len({v["preferred"] for v in verdicts}) > 1,
            judge_model=self.plan.judge_model,
            judge_prompt_tokens=sum(c["prompt_tokens"] for c in calls),
            judge_completion_tokens=sum(c["completion_tokens"] for c in calls),
            note=note,
        )
        return record

    async def run(self) -> int:
        """Every pending task, ``concurrency`` at once, in order; the number run."""
        pending = self.pending()
        gate = asyncio.Semaphore(self.plan.concurrency)

        async def one(task: CompareTask) -> None:
            async with gate:
                record = await self.compare(task)
                append_result(self.path, record)  # type: ignore[arg-type]
                self.on_result(record)

        jobs = [asyncio.ensure_future(one(t)) for t in pending]
        try:
            await asyncio.gather(*jobs)
        except BaseException:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
            raise
        finally:
            for deliberations in self.sides.values():
                await deliberations.close()
        return len(pending)


def prompt_set_digest(directory: Path | None) -> str:
    """The digest of a prompt directory as it is now (None: the installed prompts)."""
    return PromptFiles(directory).snapshot().digest
