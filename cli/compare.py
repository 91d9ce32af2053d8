"""``council compare``: is one prompt set better than another on the team's own tasks?

    council compare CANDIDATE_DIR                  # against the installed prompts
    council compare BASELINE_DIR CANDIDATE_DIR     # two directories

Both prompt directories are checked first (as ``council prompts check``: exit 2 naming each
problem, before any server starts). Then every task (the shipped ones, or ``--tasks`` a JSON
lines file of tasks with rubrics) is deliberated by the same council with each set, and the two
winners are judged pairwise, blind, in both orders (``evals.compare``). Writes
``results.jsonl``, ``summary.md``, ``summary.json`` and ``compare.png`` into ``--out``, prints
the summary. Resumable: run the same command again; ``--report`` prints the summary of the
tasks finished so far without asking anything.

Exit codes as every council command: 2 bad input (a directory with problems, a tasks file
line, a flag, an out dir of another comparison), one line naming it; 3 the LLM could not be
reached (what finished is kept: run the same command to resume); 1 anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from council_agents.cli.commands import UsageError, demo_tasks, process_settings
from council_agents.cli.prompts import check_directory
from council_agents.cli.render import say
from council_agents.core.errors import LLMUnreachable
from council_agents.core.limits import MAX_AGENTS, MAX_ROUNDS, MIN_AGENTS
from council_agents.core.settings import Settings
from council_agents.evals.compare import (
    CompareError,
    CompareTask,
    Plan,
    Runner,
    checked_task,
    read_tasks,
)
from council_agents.evals.compare_report import SUMMARY_FILE, write_report
from council_agents.evals.harness import EvalError, run_id
from council_agents.evals.report import RESULTS_FILE, read_results
from council_agents.evals.results import TaskComparison
from council_agents.llm.client import LLM, served_models
from council_agents.server.services import services
from council_agents.storage.saver import valkey_saver

RUN_FILE = "compare.json"


def add_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``council compare``."""
    c = sub.add_parser(
        "compare",
        help="two prompt sets deliberate on the same tasks; a blind judge compares the winners",
    )
    c.add_argument(
        "dirs",
        nargs="+",
        metavar="DIR",
        help="CANDIDATE (against the installed prompts), or BASELINE CANDIDATE",
    )
    c.add_argument(
        "--tasks",
        help="JSON lines: {id, role, task, rubric, constraints} a line (default: the shipped)",
    )
    c.add_argument("--limit", type=int, help="the first N tasks")
    c.add_argument("--ids", help="comma-separated task ids (e.g. t01,t03)")
    c.add_argument(
        "--agents", type=int, default=3, help=f"agents per council ({MIN_AGENTS}-{MAX_AGENTS})"
    )
    c.add_argument("--rounds", type=int, default=1, help=f"critique/revise rounds (0-{MAX_ROUNDS})")
    c.add_argument(
        "--judge-model", help="the pairwise judge's model (default: the settings' model)"
    )
    c.add_argument("--concurrency", type=int, default=1, help="tasks in flight at once")
    c.add_argument("--out", help="results directory (default: <data dir>/compare/<digests>)")
    c.add_argument(
        "--report",
        action="store_true",
        help="only write and print the summary of the tasks finished so far in --out (no LLM)",
    )
    c.add_argument("--quiet", action="store_true", help="no progress lines")
    c.add_argument("--base-url", help="OpenAI-compatible LLM base URL (env COUNCIL_LLM_BASE_URL)")
    c.add_argument("--model", help="model name (env COUNCIL_MODEL; default: the server's)")
    c.set_defaults(func=cmd_compare)


def _directories(args: argparse.Namespace) -> tuple[Path | None, Path]:
    """The baseline (None: the installed prompts) and the candidate, both checked."""
    if len(args.dirs) > 2:
        raise UsageError(f"DIR: give one or two prompt directories, not {len(args.dirs)}")
    paths = [Path(d).resolve() for d in args.dirs]
    for path in paths:
        if not path.is_dir():
            raise UsageError(f"DIR: {path} is not a directory")
        checked = check_directory(path)
        if checked.problems:
            for problem in checked.problems:
                say(f"council: error: prompt file {path}/{problem}")
            raise UsageError(
                f"DIR: {path} has {len(checked.problems)} problem(s) (council prompts check)"
            )
    return (None, paths[0]) if len(paths) == 1 else (paths[0], paths[1])


def _tasks(args: argparse.Namespace) -> list[CompareTask]:
    """The tasks to compare on, checked."""
    try:
        if args.tasks:
            tasks = read_tasks(Path(args.tasks))
        else:
            tasks = [
                checked_task(t, f"shipped task {t['id']}", t["id"]) for t in demo_tasks().values()
            ]
    except CompareError as e:
        raise UsageError(str(e)) from None
    if args.ids:
        wanted = [i.strip() for i in args.ids.split(",") if i.strip()]
        known = {t["id"] for t in tasks}
        missing = [i for i in wanted if i not in known]
        if missing:
            raise UsageError(f"--ids: no task {missing[0]!r}; known: {', '.join(sorted(known))}")
        tasks = [t for t in tasks if t["id"] in wanted]
    if args.limit is not None:
        if args.limit < 1:
            raise UsageError(f"--limit: must be at least 1, got {args.limit}")
        tasks = tasks[: args.limit]
    return tasks


def _checked(args: argparse.Namespace) -> tuple[Path | None, Path, list[CompareTask]]:
    """Everything that needs no server, checked: named errors before anything starts."""
    if not MIN_AGENTS <= args.agents <= MAX_AGENTS:
        raise UsageError(f"--agents: must be {MIN_AGENTS}..{MAX_AGENTS}, got {args.agents}")
    if not 0 <= args.rounds <= MAX_ROUNDS:
        raise UsageError(f"--rounds: must be 0..{MAX_ROUNDS}, got {args.rounds}")
    if args.concurrency < 1:
        raise UsageError(f"--concurrency: must be at least 1, got {args.concurrency}")
    baseline, candidate = _directories(args)
    return baseline, candidate, _tasks(args)


