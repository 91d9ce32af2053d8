"""Running an eval: every problem with every strategy, recorded as it finishes, resumable.

Each (problem, strategy) is a job. ``single`` and ``vote``/``oracle`` call the ``propose`` node
directly (the council's own first-round call: prompt, headers, token budget, answer checks);
the council strategies run the whole graph through ``server.runner.Deliberations``, each on its own
thread ``eval-<run>.<problem>.<strategy>`` of the given checkpointer. What finished is in
``results.jsonl``; a job whose records are there is skipped, and a council thread that stopped
part way resumes from its last checkpoint, so a stopped eval re-asks nothing it finished.

A deliberation that fails for good (answers still invalid after the retries) is recorded as a
failure of that strategy on that problem (``status: error``) and the eval goes on; an LLM that
cannot be reached (``LLMUnreachable``) stops the eval, to be resumed later.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from langgraph.checkpoint.base import BaseCheckpointSaver

from council_agents.checks.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S
from council_agents.core.context import Context
from council_agents.core.errors import CouncilError, LLMUnreachable
from council_agents.core.progress import latest_drafts
from council_agents.core.request import CouncilSpec, admit
from council_agents.core.settings import Settings
from council_agents.core.state import CallRecord, Council, ProposeTask
from council_agents.evals.agreement import choose
from council_agents.evals.humaneval import Problem, task_text
from council_agents.evals.report import RESULTS_FILE, append_result, read_results
from council_agents.evals.results import ProblemResult
from council_agents.evals.sandbox import Outcome, score_answer
from council_agents.evals.strategies import EVAL_MAX_TOKENS, RUBRIC, Strategy
from council_agents.llm.stage import brief
from council_agents.nodes.propose import propose
from council_agents.server.runner import Deliberations, thread_config

RUN_FILE = "eval.json"
PROMPTS_DIR = Path(str(resources.files("council_agents.evals").joinpath("prompts")))


class EvalError(ValueError):
    """An eval that cannot run as asked (names the flag)."""


@dataclass(frozen=True)
class Plan:
    """What to run: problems, strategies, agents, where to write."""

    problems: Sequence[Problem]
    strategies: Sequence[Strategy]
    samples: int
    """Agents of each council, answers of ``vote`` and ``oracle``."""
    out_dir: Path
    concurrency: int = 2
    """Jobs (problem x strategy) in flight at once."""
    mixed_council: CouncilSpec | None = None
    """The stored council the ``mixed`` strategy deliberates with (looked up once)."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    variant: str = ""
    """The digest of the prompt set the strategies use instead of the eval's own
    (``council eval --prompts-dir``): each label gets `` [prompts <digest>]``, each thread
    ``-p<digest>``, so both sets' results sit side by side ("": the eval's prompts)."""


def eval_settings(settings: Settings, prompts_dir: Path | None = None) -> Settings:
    """``settings`` for an eval: the eval's prompts (or ``prompts_dir``) and token budgets, and
    no events published (an eval's deliberations are measurements, not decisions anyone should
    act on).
    """
    llm = dataclasses.replace(
        settings.llm,
        prompts_dir=prompts_dir or PROMPTS_DIR,
        max_tokens={**settings.llm.max_tokens, **EVAL_MAX_TOKENS},
    )
    events = dataclasses.replace(settings.events, nats_url=None)
    return dataclasses.replace(settings, llm=llm, events=events)


def run_id(out_dir: Path, identity: dict[str, Any], file: str = RUN_FILE) -> str:
    """The eval's id, kept in ``eval.json`` (``file``); an out dir of another model or agent
    count is refused (its results would not compare).
    """
    path = out_dir / file
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        for key, value in identity.items():
            if stored.get(key) != value:
                raise EvalError(
                    f"--out: {out_dir} holds an eval with {key} {stored.get(key)!r}, not "
                    f"{value!r}; give another --out"
                )
        return str(stored["run_id"])
    out_dir.mkdir(parents=True, exist_ok=True)
    rid = secrets.token_hex(4)
    path.write_text(json.dumps({"run_id": rid, **identity}, indent=2), encoding="utf-8")
    return rid


