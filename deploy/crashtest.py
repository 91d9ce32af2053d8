"""kill -9 of API replicas at random moments while runs are submitted: is every accepted run
finished, and none executed twice? (docs/DEPLOY.md, "The HTTP runtime")

    .venv/bin/python deploy/crashtest.py --runtime inmem                # one replica
    /tmp/pg/bin/python deploy/crashtest.py --runtime postgres --replicas 2
        # a venv with deploy/requirements-postgres.txt installed; a temporary PostgreSQL is made
        # with initdb (PostgreSQL's server binaries: /usr/lib/postgresql/*/bin or --pg-bin),
        # or pass --database-uri

Starts on loopback, in a temporary directory: Valkey (append-only file), NATS with JetStream,
the simulated vLLM and ``--replicas`` API processes (``council serve --production``, the runtime
chosen with ``COUNCIL_HTTP_RUNTIME``), plus PostgreSQL for ``--runtime postgres``. Then, with a
seeded random generator:

- ``--runs`` runs are submitted at random moments of ``--window`` seconds, each on its own
  thread (``POST /threads/{id}/runs``, ``if_not_exists: create``, ``multitask_strategy:
  reject``), to a replica chosen at random, as a client behind a load balancer would. A request
  whose answer never came (the replica died) is checked with ``GET /threads/{id}/runs`` on
  another replica, and sent again only if the thread has no run: a run counts as **accepted**
  once a response carried its id;
- at ``--kills`` random moments of the same window one replica, chosen at random, gets SIGKILL
  (``--signal TERM``: the stop of a rolling update) and is started again as soon as it has
  exited (as Kubernetes restarts a container).

Then it waits for every accepted run to end and counts, from the outside:

- **finished**: the run's status is ``success`` and its deliberation's completed event is in the
  ``ORCHESTRATOR_EVENTS`` stream; **lost**: the API no longer knows the run (404) or it never
  ended; **failed**: it ended otherwise;
- **executed twice**: the run's deliberation published its completed event more than once
  (``event.published`` lines in the replicas' council logs, duplicates included: JetStream
  drops a repeated ``Nats-Msg-Id``, so the stream alone cannot show it), or made at least twice
  the LLM calls of the median run (the simulator's request log), i.e. ran again from the start
  instead of resuming from its checkpoint (the median is over the runs that succeeded). Calls
  repeated by a resume (those in flight at the kill) are reported as ``repeated LLM calls``.

Prints one line per count and exits 0 only if every accepted run finished and none executed
twice. Failures name what failed; process logs stay in the temporary directory (``--keep``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smoke import Postgres, Stack, free_port  # noqa: E402

TERMINAL = {"success", "error", "timeout", "interrupted"}


@dataclass
class Submission:
    thread_id: str
    at: float
    run_id: str | None = None
    replica: int | None = None
    tries: int = 0
    unknown: int = 0  # requests whose answer never came
    status: str | None = None
    notes: list[str] = field(default_factory=list)


class Replicas:
    """``n`` API processes on their own ports and data directories, killed and restarted."""

    def __init__(self, stack: Stack, n: int, runtime: str, database_uri: str | None, jobs: int):
        self.stack, self.n, self.runtime, self.jobs = stack, n, runtime, jobs
        self.database_uri = database_uri
        self.ports = [free_port() for _ in range(n)]
        self.lock = threading.Lock()
        self.kills: list[tuple[float, int]] = []
        self.kill_times: list[float] = []  # wall clock

    def name(self, i: int) -> str:
        return f"api{i}"

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    def start(self, i: int) -> None:
        stack = self.stack
        env = {
            "VALKEY_URL": stack.urls["valkey_url"],
            "NATS_URL": stack.urls["nats_url"],
            "COUNCIL_DATA_DIR": str(stack.root / self.name(i)),
            "COUNCIL_HTTP_RUNTIME": self.runtime,
        }
        if self.database_uri:
            env["DATABASE_URI"] = self.database_uri
        (stack.root / self.name(i)).mkdir(exist_ok=True)
        argv = [str(stack.venv / "bin" / "council"), "serve", "--production", "--host",
                "127.0.0.1", "--port", str(self.ports[i]), "--jobs", str(self.jobs)]  # fmt: skip
        stack.ports[self.name(i)] = self.ports[i]
        stack.start(self.name(i), argv, env, cwd=stack.root / self.name(i))

    def kill(self, i: int, at: float, sig: int = signal.SIGKILL) -> None:
        with self.lock:
            proc = self.stack.procs.pop(self.name(i))
            proc.send_signal(sig)
            proc.wait()  # SIGTERM: up to uvicorn's 30 s of graceful shutdown
            self.kills.append((at, i))
            self.kill_times.append(time.time())
            self.start(i)

    def ready(self, i: int) -> bool:
        try:
            return httpx.get(self.url(i) + "/ok", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_all(self, timeout: float) -> None:
        which = range(self.n)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.ready(i) for i in which):
                return
            for i in which:
                proc = self.stack.procs[self.name(i)]
                if proc.poll() is not None:
                    raise SystemExit(
                        f"api{i} exited ({proc.returncode}) at start; see "
                        f"{self.stack.root}/{self.name(i)}.log"
                    )
            time.sleep(0.3)
        raise SystemExit(f"the API replicas did not answer /ok within {timeout:.0f}s")


class Client:
    """Submits runs as a client behind a load balancer: any replica, retried when unanswered."""

    def __init__(self, replicas: Replicas, token: str, rng: random.Random, rounds: int):
        self.replicas, self.rng, self.rounds = replicas, rng, rounds
        self.headers = {"Authorization": f"Bearer {token}"}

    def pick(self) -> int:
        return self.rng.randrange(self.replicas.n)

    def existing_run(self, sub: Submission) -> str | None | bool:
        """The thread's run id; None: no run; False: no replica could tell."""
        for _ in range(self.replicas.n * 3):
            i = self.pick()
            try:
                r = httpx.get(
                    f"{self.replicas.url(i)}/threads/{sub.thread_id}/runs",
                    headers=self.headers,
                    timeout=10,
                )
            except httpx.HTTPError:
                time.sleep(1)
                continue
            if r.status_code == 404:
                return None
            if r.status_code == 200:
                runs = r.json()
                return runs[0]["run_id"] if runs else None
            time.sleep(1)
        return False

    def submit(self, sub: Submission, deadline: float) -> Submission:
        body = {
            "assistant_id": "council",
            "input": {"task": f"Crash test {sub.thread_id[:8]}: add an audit log of admin "
                      "actions", "role": "DEV", "rounds": self.rounds},
            "if_not_exists": "create",
            "multitask_strategy": "reject",
        }  # fmt: skip
        while time.monotonic() < deadline:
            sub.tries += 1
            i = self.pick()
            try:
                r = httpx.post(
                    f"{self.replicas.url(i)}/threads/{sub.thread_id}/runs",
                    json=body,
                    headers=self.headers,
                    timeout=30,
                )
            except httpx.ConnectError:
                time.sleep(0.5)  # refused: nothing was sent; another replica
                continue
            except httpx.HTTPError as e:
                sub.unknown += 1
                sub.notes.append(f"api{i}: no answer ({type(e).__name__})")
                found = self.existing_run(sub)
                if isinstance(found, str):
                    sub.run_id, sub.replica = found, i
                    return sub
                continue
            if r.status_code == 200:
                sub.run_id, sub.replica = r.json()["run_id"], i
                return sub
            if r.status_code == 409:  # the thread has a run: an earlier try made it
                found = self.existing_run(sub)
                if isinstance(found, str):
                    sub.run_id, sub.replica = found, i
                    return sub
            sub.notes.append(f"api{i}: {r.status_code} {r.text[:120]}")
            time.sleep(0.5)
        return sub

    def status(self, sub: Submission) -> str | None:
        """The run's status on any replica; ``missing`` for 404; None if none answered."""
        for _ in range(self.replicas.n * 2):
            i = self.pick()
            try:
                r = httpx.get(
                    f"{self.replicas.url(i)}/threads/{sub.thread_id}/runs/{sub.run_id}",
                    headers=self.headers,
                    timeout=10,
                )
            except httpx.HTTPError:
                continue
            if r.status_code == 404:
                return "missing"
            if r.status_code == 200:
                return str(r.json()["status"])
        return None


