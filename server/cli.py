"""``council``: run deliberations, the demo, the simulated vLLM, and the event schemas.

Exit codes: 0 done; 2 bad input (the message names the field); 3 LLM unreachable or refusing;
1 any other failure. A failed deliberation keeps its checkpoints: ``council resume ID``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from graph.context import DEFAULT_BASE_URL, DEFAULT_RUBRIC, MAX_ROUNDS, MAX_TASK_CHARS, ROLES, Context

ROOT = Path(__file__).resolve().parent.parent
TASKS_FILE = ROOT / "bench" / "tasks.jsonl"


class UsageError(Exception):
    """Bad input: exit 2."""


def _say(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


def load_rubric(path: str | None) -> dict[str, str] | None:
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"--rubric: file {path} does not exist") from None
    except ValueError as e:
        raise UsageError(f"--rubric: {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or not data or not all(isinstance(v, str) for v in data.values()):
        raise UsageError(f"--rubric: {path} must be a JSON object of criterion -> description")
    return data


def load_task(task_id: str) -> dict[str, Any]:
    for line in TASKS_FILE.read_text().splitlines():
        t = json.loads(line)
        if t["id"] == task_id:
            return t
    raise UsageError(f"no task {task_id!r} in {TASKS_FILE}")


class Progress:
    """Prints each agent's finished stage as it happens."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.t0 = time.monotonic()

    def __call__(self, mode: str, chunk: Any) -> None:
        if self.quiet or mode != "updates":
            return
        for node, update in chunk.items():
            if node == "__interrupt__":
                _say("  ⏸  waiting for human approval")
                continue
            for call in (update or {}).get("calls", []):
                flag = "✓" if call.get("accepted", True) else "✗"
                note = f"  ({call['problem']})" if call.get("problem") else ""
                rnd = f" r{call['round']}" if call["stage"] in ("critique", "revise") else ""
                _say(f"  {flag} {time.monotonic() - self.t0:6.1f}s {call['stage']:<8}{rnd:<4} "
                     f"{call['agent_id']:<16} {call['completion_tokens']:>5} tokens "
                     f"{call['latency_s']:6.2f}s{note}")
            if node == "prepare":
                c = update["council"]
                _say(f"council {c['role']}: {len(c['agents'])} agents, {c['rounds']} round(s), "
                     f"model {c['model']} at {c['base_url']}")
            if node == "publish" and update.get("published"):
                p = update["published"]
                dup = " (duplicate, dropped)" if p.get("duplicate") else ""
                _say(f"  ✓ published {p['subject']} to {p['stream']} seq {p['seq']}{dup}")


def print_result(values: dict[str, Any], as_json: bool) -> None:
    r = values.get("result")
    if as_json:
        print(json.dumps(r, indent=2))
        return
    if not r:
        return
    print(f"\nWinner: {r['winner']['author']['agent_id']}  ({r['stop_reason']})")
    print(f"Why: {r['justification']}\n")
    print("Ranking:")
    for row in r["ranking"]:
        scores = ", ".join(f"{k} {v:g}" for k, v in row["scores"].items())
        print(f"  {row['rank']}. {row['agent_id']:<16} {row['total']:5.2f}  [{scores}]")
    u = r["usage"]
    print(f"\nTokens: {u['prompt_tokens']} prompt ({u['cached_tokens']} cached), "
          f"{u['completion_tokens']} completion in {u['calls']} calls; {r['duration_ms'] / 1000:.1f}s")
    print(f"Deliberation id: {r['deliberation_id']}\n")
    print("Winning proposal:\n" + r["winner"]["content"])


def build_context(args: argparse.Namespace, nats_url: str | None) -> Context:
    ctx = Context(nats_url=nats_url)
    if getattr(args, "base_url", None):
        ctx.base_url = args.base_url
    if getattr(args, "model", None):
        ctx.model = args.model
    if getattr(args, "agents", None) is not None:
        ctx.agents = args.agents
    if getattr(args, "approval", False):
        ctx.require_approval = True
    return ctx


