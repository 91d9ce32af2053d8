"""Benchmark 2: council's own time per super-step and CPU per LLM call, at 1/10/100 at once.

    python -m bench.overhead [--concurrency 1 10 100] [--rounds 1] [--time-scale 0]
        [--savers in-memory valkey] [--llm sim|replay] [--loop asyncio|uvloop]
        [--log-level WARNING] [--arrivals SECONDS] [--by-node]

The simulated vLLM runs in its own process, by default at time scale 0 (answers at once), so
what remains is council: graph scheduling, checkpoint writes, the event publish, HTTP to the LLM.
For every super-step of every deliberation: overhead = step wall time - the slowest LLM call of
that step (client-side latency as recorded in the call records). Reports p50/p99 per step, CPU
per LLM call (this process's CPU time over the run / its LLM calls: the simulator, Valkey and
NATS run in processes of their own) and the process's peak RSS. ``--llm replay`` answers every
call in-process with an answer the simulator gave in the warm-up (no HTTP, no openai, no
langchain-openai): what LangGraph, council's nodes and the saver cost alone.

Every deliberation is admitted as a door admits it (``core.request.admit``, counted in its
first step) and runs on one graph per saver, compiled with the process's clients (one LLM
client, one event publisher), as a served process runs them.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from bench.common import TASKS, SimProcess, machine, pct
from council_agents.core.context import Context
from council_agents.core.request import admit, with_admission
from council_agents.core.settings import EventSettings, LLMSettings
from council_agents.core.state import Agent
from council_agents.events.publisher import Events
from council_agents.graph.builder import Clients, Compiled, compile_graph
from council_agents.llm.client import LLM
from council_agents.server import logs
from council_agents.server.runner import thread_config
from council_agents.server.services import EmbeddedNats, EmbeddedValkey
from council_agents.storage.saver import valkey_saver


def cpu_seconds() -> float:
    """CPU time of this process (user + system, every thread); the simulator, Valkey and NATS
    run in processes of their own, so this is council's alone."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def deliberate(
    graph: Compiled, llm: LLMSettings, did: str, task: dict, rounds: int
) -> tuple[list[tuple[str, float]], int]:
    """Admit and run one deliberation; return each super-step's node and overhead (seconds),
    and the number of LLM calls it made."""
    overheads: list[tuple[str, float]] = []
    calls = 0
    last = time.perf_counter()
    step_llm = 0.0
    node = "input"
    # the door's admission, counted in the first step (it was the admit node's work once)
    admission = admit(
        {"task": task["task"], "role": task["role"], "rounds": rounds}, None, None, llm
    )
    config = with_admission(thread_config(did), admission)
    async for _mode, chunk in graph.astream(
        admission["input"],
        config,
        context=Context(),
        stream_mode=["debug"],
        durability="sync",
    ):
        if chunk["type"] == "task":
            node = chunk["payload"]["name"]
        elif chunk["type"] == "task_result":
            for call in dict(chunk["payload"]["result"]).get("calls") or []:
                step_llm = max(step_llm, call["latency_s"])
                calls += 1
        elif chunk["type"] == "checkpoint":
            now = time.perf_counter()
            overheads.append((node, max(0.0, (now - last) - step_llm)))
            last, step_llm = now, 0.0
    return overheads, calls


class Replay(LLM):
    """The process's LLM client with its chat model replaced by an in-process replay of answers
    the simulator gave (one per stage, recorded during the warm-up; a stage the warm-up did not
    run, such as the judges a deliberation skipped, the first time a deliberation asks for it,
    in the second warm-up): no HTTP, no openai or langchain-openai, so what remains is
    LangGraph, council's nodes (the LLM client's answer checks and context fitting included)
    and the checkpointer."""

    def __init__(self, settings: LLMSettings) -> None:
        super().__init__(settings)
        self.answers: dict[str, AIMessage] = {}
        self.recording = True

    def chat_model(self, agent: Agent) -> Any:
        real = super().chat_model(agent)
        replay = self

        class Model:
            async def ainvoke(self, messages: Any, **params: Any) -> AIMessage:
                stage = params["extra_headers"]["X-Council-Stage"]
                # a stage the first warm-up did not reach (with judge+vote the judges run
                # only on split ballots) is recorded the first time it is asked for
                if replay.recording or stage not in replay.answers:
                    replay.answers[stage] = await real.ainvoke(messages, **params)
                await asyncio.sleep(0)
                return replay.answers[stage]

        return Model()