def variant_label(name: str, variant: str) -> str:
    """A strategy's label with another prompt set (its digest; "": the eval's prompts)."""
    return f"{name} [prompts {variant}]" if variant else name


def slug(problem: Problem) -> str:
    """A problem's id as a thread id allows it: ``HumanEval-82``."""
    return problem["task_id"].replace("/", "-")


def thread_id(rid: str, problem: Problem, name: str) -> str:
    """The thread (deliberation id, also in every logged call) of one problem and strategy of
    eval ``rid``: ``eval-<rid>.HumanEval-82.council1``.
    """
    return f"eval-{rid}.{slug(problem)}.{name}"


def eval_input(problem: Problem, strategy: Strategy) -> dict[str, Any]:
    """The deliberation input of a council strategy on a problem."""
    return {
        "task": task_text(problem),
        "role": "DEV",
        "rounds": strategy.rounds,
        "rubric": RUBRIC,
        "task_id": slug(problem),
    }


def eval_context(strategy: Strategy, samples: int, mixed_council: str | None) -> Context:
    """The run context of a council strategy: the council as it ships (its default checkers,
    ``code`` and ``quotes``, and its agreement gate, unless the strategy sets one; none and off
    for an ungrounded one), with execution on: the eval has the sandbox and runs the answers on
    the examples anyway.
    """
    return Context(
        council=mixed_council if strategy.mixed else None,
        agents=None if strategy.mixed else samples,
        aggregator=strategy.aggregator,
        require_approval=False,
        execute=True,
        checkers=None if strategy.grounded else [],
        gate=strategy.gate if strategy.grounded else 0.0,
        critics=strategy.critics,
        token_budget=strategy.token_budget,
    )


def _record(
    problem: Problem,
    label: str,
    outcome: Outcome,
    calls: Sequence[CallRecord],
    wall_s: float,
    answer: str,
    **extra: Any,
) -> ProblemResult:
    result = ProblemResult(
        task_id=problem["task_id"],
        strategy=label,
        passed=outcome.passed,
        status=outcome.status,
        reason=outcome.reason,
        prompt_tokens=sum(c["prompt_tokens"] for c in calls),
        cached_tokens=sum(c["cached_tokens"] for c in calls),
        completion_tokens=sum(c["completion_tokens"] for c in calls),
        llm_calls=len(calls),
        wall_s=round(wall_s, 3),
        answer=answer,
    )
    result.update(extra)  # type: ignore[typeddict-item]
    return result


