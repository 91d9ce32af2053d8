"""Selection accuracy of every aggregator and presentation scheme, on the simulator's known truth.

    python -m bench.decisions [--n 200] [--agents 3,5] [--rounds 1] [--truth fitted]
                              [--set judge_skill=0.6 ...] [--json out.json]

Runs ``--n`` deliberations per presentation scheme (``pair``, ``rotations``, ``pointwise``) and
council size, in process (``server.runner.Deliberations`` on LangGraph's in-memory saver, the
simulated vLLM in a thread at time scale 0) with a ``Truth`` that knows every proposal's hidden
quality (``sim_vllm.truth``; ``--truth fitted``: ``Truth.fitted_smollm2()``, ``scripts``: the
scripted judges of ``tests/integration/test_decisions.py``; ``--set`` overrides parameters).

Every deliberation runs with aggregator ``judge`` (its judges and its voters both answer, side
by side); the three aggregators are then applied to its final state by council's own
``nodes.select.decide`` (``vote`` without the judgements: a council that decides by vote runs no
judge; ``judge+vote`` without them when the ballots are unanimous, ``nodes.vote.unanimous``: it
asks its judges only after split ballots). The graph's own decision must equal ``decide``'s for
``judge`` (checked on every deliberation). The
deliberations of one size share their ids across the schemes, and the simulator keys what each
attempt does by who asks and its seed (``Truth.behaviour``), so the schemes judge the same final
proposals of the same hidden quality (a paired comparison; the output says in how many
deliberations the final qualities were the same under every scheme).

Per cell (aggregator x scheme x size): selection accuracy (the winner is a proposal of the best
hidden quality among the final ones) with its Wilson 95 % interval, the mean regret (best
quality minus the winner's), how often the vote decided and how often the tie-break did (the
deciding signal tied: the other signal, then the lower agent id), the position bias left in
the judges' means (per deliberation, the largest minus the smallest mean position bonus the
truth gave a proposal over the judgements that scored it), and calls and tokens per
deliberation (``vote``: without the judges' calls, as a vote-only council makes).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from council_agents.cli.commands import demo_tasks
from council_agents.core.context import Context
from council_agents.core.progress import latest_drafts
from council_agents.core.request import admit
from council_agents.core.settings import LLMSettings, Settings
from council_agents.core.state import CouncilState
from council_agents.core.terms import AGGREGATORS, PRESENTATIONS, Aggregator, Presentation
from council_agents.evals.stats import mcnemar_exact, wilson_interval
from council_agents.nodes.select import decide
from council_agents.nodes.vote import unanimous
from council_agents.server import logs
from council_agents.server.runner import Deliberations
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM, Truth
from council_agents.sim_vllm.truth import Authors

TASKS = list(demo_tasks().values())


def truth_for(name: str, changes: dict[str, Any]) -> Truth:
    """The named truth with ``changes``."""
    if name == "fitted":
        return Truth.fitted_smollm2(**changes)
    if name == "scripts":  # tests/integration/test_decisions.py's biased judges
        quality = {f"agent-dev-{i:03d}": 7.0 - 1.5 * (i - 1) for i in range(1, 10)}
        base = Truth(quality=quality, position_bias=3.0, noise=0.6, vote_noise=1.0)
        return dataclasses.replace(base, **changes)
    raise SystemExit(f"--truth: unknown truth {name!r} (fitted, scripts)")


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``name=value`` pairs as Truth fields (numbers, ``none``; ``invalid`` as JSON)."""
    fields = {f.name for f in dataclasses.fields(Truth)}
    out: dict[str, Any] = {}
    for item in items:
        name, _, raw = item.partition("=")
        if name not in fields or not raw:
            raise SystemExit(f"--set {item!r}: expected FIELD=VALUE, a field of Truth")
        out[name] = json.loads(raw) if name in ("invalid", "quality") else _number(raw)
    return out


def _number(raw: str) -> float | None:
    return None if raw.lower() == "none" else float(raw)


