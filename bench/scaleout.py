"""Benchmark 3: deliberations per minute through NATS with 1 and 2 worker processes.

    python -m bench.scaleout [--events 24] [--concurrency 4] [--time-scale 1.0] [--workers 1 2]

Real ``council worker`` processes on embedded NATS and Valkey; the simulated vLLM (own process,
``max_num_seqs`` 1024 and no batch slowdown, so it is not the bottleneck) at the given time scale.
Once every worker pulls from the planning consumer (their start-up is not timed), publishes the
events, then times until every deliberation's event (completed or failed) is in the stream; a
failed deliberation, or a worker that exits, stops the benchmark with an error.
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
from council_agents.events.planning import DURABLE, PLANNING_STREAM, publish_plan
from council_agents.events.publisher import FAILED_SUBJECT, STREAM
from council_agents.server.services import EmbeddedNats, EmbeddedValkey


async def completed_count(nats_url: str, subject: str | None = None) -> int:
    """Events in the orchestrator stream (only those on ``subject`` when given)."""
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(STREAM, subjects_filter=subject)
        if subject is None:
            return info.state.messages
        return sum((info.state.subjects or {}).values())
    except Exception:  # noqa: BLE001 - no stream yet
        return 0
    finally:
        await nc.close()


async def workers_ready(nats_url: str, workers: int, procs: list, timeout: float = 90) -> None:
    """Wait until ``workers`` workers are pulling from the planning consumer (each keeps a pull
    request waiting while it has room), so their start-up is not timed."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            exited = [p.returncode for p in procs if p.poll() is not None]
            if exited:
                raise SystemExit(f"scaleout: a worker exited ({exited}) while starting")
            try:
                if (await js.consumer_info(PLANNING_STREAM, DURABLE)).num_waiting >= workers:
                    return
            except Exception:  # noqa: BLE001 - no stream or consumer yet
                pass
            await asyncio.sleep(0.1)
        raise SystemExit(f"scaleout: {workers} worker(s) not pulling after {timeout:.0f} s")
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
            await workers_ready(n.url, workers, procs)  # connected and consuming
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
                exited = [p.returncode for p in procs if p.poll() is not None]
                if exited:
                    raise SystemExit(f"scaleout: a worker exited ({exited}); see {tmp}")
                await asyncio.sleep(0.1)
            wall = time.perf_counter() - t0
            failed = await completed_count(n.url, FAILED_SUBJECT)
            if failed:
                raise SystemExit(f"scaleout: {failed} deliberation(s) failed; see {tmp}")
            return wall
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=60)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__)
    ap.add_argument("--events", type=int, default=24)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="worker processes of each trial (the speed-up is against the first)",
    )
    return ap.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
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
        rows = [(w, await trial(w, args, tmp, sim)) for w in args.workers]
    print("| workers | deliberations | wall (s) | deliberations/min | speed-up |")
    print("|---|---|---|---|---|")
    for w, wall in rows:
        print(
            f"| {w} | {args.events} | {wall:.1f} | {args.events / wall * 60:.1f} "
            f"| {rows[0][1] / wall:.2f} |"
        )


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
