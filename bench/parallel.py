"""Benchmark 1 and 4: council (parallel) vs every LLM call one at a time; prefix cache; tokens.

    python -m bench.parallel [--time-scale 1.0] [--task t01]

Realistic simulated speeds (time scale 1: ~250 tokens/s per request). For 1 and 2 rounds, runs
the same 3-agent deliberation twice on embedded Valkey (checkpoints) and NATS (event): as council
runs it, and with ``llm_concurrency=1`` (one call in flight, as the replaced system). Reports
wall time, the critical path (per stage, the slowest call, from the simulator's own log), the
ratios, the prefix-cache hit rate and tokens by stage.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from bench.common import TASKS, SimProcess, critical_path, machine
from graph.persistence import valkey_saver
from graph.settings import Settings
from nodes.nats_publisher import close_publishers
from server import logs, runner
from server.services import EmbeddedNats, EmbeddedValkey


async def one(
    sim: SimProcess, valkey_url: str, nats_url: str, task: dict, rounds: int, serial: bool
) -> dict:
    did = f"bench-{'serial' if serial else 'council'}-{rounds}-{time.time_ns()}"
    settings = Settings(
        llm_base_url=sim.base_url, nats_url=nats_url, llm_concurrency=1 if serial else 0
    )
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
        values = (await runner.run(saver, did, inp, None, settings)).values
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
        "by_stage": values["result"]["usage"]["by_stage"],
        "published": bool(values.get("published")),
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument("--task", default="t01")
    args = ap.parse_args()
    task = next(t for t in TASKS if t["id"] == args.task)
    tmp = tempfile.mkdtemp(prefix="council-bench-")
    logs.configure(level="WARNING", file=__import__("pathlib").Path(tmp) / "bench.jsonl")
    print(f"machine: {machine()}")
    print(
        f"task {task['id']} ({task['role']}), 3 agents, "
        f"simulated vLLM at time scale {args.time_scale}\n"
    )
    with (
        EmbeddedValkey(__import__("pathlib").Path(tmp) / "valkey") as v,
        EmbeddedNats(__import__("pathlib").Path(tmp) / "nats") as n,
        SimProcess("--time-scale", str(args.time_scale)) as sim,
    ):
        # warm-up (imports, first connections, graph compile), not measured
        sim.configure(time_scale=0.0)
        await one(
            sim, v.url, n.url, next(t for t in TASKS if t["id"] != task["id"]), 0, serial=False
        )
        sim.configure(time_scale=args.time_scale)
        rows = []
        for rounds in (1, 2):
            c = await one(sim, v.url, n.url, task, rounds, serial=False)
            s = await one(sim, v.url, n.url, task, rounds, serial=True)
            rows.append((rounds, c, s))
        await close_publishers()
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
    asyncio.run(main())