async def scenario(
    saver: BaseCheckpointSaver[str],
    clients: Clients,
    n: int,
    rounds: int,
    tasks: list[dict] = TASKS,
    arrivals: float = 0.0,
) -> dict:
    """``n`` deliberations in this process, started together (or one every ``arrivals / n``
    seconds); their CPU, step overheads and wall time."""
    graph = compile_graph(clients, saver)

    async def one(i: int) -> tuple[list[tuple[str, float]], int]:
        await asyncio.sleep(arrivals * i / n)
        did = f"ovh-{n}-{i}-{time.time_ns()}"
        return await deliberate(graph, clients.llm.settings, did, tasks[i % len(tasks)], rounds)

    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    steps = [x for r, _ in results for _, x in r]
    by_node: dict[str, list[float]] = {}
    for r, _ in results:
        for node, x in r:
            by_node.setdefault(node, []).append(x)
    calls = sum(c for _, c in results)
    return {
        "n": n,
        "steps": len(steps),
        "calls": calls,
        "cpu_s": cpu,
        "cpu_per_call": cpu / calls * 1000 if calls else float("nan"),
        "p50": pct(steps, 50) * 1000,
        "p99": pct(steps, 99) * 1000,
        "wall": wall,
        "by_node": {k: (pct(v, 50) * 1000, pct(v, 99) * 1000) for k, v in by_node.items()},
        "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="council-bench-"))
    logs.configure(level=args.log_level, file=tmp / "bench.jsonl")
    replay = args.llm == "replay"
    # the replay answers one task's schemas (its rubric, its labels): every deliberation runs it
    tasks = TASKS[:1] if replay else TASKS
    print(f"machine: {machine()}")
    print(
        f"3 agents, {args.rounds} round(s), LLM: "
        + ("in-process replay" if replay else f"simulated vLLM at time scale {args.time_scale}")
        + f", event loop: {args.loop}, log level {args.log_level}, events to embedded NATS, "
        + (f"arrivals spread over {args.arrivals:g} s" if args.arrivals else "all started at once")
        + "\n"
    )
    rows = []
    with (
        EmbeddedValkey(tmp / "valkey") as v,
        EmbeddedNats(tmp / "nats") as nats,
        SimProcess("--time-scale", str(args.time_scale), "--max-num-seqs", "1024") as sim,
    ):
        # the process's clients, shared by every deliberation as a served process shares them
        llm_settings = LLMSettings(base_url=sim.base_url)
        llm = Replay(llm_settings) if replay else LLM(llm_settings)
        clients = Clients(llm=llm, events=Events(EventSettings(nats_url=nats.url)))
        async with valkey_saver(v.url) as vsaver:
            await scenario(vsaver, clients, 1, args.rounds, tasks)  # warm-up
            if isinstance(llm, Replay):
                llm.recording = False
                await scenario(vsaver, clients, 2, args.rounds, tasks)
            for n in args.concurrency:
                for name, saver in (("in-memory", InMemorySaver()), ("valkey", vsaver)):
                    if name not in args.savers:
                        continue
                    r = await scenario(saver, clients, n, args.rounds, tasks, args.arrivals)
                    rows.append((name, r))
                    print(
                        f"  {name:>9} x{n:<4} {r['calls']:5d} calls  "
                        f"CPU {r['cpu_per_call']:5.2f} ms/call  "
                        f"p50 {r['p50']:7.2f} ms  p99 {r['p99']:8.2f} ms  "
                        f"wall {r['wall']:6.2f} s  peak RSS {r['rss']:.0f} MB",
                        flush=True,
                    )
                    if args.by_node:
                        for node, (p50, p99) in r["by_node"].items():
                            print(f"      after {node:<9} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms")
        await clients.events.close()
    print(
        "\n| saver | concurrent deliberations | super-steps | LLM calls | CPU (s) "
        "| CPU per LLM call (ms) | overhead p50 (ms/step) | p99 (ms/step) "
        "| wall (s) | peak RSS (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(
            f"| {name} | {r['n']} | {r['steps']} | {r['calls']} | {r['cpu_s']:.2f} "
            f"| {r['cpu_per_call']:.2f} | {r['p50']:.2f} | {r['p99']:.2f} "
            f"| {r['wall']:.2f} | {r['rss']:.0f} |"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 100])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument(
        "--time-scale",
        type=float,
        default=0.0,
        help="0: answers at once (council's CPU is all there is); 1: realistic LLM speed",
    )
    ap.add_argument(
        "--savers", nargs="+", choices=["in-memory", "valkey"], default=["in-memory", "valkey"]
    )
    ap.add_argument(
        "--llm",
        choices=["sim", "replay"],
        default="sim",
        help="replay: answers replayed in-process, no LLM client (LangGraph + council + saver)",
    )
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--log-level", default="WARNING", help="INFO logs every call, as served")
    ap.add_argument(
        "--arrivals",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="start the deliberations evenly over this many seconds (0: all at once)",
    )
    ap.add_argument(
        "--by-node", action="store_true", help="also the overhead of the steps of each node"
    )
    return ap.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.loop == "uvloop":
        import uvloop

        uvloop.run(main(arguments))
    else:
        asyncio.run(main(arguments))