async def _models(settings: Settings, judge: str | None) -> tuple[str, str]:
    """The council's model and the judge's, both served."""
    model = await LLM(settings.llm).default_model()
    if judge is None or judge == model:
        return model, model
    served = await served_models(settings.llm.base_url, settings.llm.api_key)
    if served and judge not in served:
        raise UsageError(
            f"--judge-model: {judge!r} is not served at {settings.llm.base_url}; "
            f"served: {', '.join(served)}"
        )
    return model, judge


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare two prompt sets; write results.jsonl, summary.md, summary.json and the plot."""
    baseline, candidate, tasks = _checked(args)
    base_digest = check_directory(baseline).files.digest
    cand_digest = check_directory(candidate).files.digest
    settings = process_settings(args)
    if args.report:
        return _report_only(args, baseline, candidate, tasks)
    try:
        model, judge = asyncio.run(_models(settings, args.judge_model))
    except LLMUnreachable as e:
        say(f"council: error: {e.cause}")
        return 3
    settings = settings.with_llm(model=model)
    out = (
        Path(args.out)
        if args.out
        else settings.data_dir / "compare" / f"{base_digest}-{cand_digest}"
    )
    plan = Plan(
        baseline=baseline,
        candidate=candidate,
        tasks=tasks,
        agents=args.agents,
        rounds=args.rounds,
        out_dir=out,
        judge_model=judge,
        concurrency=args.concurrency,
    )
    identity = {
        "model": model,
        "judge_model": judge,
        "agents": args.agents,
        "rounds": args.rounds,
        "baseline_prompt_set": base_digest,
        "candidate_prompt_set": cand_digest,
    }
    announce: Callable[[str], None] = (lambda _: None) if args.quiet else say
    announce(
        f"compare: baseline {baseline or '(installed prompts)'} (prompt set {base_digest}) "
        f"against candidate {candidate} (prompt set {cand_digest}); {len(tasks)} task(s), "
        f"{args.agents} agents, {args.rounds} round(s), model {model}, judge {judge}"
    )
    with services(settings, need_nats=False, announce=announce) as current:
        try:
            rid = run_id(out, identity, RUN_FILE)
        except EvalError as e:
            raise UsageError(str(e)) from None
        try:
            asyncio.run(_session(plan, current, rid, announce))
        except LLMUnreachable as e:
            say(f"council: error: {e}")
            say(f"council: the results so far are in {out}; run the same command to resume")
            return 3
        except KeyboardInterrupt:
            say(
                f"council: compare interrupted; the results so far are in {out}; run the same "
                "command to resume"
            )
            return 130
    _summary(out, baseline, candidate, tasks, identity)
    return 0


def _summary(
    out: Path,
    baseline: Path | None,
    candidate: Path,
    tasks: list[CompareTask],
    identity: dict[str, Any],
) -> None:
    """Write and print the summary of the plan's tasks finished in ``out``."""
    ids = {t["id"] for t in tasks}
    records: list[TaskComparison] = [
        r  # type: ignore[misc]
        for r in read_results(out / RESULTS_FILE)
        if r["task_id"] in ids
    ]
    done = f"; {len(records)} of {len(tasks)} task(s) finished" if len(records) < len(tasks) else ""
    title = (
        f"Prompt sets: candidate {identity['candidate_prompt_set']} against baseline "
        f"{identity['baseline_prompt_set']}; {identity['model']}, {identity['agents']} agents, "
        f"{identity['rounds']} round(s), judge {identity['judge_model']}{done}"
    )
    write_report(
        records,
        out,
        baseline_dir=str(baseline or "(installed prompts)"),
        candidate_dir=str(candidate),
        title=title,
    )
    sys.stdout.write((out / SUMMARY_FILE).read_text(encoding="utf-8"))
    print(f"results: {out}")


def _report_only(
    args: argparse.Namespace,
    baseline: Path | None,
    candidate: Path,
    tasks: list[CompareTask],
) -> int:
    """``--report``: the summary of what ``--out`` holds, without starting anything."""
    if not args.out:
        raise UsageError("--report: give the --out of the comparison")
    out = Path(args.out)
    try:
        identity = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"--out: {out} holds no comparison ({RUN_FILE})") from None
    digests = (check_directory(baseline).files.digest, check_directory(candidate).files.digest)
    if (identity.get("baseline_prompt_set"), identity.get("candidate_prompt_set")) != digests:
        raise UsageError(
            f"--out: {out} compares prompt sets {identity.get('baseline_prompt_set')} and "
            f"{identity.get('candidate_prompt_set')}, not {digests[0]} and {digests[1]}"
        )
    _summary(out, baseline, candidate, tasks, identity)
    return 0


async def _session(
    plan: Plan, settings: Settings, rid: str, announce: Callable[[str], None]
) -> None:
    def progress(record: TaskComparison) -> None:
        verdicts = " / ".join(v["preferred"] for v in record["verdicts"]) or record["note"]
        announce(
            f"  {record['task_id']} ({record['role']}): {record['outcome']} for the candidate "
            f"({verdicts}); winners {record['baseline']['winner']} / "
            f"{record['candidate']['winner']}"
        )

    assert settings.storage.valkey_url is not None
    async with valkey_saver(settings.storage.valkey_url, settings.storage.valkey_pool) as saver:
        await Runner(plan, settings, saver, rid, on_result=progress).run()
