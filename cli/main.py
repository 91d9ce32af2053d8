"""``council``: run deliberations, the demo, the server, the worker, the simulated vLLM.

Exit codes (one line on stderr names what failed, with its URL, the stage and the agent; the
traceback is in the log file):

| code | what failed |
|---|---|
| 0 | nothing: done (or waiting for an approval) |
| 1 | anything else (e.g. the data directory is in use by another process) |
| 2 | bad input: the message names the field and the limit |
| 3 | the LLM: unreachable, timing out, refusing, or answering garbage |
| 4 | Valkey: unreachable or failing |
| 5 | NATS: unreachable, or the completed event was not acknowledged |
| 6 | the model's answers: too few usable ones after every retry (under two proposals; neither a |
|   | judgement nor a ballot) |
| 130 | interrupted (Ctrl-C) |

A deliberation that stopped after ``prepare`` keeps its checkpoints; only then does the error
end with ``resume: council resume ID``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import structlog

from council_agents.cli import commands, keys, prune
from council_agents.cli import compare as compare_cli
from council_agents.cli import prompts as prompts_cli
from council_agents.cli.eval import add_cli as add_eval_cli
from council_agents.cli.render import say
from council_agents.core.errors import describe
from council_agents.core.limits import MAX_AGENTS, MAX_ROUNDS, MAX_TASK_CHARS, MIN_AGENTS
from council_agents.core.request import RequestError
from council_agents.core.settings import DEFAULT_BASE_URL, Settings, SettingsError
from council_agents.core.terms import AGGREGATORS, CHECKERS, ROLES
from council_agents.server import logs
from council_agents.sim_vllm import add_cli as add_sim_cli


def _llm_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--base-url",
        help="OpenAI-compatible LLM base URL (env COUNCIL_LLM_BASE_URL, "
        f"default {DEFAULT_BASE_URL})",
    )
    p.add_argument("--model", help="model name (env COUNCIL_MODEL; default: the server's model)")


def _output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the completed event as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _council_flags(p: argparse.ArgumentParser, agents_default: int | None = None) -> None:
    p.add_argument("--council", help="a stored council's name (GET /councils)")
    p.add_argument(
        "--agents",
        type=int,
        default=agents_default,
        help=f"agents of a built-in council ({MIN_AGENTS}-{MAX_AGENTS}, default 3)",
    )
    p.add_argument("--rounds", type=int, help=f"critique/revise rounds (0-{MAX_ROUNDS})")
    p.add_argument("--approval", action="store_true", help="wait for a human approval")
    p.add_argument(
        "--aggregator",
        choices=AGGREGATORS,
        help="how the winner is decided (default: the council's, judge+vote)",
    )
    p.add_argument(
        "--token-budget",
        type=int,
        help="most prompt+completion tokens; past it the council goes to selection",
    )
    p.add_argument(
        "--critics",
        type=int,
        help="critics per proposal (default: every peer; fewer make a sparse ring)",
    )
    p.add_argument(
        "--checkers",
        help="comma-separated checkers run on the drafts with no LLM: "
        + ", ".join(CHECKERS)
        + " (default: by the task's kind; 'none' for no checker)",
    )
    p.add_argument(
        "--execute",
        action="store_true",
        default=None,
        help="run the answers' code on the task's examples (in the bubblewrap sandbox only)",
    )
    p.add_argument(
        "--gate",
        help="the agreement gate: off, all, or the share of answers that must agree (default all)",
    )
    p.add_argument("--id", help="deliberation (thread) id; default: a new one")


def _deliberation_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = sub.add_parser("deliberate", help="run one deliberation against the configured LLM")
    d.add_argument("task", help=f"the software task (at most {MAX_TASK_CHARS} characters)")
    d.add_argument("--role", help="/".join(ROLES) + " (default: the council's, else DEV)")
    _council_flags(d)
    d.add_argument("--rubric", help="JSON file: {criterion: what it means}")
    d.add_argument("--constraints", help="constraints every agent must respect")
    d.add_argument("--story-id")
    d.add_argument("--task-id")
    _llm_flags(d)
    _output_flags(d)
    d.set_defaults(func=commands.cmd_deliberate)

    r = sub.add_parser("resume", help="finish a deliberation that stopped (crash, error, approval)")
    r.add_argument("id")
    r.add_argument(
        "--approve", action="store_true", help="approve the winner of one waiting for approval"
    )
    r.add_argument(
        "--override", metavar="AGENT", help="choose another winner (needs --reason) instead"
    )
    r.add_argument("--reason", help="why the override (recorded as the justification)")
    _llm_flags(r)  # the endpoint the deliberation uses must be one this process allows
    _output_flags(r)
    r.set_defaults(func=commands.cmd_resume)

    m = sub.add_parser("demo", help="a deliberation on a shipped task with a SIMULATED vLLM")
    m.add_argument("--task", default="t01", help="shipped task id (t01-t15)")
    _council_flags(m)
    m.set_defaults(rounds=1)
    m.add_argument(
        "--time-scale", type=float, default=0.25, help="simulated model seconds -> wall seconds"
    )
    _output_flags(m)
    m.set_defaults(func=commands.cmd_demo)


def _service_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    v = sub.add_parser("serve", help="the LangGraph server (API + Studio) for council, offline")
    v.add_argument("--port", type=int, default=8123)
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--reload", action="store_true", help="reload on code changes")
    v.add_argument(
        "--production",
        action="store_true",
        help="the production HTTP runtime (uvicorn, no reload, no Studio bypass; needs "
        "VALKEY_URL and NATS_URL): docs/DEPLOY.md",
    )
    v.add_argument(
        "--jobs", type=int, help="runs executed at once (env COUNCIL_SERVE_JOBS, default 10)"
    )
    v.add_argument(
        "--dev-studio",
        action="store_true",
        help="local development: let LangGraph Studio in without a token (loopback only)",
    )
    _llm_flags(v)
    v.set_defaults(func=commands.cmd_serve)

    k = sub.add_parser("worker", help="deliberate on planning.plan.approved events from NATS")
    k.add_argument("--concurrency", type=int, default=4, help="deliberations in flight")
    k.add_argument("--max-deliver", type=int, default=5, help="deliveries before giving up")
    k.add_argument(
        "--ack-wait",
        type=float,
        default=60.0,
        help="seconds before an unacked event is redelivered",
    )
    k.add_argument(
        "--grace", type=float, default=30.0, help="seconds running deliberations get on SIGTERM"
    )
    k.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics and /healthz on PORT (env COUNCIL_METRICS_PORT; 0: none)",
    )
    k.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address of that endpoint (a container: 0.0.0.0)",
    )
    _llm_flags(k)
    k.set_defaults(func=commands.cmd_worker)

    q = sub.add_parser("publish-plan", help="send a planning.plan.approved event (NATS_URL)")
    q.add_argument("--file", help="JSON file with the event (or an envelope around it)")
    q.add_argument("--story-id")
    q.add_argument("--plan-id")
    q.add_argument("--roles", help="comma-separated, e.g. DEV,QA")
    q.add_argument("--task")
    q.add_argument("--rounds", type=int)
    q.add_argument("--approved-by", default=os.environ.get("USER", "cli"))
    q.set_defaults(func=commands.cmd_publish_plan)

    t = sub.add_parser("streams", help="create or update the JetStream streams and consumer")
    t.add_argument("--replicas", type=int, default=1, help="stream replicas (a NATS cluster: 3)")
    t.add_argument("--ack-wait", type=float, default=60.0, help="the consumer's ack wait (s)")
    t.add_argument("--max-deliver", type=int, default=5, help="the consumer's max deliveries")
    t.set_defaults(func=commands.cmd_streams)


def _file_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    docs = Path.cwd() / "docs"
    w = sub.add_parser("draw", help="write (or --check) docs/graph.mmd from the compiled graph")
    w.add_argument("--out", default=str(docs / "graph.mmd"))
    w.add_argument("--check", action="store_true")
    w.set_defaults(func=commands.cmd_draw)

    s = sub.add_parser("schemas", help="write (or --check) the events' JSON Schemas")
    s.add_argument("--out", default=str(docs / "events"))
    s.add_argument("--check", action="store_true")
    s.set_defaults(func=commands.cmd_schemas)


def parser() -> argparse.ArgumentParser:
    """The ``council`` command line."""
    ap = argparse.ArgumentParser(prog="council", description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--log-level", default=os.environ.get("COUNCIL_LOG_LEVEL", "INFO"))
    ap.add_argument("--log-file", help="JSON-lines log (default: <data dir>/logs/council.jsonl)")
    ap.add_argument("--log-stderr", action="store_true", help="also log to stderr")
    sub = ap.add_subparsers(dest="cmd", required=True)
    _deliberation_commands(sub)
    _service_commands(sub)
    _file_commands(sub)
    prune.add_cli(sub)
    keys.add_cli(sub)
    add_eval_cli(sub)
    compare_cli.add_cli(sub)
    prompts_cli.add_cli(sub)
    add_sim_cli(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run a ``council`` command; returns its exit code (see the table above)."""
    args = parser().parse_args(argv)

    try:
        if args.cmd not in ("schemas", "draw", "prompts"):
            log_file = (
                Path(args.log_file)
                if args.log_file
                else Settings.from_environment().data_dir / "logs" / "council.jsonl"
            )
            logs.configure(
                level=args.log_level, json_lines=True, file=log_file, stderr=args.log_stderr
            )
        code: int = args.func(args)
        return code
    except (commands.UsageError, RequestError, SettingsError) as e:
        say(f"council: error: {e}")
        return 2
    except KeyboardInterrupt:
        say("council: interrupted; a deliberation that had started resumes: council resume ID")
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI's last word: one line, non-zero exit
        failure = describe(e)
        log = structlog.get_logger("council.cli")
        log.error("command.failed", error=failure.message, exc_info=e)
        say(f"council: error: {failure.message}")
        return commands.exit_code(failure)


if __name__ == "__main__":
    sys.exit(main())