class Runner:
    """Runs the jobs of one plan against one checkpointer, writing records as they finish."""

    def __init__(
        self,
        plan: Plan,
        settings: Settings,
        saver: BaseCheckpointSaver[str],
        rid: str,
        on_result: Callable[[ProblemResult], None] = lambda _: None,
    ):
        self.plan, self.settings, self.rid = plan, settings, rid
        self.deliberations = Deliberations(settings, saver)
        self.on_result = on_result
        self.path = plan.out_dir / RESULTS_FILE
        admitted = admit(
            {"task": "eval", "role": "DEV", "rubric": RUBRIC},
            Context(agents=plan.samples),
            None,
            settings.llm,
        )
        self.council: Council = admitted["council"]

    def thread(self, problem: Problem, name: str) -> str:
        """The thread (deliberation id) of one problem and strategy."""
        suffix = f"-p{self.plan.variant}" if self.plan.variant else ""
        return thread_id(self.rid, problem, name + suffix)

    def label(self, name: str) -> str:
        """A strategy's label in the results (with the prompt set's, when not the eval's)."""
        return variant_label(name, self.plan.variant)

    def groups(self) -> list[list[Strategy]]:
        """Jobs' strategies, in the plan's order; ``vote`` and ``oracle`` share their calls, so
        they are one job (where the first of them is).
        """
        groups: list[list[Strategy]] = []
        sampled: list[Strategy] = []
        for strategy in self.plan.strategies:
            if strategy.kind != "samples":
                groups.append([strategy])
            elif not sampled:
                sampled.append(strategy)
                groups.append(sampled)
            else:
                sampled.append(strategy)
        return groups

    def pending(self) -> list[tuple[Problem, list[Strategy]]]:
        """The jobs whose records are not all in ``results.jsonl`` yet, problem by problem."""
        done = {(r["task_id"], r["strategy"]) for r in read_results(self.path)}
        jobs = []
        for problem in self.plan.problems:
            for group in self.groups():
                missing = [
                    s
                    for s in group
                    if (problem["task_id"], self.label(s.label(self.plan.samples))) not in done
                ]
                if missing:
                    jobs.append((problem, missing))
        return jobs

    async def score(self, problem: Problem, answer: str) -> Outcome:
        """The answer run against the problem's tests."""
        return await score_answer(
            problem, answer, timeout=self.plan.timeout_s, memory_mb=self.plan.memory_mb
        )

    async def answer(
        self, problem: Problem, thread: str, agent_index: int
    ) -> tuple[str, list[CallRecord], str]:
        """One agent's first-round answer (the ``propose`` node, outside a graph): the text
        ("" when the agent gave none the council accepts), every attempt's record, and why
        there is no answer.
        """
        council = self.council
        task = ProposeTask(
            deliberation_id=thread,
            task=task_text(problem),
            council=brief(council),
            agent=council["agents"][agent_index],
            round=0,
            max_tokens=council["max_tokens"]["propose"],
            token_cap=None,
        )
        try:
            update = await propose(task, llm=self.deliberations.clients.llm)
        except LLMUnreachable:
            raise
        except CouncilError as e:  # e.g. a request the server refused
            return "", e.records, f"no answer: {e}"[:300]
        if "drafts" not in update:  # its answers were rejected after every retry
            agent = task["agent"]["agent_id"]
            left = update.get("omissions", [])
            reason = left[0]["reason"] if left else "no answer"
            return "", update["calls"], f"no answer: propose failed for {agent}: {reason}"[:300]
        return update["drafts"][0]["content"], update["calls"], ""

    async def single(self, problem: Problem) -> list[ProblemResult]:
        """The first agent's answer."""
        started = time.perf_counter()
        answer, calls, failure = await self.answer(problem, self.thread(problem, "single"), 0)
        outcome = Outcome("error", failure, 0.0) if failure else await self.score(problem, answer)
        wall = time.perf_counter() - started
        return [
            _record(
                problem, self.label("single"), outcome, calls, wall, answer, answered=not failure
            )
        ]

    async def sampled(self, problem: Problem, wanted: list[Strategy]) -> list[ProblemResult]:
        """N answers; ``vote`` picks by agreement, ``oracle`` passes when any passes."""
        started = time.perf_counter()
        thread = self.thread(problem, "samples")
        asked = await asyncio.gather(
            *(self.answer(problem, thread, i) for i in range(self.plan.samples))
        )
        answers = [text for text, _, _ in asked]
        calls = [c for _, records, _ in asked for c in records]

        async def scored(index: int) -> Outcome:
            failure = asked[index][2]
            return (
                Outcome("error", failure, 0.0)
                if failure
                else await self.score(problem, answers[index])
            )

        chosen, outcomes = await asyncio.gather(
            choose(problem, answers, timeout=self.plan.timeout_s, memory_mb=self.plan.memory_mb),
            asyncio.gather(*(scored(i) for i in range(len(answers)))),
        )
        wall = time.perf_counter() - started
        passing = [i for i, o in enumerate(outcomes) if o.passed]
        records = []
        for strategy in wanted:
            if strategy.name == "vote":
                pick, outcome = chosen, outcomes[chosen]
            else:  # oracle: any answer that passes, else the first
                pick = passing[0] if passing else 0
                outcome = outcomes[pick]
            records.append(
                _record(
                    problem,
                    self.label(strategy.label(self.plan.samples)),
                    outcome,
                    calls,
                    wall,
                    answers[pick],
                    chosen=self.council["agents"][pick]["agent_id"],
                    answered=not asked[pick][2],
                    candidates_passed=len(passing),
                    candidates=len(answers),
                )
            )
        return records

    async def deliberate(self, problem: Problem, strategy: Strategy) -> list[ProblemResult]:
        """A whole deliberation on its own thread; the winner's final version is scored."""
        started = time.perf_counter()
        thread = self.thread(problem, strategy.name)
        try:
            mixed = self.plan.mixed_council
            context = eval_context(strategy, self.plan.samples, mixed.name if mixed else None)
            admission = admit(
                eval_input(problem, strategy),
                context,
                mixed if strategy.mixed else None,
                self.settings.llm,
                origin="eval",
            )
            outcome = await self.deliberations.run(thread, admission, stream_mode=("updates",))
        except LLMUnreachable:
            raise
        except CouncilError as e:  # the council could not decide: a failure, the eval goes on
            # what finished (a failed step's finished tasks included) and the failed call
            state = await self.deliberations.graph.aget_state(thread_config(thread))
            calls = [*state.values.get("calls", []), *e.records]
            failed = Outcome("error", f"the deliberation failed: {e}"[:300], 0.0)
            wall = time.perf_counter() - started
            label = self.label(strategy.name)
            return [_record(problem, label, failed, calls, wall, "", answered=False)]
        values = outcome.values
        winner = values["decision"]["winner"]
        finals = latest_drafts(values)
        ids = sorted(finals)
        outcomes = await asyncio.gather(*(self.score(problem, finals[a]) for a in ids))
        wall = time.perf_counter() - started
        passing = sum(o.passed for o in outcomes)
        return [
            _record(
                problem,
                self.label(strategy.name),
                outcomes[ids.index(winner)],
                values["calls"],
                wall,
                finals[winner],
                chosen=winner,
                candidates_passed=passing,
                candidates=len(ids),
                rounds=values["result"].rounds,
                stop_reason=values["decision"]["stop_reason"],
                decided_by=values["decision"]["decided_by"],
            )
        ]

    async def job(self, problem: Problem, group: list[Strategy]) -> list[ProblemResult]:
        """Run one job and append its records."""
        first = group[0]
        if first.kind == "single":
            records = await self.single(problem)
        elif first.kind == "samples":
            records = await self.sampled(problem, group)
        else:
            records = await self.deliberate(problem, first)
        for record in records:
            append_result(self.path, record)
            self.on_result(record)
        return records

    async def run(self) -> int:
        """Every pending job, ``concurrency`` at once, in problem order; the number run."""
        jobs = self.pending()
        gate = asyncio.Semaphore(self.plan.concurrency)

        async def one(problem: Problem, group: list[Strategy]) -> None:
            async with gate:
                await self.job(problem, group)

        tasks = [asyncio.ensure_future(one(p, g)) for p, g in jobs]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return len(jobs)