@dataclasses.dataclass
class Run:
    """One deliberation's outcome under each aggregator."""

    agents: int
    presentation: Presentation
    winners: dict[str, str]
    decided_by: dict[str, str]
    best: set[str]
    quality: dict[str, float]
    calls: dict[str, int]
    tokens: dict[str, int]
    position_spread: float
    unknown: int


def position_bonus(truth: Truth, position: int, count: int) -> float:
    """The points the truth's judges add at ``position`` of ``count`` (none alone)."""
    if count < 2:
        return 0.0
    if position == 0:
        return truth.position_bias
    return truth.last_bias if position == count - 1 else truth.middle_bias


def outcome(
    values: CouncilState, truth: Truth, authors: Authors, agents: int, scheme: Presentation
) -> Run:
    """What each aggregator decides on a finished deliberation, against the truth."""
    finals = latest_drafts(values)
    unknown = sum(text.strip() not in authors.quality for text in finals.values())
    quality = {a: authors.quality_of(text, truth, a) for a, text in finals.items()}
    top = max(quality.values())
    best = {a for a, q in quality.items() if q == top}
    winners, decided_by = {}, {}
    for aggregator in AGGREGATORS:
        state = _as(values, aggregator)
        decision = decide(state)
        winners[aggregator], decided_by[aggregator] = decision["winner"], decision["decided_by"]
    if values["decision"]["winner"] != winners["judge"]:
        raise AssertionError("decide() disagrees with the graph's decision")
    calls = values["calls"]
    judged = [c for c in calls if c["stage"] == "judge"]
    everything = sum(c["prompt_tokens"] + c["completion_tokens"] for c in calls)
    judging = sum(c["prompt_tokens"] + c["completion_tokens"] for c in judged)
    skipped = unanimous(values.get("ballots", []), sorted(finals)) is not None
    bonus: dict[str, list[float]] = {a: [] for a in finals}
    for j in values.get("judgements", []):
        for i, a in enumerate(j["order"]):
            bonus[a].append(position_bonus(truth, i, len(j["order"])))
    means = [statistics.fmean(b) for b in bonus.values() if b]
    return Run(
        agents=agents,
        presentation=scheme,
        winners=winners,
        decided_by=decided_by,
        best=best,
        quality=quality,
        calls={
            "judge": len(calls),
            "judge+vote": len(calls) - (len(judged) if skipped else 0),
            "vote": len(calls) - len(judged),
        },
        tokens={
            "judge": everything,
            "judge+vote": everything - (judging if skipped else 0),
            "vote": everything - judging,
        },
        position_spread=max(means) - min(means) if means else 0.0,
        unknown=unknown,
    )


def _as(values: CouncilState, aggregator: Aggregator) -> CouncilState:
    """The final state as a council with ``aggregator`` would have it (``vote``: no judge)."""
    state = dict(values)
    state["council"] = {**values["council"], "aggregator": aggregator}
    ids = sorted(latest_drafts(values))
    if aggregator == "vote" or (
        aggregator == "judge+vote" and unanimous(values.get("ballots", []), ids)
    ):
        state["judgements"] = []  # no judge asked: by vote, or after unanimous ballots
    return state  # type: ignore[return-value]


async def run_cell(
    sim: ServerThread,
    truth: Truth,
    authors: Authors,
    scheme: Presentation,
    agents: int,
    rounds: int,
    n: int,
    concurrency: int,
) -> list[Run]:
    """``n`` deliberations of ``agents`` agents judged by ``scheme``."""
    settings = Settings(llm=LLMSettings(base_url=sim.base_url))
    deliberations = Deliberations(settings, InMemorySaver())
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Run:
        task = TASKS[i % len(TASKS)]
        inp = {"task": task["task"], "role": task["role"], "rounds": rounds}
        context = Context(
            agents=agents, aggregator="judge", presentation=scheme, require_approval=False
        )
        async with gate:
            admission = admit(inp, context, None, settings.llm)
            done = await deliberations.run(f"decisions-{agents}-{rounds}-{i}", admission)
        if done.status != "completed":
            raise RuntimeError(f"deliberation {i}: {done.status}")
        return outcome(done.values, truth, authors, agents, scheme)

    try:
        return list(await asyncio.gather(*(one(i) for i in range(n))))
    finally:
        await deliberations.close()