async def _deliberate(args: argparse.Namespace, inp: dict[str, Any] | None, thread_id: str,
                      resume: bool = False) -> int:
    from nodes.events import Publisher
    from nodes.llm import CouncilError, LLMUnreachable
    from server.runner import preflight, run, stored_council
    from server.services import services
    from graph.persistence import valkey_saver

    with services(announce=_say if not args.quiet else (lambda *_: None)) as (valkey_url, nats_url):
        async with valkey_saver(valkey_url) as saver:
            ctx = build_context(args, nats_url)
            if resume:
                council = await stored_council(saver, thread_id)
                if council is None:
                    raise UsageError(f"no deliberation {thread_id!r} in {valkey_url}")
                ctx.base_url = args.base_url or council["base_url"]
                ctx.model = args.model or council["model"]
            try:
                await preflight(ctx, explicit_model=bool(getattr(args, "model", None)) or resume)
                values = await run(saver, thread_id, inp, ctx, Progress(args.quiet))
            except LLMUnreachable as e:
                _say(f"council: error: {e.cause}")
                _say(f"council: deliberation {thread_id} keeps what was done; resume: council resume {thread_id}")
                return 3
            except CouncilError as e:
                _say(f"council: error: {e}")
                _say(f"council: deliberation {thread_id} keeps what was done; resume: council resume {thread_id}")
                return 3
            except ValidationError as e:
                from graph.state import describe_validation_error
                raise UsageError(describe_validation_error(e)) from None
            finally:
                await Publisher.close_all()
            if values.get("__pending__"):
                _say(f"council: deliberation {thread_id} is waiting at {values['__pending__']}: "
                     f"{json.dumps(values.get('__interrupts__'), default=str)[:2000]}")
                return 0
            print_result(values, args.json)
            return 0


def cmd_deliberate(args: argparse.Namespace) -> int:
    from graph.state import DeliberationRequest, describe_validation_error

    rubric = load_rubric(args.rubric) or DEFAULT_RUBRIC
    try:
        req = DeliberationRequest(task=args.task, role=args.role, agents=args.agents, rounds=args.rounds,
                                  rubric=rubric, constraints=args.constraints or "",
                                  story_id=args.story_id, task_id=args.task_id)
    except ValidationError as e:
        raise UsageError(describe_validation_error(e)) from None
    thread_id = args.id or f"delib-{uuid.uuid4().hex[:12]}"
    inp = {"task": req.task, "role": req.role, "rounds": req.rounds, "rubric": req.rubric,
           "constraints": req.constraints, "story_id": req.story_id, "task_id": req.task_id,
           "deliberation_id": thread_id}
    _say(f"deliberation {thread_id}")
    return asyncio.run(_deliberate(args, inp, thread_id))


def cmd_resume(args: argparse.Namespace) -> int:
    return asyncio.run(_deliberate(args, None, args.id, resume=True))


def cmd_demo(args: argparse.Namespace) -> int:
    from server.sim_vllm import ServerThread, SimConfig, SimVLLM

    task = load_task(args.task)
    sim = ServerThread(SimVLLM(SimConfig(time_scale=args.time_scale)))
    with sim:
        _say(f"demo: SIMULATED vLLM (not a model) on {sim.base_url}, time scale {args.time_scale}")
        _say(f"demo: task {task['id']} ({task['role']}): {task['task']}")
        args.base_url, args.model = sim.base_url, None
        from graph.state import DeliberationRequest, describe_validation_error
        try:
            req = DeliberationRequest(task=task["task"], role=task["role"], agents=args.agents, rounds=args.rounds,
                                      rubric=task["rubric"], story_id="demo", task_id=task["id"])
        except ValidationError as e:
            raise UsageError(describe_validation_error(e)) from None
        thread_id = args.id or f"demo-{uuid.uuid4().hex[:12]}"
        inp = {**req.model_dump(exclude={"agents"}), "deliberation_id": thread_id}
        _say(f"deliberation {thread_id}")
        return asyncio.run(_deliberate(args, inp, thread_id))


