"""Helpers shared by the benchmarks: a simulated vLLM in its own process, one deliberation as a
door runs it, metrics, percentiles."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from langgraph.checkpoint.base import BaseCheckpointSaver
from prometheus_client.parser import text_string_to_metric_families

from council_agents.cli.commands import demo_tasks
from council_agents.core.request import admit
from council_agents.core.settings import Settings
from council_agents.graph.builder import Clients
from council_agents.server.runner import Deliberations, Outcome
from council_agents.server.services import free_port

ROOT = Path(__file__).resolve().parent.parent
TASKS = list(demo_tasks().values())


class SimProcess:
    """``council sim-vllm`` as a separate process, so its CPU does not blur council's figures."""

    def __init__(self, *args: str):
        self.port = free_port()
        self.args = args
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SimProcess:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "council_agents.cli",
                "sim-vllm",
                "--port",
                str(self.port),
                *self.args,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        deadline = time.monotonic() + 60  # a loaded 2-core machine imports slowly
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.admin + "/health", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        code = self.proc.poll()
        self.__exit__()
        raise RuntimeError(
            "simulated vLLM did not start within 60 s"
            if code is None
            else f"simulated vLLM exited {code} before it answered"
        )

    def __exit__(self, *exc: object) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def requests(self) -> list[dict]:
        return httpx.get(self.admin + "/admin/requests", timeout=30).json()["requests"]

    def clear(self) -> None:
        httpx.delete(self.admin + "/admin/requests")

    def reset_prefix_cache(self) -> None:
        httpx.delete(self.admin + "/admin/prefix-cache").raise_for_status()

    def configure(self, **changes) -> None:
        httpx.patch(self.admin + "/admin/config", json=changes).raise_for_status()

    def counters(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for fam in text_string_to_metric_families(httpx.get(self.admin + "/metrics").text):
            for s in fam.samples:
                if s.name.endswith("_total"):
                    out[s.name] = out.get(s.name, 0) + s.value
        return out


async def deliberate(
    saver: BaseCheckpointSaver[str],
    thread_id: str,
    inp: dict[str, Any],
    settings: Settings,
    clients: Clients | None = None,
    context: dict[str, Any] | None = None,
    **run: Any,
) -> Outcome:
    """One deliberation as a door runs it: the request admitted once
    (``core.request.admit``), then run to its end on ``saver`` (``server.runner``).

    ``context``: the run's context (e.g. its aggregator). ``clients``: the process's LLM client
    and event publisher, shared by every deliberation of
    the benchmark as a served process shares them (HTTP connections, the learned context
    windows, one NATS connection); closed by the caller. None: clients of their own, closed
    here."""
    deliberations = Deliberations(settings, saver, clients)
    try:
        return await deliberations.run(thread_id, admit(inp, context, None, settings.llm), **run)
    finally:
        if clients is None:
            await deliberations.close()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, round(p / 100 * (len(v) - 1))))
    return v[k]


def critical_path(log: list[dict], deliberation: str) -> float:
    """Sum over stages (and rounds) of the slowest call, in wall seconds from the server's log;
    the judgements and the ballots run together, as one stage.
    """
    groups: dict[tuple, float] = {}
    for e in log:
        if e["deliberation"] != deliberation or not e.get("t_out"):
            continue
        key = ("select" if e["stage"] in ("judge", "vote") else e["stage"], e["round"])
        groups[key] = max(groups.get(key, 0.0), e["t_out"] - e["t_in"])
    return sum(groups.values())


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    python = platform.python_version()
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {python}, {platform.system()}"
