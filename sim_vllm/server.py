"""The simulated vLLM's HTTP server: the app, a background thread to run it in, and its CLI.

Owns putting the endpoints together (``sim_vllm.info``, ``sim_vllm.completions``,
``sim_vllm.admin``) into one Starlette app, running it with uvicorn in a thread (tests, demo,
benchmarks) or in the foreground (``council sim-vllm``). ``SimVLLM`` (``sim_vllm.engine``) and
``SimConfig`` (``sim_vllm.latency``) are importable from here too.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette

from council_agents.sim_vllm.admin import Admin
from council_agents.sim_vllm.completions import ChatCompletions
from council_agents.sim_vllm.engine import SimVLLM
from council_agents.sim_vllm.faults import FaultRule
from council_agents.sim_vllm.humaneval import HumanEvalScript
from council_agents.sim_vllm.info import Info
from council_agents.sim_vllm.latency import SimConfig
from council_agents.sim_vllm.truth import Truth

__all__ = ["ServerThread", "SimConfig", "SimVLLM", "add_cli", "create_app", "free_port"]


def create_app(sim: SimVLLM | None = None) -> Starlette:
    """The simulator's Starlette app.

    Args:
        sim: The server's state; a new one with the default configuration if None.

    Returns:
        The app, with ``app.state.sim`` set.
    """
    sim = sim or SimVLLM()
    app = Starlette(
        routes=[*Info(sim).routes(), *ChatCompletions(sim).routes(), *Admin(sim).routes()]
    )
    app.state.sim = sim
    return app


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerThread:
    """Runs the simulator with uvicorn in a background thread (tests, demo, benchmarks).

    Attributes:
        sim: The server's state (its log, faults and configuration can be read and changed).
        host: The address served on.
        port: The port served on.
    """

    def __init__(self, sim: SimVLLM | None = None, host: str = "127.0.0.1", port: int = 0):
        """A server ready to start.

        Args:
            sim: The server's state; a new one with the default configuration if None.
            host: The address to serve on.
            port: The port to serve on; 0 picks a free one.
        """
        self.sim = sim or SimVLLM()
        self.host, self.port = host, port or free_port()
        cfg = uvicorn.Config(
            create_app(self.sim),
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(cfg)
        self._thread = threading.Thread(target=self._server.run, name="sim-vllm", daemon=True)

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``http://host:port/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> ServerThread:
        """Start serving and wait until the server listens.

        Returns:
            This server.

        Raises:
            RuntimeError: The server did not start within 10 seconds.
        """
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"simulated vLLM did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask the server to exit and wait for its thread (up to 5 seconds)."""
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def __enter__(self) -> ServerThread:
        """Start serving."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop serving."""
        self.stop()


def add_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``council sim-vllm`` on an argparse sub-parser collection.

    Args:
        sub: What ``ArgumentParser.add_subparsers`` returned.
    """
    p = sub.add_parser(
        "sim-vllm", help="run the SIMULATED vLLM server (opt-in; for tests, demo, bench)"
    )
    d = SimConfig()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", default=d.model)
    p.add_argument(
        "--time-scale",
        type=float,
        default=d.time_scale,
        help="wall seconds per model second (0 = no waiting; 1 = realistic)",
    )
    p.add_argument("--max-num-seqs", type=int, default=d.max_num_seqs)
    p.add_argument("--decode-tps", type=float, default=d.decode_tps)
    p.add_argument("--batch-slowdown", type=float, default=d.batch_slowdown)
    p.add_argument("--prefill-tps", type=float, default=d.prefill_tps)
    p.add_argument("--max-model-len", type=int, default=d.max_model_len)
    p.add_argument(
        "--reasoning-parser",
        action="store_true",
        help="put <think> text in the reasoning field, as vLLM's qwen3 reasoning parser does",
    )
    p.add_argument(
        "--vllm-version",
        default=d.vllm_version,
        help="the vLLM release simulated where releases differ (reasoning field, error wording)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--mark",
        action="append",
        default=[],
        metavar="WORD=POINTS",
        help="script the judges: a proposal written from a prompt containing WORD is worth "
        "POINTS more (e.g. a prompt change; sim_vllm.truth)",
    )
    p.add_argument(
        "--position-bias",
        type=float,
        default=0.0,
        help="with --mark: points the judges add to the proposal shown first",
    )
    p.add_argument(
        "--truth",
        choices=["fitted-smollm2"],
        help="play judges, voters, critics and revisions as the truth fitted to SmolLM2-135M "
        "does (sim_vllm.truth, docs/SIMULATOR.md); default: random answers",
    )
    _add_humaneval_flags(p)
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[:k=v,...]",
        help="inject faults, e.g. http_500:p=0.1 or drop:nth=3,stage=critique",
    )
    p.set_defaults(func=_run_cli)


def _add_humaneval_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--humaneval-correct",
        type=float,
        metavar="SHARE",
        help="answer HumanEval problems with this share of correct first answers "
        "(sim_vllm.humaneval; needs the eval extra)",
    )
    p.add_argument(
        "--humaneval-fix", type=float, default=0.0, help="chance a revision fixes broken code"
    )
    p.add_argument(
        "--humaneval-judge-accuracy",
        type=float,
        default=1.0,
        help="share of problems where judges and voters prefer correct code",
    )


def _truth(marks: list[str], position_bias: float, fitted: str | None, seed: int) -> Truth | None:
    """The truth of ``--truth`` and ``--mark WORD=POINTS`` flags (None: neither given)."""
    points = {}
    for mark in marks:
        word, sep, value = mark.rpartition("=")
        try:
            points[word] = float(value)
        except ValueError:
            sep = ""
        if not sep or not word:
            raise SystemExit(f"sim-vllm: --mark: {mark!r} is not WORD=POINTS")
    if fitted == "fitted-smollm2":
        return Truth.fitted_smollm2(seed=seed, marks=points)
    if not points:
        return None
    return Truth(marks=points, position_bias=position_bias)


def _run_cli(args: argparse.Namespace) -> int:
    cfg = SimConfig(
        model=args.model,
        time_scale=args.time_scale,
        max_num_seqs=args.max_num_seqs,
        decode_tps=args.decode_tps,
        batch_slowdown=args.batch_slowdown,
        prefill_tps=args.prefill_tps,
        max_model_len=args.max_model_len,
        reasoning_parser=args.reasoning_parser,
        vllm_version=args.vllm_version,
        seed=args.seed,
        truth=_truth(args.mark, args.position_bias, args.truth, args.seed),
    )
    faults = [FaultRule.parse_flag(f) for f in args.fault]
    humaneval = (
        None
        if args.humaneval_correct is None
        else HumanEvalScript(
            correct=args.humaneval_correct,
            fix=args.humaneval_fix,
            judge_accuracy=args.humaneval_judge_accuracy,
            seed=args.seed,
        )
    )
    print(
        f"SIMULATED vLLM (not a model) serving {cfg.model} on http://{args.host}:{args.port}/v1",
        flush=True,
    )
    uvicorn.run(
        create_app(SimVLLM(cfg, faults, humaneval)),
        host=args.host,
        port=args.port,
        log_level="warning",
    )
    return 0