def cmd_schemas(args: argparse.Namespace) -> int:
    from nodes.events import EVENT_MODELS
    from server.worker import Envelope, PlanApproved

    out = Path(args.out)
    stale = []
    models = {**EVENT_MODELS, "planning.plan.approved": PlanApproved, "planning.envelope": Envelope}
    for name, model in models.items():
        text = json.dumps(model.model_json_schema(mode="serialization"), indent=2, sort_keys=True) + "\n"
        path = out / f"{name}.schema.json"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(path)
    if stale:
        _say("stale event schemas (run `council schemas`): " + ", ".join(stale))
        return 1
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """The LangGraph server (offline) with council's graph, Valkey checkpointer and HTTP app."""
    import signal
    import subprocess

    from server.services import services

    if args.port == 2024:
        raise UsageError("--port 2024 is taken on these machines; pick another")
    exe = Path(sys.executable).parent / "langgraph"
    if not exe.exists():
        raise UsageError("langgraph CLI not installed: pip install -e '.[serve]'")
    with services(announce=_say) as (valkey_url, nats_url):
        env = {**os.environ, "VALKEY_URL": valkey_url, "NATS_URL": nats_url,
               "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true"}
        env.setdefault("LANGSMITH_TRACING", "false")
        if args.base_url:
            env["COUNCIL_LLM_BASE_URL"] = args.base_url
        if args.model:
            env["COUNCIL_MODEL"] = args.model
        cmd = [str(exe), "dev", "--port", str(args.port), "--host", args.host, "--no-browser",
               "--config", str(ROOT / "langgraph.json")]
        if not args.reload:
            cmd.append("--no-reload")
        base = f"http://{args.host}:{args.port}"
        _say(f"council API on {base} (docs: {base}/docs; councils: {base}/councils; health: {base}/healthz)")
        _say(f"LangGraph Studio: https://smith.langchain.com/studio/?baseUrl={base}")
        _say(f"LLM: {env.get('COUNCIL_LLM_BASE_URL', DEFAULT_BASE_URL)}")
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT)

        def forward(signum, _frame):
            proc.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        return proc.wait()


def cmd_worker(args: argparse.Namespace) -> int:
    """Consume planning.plan.approved and deliberate, until SIGTERM."""
    from graph.persistence import valkey_saver
    from server.services import services
    from server.worker import serve

    async def main(valkey_url: str, nats_url: str) -> None:
        async with valkey_saver(valkey_url) as saver:
            ctx = build_context(args, nats_url)
            await serve(saver, nats_url, ctx, valkey_url=valkey_url, concurrency=args.concurrency, max_deliver=args.max_deliver,
                        ack_wait=args.ack_wait, grace=args.grace)

    with services(announce=_say) as (valkey_url, nats_url):
        _say(f"worker: LLM {args.base_url or os.environ.get('COUNCIL_LLM_BASE_URL', DEFAULT_BASE_URL)}, "
             f"concurrency {args.concurrency}")
        asyncio.run(main(valkey_url, nats_url))
    return 0


def cmd_publish_plan(args: argparse.Namespace) -> int:
    """Send a planning.plan.approved event by hand."""
    from datetime import UTC, datetime

    from server.services import services
    from server.worker import PoisonMessage, publish_plan

    if args.file:
        try:
            event = json.loads(Path(args.file).read_text())
        except (OSError, ValueError) as e:
            raise UsageError(f"--file: {e}") from None
    else:
        if not (args.story_id and args.plan_id and args.roles and args.task):
            raise UsageError("give --file, or --story-id, --plan-id, --roles and --task")
        event = {"story_id": args.story_id, "plan_id": args.plan_id, "approved_by": args.approved_by,
                 "roles": [r.strip() for r in args.roles.split(",") if r.strip()], "task": args.task,
                 "timestamp": datetime.now(UTC).isoformat()}
        if args.rounds is not None:
            event["rounds"] = args.rounds
    if not os.environ.get("NATS_URL"):
        raise UsageError("set NATS_URL to the JetStream server the workers use")
    with services(need_valkey=False, need_nats=True) as (_, nats_url):
        try:
            ack = asyncio.run(publish_plan(nats_url, event))
        except PoisonMessage as e:
            raise UsageError(f"the event would be rejected: {e}") from None
    print(json.dumps(ack))
    return 0


