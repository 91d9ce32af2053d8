"""Benchmark 3: deliberations per minute through NATS with 1 and 2 worker processes.

    python -m bench.scaleout [--events 24] [--concurrency 4] [--time-scale 1.0]

Real ``council worker`` processes on embedded NATS and Valkey; the simulated vLLM (own process,
``max_num_seqs`` 1024 and no batch slowdown, so it is not the bottleneck) at the given time scale.
Publishes the
events, then times until every completed event is in the stream.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import nats

from bench.common import ROOT, TASKS, SimProcess, machine
from council_agents.events.models import STREAM
from council_agents.server.services import EmbeddedNats, EmbeddedValkey
from council_agents.server.worker import publish_plan


async def completed_count(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return (await nc.jetstream().stream_info(STREAM)).state.messages
    except Exception:  # noqa: BLE001 - no stream yet
        return 0
    finally:
        await nc.close()


async def trial(workers: int, args, tmp: Path, sim: SimProcess) -> float:
    with EmbeddedValkey(tmp / f"valkey-{workers}") as v, EmbeddedNats(tmp / f"nats-{workers}") as n:
        env = {
            **os.environ,
            "NATS_URL": n.url,
            "VALKEY_URL": v.url,
            "COUNCIL_LLM_BASE_URL": sim.base_url,
            "PYTHONPATH": str(ROOT),
            "COUNCIL_DATA_DIR": str(tmp / "data"),
        }
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "council_agents.cli",
                    "--log-level",
                    "WARNING",
                    "--log-file",
                    str(tmp / f"w{workers}-{i}.jsonl"),
                    "worker",
                    "--concurrency",
                    str(args.concurrency),
                ],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(workers)
        ]
        try:
            await asyncio.sleep(3)  # workers connected and consuming
            t0 = time.perf_counter()
            for i in range(args.events):
                t = TASKS[i % len(TASKS)]
                await publish_plan(
                    n.url,
                    {
                        "story_id": f"S-{i}",
                        "plan_id": uuid.uuid4().hex[:8],
                        "approved_by": "bench",
                        "roles": [t["role"]],
                        "task": t["task"],
                        "rounds": args.rounds,
                        "timestamp": datetime.now(UTC).isoformat(),
                    },
                )
            while await completed_count(n.url) < args.events:
                await asyncio.sleep(0.1)
            return time.perf_counter() - t0
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=60)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=24)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--time-scale", type=float, default=1.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="council-bench-"))
    print(f"machine: {machine()}")
    print(
        f"{args.events} events x 1 role, 3 agents, {args.rounds} round(s), worker concurrency "
        f"{args.concurrency}, simulated vLLM time scale {args.time_scale}\n"
    )
    # sized not to be the bottleneck: no batch slowdown, a batch of 1024
    with SimProcess(
        "--time-scale", str(args.time_scale), "--max-num-seqs", "1024", "--batch-slowdown", "0"
    ) as sim:
        rows = [(w, await trial(w, args, tmp, sim)) for w in (1, 2)]
    print("| workers | deliberations | wall (s) | deliberations/min | speed-up |")
    print("|---|---|---|---|---|")
    for w, wall in rows:
        print(
            f"| {w} | {args.events} | {wall:.1f} | {args.events / wall * 60:.1f} "
            f"| {rows[0][1] / wall:.2f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