async def stream_events(nats_url: str) -> Counter[str]:
    """Completed events in ORCHESTRATOR_EVENTS, per deliberation id."""
    import nats

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("ORCHESTRATOR_EVENTS")
        seen: Counter[str] = Counter()
        sub = await js.subscribe("orchestration.deliberation.completed", ordered_consumer=True)
        for _ in range(info.state.messages):
            msg = await sub.next_msg(timeout=10)
            seen[json.loads(msg.data)["deliberation_id"]] += 1
        return seen
    finally:
        await nc.close()


def published_lines(root: Path) -> Counter[str]:
    """``event.published`` log lines (duplicates included) per deliberation, all replicas."""
    out: Counter[str] = Counter()
    for log in root.glob("api*/logs/*.jsonl"):
        for line in log.read_text(errors="replace").splitlines():
            if '"event.published"' in line:
                try:
                    out[json.loads(line)["deliberation_id"]] += 1
                except (ValueError, KeyError):
                    continue
    return out


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
STAMP = re.compile(r"'timestamp': '([0-9T:.+-]+)Z?'")


def taken_over(root: Path) -> dict[str, float]:
    """Runs the runtime re-queued after a kill, with the wall-clock time it did: swept when
    their heartbeat expired (postgres) or found running at a start (inmem)."""
    found: dict[str, float] = {}
    for log in root.glob("api*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if "Swept stale run'" in line or "Retrying runs left running" in line:
                stamp = STAMP.search(line)
                when = (
                    datetime.fromisoformat(stamp.group(1)).replace(tzinfo=UTC).timestamp()
                    if stamp
                    else 0.0
                )
                for run_id in UUID.findall(line):
                    found.setdefault(run_id, when)
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runtime", choices=("inmem", "postgres"), default="inmem")
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument(
        "--signal", choices=("KILL", "TERM"), default="KILL", help="TERM: a rolling update's stop"
    )
    ap.add_argument("--window", type=float, default=120, help="seconds of submissions and kills")
    ap.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    ap.add_argument("--rounds", type=int, default=1, help="rounds per deliberation")
    ap.add_argument("--time-scale", type=float, default=1.0, help="the simulator's (1: real)")
    ap.add_argument("--jobs", type=int, default=10, help="runs at once per replica")
    ap.add_argument("--wait", type=float, default=600, help="seconds to wait for runs to end")
    ap.add_argument("--venv", type=Path, default=Path(sys.executable).parent.parent)
    ap.add_argument("--database-uri", help="PostgreSQL to use instead of a temporary one")
    ap.add_argument("--pg-bin", type=Path, help="PostgreSQL's server binaries (initdb, pg_ctl)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="council-crashtest-"))
    stack = Stack(args.venv.resolve(), root, args.time_scale)
    postgres = None
    print(
        f"crashtest: runtime {args.runtime}, {args.replicas} replica(s), {args.runs} runs, "
        f"{args.kills} SIG{args.signal} in {args.window:.0f}s, seed {seed}; directory {root}",
        flush=True,
    )
    try:
        stack.services()
        database_uri = args.database_uri
        if args.runtime == "postgres" and not database_uri:
            postgres = Postgres(root, args.pg_bin)
            database_uri = postgres.start()
        replicas = Replicas(stack, args.replicas, args.runtime, database_uri, args.jobs)
        for i in range(args.replicas):  # together: the schema is set up under a lock
            replicas.start(i)
        replicas.wait_all(180)
        token = subprocess.run(
            [str(stack.venv / "bin" / "council"), "keys", "create", "--owner", "crash", "--admin"],
            capture_output=True,
            text=True,
            check=True,
            env={**stack.env, "VALKEY_URL": stack.urls["valkey_url"],
                 "COUNCIL_DATA_DIR": str(root / "cli")},
        ).stdout.split()[-1]  # fmt: skip
        client = Client(replicas, token, rng, args.rounds)
        subs = [
            Submission(str(uuid.uuid4()), rng.uniform(0, args.window)) for _ in range(args.runs)
        ]
        kill_plan = sorted(
            (rng.uniform(0, args.window), rng.randrange(args.replicas)) for _ in range(args.kills)
        )
        t0 = time.monotonic()

        def killer() -> None:
            for at, i in kill_plan:
                time.sleep(max(0.0, t0 + at - time.monotonic()))
                replicas.kill(i, time.monotonic() - t0, getattr(signal, f"SIG{args.signal}"))

        def submit(sub: Submission) -> Submission:
            time.sleep(max(0.0, t0 + sub.at - time.monotonic()))
            return client.submit(sub, t0 + args.window + 300)

        kthread = threading.Thread(target=killer, daemon=True)
        kthread.start()
        with ThreadPoolExecutor(args.runs) as pool:
            list(pool.map(submit, subs))
        kthread.join()
        accepted = [s for s in subs if s.run_id]
        print(
            f"submitted {len(subs)}; accepted {len(accepted)} (a run id returned); "
            f"{sum(s.unknown for s in subs)} requests unanswered (replica killed), "
            f"{sum(s.tries for s in subs) - len(subs)} retries",
            flush=True,
        )
        print(
            "kills at " + ", ".join(f"{at:.1f}s (api{i})" for at, i in replicas.kills), flush=True
        )
        replicas.wait_all(180)
        deadline = time.monotonic() + args.wait
        pending = list(accepted)
        missing_since: dict[str, float] = {}
        while pending and time.monotonic() < deadline:
            now = time.monotonic()
            for sub in pending:
                sub.status = client.status(sub)
                if sub.status == "missing":
                    missing_since.setdefault(sub.thread_id, now)
                else:
                    missing_since.pop(sub.thread_id, None)
            # every replica is up: a run unknown to all of them for a minute stays unknown
            pending = [
                s
                for s in pending
                if s.status not in TERMINAL
                and not (s.status == "missing" and now - missing_since[s.thread_id] > 60)
            ]
            if pending:
                time.sleep(2)
        stream = asyncio.run(stream_events(stack.urls["nats_url"]))
        published = published_lines(root)
        llm = httpx.get(stack.env["COUNCIL_LLM_BASE_URL"].removesuffix("/v1") + "/admin/requests")
        calls = Counter(r["deliberation"] for r in llm.json()["requests"])

        finished = [s for s in accepted if s.status == "success" and stream[s.thread_id] == 1]
        lost = [s for s in accepted if s.status not in TERMINAL]  # 404 ("missing") or never ended
        failed = [s for s in accepted if s.status in TERMINAL and s not in finished]
        # one execution's LLM calls: the median of the runs that succeeded (lost runs made fewer)
        done = [s for s in accepted if s.status == "success"] or accepted
        base = statistics.median(calls[s.thread_id] for s in done) if done else 0
        twice = [
            s
            for s in accepted
            if published[s.thread_id] > 1
            or stream[s.thread_id] > 1
            or calls[s.thread_id] >= 2 * base
        ]
        repeated = sum(max(0, calls[s.thread_id] - base) for s in accepted)
        swept = taken_over(root)
        resumed = {s.run_id for s in accepted} & set(swept)
        delays = [  # from the last kill before the take-over
            when - max((k for k in replicas.kill_times if k <= when), default=when)
            for run_id, when in swept.items()
            if run_id in resumed and when
        ]
        strays = [d for d in stream if d not in {s.thread_id for s in accepted}]
        print(f"finished (success, one completed event): {len(finished)} of {len(accepted)}")
        print(f"lost (404 or never ended): {len(lost)}")
        print(f"failed (ended otherwise): {len(failed)}")
        print(f"executed twice: {len(twice)}")
        print(
            f"runs taken over after a kill (re-queued by the runtime): {len(resumed)}"
            + (f", at most {max(delays):.0f} s after the kill" if delays else "")
        )
        print(
            f"LLM calls per run: median {base:g}, max "
            f"{max((calls[s.thread_id] for s in accepted), default=0)}; repeated LLM calls "
            f"(resumed runs): {repeated:g}; event.published log lines: "
            f"{sum(published[s.thread_id] for s in accepted)}; completed events of unaccepted "
            f"runs: {len(strays)}"
        )
        for s in lost + failed + twice:
            print(
                f"  thread {s.thread_id} run {s.run_id}: status {s.status}, events "
                f"{stream[s.thread_id]}, published {published[s.thread_id]}, LLM calls "
                f"{calls[s.thread_id]}; {'; '.join(s.notes[-3:])}"
            )
        ok = len(finished) == len(accepted) == len(subs) and not twice
        print(f"crashtest: {'passed' if ok else 'FAILED'} (seed {seed})")
        return 0 if ok else 1
    finally:
        stack.close()
        if postgres:
            postgres.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
