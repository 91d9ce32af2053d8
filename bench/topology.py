"""Critics per proposal: every peer against a sparse ring, on the simulator's known truth.

    python -m bench.topology [--n 20] [--agents 3 5] [--rounds 1] [--truth scripts|fitted]

For each council size and each ``critics`` (every peer, then 1 and 2 where fewer than the
peers), runs ``--n`` deliberations (the shipped demo tasks in turn, ids shared across the
settings) in process on the simulated vLLM (time scale 0) with a ``Truth`` of known quality.
``--truth scripts``: agents of quality spread evenly from 7 down to 4, a judge that adds 3
points to whatever it reads first (noise 0.6), voters with noise 1.0, critics that find a
major defect in round 1 (``tests/integration/test_decisions.py``'s scenario); a revision keeps
its author's quality, so the best pick cannot depend on the topology except by chance.
``--truth fitted``: ``Truth.fitted_smollm2()`` (docs/SIMULATOR.md), where a revision's
quality moves (gain, loss, refusal) and critics miss or invent defects. Reports the best-pick
rate (the winner's final text has the best hidden quality among the final ones) with its
Wilson 95 % interval, and the calls and tokens per deliberation.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from council_agents.cli.commands import demo_tasks
from council_agents.core.progress import latest_drafts
from council_agents.core.request import admit
from council_agents.core.settings import LLMSettings, Settings
from council_agents.evals.stats import wilson_interval
from council_agents.server import logs
from council_agents.server.runner import Deliberations
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from council_agents.sim_vllm.truth import Truth


def qualities(agents: int) -> dict[str, float]:
    """Hidden quality from 7 down to 4, evenly spread (agent-dev-001 the best)."""
    step = 3.0 / (agents - 1)
    return {f"agent-dev-{i:03d}": 7.0 - step * (i - 1) for i in range(1, agents + 1)}


def truth_for(name: str, agents: int) -> Truth:
    """The named truth (``scripts`` or ``fitted``)."""
    if name == "fitted":
        return Truth.fitted_smollm2()
    return Truth(
        quality=qualities(agents), position_bias=3.0, noise=0.6, vote_noise=1.0, major_until_round=1
    )


async def one_setting(
    agents: int, critics: int | None, n: int, rounds: int, truth_name: str = "scripts"
) -> dict[str, Any]:
    """``n`` deliberations of ``agents`` agents with ``critics`` per proposal."""
    truth = truth_for(truth_name, agents)
    tasks = list(demo_tasks().values())
    best, calls, prompt, completion, critiques = 0, 0, 0, 0, 0
    engine = SimVLLM(SimConfig(time_scale=0, truth=truth))
    with ServerThread(engine) as sim:
        settings = Settings(llm=LLMSettings(base_url=sim.base_url))
        runner = Deliberations(settings, InMemorySaver())
        try:
            for i in range(n):
                task = tasks[i % len(tasks)]
                inp = {"task": task["task"], "role": "DEV", "rounds": rounds}  # the truth's ids
                context = {"agents": agents, "critics": critics}
                outcome = await runner.run(
                    f"topology-{agents}-{i}", admit(inp, context, None, settings.llm)
                )
                values = outcome.values
                finals = latest_drafts(values)
                hidden = {a: engine.authors.quality_of(t, truth, a) for a, t in finals.items()}
                best += hidden[values["decision"]["winner"]] == max(hidden.values())
                usage = values["result"].usage
                calls += usage.calls
                prompt += usage.prompt_tokens
                completion += usage.completion_tokens
                critiques += usage.by_stage["critique"].calls if "critique" in usage.by_stage else 0
        finally:
            await runner.close()
    low, high = wilson_interval(best, n)
    return {
        "agents": agents,
        "critics": critics,
        "best": best,
        "n": n,
        "ci": (low, high),
        "calls": calls / n,
        "critique_calls": critiques / n,
        "prompt": prompt / n,
        "completion": completion / n,
    }


async def main(args: argparse.Namespace) -> None:
    logs.configure(level="WARNING", file=Path(tempfile.mkdtemp(prefix="council-bench-")) / "log")
    rows = []
    for agents in args.agents:
        for critics in [None, 1, 2]:
            if critics is not None and critics >= agents - 1:
                continue  # the same as every peer
            rows.append(await one_setting(agents, critics, args.n, args.rounds, args.truth))
    about = {
        "scripts": "quality 7..4, judge position bias 3 (noise 0.6), voter noise 1.0",
        "fitted": "Truth.fitted_smollm2()",
    }[args.truth]
    print(
        f"{args.n} deliberations per row, {args.rounds} round(s), judge+vote, rotations; "
        f"truth {args.truth}: {about}\n"
    )
    print(
        "| agents | critics per proposal | best pick | Wilson 95 % | calls | critique calls "
        "| prompt tokens | completion tokens | tokens |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        k = "all" if r["critics"] is None else str(r["critics"])
        low, high = r["ci"]
        print(
            f"| {r['agents']} | {k} | {r['best']}/{r['n']} | {low:.2f}-{high:.2f} "
            f"| {r['calls']:.1f} | {r['critique_calls']:.1f} | {r['prompt']:,.0f} "
            f"| {r['completion']:,.0f} | {r['prompt'] + r['completion']:,.0f} |"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20, help="deliberations per row")
    ap.add_argument("--agents", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--truth", choices=["scripts", "fitted"], default="scripts")
    return ap.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
