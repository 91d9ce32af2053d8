"""``council eval``: the command line of the eval (registered by ``cli.main``).

``--prompts-dir DIR`` runs every strategy a second time with DIR's prompts (labels
`` [prompts <digest>]``) and pairs each with itself on the eval's prompts (McNemar).

Exit codes as every council command: 0 done; 2 bad input (an unknown suite or strategy, a
limit below 1, an out dir of another eval, a prompt directory with a problem), one line naming
the flag; 3 the LLM could not be
reached (before the first problem, or part way: what finished is kept, run the same command
again to resume); 1 anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from council_agents.cli.commands import UsageError, process_settings
from council_agents.cli.render import say
from council_agents.core.errors import LLMUnreachable
from council_agents.core.limits import MAX_AGENTS, MIN_AGENTS
from council_agents.core.request import AgentSpec, CouncilSpec, admit
from council_agents.core.settings import LLMSettings, Settings
from council_agents.evals.harness import (
    EvalError,
    Plan,
    ProgressBar,
    Runner,
    eval_context,
    eval_settings,
    run_id,
    variant_label,
)
from council_agents.evals.humaneval import SuiteError, load_problems
from council_agents.evals.report import RESULTS_FILE, read_results, write_report
from council_agents.evals.results import ProblemResult
from council_agents.evals.strategies import (
    DEFAULT_STRATEGIES,
    RUBRIC,
    STRATEGIES,
    Strategy,
    StrategyError,
    parse_strategies,
)
from council_agents.llm.client import LLM, served_models
from council_agents.llm.prompt_files import PromptError, PromptFiles
from council_agents.llm.stage import check_prompts
from council_agents.server.services import services
from council_agents.storage.councils import CouncilStore
from council_agents.storage.saver import valkey_saver

SUITES = ("humaneval",)


def add_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``council eval``."""
    e = sub.add_parser(
        "eval",
        help="compare answer strategies (single, vote, judge, council) on a checkable benchmark",
    )
    e.add_argument("--suite", default="humaneval", help=f"benchmark: {', '.join(SUITES)}")
    e.add_argument("--split", default="test", help="tune (problems 0-81), test (82-163) or all")
    e.add_argument("--limit", type=int, help="the first N problems of the split")
    e.add_argument(
        "--strategies",
        default=None,
        help=f"comma-separated, of {', '.join(STRATEGIES)} (default: "
        f"{','.join(DEFAULT_STRATEGIES)}, and mixed when several models are on offer)",
    )
    e.add_argument(
        "--samples",
        type=int,
        default=3,
        help=f"agents per council and answers of vote/oracle ({MIN_AGENTS}-{MAX_AGENTS})",
    )
    e.add_argument("--council", help="a stored DEV council with several models, for `mixed`")
    e.add_argument("--concurrency", type=int, default=2, help="problem x strategy runs at once")
    e.add_argument("--timeout", type=float, default=10.0, help="seconds per test run")
    e.add_argument("--out", help="results directory (default: <data dir>/eval/<suite>-<split>)")
    e.add_argument(
        "--prompts-dir",
        help="also run every strategy with this prompt directory, each paired with itself on "
        "the eval's prompts (McNemar): is a prompt change better on code?",
    )
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.add_argument(
        "--base-url",
        help="OpenAI-compatible LLM base URL (env COUNCIL_LLM_BASE_URL)",
    )
    e.add_argument("--model", help="model name (env COUNCIL_MODEL; default: the server's)")
    e.set_defaults(func=cmd_eval)


def _checked(args: argparse.Namespace) -> dict[str, Any]:
    """The flags that need no server, checked: named errors before anything starts."""
    if args.suite not in SUITES:
        raise UsageError(f"--suite: unknown suite {args.suite!r}; known: {', '.join(SUITES)}")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit: must be at least 1, got {args.limit}")
    if not MIN_AGENTS <= args.samples <= MAX_AGENTS:
        raise UsageError(f"--samples: must be {MIN_AGENTS}..{MAX_AGENTS}, got {args.samples}")
    if args.concurrency < 1:
        raise UsageError(f"--concurrency: must be at least 1, got {args.concurrency}")
    if args.timeout <= 0:
        raise UsageError(f"--timeout: must be above 0, got {args.timeout}")
    try:
        strategies = parse_strategies(args.strategies or ",".join(DEFAULT_STRATEGIES))
        problems = load_problems(args.split, args.limit)
    except (StrategyError, SuiteError) as e:
        message = str(e) if str(e).startswith("--") else f"--split: {e}"
        raise UsageError(message) from None
    variant = _variant(args.prompts_dir)
    return {
        "strategies": strategies,
        "problems": problems,
        "explicit": args.strategies,
        "variant": variant,
    }


def _variant(directory: str | None) -> tuple[Path, str] | None:
    """``--prompts-dir``, checked as the eval's DEV councils render it, and its digest."""
    if directory is None:
        return None
    path = Path(directory).resolve()
    if not path.is_dir():
        raise UsageError(f"--prompts-dir: {path} is not a directory")
    council = admit(
        {"task": "eval", "role": "DEV", "rubric": RUBRIC},
        eval_context(STRATEGIES["council1"], MIN_AGENTS, None),
        None,
        LLMSettings(model="(model)"),
    )["council"]
    try:
        files = check_prompts(PromptFiles(path), council)
    except PromptError as e:
        raise UsageError(f"--prompts-dir: {e}") from None
    return path, files.digest


