"""Peers, side by side: the same deliberation in council, AutoGen AgentChat and CrewAI.

    .venv/bin/python -m bench.peers                      # task t01, 3 runs each, time scale 1
    .venv/bin/python -m bench.peers --runs 1 --frameworks council,crewai

One deliberation, written the way each framework's users write it, following council's
protocol (docs/DECISIONS.md): 3 DEV agents each propose; every peer critiques every other
proposal (6 critiques, JSON documents with severities); each author revises its own proposal
from the critiques it got (a JSON document); two judgements of the revisions in opposite
orders under neutral labels, and each agent ranks its peers' revisions (2 + 3 calls, JSON
documents): 17 LLM calls. The winner is council's own aggregation (``nodes.select.decide``,
no LLM call) of each framework's judgements and ballots. Same task (``server/tasks.jsonl``),
council's prompt files and answer schemas, council's ``max_tokens`` per stage
(``graph.settings.DEFAULT_MAX_TOKENS``), temperatures and seeds.

* ``council``: ``council deliberate ... --json`` (its CLI, with embedded Valkey and NATS).
* ``autogen``: AgentChat's ``GraphFlow`` (``bench/peers/autogen_run.py``).
* ``crewai``: a sequential ``Crew`` with ``async_execution`` tasks where CrewAI allows them
  (``bench/peers/crewai_run.py``); ``crewai-sequential``: the same crew without them.

AutoGen and CrewAI run in virtualenvs of their own, built here on first use from the pinned
``bench/peers/requirements-*.txt`` (CrewAI pins openai < 3, council uses openai 3; AutoGen pins
protobuf 5.29, the serve extra's langgraph-api needs protobuf 6).

All of them talk to ONE simulated vLLM (``council sim-vllm --time-scale 1 --reasoning-parser``,
started here), one deliberation at a time, each from an empty prefix cache. Every call names
its caller (``X-Council-*`` headers), so the figures come from the simulator's request log
(``GET /admin/requests``): LLM calls; prompt, cached and completion tokens; the peak number of
calls in flight (between arrival ``t_in`` and answer ``t_out``); the stage bound (per stage the
slowest call, summed: the wall of an overhead-free orchestrator that waits for each stage, the
judgements and ballots being one stage); and the time with no call of the deliberation in
flight (orchestration, and set-up before the first call and after the last). Wall time is the
deliberation's own, measured in each process around the run (council's ``duration_ms``):
imports and council's embedded servers are outside it, the whole process's time is shown apart.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from council_agents.core.progress import latest_drafts
from council_agents.core.request import normal_rubric
from council_agents.core.settings import DEFAULT_MAX_TOKENS
from council_agents.llm.prompt_files import rubric_text
from council_agents.nodes.judge import weighted_total
from council_agents.nodes.select import decide

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / "peers"
FRAMEWORKS = ("council", "autogen", "crewai", "crewai-sequential")
PEER_RUNS = {  # name -> (runner script and virtualenv, what the spec adds)
    "autogen": ("autogen", {}),
    "crewai": ("crewai", {}),
    "crewai-sequential": ("crewai", {"sequential": True}),
}
LOGGED = (
    "agent",
    "stage",
    "t_in",
    "t_first_token",
    "t_out",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
)  # of each call, in --out
STAGES = ("propose", "critique", "revise", "judge", "vote")
SELECTION = ("judge", "vote")  # one stage: the judgements and the ballots run together


def load_task(task_id: str) -> dict[str, Any]:
    """A task of the benchmark set (``bench/tasks.jsonl``, or ``server/tasks.jsonl`` once moved)."""
    for path in (ROOT / "cli" / "tasks.jsonl", ROOT / "bench" / "tasks.jsonl"):
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                task = json.loads(line)
                if task["id"] == task_id:
                    return task
    raise SystemExit(f"peers: no task {task_id!r} in the benchmark tasks")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def council_command() -> list[str]:
    """The ``council`` entry point of this interpreter's environment."""
    exe = Path(sys.executable).with_name("council")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "council_agents.cli"]