def cells(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per (agents, aggregator, scheme): the figures of the module doc."""
    rows = []
    keys = sorted({(r.agents, r.presentation) for r in runs}, key=lambda k: (k[0], k[1]))
    for agents in sorted({k[0] for k in keys}):
        for aggregator in AGGREGATORS:
            schemes = [s for s in PRESENTATIONS if (agents, s) in keys]
            if aggregator == "vote":  # no judge: every scheme's vote is the same vote
                schemes = schemes[:1]
            for scheme in schemes:
                mine = [r for r in runs if (r.agents, r.presentation) == (agents, scheme)]
                right = sum(r.winners[aggregator] in r.best for r in mine)
                lo, hi = wilson_interval(right, len(mine))
                regret = [max(r.quality.values()) - r.quality[r.winners[aggregator]] for r in mine]
                rows.append(
                    {
                        "agents": agents,
                        "aggregator": aggregator,
                        "presentation": "-" if aggregator == "vote" else scheme,
                        "n": len(mine),
                        "correct": right,
                        "accuracy": right / len(mine),
                        "ci": (lo, hi),
                        "regret": statistics.fmean(regret),
                        "tiebreak": sum(r.decided_by[aggregator] == "tiebreak" for r in mine)
                        / len(mine),
                        "by_vote": sum(r.decided_by[aggregator] == "vote" for r in mine)
                        / len(mine),
                        "position_spread": 0.0
                        if aggregator == "vote"
                        else statistics.fmean(r.position_spread for r in mine),
                        "calls": statistics.fmean(r.calls[aggregator] for r in mine),
                        "tokens": statistics.fmean(r.tokens[aggregator] for r in mine),
                    }
                )
    return rows


def paired(runs: list[Run]) -> list[dict[str, Any]]:
    """Paired comparisons on the same deliberations: ``judge+vote`` against ``judge`` per
    scheme, and each scheme against ``rotations`` per aggregator (the schemes share their
    deliberations' ids, so their proposals and truth): won, lost, exact McNemar p."""
    by = {(r.agents, r.presentation, i): r for i, r in _indexed(runs)}
    out = []
    for agents in sorted({r.agents for r in runs}):
        n = max(i for (a, _, i) in by if a == agents) + 1
        schemes = [s for s in PRESENTATIONS if (agents, s, 0) in by]
        pairs: list[tuple[str, tuple[str, str], tuple[str, str]]] = [
            (f"judge+vote against judge, {s}", (s, "judge+vote"), (s, "judge")) for s in schemes
        ]
        for aggregator in ("judge", "judge+vote"):
            pairs += [
                (f"{s} against rotations, {aggregator}", (s, aggregator), ("rotations", aggregator))
                for s in schemes
                if s != "rotations" and "rotations" in schemes
            ]
        for name, (sa, aa), (sb, ab) in pairs:
            a = [by[(agents, sa, i)].winners[aa] in by[(agents, sa, i)].best for i in range(n)]
            b = [by[(agents, sb, i)].winners[ab] in by[(agents, sb, i)].best for i in range(n)]
            won = sum(x and not y for x, y in zip(a, b, strict=True))
            lost = sum(y and not x for x, y in zip(a, b, strict=True))
            out.append(
                {
                    "agents": agents,
                    "comparison": name,
                    "difference": (sum(a) - sum(b)) / n,
                    "won": won,
                    "lost": lost,
                    "p": mcnemar_exact(won, lost),
                }
            )
    return out


def _indexed(runs: list[Run]) -> list[tuple[int, Run]]:
    """Each run with its index among the runs of its size and scheme (its deliberation)."""
    seen: dict[tuple[int, str], int] = {}
    out = []
    for r in runs:
        key = (r.agents, r.presentation)
        out.append((seen.get(key, 0), r))
        seen[key] = seen.get(key, 0) + 1
    return out


def same_finals(runs: list[Run]) -> tuple[int, int]:
    """Deliberations whose final proposals had the same hidden qualities under every scheme,
    and the deliberations compared."""
    groups: dict[tuple[int, int], list[dict[str, float]]] = {}
    for i, r in _indexed(runs):
        groups.setdefault((r.agents, i), []).append(r.quality)
    return sum(all(q == g[0] for q in g) for g in groups.values()), len(groups)


def paired_table(rows: list[dict[str, Any]]) -> str:
    """The paired comparisons as Markdown."""
    lines = [
        "| agents | comparison | accuracy difference | won | lost | McNemar p |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['agents']} | {r['comparison']} | {r['difference']:+.1%} | {r['won']} "
            f"| {r['lost']} | {r['p']:.3f} |"
        )
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table."""
    lines = [
        "| agents | aggregator | presentation | deliberations | selection accuracy | 95 % CI "
        "| mean regret | decided by vote | tie-break | position bias left | calls / delib. "
        "| tokens / delib. |",
        "|---:|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lo, hi = r["ci"]
        lines.append(
            f"| {r['agents']} | {r['aggregator']} | {r['presentation']} | {r['n']} "
            f"| {r['accuracy']:.1%} | {lo:.1%} – {hi:.1%} | {r['regret']:.2f} "
            f"| {r['by_vote']:.0%} | {r['tiebreak']:.0%} | {r['position_spread']:.2f} "
            f"| {r['calls']:.1f} "
            f"| {r['tokens']:,.0f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="deliberations per scheme and size")
    ap.add_argument("--agents", default="3,5", help="council sizes, comma-separated")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of critique and revision")
    ap.add_argument("--presentations", default=",".join(PRESENTATIONS), help="schemes")
    ap.add_argument("--truth", default="fitted", help="fitted (SmolLM2) or scripts")
    ap.add_argument("--set", action="append", default=[], help="FIELD=VALUE of Truth")
    ap.add_argument("--concurrency", type=int, default=4, help="deliberations in flight")
    ap.add_argument("--json", type=Path, help="write the rows (and the truth) here")
    args = ap.parse_args(argv)
    args.sizes = [int(x) for x in args.agents.split(",")]
    args.schemes = [s.strip() for s in args.presentations.split(",")]
    if any(s not in PRESENTATIONS for s in args.schemes):
        ap.error(f"--presentations: choose among {', '.join(PRESENTATIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    truth = truth_for(args.truth, parse_set(args.set))
    logs.configure(level="WARNING", file=Path(tempfile.mkdtemp()) / "bench.jsonl")
    sim = SimVLLM(SimConfig(time_scale=0, truth=truth))
    t0 = time.perf_counter()
    runs: list[Run] = []
    with ServerThread(sim) as server:
        for agents in args.sizes:
            for scheme in args.schemes:
                runs += asyncio.run(
                    run_cell(
                        server,
                        truth,
                        sim.authors,
                        scheme,
                        agents,
                        args.rounds,
                        args.n,
                        args.concurrency,
                    )
                )
    rows = cells(runs)
    unknown = sum(r.unknown for r in runs)
    same = same_finals(runs)
    changed = {k: v for k, v in dataclasses.asdict(truth).items() if v != getattr(Truth(), k)}
    print(
        f"## Selection accuracy: {args.n} deliberations per scheme and size, rounds "
        f"{args.rounds}, truth {args.truth} {json.dumps(changed, sort_keys=True)}"
    )
    print()
    print(table(rows))
    print()
    print("Paired, on the same deliberations (won / lost: right only in the first / second):")
    print()
    comparisons = paired(runs)
    print(paired_table(comparisons))
    print()
    print(
        f"{len(runs)} deliberations in {time.perf_counter() - t0:.0f} s; final proposals of "
        f"unknown quality: {unknown}; the same final qualities under every scheme: {same[0]} of "
        f"{same[1]} deliberations; chance: "
        + ", ".join(f"{1 / a:.1%} with {a} agents" for a in args.sizes)
    )
    if args.json:
        runs_out = [
            {
                "agents": r.agents,
                "presentation": r.presentation,
                "winners": r.winners,
                "decided_by": r.decided_by,
                "best": sorted(r.best),
                "quality": r.quality,
            }
            for r in runs
        ]
        args.json.write_text(
            json.dumps(
                {"truth": changed, "rows": rows, "paired": comparisons, "runs": runs_out},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