class ProgressBar:
    """A progress bar on stderr (tqdm) with each strategy's running pass rate."""

    def __init__(
        self,
        labels: Sequence[str],
        done: Sequence[ProblemResult],
        total: int,
        stream: TextIO = sys.stderr,
        enabled: bool = True,
    ):
        self.labels = list(labels)
        self.passed = dict.fromkeys(self.labels, 0)
        self.seen = dict.fromkeys(self.labels, 0)
        for record in done:
            self.count(record)
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=len(done),
                unit="run",
                file=stream,
                dynamic_ncols=True,
                desc="eval",
            )
            self.bar.set_postfix_str(self.rates(), refresh=False)

    def count(self, record: ProblemResult) -> None:
        """Count one finished record."""
        if record["strategy"] in self.passed:
            self.seen[record["strategy"]] += 1
            self.passed[record["strategy"]] += record["passed"]

    def rates(self) -> str:
        """Each strategy's passes so far, e.g. ``single 3/10 · vote 4/10``."""
        return " · ".join(f"{x} {self.passed[x]}/{self.seen[x]}" for x in self.labels)

    def __call__(self, record: ProblemResult) -> None:
        """Count one record and show the running pass rates."""
        self.count(record)
        if self.bar is not None:
            self.bar.set_postfix_str(self.rates(), refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        """End the bar's line."""
        if self.bar is not None:
            self.bar.close()