class Simulator:
    """``council sim-vllm`` as a subprocess; the admin API gives its request log."""

    def __init__(self, time_scale: float):
        self.port = free_port()
        self.args = [
            "sim-vllm",
            "--port",
            str(self.port),
            "--time-scale",
            str(time_scale),
            "--reasoning-parser",
        ]
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Simulator:
        self.proc = subprocess.Popen(
            [*council_command(), *self.args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.admin + "/health", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.__exit__()
        raise SystemExit("peers: the simulated vLLM did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def model(self) -> str:
        return httpx.get(self.base_url + "/models", timeout=10).json()["data"][0]["id"]

    def fresh(self) -> None:
        """Empty prefix cache and request log: each deliberation starts cold."""
        httpx.delete(self.admin + "/admin/prefix-cache", timeout=10).raise_for_status()
        httpx.delete(self.admin + "/admin/requests", timeout=10).raise_for_status()

    def requests(self, deliberation_id: str) -> list[dict[str, Any]]:
        log = httpx.get(self.admin + "/admin/requests", timeout=30).json()["requests"]
        return [e for e in log if e.get("deliberation") == deliberation_id]


def peer_python(name: str, venvs: Path, override: str | None) -> Path:
    """The interpreter of a peer's virtualenv, built on first use from its pinned requirements."""
    if override:
        return Path(override)
    requirements = PEERS / f"requirements-{name}.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    venv = venvs / f"{name}-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".requirements-sha"
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    print(f"peers: installing {name} into {venv} (first run only; a few minutes)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)
    stamp.write_text(digest)
    return python


def run_council(
    sim: Simulator, task: dict[str, Any], deliberation_id: str, work: Path
) -> dict[str, Any]:
    """``council deliberate --json`` as a user runs it; its ``duration_ms`` is the wall time."""
    rubric = work / f"rubric-{task['id']}.json"
    rubric.write_text(json.dumps(task["rubric"]))
    env = {k: v for k, v in os.environ.items() if k not in ("VALKEY_URL", "NATS_URL")}
    env["COUNCIL_DATA_DIR"] = str(work / "council-data")  # its embedded Valkey and NATS live here
    cmd = [
        *council_command(),
        "deliberate",
        task["task"],
        "--role",
        task["role"],
        "--agents",
        "3",
        "--rounds",
        "1",
        "--rubric",
        str(rubric),
        "--base-url",
        sim.base_url,
        "--id",
        deliberation_id,
        "--json",
        "--quiet",
    ]
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    process_s = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit(f"peers: council failed ({done.returncode}): {done.stderr[-2000:]}")
    event = json.loads(done.stdout)
    ended = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
    return {
        "wall_s": event["duration_ms"] / 1000,
        "process_s": process_s,
        "winner": event["winner"]["author"]["agent_id"],
        "version": council_version(),
        "started": ended - event["duration_ms"] / 1000,
        "ended": ended,
    }


def run_peer(
    name: str,
    python: Path | None,
    sim: Simulator,
    task: dict[str, Any],
    deliberation_id: str,
    work: Path,
) -> dict[str, Any]:
    """A peer's script in its own virtualenv; it prints one JSON line with its own wall time."""
    runner, extra = PEER_RUNS[name]
    rubric = normal_rubric(task["rubric"])
    spec = {
        "framework": name,
        **extra,
        "deliberation_id": deliberation_id,
        "base_url": sim.base_url,
        "model": sim.model(),
        "api_key": "EMPTY",
        "role": task["role"],
        "task": task["task"],
        "constraints": "",
        "rubric": rubric,
        "rubric_text": rubric_text(rubric),
        "max_tokens": DEFAULT_MAX_TOKENS,
        "agents": [
            {
                "agent_id": f"agent-{task['role'].lower()}-{i:03d}",
                "temperature": 0.7,
                "seed": 1000 + i,
            }
            for i in (1, 2, 3)
        ],
        "judge": {"agent_id": f"judge-{task['role'].lower()}", "temperature": 0.0, "seed": 7},
        "prompts_dir": os.environ.get("COUNCIL_PROMPTS_DIR") or str(ROOT / "prompts"),
    }
    path = work / f"spec-{name}.json"
    path.write_text(json.dumps(spec))
    t0 = time.monotonic()
    assert python is not None
    done = subprocess.run(
        [str(python), str(PEERS / f"{runner}_run.py"), str(path)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    process_s = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit(f"peers: {name} failed ({done.returncode}): {done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "wall_s": result["wall_s"],
        "process_s": process_s,
        "winner": winner(task, spec["agents"], result["judgements"], result["ballots"]),
        "version": result["version"],
        "started": result["started"],
        "ended": result["ended"],
    }


def winner(
    task: dict[str, Any],
    agents: list[dict[str, Any]],
    judgements: list[dict[str, Any]],
    ballots: list[dict[str, Any]],
) -> str:
    """Council's own aggregation (judge+vote) of a peer's judgements and ballots."""
    rubric = normal_rubric(task["rubric"])
    for j in judgements:
        j["totals"] = {a: weighted_total(x["scores"], rubric) for a, x in j["assessments"].items()}
    state: Any = {
        "council": {"rubric": rubric, "aggregator": "judge+vote", "rounds": 1},
        "drafts": [{"agent_id": a["agent_id"], "version": 1, "content": ""} for a in agents],
        "judgements": judgements,
        "ballots": ballots,
    }
    assert sorted(latest_drafts(state)) == sorted(a["agent_id"] for a in agents)
    return decide(state)["winner"]


def council_version() -> str:
    from importlib.metadata import version

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True, capture_output=True
        ).stdout.strip()
    except OSError:
        commit = ""
    return version("council-agents") + (f" ({commit})" if commit else "")


def peak_in_flight(calls: list[dict[str, Any]]) -> int:
    """The most calls between arrival and answer at one instant (answers first on a tie)."""
    events = sorted([(c["t_in"], 1) for c in calls] + [(c["t_out"], -1) for c in calls])
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def stage_bound(calls: list[dict[str, Any]]) -> float:
    """Per stage, the slowest call, summed: a zero-overhead stage-by-stage orchestrator's wall
    (the judgements and the ballots are one stage: they need the same revisions).
    """
    slowest: dict[str, float] = {}
    for c in calls:
        stage = "select" if c["stage"] in SELECTION else c["stage"]
        slowest[stage] = max(slowest.get(stage, 0.0), c["t_out"] - c["t_in"])
    return sum(slowest.values())


def busy(calls: list[dict[str, Any]]) -> float:
    """Seconds during which at least one call was in flight (the union of the calls' spans)."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted((c["t_in"], c["t_out"]) for c in calls):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def figures(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """What the simulator saw of one deliberation."""
    if any(c.get("status") != 200 or not c.get("t_out") for c in calls):
        raise SystemExit(f"peers: failed LLM calls in the log: {calls}")
    return {
        "calls": len(calls),
        "prompt_tokens": sum(c["prompt_tokens"] for c in calls),
        "cached_tokens": sum(c.get("cached_tokens", 0) for c in calls),
        "completion_tokens": sum(c["completion_tokens"] for c in calls),
        "peak_in_flight": peak_in_flight(calls),
        "stage_bound_s": stage_bound(calls),
        "busy_s": busy(calls),
        "by_stage": {s: sum(1 for c in calls if c["stage"] == s) for s in STAGES},
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each figure over the runs (the wall's range too)."""

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    walls = [r["wall_s"] for r in runs]
    out = {
        k: med(k)
        for k in (
            "wall_s",
            "process_s",
            "calls",
            "prompt_tokens",
            "cached_tokens",
            "completion_tokens",
            "peak_in_flight",
            "stage_bound_s",
            "idle_s",
            "before_first_call_s",
            "after_last_call_s",
        )
    }
    return {
        **out,
        "wall_min": min(walls),
        "wall_max": max(walls),
        "version": runs[0]["version"],
        "runs": len(runs),
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    base = results.get("council", {}).get("wall_s")
    lines = [
        "| framework | version | wall (s) | wall / council | process (s) | LLM calls | "
        "prompt tokens (cached) | completion tokens | peak calls in flight | "
        "stage bound (s) | no call in flight (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in results.items():
        ratio = f"{s['wall_s'] / base:.2f}" if base else "-"
        spread = (
            f"{s['wall_s']:.2f} ({s['wall_min']:.2f}–{s['wall_max']:.2f})"
            if s["runs"] > 1
            else f"{s['wall_s']:.2f}"
        )
        lines.append(
            f"| {name} | {s['version']} | {spread} | {ratio} | {s['process_s']:.1f} | "
            f"{s['calls']:g} | {s['prompt_tokens']:g} ({s['cached_tokens']:g}) | "
            f"{s['completion_tokens']:g} | {s['peak_in_flight']:g} | "
            f"{s['stage_bound_s']:.2f} | {s['idle_s']:.2f} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"
    )


def deliberate(
    sim: Simulator,
    name: str,
    task: dict[str, Any],
    deliberation_id: str,
    work: Path,
    python: Path | None,
) -> dict[str, Any]:
    """One deliberation from a cold prefix cache, with what the simulator saw of it."""
    sim.fresh()
    if name == "council":
        run = run_council(sim, task, deliberation_id, work)
    else:
        run = run_peer(name, python, sim, task, deliberation_id, work)
    calls = sim.requests(deliberation_id)
    run.update(figures(calls))
    run["log"] = [{k: c.get(k) for k in LOGGED} for c in calls]
    run["idle_s"] = run["wall_s"] - run["busy_s"]
    run["before_first_call_s"] = min(c["t_in"] for c in calls) - run["started"]
    run["after_last_call_s"] = run["ended"] - max(c["t_out"] for c in calls)
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="t01", help="task id in the benchmark tasks (default t01)")
    ap.add_argument(
        "--runs", type=int, default=3, help="deliberations per framework (medians shown)"
    )
    ap.add_argument("--time-scale", type=float, default=1.0, help="simulator time scale")
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated subset")
    ap.add_argument(
        "--venvs",
        default=str(ROOT / ".council-data" / "peers"),
        help="where the peers' virtualenvs and run files go",
    )
    ap.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="use this interpreter for a peer instead of building its virtualenv",
    )
    ap.add_argument("--out", help="also write every run's figures to this JSON file")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.frameworks.split(",") if n.strip()]
    unknown = sorted(set(names) - set(FRAMEWORKS))
    if unknown:
        ap.error(f"unknown framework(s) {unknown}; known: {', '.join(FRAMEWORKS)}")
    overrides = dict(p.split("=", 1) for p in args.python)
    task = load_task(args.task)
    work = Path(args.venvs)
    work.mkdir(parents=True, exist_ok=True)
    venvs = {PEER_RUNS[n][0] for n in names if n != "council"}
    built = {v: peer_python(v, work, overrides.get(v)) for v in sorted(venvs)}
    pythons = {n: built[PEER_RUNS[n][0]] for n in names if n != "council"}
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with Simulator(args.time_scale) as sim:
        for i in range(args.runs):  # interleaved: a slow minute of the machine hits every framework
            for name in names:
                deliberation_id = f"peers-{name}-{stamp}-{i}"
                run = deliberate(sim, name, task, deliberation_id, work, pythons.get(name))
                runs[name].append(run)
                print(
                    f"  {name:<8} run {i + 1}: wall {run['wall_s']:.2f}s, {run['calls']} calls, "
                    f"peak {run['peak_in_flight']} in flight, no call in flight "
                    f"{run['idle_s']:.2f}s ({run['before_first_call_s']:.2f}s before the first, "
                    f"{run['after_last_call_s']:.2f}s after the last), winner {run['winner']}",
                    file=sys.stderr,
                )
    results = {n: summary(r) for n, r in runs.items()}
    print(
        f"Task {task['id']} ({task['role']}), 3 agents, 1 round, time scale {args.time_scale}, "
        f"{args.runs} run(s) each, medians; {machine()}\n"
    )
    print(table(results))
    if args.out:
        Path(args.out).write_text(
            json.dumps({"task": task["id"], "runs": runs, "summary": results}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