def cmd_draw(args: argparse.Namespace) -> int:
    """The compiled graph as Mermaid (docs/graph.mmd), or --check that the drawing is current."""
    from graph.builder import graph

    text = graph.get_graph().draw_mermaid()
    path = Path(args.out)
    if args.check:
        if not path.exists() or path.read_text() != text:
            _say(f"stale graph drawing {path} (run `council draw`)")
            return 1
        return 0
    path.write_text(text)
    print(path)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-url", help=f"OpenAI-compatible LLM base URL (env COUNCIL_LLM_BASE_URL, "
                                      f"default {DEFAULT_BASE_URL})")
    p.add_argument("--model", help="model name (env COUNCIL_MODEL; default: the server's model)")
    p.add_argument("--json", action="store_true", help="print the completed event as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--approval", action="store_true", help="stop before publishing for a human approval")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="council", description=__doc__.split("\n")[0])
    ap.add_argument("--log-level", default=os.environ.get("COUNCIL_LOG_LEVEL", "INFO"))
    ap.add_argument("--log-file", help="JSON-lines log file (default: <COUNCIL_DATA_DIR>/logs/council.jsonl)")
    ap.add_argument("--log-stderr", action="store_true", help="also log to stderr")
    sub = ap.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("deliberate", help="run one deliberation against the configured LLM")
    d.add_argument("task", help=f"the software task (at most {MAX_TASK_CHARS} characters)")
    d.add_argument("--role", required=True, help="/".join(ROLES))
    d.add_argument("--agents", type=int, default=3, help="agents in the council (2-9)")
    d.add_argument("--rounds", type=int, default=1, help=f"critique/revise rounds (0-{MAX_ROUNDS})")
    d.add_argument("--rubric", help="JSON file: {criterion: what it means}")
    d.add_argument("--constraints", help="constraints every agent must respect")
    d.add_argument("--id", help="deliberation (thread) id; default: a new one")
    d.add_argument("--story-id")
    d.add_argument("--task-id")
    _common(d)
    d.set_defaults(func=cmd_deliberate)

    r = sub.add_parser("resume", help="finish a deliberation that stopped (crash, error, approval)")
    r.add_argument("id")
    _common(r)
    r.set_defaults(func=cmd_resume, agents=None)

    m = sub.add_parser("demo", help="a deliberation on a realistic task with the SIMULATED vLLM started for it")
    m.add_argument("--task", default="t01", help="task id from bench/tasks.jsonl (t01-t15)")
    m.add_argument("--agents", type=int, default=3)
    m.add_argument("--rounds", type=int, default=1)
    m.add_argument("--time-scale", type=float, default=0.25, help="simulated model seconds -> wall seconds")
    m.add_argument("--id")
    m.add_argument("--json", action="store_true")
    m.add_argument("--quiet", action="store_true")
    m.add_argument("--approval", action="store_true")
    m.set_defaults(func=cmd_demo)

    v = sub.add_parser("serve", help="the LangGraph server (API + Studio) for council, offline")
    v.add_argument("--port", type=int, default=8123)
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--base-url", help="LLM base URL (env COUNCIL_LLM_BASE_URL)")
    v.add_argument("--model")
    v.add_argument("--reload", action="store_true", help="reload on code changes")
    v.set_defaults(func=cmd_serve)

    k = sub.add_parser("worker", help="deliberate on planning.plan.approved events from NATS JetStream")
    k.add_argument("--concurrency", type=int, default=4, help="deliberations in flight in this worker")
    k.add_argument("--max-deliver", type=int, default=5, help="deliveries of an event before giving up")
    k.add_argument("--ack-wait", type=float, default=60.0, help="seconds before an unacked event is redelivered")
    k.add_argument("--grace", type=float, default=30.0, help="seconds running deliberations get on SIGTERM")
    k.add_argument("--base-url")
    k.add_argument("--model")
    k.set_defaults(func=cmd_worker, agents=None)

    q = sub.add_parser("publish-plan", help="send a planning.plan.approved event (NATS_URL)")
    q.add_argument("--file", help="JSON file with the event (or an envelope around it)")
    q.add_argument("--story-id")
    q.add_argument("--plan-id")
    q.add_argument("--roles", help="comma-separated, e.g. DEV,QA")
    q.add_argument("--task")
    q.add_argument("--rounds", type=int)
    q.add_argument("--approved-by", default=os.environ.get("USER", "cli"))
    q.set_defaults(func=cmd_publish_plan)

    w = sub.add_parser("draw", help="write (or --check) docs/graph.mmd from the compiled graph")
    w.add_argument("--out", default=str(ROOT / "docs" / "graph.mmd"))
    w.add_argument("--check", action="store_true")
    w.set_defaults(func=cmd_draw)

    s = sub.add_parser("schemas", help="write (or --check) the events' JSON Schemas")
    s.add_argument("--out", default=str(ROOT / "docs" / "events"))
    s.add_argument("--check", action="store_true")
    s.set_defaults(func=cmd_schemas)

    from server.sim_vllm import add_cli
    add_cli(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from server import logs
    from server.services import data_dir

    if args.cmd not in ("schemas", "draw"):
        log_file = Path(args.log_file) if args.log_file else data_dir() / "logs" / "council.jsonl"
        logs.configure(level=args.log_level, json_lines=True, file=log_file, stderr=args.log_stderr)
    try:
        return args.func(args)
    except UsageError as e:
        _say(f"council: error: {e}")
        return 2
    except KeyboardInterrupt:
        _say("council: interrupted; resume with `council resume ID`")
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI's last word: a clear message, non-zero exit
        _say(f"council: error: {type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