def cmd_eval(args: argparse.Namespace) -> int:
    """Run the eval, write results.jsonl, summary.md and the plot; print the summary."""
    checked = _checked(args)
    settings = process_settings(args)
    try:
        settings = settings.with_llm(model=asyncio.run(LLM(settings.llm).default_model()))
    except LLMUnreachable as e:
        say(f"council: error: {e.cause}")
        return 3
    out = Path(args.out) if args.out else settings.data_dir / "eval" / f"humaneval-{args.split}"
    announce = (lambda *_: None) if args.quiet else say
    with services(settings, need_nats=False, announce=announce) as current:
        try:
            return asyncio.run(_session(args, checked, current, out))
        except EvalError as e:
            raise UsageError(str(e)) from None
        except LLMUnreachable as e:
            say(f"council: error: {e}")
            say(f"council: the results so far are in {out}; run the same command to resume")
            return 3
        except KeyboardInterrupt:
            say(
                f"council: eval interrupted; the results so far are in {out}; run the same "
                "command to resume"
            )
            return 130


async def mixed_council(
    settings: Settings, store: CouncilStore, samples: int, name: str | None
) -> CouncilSpec | None:
    """The stored council of the ``mixed`` strategy: ``name`` (it must use two models or more),
    else one stored here with the server's models in turn when it serves several; None when
    there is no mix to be had.
    """
    if name is not None:
        spec = await store.get(name)
        if spec is None:
            raise UsageError(f"--council: no stored council {name!r}")
        models = {agent.model or settings.llm.model for agent in spec.agents}
        if len(models) < 2:
            raise UsageError(
                f"--council: {name!r} uses one model ({', '.join(map(str, models))}); "
                "the mixed strategy needs two or more"
            )
        return spec
    served = list(dict.fromkeys(await served_models(settings.llm.base_url, settings.llm.api_key)))
    if len(served) < 2:
        return None
    agents = [
        AgentSpec(agent_id=f"agent-dev-{i:03d}", model=served[(i - 1) % len(served)], seed=1000 + i)
        for i in range(1, samples + 1)
    ]
    digest = hashlib.sha256(json.dumps([a.model for a in agents]).encode()).hexdigest()[:8]
    spec = CouncilSpec(name=f"eval-mixed-{digest}", role="DEV", agents=agents)
    await store.create(spec)
    return spec


async def _strategies(
    args: argparse.Namespace, checked: dict[str, Any], settings: Settings
) -> tuple[list[Strategy], CouncilSpec | None]:
    """The strategies to run, with ``mixed`` when a mix is on offer (and checked when asked)."""
    strategies: list[Strategy] = list(checked["strategies"])
    wanted = any(s.mixed for s in strategies)
    mixed = None
    if wanted or not checked["explicit"]:
        assert settings.storage.valkey_url is not None
        store = CouncilStore(settings.storage.valkey_url)
        try:
            mixed = await mixed_council(settings, store, args.samples, args.council)
        finally:
            await store.aclose()
    if mixed is None:
        if wanted:
            raise UsageError(
                f"--strategies: mixed needs several models, and {settings.llm.base_url} serves "
                f"only {settings.llm.model}; serve several, or name a stored council with "
                "--council"
            )
        return strategies, None
    if not wanted:
        strategies.append(STRATEGIES["mixed"])
    context = eval_context(STRATEGIES["mixed"], args.samples, mixed.name)
    admitted = admit({"task": "eval", "role": "DEV"}, context, mixed, settings.llm)
    await LLM(settings.llm).ready(admitted["council"])
    return strategies, mixed


async def _session(
    args: argparse.Namespace, checked: dict[str, Any], settings: Settings, out: Path
) -> int:

    strategies, mixed = await _strategies(args, checked, settings)
    problems = checked["problems"]
    plan = Plan(
        problems=problems,
        strategies=strategies,
        samples=args.samples,
        out_dir=out,
        concurrency=args.concurrency,
        mixed_council=mixed,
        timeout_s=args.timeout,
    )
    rid = run_id(out, {"suite": args.suite, "model": settings.llm.model, "samples": args.samples})
    variant: tuple[Path, str] | None = checked["variant"]
    labels = [s.label(args.samples) for s in strategies]
    if variant is not None:
        labels += [variant_label(label, variant[1]) for label in labels]
    ids = {p["task_id"] for p in problems}

    def in_plan() -> list[ProblemResult]:
        return [
            r
            for r in read_results(out / RESULTS_FILE)
            if r["task_id"] in ids and r["strategy"] in labels
        ]

    bar = ProgressBar(labels, in_plan(), len(ids) * len(labels), enabled=not args.quiet)
    assert settings.storage.valkey_url is not None
    try:
        async with valkey_saver(settings.storage.valkey_url, settings.storage.valkey_pool) as saver:
            await Runner(plan, eval_settings(settings), saver, rid, on_result=bar).run()
            if variant is not None:  # the same problems and strategies with the other prompts
                other = dataclasses.replace(plan, variant=variant[1])
                other_settings = eval_settings(settings, variant[0])
                await Runner(other, other_settings, saver, rid, on_result=bar).run()
    finally:
        bar.close()
    first, last = problems[0]["task_id"], problems[-1]["task_id"]
    title = (
        f"HumanEval {args.split} split, {first}..{last}, {settings.llm.model}, "
        f"{args.samples} agents"
    )
    if variant is not None:
        title += f"; prompts {variant[1]} = {variant[0]}"
    write_report(in_plan(), out, title=title)
    print((out / "summary.md").read_text(encoding="utf-8"))
    print(f"results: {out}")
    return 0
