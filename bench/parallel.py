"""Benchmark 1 and 4: council (parallel) vs every LLM call one at a time; prefix cache; tokens.

    python -m bench.parallel [--time-scale 1.0] [--task t01] [--aggregator judge]
    python -m bench.parallel --stage-barrier [--runs 3] [--length-sigma 0.25 0.5]

Realistic simulated speeds (time scale 1: ~250 tokens/s per request). For 1 and 2 rounds, runs
the same 3-agent deliberation twice on embedded Valkey (checkpoints) and NATS (event): as council
runs it, and with ``llm_concurrency=1`` (one call in flight, as the replaced system). Reports
wall time, the critical path (per stage, the slowest call, from the simulator's own log), the
ratios, the prefix-cache hit rate and tokens by stage.

``--stage-barrier`` asks what breaking the stage barrier would buy: for deliberations of the
first ``--runs`` tasks at each answer-length spread (the simulator's ``length_sigma``), it times
every task of the graph (LangGraph's debug stream) and compares, in the same run, the wall time,
the stage-barrier critical path (per stage, the slowest task, summed: what council waits for)
and the dependency critical path (each critique starting when the proposal it critiques is
ready, each revision when its own critiques are, each judge and voter when the revisions it
reads are: what a barrier-free council would wait for, with the same task durations).

Each deliberation is admitted and run as a door runs it (``bench.common.deliberate``), with
the process's clients (an LLM client per setting, one event publisher) shared by all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import TASKS, SimProcess, critical_path, deliberate, machine
from council_agents.core.settings import EventSettings, LLMSettings, Settings
from council_agents.events.publisher import Events
from council_agents.graph.builder import Clients
from council_agents.llm.client import LLM
from council_agents.server import logs
from council_agents.server.services import EmbeddedNats, EmbeddedValkey
from council_agents.storage.saver import valkey_saver


class Process:
    """The benchmark process's clients, as a served process holds them: one event publisher,
    and an LLM client per LLM setting (council's, and ``concurrency=1`` for the serial runs)."""

    def __init__(self, base_url: str, nats_url: str) -> None:
        self.events = Events(EventSettings(nats_url=nats_url))
        self.settings = {
            serial: Settings(
                llm=LLMSettings(base_url=base_url, concurrency=1 if serial else 0),
                events=self.events.settings,
            )
            for serial in (False, True)
        }
        self.clients = {
            serial: Clients(llm=LLM(settings.llm), events=self.events)
            for serial, settings in self.settings.items()
        }

    async def run(
        self, saver: Any, did: str, inp: dict[str, Any], serial: bool = False, **run: Any
    ) -> Any:
        """One deliberation (``bench.common.deliberate``) with these clients; its values."""
        outcome = await deliberate(
            saver, did, inp, self.settings[serial], self.clients[serial], **run
        )
        return outcome.values

    async def close(self) -> None:
        """Close the event publisher."""
        await self.events.close()


async def one(
    sim: SimProcess,
    valkey_url: str,
    process: Process,
    task: dict,
    rounds: int,
    serial: bool,
    aggregator: str | None = None,
) -> dict:
    did = f"bench-{'serial' if serial else 'council'}-{rounds}-{time.time_ns()}"
    sim.reset_prefix_cache()  # each deliberation starts cold: its hit rate is its own
    before = sim.counters()
    t0 = time.perf_counter()
    async with valkey_saver(valkey_url) as saver:
        inp = {
            "task": task["task"],
            "role": task["role"],
            "rounds": rounds,
            "rubric": task["rubric"],
        }
        context = {"aggregator": aggregator} if aggregator else None
        values = await process.run(saver, did, inp, serial, context=context)
    wall = time.perf_counter() - t0
    after = sim.counters()
    log = sim.requests()
    q = after["vllm:prefix_cache_queries_total"] - before.get("vllm:prefix_cache_queries_total", 0)
    h = after["vllm:prefix_cache_hits_total"] - before.get("vllm:prefix_cache_hits_total", 0)
    calls = [e for e in log if e["deliberation"] == did]
    return {
        "wall": wall,
        "critical": critical_path(log, did),
        "llm_sum": sum(e["t_out"] - e["t_in"] for e in calls),
        "calls": len(calls),
        "hit_rate": h / q if q else 0.0,
        "by_stage": values["result"].model_dump(mode="json")["usage"]["by_stage"],
        "published": bool(values.get("published")),
    }


def task_spans(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every finished task of a deliberation: node, its ``Send`` input, start and end (s)."""
    started: dict[str, dict[str, Any]] = {}
    spans = []
    for e in events:
        t = datetime.fromisoformat(e["timestamp"]).timestamp()
        payload = e["payload"]
        if e["type"] == "task":
            started[payload["id"]] = {"node": payload["name"], "input": payload["input"], "t0": t}
        elif e["type"] == "task_result" and payload["id"] in started and not payload.get("error"):
            spans.append({**started.pop(payload["id"]), "t1": t})
    return spans


def _duration(span: dict[str, Any]) -> float:
    return float(span["t1"] - span["t0"])


def stage_barrier_path(spans: list[dict[str, Any]]) -> float:
    """Per stage and round, the slowest task, summed (judges and voters are one stage)."""
    slowest: dict[tuple[str, int], float] = {}
    for s in spans:
        if s["node"] not in ("propose", "critique", "revise", "judge", "vote"):
            continue
        node = "select" if s["node"] in ("judge", "vote") else s["node"]
        key = (node, s["input"].get("round", 0))
        slowest[key] = max(slowest.get(key, 0.0), _duration(s))
    return sum(slowest.values())


def dependency_path(spans: list[dict[str, Any]]) -> float:
    """The same tasks with no stage barrier: each starts when what it reads is ready."""
    ready: dict[tuple[str, int], float] = {}  # (author, version) -> when it exists
    for s in spans:
        if s["node"] == "propose":
            ready[(s["input"]["agent"]["agent_id"], 0)] = _duration(s)
    rounds = sorted({s["input"]["round"] for s in spans if s["node"] == "critique"})
    for r in rounds:
        critiqued: dict[str, float] = {}
        for s in spans:
            if s["node"] == "critique" and s["input"]["round"] == r:
                author = s["input"]["author"]
                end = ready[(author, r - 1)] + _duration(s)
                critiqued[author] = max(critiqued.get(author, 0.0), end)
        for s in spans:
            if s["node"] == "revise" and s["input"]["round"] == r:
                author = s["input"]["agent"]["agent_id"]
                ready[(author, r)] = critiqued[author] + _duration(s)
    final: dict[str, float] = {}
    for (author, _), t in sorted(ready.items(), key=lambda x: x[0][1]):
        final[author] = t  # the latest version wins
    ends = list(final.values())
    for s in spans:
        if s["node"] in ("judge", "vote"):
            reads = s["input"]["order"]
            ends.append(max(final[a] for a in reads) + _duration(s))
    return max(ends)


async def barrier_run(
    sim: SimProcess, valkey_url: str, process: Process, task: dict, rounds: int
) -> dict[str, float]:
    """One deliberation with every task timed; its wall and both critical paths."""
    did = f"barrier-{rounds}-{time.time_ns()}"
    events: list[dict[str, Any]] = []
    sim.reset_prefix_cache()
    t0 = time.perf_counter()
    async with valkey_saver(valkey_url) as saver:
        inp = {"task": task["task"], "role": task["role"], "rounds": rounds}
        await process.run(
            saver,
            did,
            inp,
            on_update=lambda _mode, chunk: events.append(chunk),
            stream_mode=("debug",),
        )
    wall = time.perf_counter() - t0
    spans = task_spans([e for e in events if e["type"] in ("task", "task_result")])
    return {
        "wall": wall,
        "barrier": stage_barrier_path(spans),
        "dependency": dependency_path(spans),
        "calls": sum(
            1 for s in spans if s["node"] in ("propose", "critique", "revise", "judge", "vote")
        ),
    }


async def stage_barrier(args: argparse.Namespace) -> None:
    """The ``--stage-barrier`` table."""
    tmp = Path(tempfile.mkdtemp(prefix="council-bench-"))
    logs.configure(level="WARNING", file=tmp / "bench.jsonl")
    tasks = TASKS[: args.runs]
    print(f"machine: {machine()}")
    print(
        f"{len(tasks)} tasks ({', '.join(t['id'] for t in tasks)}), 3 agents, simulated vLLM at "
        f"time scale {args.time_scale}\n"
    )
    rows = []
    with (
        EmbeddedValkey(tmp / "valkey") as v,
        EmbeddedNats(tmp / "nats") as n,
        SimProcess("--time-scale", str(args.time_scale)) as sim,
    ):
        process = Process(sim.base_url, n.url)
        sim.configure(time_scale=0.0)
        await barrier_run(sim, v.url, process, TASKS[-1], 0)  # warm-up, not measured
        sim.configure(time_scale=args.time_scale)
        for sigma in args.length_sigma:
            sim.configure(length_sigma=sigma)
            for rounds in (1, 2):
                runs = [await barrier_run(sim, v.url, process, t, rounds) for t in tasks]
                for r in runs:
                    print(
                        f"  sigma {sigma} rounds {rounds}: {r['calls']} tasks, wall "
                        f"{r['wall']:.2f} s, stage-barrier path {r['barrier']:.2f} s, "
                        f"dependency path {r['dependency']:.2f} s",
                        flush=True,
                    )
                rows.append((sigma, rounds, runs))
        await process.close()
    print(
        "\n| answer-length spread (sigma) | rounds | deliberations | wall (s) "
        "| stage-barrier path (s) | dependency path (s) | wall / stage-barrier path "
        "| dependency / stage-barrier path (median, range) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for sigma, rounds, runs in rows:
        saved = [r["dependency"] / r["barrier"] for r in runs]
        mean = {k: statistics.mean(r[k] for r in runs) for k in ("wall", "barrier", "dependency")}
        print(
            f"| {sigma} | {rounds} | {len(runs)} | {mean['wall']:.2f} | {mean['barrier']:.2f} "
            f"| {mean['dependency']:.2f} | {mean['wall'] / mean['barrier']:.3f} "
            f"| {statistics.median(saved):.3f} ({min(saved):.3f}–{max(saved):.3f}) |"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.parallel", description=__doc__)
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument("--task", default="t01")
    ap.add_argument(
        "--stage-barrier",
        action="store_true",
        help="what a council without stage barriers would save (see the module docstring)",
    )
    ap.add_argument(
        "--aggregator",
        choices=["judge", "vote", "judge+vote"],
        default=None,
        help="the council's aggregator (default: the council's, judge+vote: the judges are "
        "skipped when the ballots are unanimous; judge: they always run)",
    )
    ap.add_argument("--runs", type=int, default=3, help="--stage-barrier: tasks per setting")
    ap.add_argument(
        "--length-sigma",
        type=float,
        nargs="+",
        default=[0.25, 0.5],
        help="--stage-barrier: the simulator's answer-length spreads (its default is 0.25)",
    )
    return ap.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
    if args.stage_barrier:
        await stage_barrier(args)
        return
    task = next(t for t in TASKS if t["id"] == args.task)
    tmp = tempfile.mkdtemp(prefix="council-bench-")
    logs.configure(level="WARNING", file=Path(tmp) / "bench.jsonl")
    print(f"machine: {machine()}")
    print(
        f"task {task['id']} ({task['role']}), 3 agents, "
        f"simulated vLLM at time scale {args.time_scale}\n"
    )
    with (
        EmbeddedValkey(Path(tmp) / "valkey") as v,
        EmbeddedNats(Path(tmp) / "nats") as n,
        SimProcess("--time-scale", str(args.time_scale)) as sim,
    ):
        process = Process(sim.base_url, n.url)
        # warm-up (imports, first connections, graph compile), not measured
        sim.configure(time_scale=0.0)
        warm = next(t for t in TASKS if t["id"] != task["id"])
        for serial in (False, True):  # each LLM client's first connections
            await one(sim, v.url, process, warm, 0, serial=serial)
        sim.configure(time_scale=args.time_scale)
        rows = []
        for rounds in (1, 2):
            c = await one(sim, v.url, process, task, rounds, False, args.aggregator)
            s = await one(sim, v.url, process, task, rounds, True, args.aggregator)
            rows.append((rounds, c, s))
        await process.close()
    print(
        "| rounds | LLM calls | council wall (s) | critical path (s) | wall / critical "
        "| serial wall (s) "
        "| serial / council | bound: serial LLM time / critical path |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for rounds, c, s in rows:
        print(
            f"| {rounds} | {c['calls']} | {c['wall']:.2f} | {c['critical']:.2f} "
            f"| {c['wall'] / c['critical']:.3f} | {s['wall']:.2f} | {s['wall'] / c['wall']:.2f} "
            f"| {s['llm_sum'] / c['critical']:.2f} |"
        )
    print("\nPrefix cache and tokens per deliberation (council runs):\n")
    print(
        "| rounds | prefix-cache hit rate (prompt tokens) | stage | calls | prompt tokens "
        "| cached | completion |"
    )
    print("|---|---|---|---|---|---|---|")
    for rounds, c, _ in rows:
        for i, (stage, u) in enumerate(c["by_stage"].items()):
            hr = f"{c['hit_rate']:.1%}" if i == 0 else ""
            print(
                f"| {rounds if i == 0 else ''} | {hr} | {stage} | {u['calls']} "
                f"| {u['prompt_tokens']} "
                f"| {u['cached_tokens']} | {u['completion_tokens']} |"
            )


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
