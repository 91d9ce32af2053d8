"""The CLI's commands: each takes the parsed arguments and returns an exit code.

Exit codes (``cli.main.EXIT_CODES``, documented in ``cli.main``): 0 done; 2 bad input;
3 the LLM; 4 Valkey; 5 NATS; 1 anything else. A failure is one line on stderr naming what
failed (with its URL), the stage and the agent; its traceback goes only to the log file. A
deliberation that stopped after ``prepare`` keeps its checkpoints, and only then is
``council resume ID`` suggested.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import ipaddress
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any

import structlog
from pydantic import BaseModel

from council_agents.cli.render import Progress, print_result, pruned_line, say
from council_agents.core.context import Context
from council_agents.core.errors import Failure, describe
from council_agents.core.events import EVENT_MODELS
from council_agents.core.request import (
    DeliberationRequest,
    RequestError,
    admit,
    load_json,
    parse_context,
    parse_input,
)
from council_agents.core.settings import Settings, display_url
from council_agents.core.state import Admission
from council_agents.events.planning import (
    PLANNING_STREAM,
    Envelope,
    PlanApproved,
    PoisonMessage,
    consumer_config,
    publish_plan,
)
from council_agents.events.publisher import connect_once, declare_streams
from council_agents.graph.builder import Clients, compile_graph
from council_agents.server import logs, worker_http
from council_agents.server.runner import Deliberations, Outcome
from council_agents.server.services import killed_with_parent, port_in_use, services
from council_agents.server.worker import serve
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from council_agents.storage.apikeys import KeyStore
from council_agents.storage.councils import CouncilStore
from council_agents.storage.saver import valkey_saver

log = structlog.get_logger("council.cli")


class UsageError(Exception):
    """Bad input: exit 2."""


@cache
def demo_tasks() -> dict[str, dict[str, Any]]:
    """The realistic tasks shipped with council (``cli/tasks.jsonl``), by id."""
    text = resources.files("council_agents.cli").joinpath("tasks.jsonl").read_text(encoding="utf-8")
    return {t["id"]: t for t in map(json.loads, text.splitlines())}


def load_rubric(path: str | None) -> dict[str, str] | None:
    """A rubric from a JSON file (``--rubric``)."""
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"--rubric: file {path} does not exist") from None
    except ValueError as e:
        raise UsageError(f"--rubric: {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--rubric: {path} must be a JSON object of criterion -> description")
    return data


def process_settings(args: argparse.Namespace) -> Settings:
    """The environment's settings with this command's flags applied."""
    return Settings.from_environment().with_llm(
        base_url=getattr(args, "base_url", None), model=getattr(args, "model", None)
    )


def run_context(args: argparse.Namespace) -> Context:
    """The run context from the command's council flags."""
    return parse_context(
        {
            "council": getattr(args, "council", None),
            "agents": getattr(args, "agents", None),
            "require_approval": True if getattr(args, "approval", False) else None,
            "aggregator": getattr(args, "aggregator", None),
            "token_budget": getattr(args, "token_budget", None),
            "critics": getattr(args, "critics", None),
            "checkers": _names(getattr(args, "checkers", None)),
            "execute": getattr(args, "execute", None),
            "gate": getattr(args, "gate", None),
        }
    )


def _names(text: str | None) -> list[str] | None:
    """``--checkers code,quotes`` -> the names (``none``: an empty list; unset: None)."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    return [] if names == ["none"] else names


class Tracker:
    """Progress on stderr, and where the deliberation is: what a failure message names."""

    def __init__(self, progress: Progress, resuming: bool):
        self.progress = progress
        self.prepared = False
        """True once prepare finished: from then on there is something to resume."""
        self.stage = "resuming" if resuming else "starting"
        """The stage running (the last one that reported)."""

    def __call__(self, mode: str, chunk: Any) -> None:
        """Show the progress and remember where the deliberation is."""
        self.progress(mode, chunk)
        if mode == "custom" and isinstance(chunk, dict) and chunk.get("stage"):
            self.stage = str(chunk["stage"])
        if mode == "updates" and isinstance(chunk, dict):
            for node in chunk:
                if node == "prepare":  # its LLMs answered: from here a resume is worth it
                    self.prepared = True
                if node not in ("tally", "__interrupt__"):
                    self.stage = f"after {node}"


EXIT_CODES: dict[str, int] = {
    "input": 2,
    "llm": 3,
    "valkey": 4,
    "nats": 5,
    "answers": 6,
    "other": 1,
}
"""The exit code per kind of failure (``core.errors.describe``); ``cli.main`` documents them."""


def exit_code(failure: Failure) -> int:
    """The exit code of a failure."""
    return EXIT_CODES[failure.kind]


def failure_line(e: BaseException, current: Settings, stage: str) -> tuple[str, int]:
    """One line naming what failed (its URL), where and for whom; and the exit code."""
    failure = describe(e)
    if failure.named:
        line = failure.message
    elif failure.kind == "valkey":
        url = display_url(current.storage.valkey_url)
        line = f"Valkey at {url} failed ({stage}): {failure.message}"
    elif failure.kind == "nats":
        url = display_url(current.events.nats_url)
        line = f"NATS at {url} failed ({stage}): {failure.message}"
    elif failure.kind == "other":
        line = f"{failure.message} ({stage})"
    else:
        line = failure.message
    return line, exit_code(failure)


def report_failure(e: BaseException, thread_id: str, current: Settings, where: Tracker) -> int:
    """Say what failed in one line (the traceback goes to the log file); the exit code."""
    line, code = failure_line(e, current, where.stage)
    log.error("deliberation.failed", deliberation_id=thread_id, error=line, exc_info=e)
    say(f"council: error: {line}")
    if where.prepared:
        say(
            f"council: deliberation {thread_id} keeps what was done; "
            f"resume: council resume {thread_id}"
        )
    if logs.log_file() is not None:
        say(f"council: details in {logs.log_file()}")
    return code


async def _admit(current: Settings, request: DeliberationRequest, context: Context) -> Admission:
    """This request's admission: one look-up of the stored council it names (if any)."""
    if context.council is None:
        return admit(request, context, None, current.llm)
    assert current.storage.valkey_url is not None
    store = CouncilStore(current.storage.valkey_url)
    try:
        return admit(request, context, await store.get(context.council), current.llm)
    finally:
        await store.aclose()


async def _deliberate(
    args: argparse.Namespace,
    thread_id: str,
    start: tuple[DeliberationRequest, Context] | None = None,
    answer: dict[str, Any] | None = None,
) -> int:
    """Start (``start``: the parsed request and its context) or resume (``answer``: a
    human's, for one waiting) the deliberation ``thread_id``, then show how it ended.
    """
    quiet = (lambda *_: None) if args.quiet else say
    with services(process_settings(args), announce=quiet) as current:
        assert current.storage.valkey_url is not None
        where = Tracker(Progress(args.quiet), resuming=start is None)
        try:
            async with valkey_saver(
                current.storage.valkey_url, current.storage.valkey_pool
            ) as saver:
                deliberations = Deliberations(current, saver)
                try:
                    if start is None:
                        where.prepared = await deliberations.council(thread_id) is not None
                        admission = None
                    else:  # refused here, before anything is stored, as at every other door
                        admission = await _admit(current, *start)
                    outcome = await deliberations.run(
                        thread_id, admission, answer=answer, on_update=where
                    )
                finally:
                    await deliberations.close()
        except RequestError:
            raise
        except Exception as e:  # noqa: BLE001 - one named line and an exit code per kind
            return report_failure(e, thread_id, current, where)
    return _shown(outcome, thread_id, args.json)


def _shown(outcome: Outcome, thread_id: str, as_json: bool) -> int:
    if outcome.status == "pruned":
        say(pruned_line(thread_id, outcome.marker or {}))
        return 0
    if outcome.status == "interrupted":
        asks = json.dumps(outcome.interrupts, default=str)[:2000]
        say(f"council: deliberation {thread_id} is waiting at {outcome.pending}: {asks}")
        say(
            f"council: approve: council resume {thread_id} --approve; or choose another: "
            f"council resume {thread_id} --override AGENT --reason TEXT"
        )
        return 0
    print_result(outcome.values, as_json)
    return 0


def cmd_deliberate(args: argparse.Namespace) -> int:
    """Run one deliberation against the configured LLM."""
    thread_id = args.id or f"delib-{uuid.uuid4().hex[:12]}"
    optional = {
        "role": args.role,
        "rounds": args.rounds,
        "rubric": load_rubric(args.rubric),
        "constraints": args.constraints,
        "story_id": args.story_id,
        "task_id": args.task_id,
    }
    inp = {"task": args.task, **{k: v for k, v in optional.items() if v is not None}}
    request = parse_input(inp)  # bad input is refused before any server starts
    context = run_context(args)
    say(f"deliberation {thread_id}")
    return asyncio.run(_deliberate(args, thread_id, (request, context)))


def approval_answer(args: argparse.Namespace) -> dict[str, Any] | None:
    """The human's answer ``--approve`` or ``--override AGENT --reason TEXT`` gives (the same
    the HTTP resume takes), or None.
    """
    if args.approve and args.override:
        raise UsageError("--approve, --override: give one of them")
    if args.override:
        reason = (args.reason or "").strip()
        if not reason:
            raise UsageError("--reason: an override needs a non-empty reason")
        return {"winner": args.override, "reason": reason}
    if args.reason:
        raise UsageError("--reason: goes with --override AGENT")
    return {"approved": True} if args.approve else None


def cmd_resume(args: argparse.Namespace) -> int:
    """Finish a deliberation that stopped (crash, error), or give the approval it waits for."""
    return asyncio.run(_deliberate(args, args.id, answer=approval_answer(args)))


def cmd_demo(args: argparse.Namespace) -> int:
    """One deliberation on a shipped task, against a simulated vLLM started for it."""
    task = demo_tasks().get(args.task)
    if task is None:
        raise UsageError(f"--task: no task {args.task!r}; known: {', '.join(demo_tasks())}")
    thread_id = args.id or f"demo-{uuid.uuid4().hex[:12]}"
    inp = {
        "task": task["task"],
        "role": task["role"],
        "rounds": args.rounds,
        "rubric": task["rubric"],
        "story_id": "demo",
        "task_id": task["id"],
    }
    request = parse_input(inp)
    context = run_context(args)
    with ServerThread(SimVLLM(SimConfig(time_scale=args.time_scale))) as sim:
        say(f"demo: SIMULATED vLLM (not a model) on {sim.base_url}, time scale {args.time_scale}")
        say(f"demo: task {task['id']} ({task['role']}): {task['task']}")
        say(f"deliberation {thread_id}")
        args.base_url, args.model = sim.base_url, None
        return asyncio.run(_deliberate(args, thread_id, (request, context)))


def cmd_schemas(args: argparse.Namespace) -> int:
    """Write (or --check) the events' JSON Schemas."""
    out = Path(args.out)
    stale = []
    models: dict[str, type[BaseModel]] = {
        **EVENT_MODELS,
        "planning.plan.approved": PlanApproved,
        "planning.envelope": Envelope,
    }
    for name, model in models.items():
        schema = model.model_json_schema(mode="serialization")
        text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        path = out / f"{name}.schema.json"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(path)
    if stale:
        say("stale event schemas (run `council schemas`): " + ", ".join(stale))
        return 1
    return 0


def serve_config(dev_studio: bool = False) -> dict[str, Any]:
    """The LangGraph server's configuration, by module (works from an installed wheel).

    ``dev_studio`` lets Studio's ``x-auth-scheme: langsmith`` header in (local development).
    """
    text = (
        resources.files("council_agents.server")
        .joinpath("langgraph.json")
        .read_text(encoding="utf-8")
    )
    config: dict[str, Any] = json.loads(text)
    if dev_studio:
        config["auth"]["disable_studio_auth"] = False
        config["http"].pop("disable_event_streaming", None)
    return config


def is_loopback(host: str) -> bool:
    """True for an address (or ``localhost``) only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _api_keys(valkey_url: str) -> int:
    store = KeyStore(valkey_url)
    try:
        return await store.count()
    finally:
        await store.aclose()


def check_exposure(args: argparse.Namespace, current: Settings) -> None:
    """Refuse to serve beyond loopback without authentication, or with Studio's bypass."""
    if args.dev_studio and not is_loopback(args.host):
        raise UsageError(
            f"--dev-studio: Studio's header bypass admits anyone who reaches the port; it is "
            f"for local development and cannot be used with --host {args.host}"
        )
    assert current.storage.valkey_url is not None
    keys = asyncio.run(_api_keys(current.storage.valkey_url))
    jwt = current.server.jwt_configured
    if not is_loopback(args.host) and not (keys or jwt):
        raise UsageError(
            f"--host {args.host}: refusing to serve beyond this machine without "
            "authentication: create an API key (`council keys create --owner NAME --admin`) "
            "or set COUNCIL_JWT_SECRET or COUNCIL_JWT_JWKS_URL"
        )
    if not (keys or jwt):
        say(
            "no API key exists yet: every request but /healthz and /metrics is refused; "
            "create one: council keys create --owner NAME --admin"
        )


def serve_environment(current: Settings) -> dict[str, str]:
    """The LangGraph server process's environment: settings as variables, logs to the file."""
    env = {
        **os.environ,
        "VALKEY_URL": current.storage.valkey_url or "",
        "NATS_URL": current.events.nats_url or "",
        "COUNCIL_LLM_BASE_URL": current.llm.base_url,
        "COUNCIL_DATA_DIR": str(current.data_dir),
        "COUNCIL_LOG_FILE": str(
            current.server.log_file or current.data_dir / "logs" / "council.jsonl"
        ),
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
    }
    env.setdefault("LANGSMITH_TRACING", "false")
    if current.llm.model:
        env["COUNCIL_MODEL"] = current.llm.model
    return env


HTTP_RUNTIMES = ("inmem", "postgres")
# the version tested (docs/DEPLOY.md), as deploy/requirements-postgres.txt pins it
PG_RUNTIME = "langgraph-runtime-pg==0.11.1.post1"


def http_runtime() -> str:
    """The production HTTP runtime named by ``COUNCIL_HTTP_RUNTIME`` (default ``inmem``)."""
    name = os.environ.get("COUNCIL_HTTP_RUNTIME", "inmem").strip() or "inmem"
    if name not in HTTP_RUNTIMES:
        raise UsageError(
            f"COUNCIL_HTTP_RUNTIME={name}: unknown runtime; use one of {', '.join(HTTP_RUNTIMES)}"
        )
    return name


def redis_uri(valkey_url: str) -> str:
    """Valkey's URL in the scheme redis-py reads (``valkey://`` -> ``redis://``)."""
    for ours, theirs in (("valkeys://", "rediss://"), ("valkey://", "redis://")):
        if valkey_url.startswith(ours):
            return theirs + valkey_url.removeprefix(ours)
    return valkey_url


def production_runtime(
    current: Settings, host: str, port: int, jobs: int, runtime: str = "inmem"
) -> tuple[list[str], dict[str, str]]:
    """The production HTTP runtime (docs/DEPLOY.md): langgraph-api's app under one uvicorn
    process, configured from the same ``server/langgraph.json`` as ``langgraph dev``; no
    reload, no Studio bypass, ``jobs`` runs at once. ``inmem``: threads and runs in the
    process, flushed to ``.langgraph_api/``, one replica. ``postgres``: threads and runs in
    PostgreSQL (``DATABASE_URI``), run heartbeats in Valkey, any number of replicas
    (``server/pg_runtime.py``).
    """
    config = serve_config()
    env = {
        **serve_environment(current),
        "LANGGRAPH_RUNTIME_EDITION": "inmem",
        "LANGSERVE_GRAPHS": json.dumps(config["graphs"]),
        "LANGGRAPH_CHECKPOINTER": json.dumps(config["checkpointer"]),
        "LANGGRAPH_HTTP": json.dumps(config["http"]),
        "LANGGRAPH_AUTH": json.dumps(config["auth"]),
        "N_JOBS_PER_WORKER": str(jobs),
        "DATABASE_URI": ":memory:",
        "REDIS_URI": "fake",
        "MIGRATIONS_PATH": "__inmem",
    }
    env.pop("LANGSMITH_LANGGRAPH_API_VARIANT", None)  # "local_dev" turns on Studio's bypass
    # a run stopped (replica killed, rolling update) is re-queued and resumes from its Valkey
    # checkpoint; past this many attempts it ends as an error. langgraph-api's default of 3 let
    # 2 of 30 runs fail under 10 stops in 120 s on two replicas (docs/DEPLOY.md)
    env.setdefault("BG_JOB_MAX_RETRIES", "10")
    app = "langgraph_api.server:app"
    if runtime == "postgres":
        database = os.environ.get("DATABASE_URI", "")
        if not database.startswith(("postgres://", "postgresql://")):
            raise UsageError(
                "COUNCIL_HTTP_RUNTIME=postgres: set DATABASE_URI to the PostgreSQL URL "
                "(postgresql://USER:PASSWORD@HOST:5432/DB)"
            )
        if importlib.util.find_spec("langgraph_runtime_pg") is None:
            raise UsageError(
                f"COUNCIL_HTTP_RUNTIME=postgres: the runtime is not installed: pip install "
                f"'{PG_RUNTIME}' (it pins langgraph-api 0.11.1)"
            )
        assert current.storage.valkey_url is not None
        del env["MIGRATIONS_PATH"]
        env.update(
            LANGGRAPH_RUNTIME_EDITION="pg",
            DATABASE_URI=database,
            REDIS_URI=redis_uri(current.storage.valkey_url),  # run heartbeats, wake-ups, streams
        )
        # a dead replica's runs are re-queued once their heartbeat (TTL 2x this) expires and a
        # sweep (every 2x this, by a replica with a free job slot) sees it: at 10 s that is
        # within ~40 s instead of ~8 min at langgraph-api's default 120 (docs/DEPLOY.md)
        env.setdefault("LG_BG_JOB_HEARTBEAT", "10")
        app = "council_agents.server.pg_runtime:app"
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
        "--lifespan",
        "on",  # a failed startup exits instead of serving 500s ("auto" hides it)
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "30",
    ]
    return argv, env


def serve_production(args: argparse.Namespace) -> int:
    """``council serve --production``: replaces this process with the production runtime."""
    current = process_settings(args)
    if not (current.storage.valkey_url and current.events.nats_url):
        raise UsageError(
            "--production: set VALKEY_URL and NATS_URL (no embedded servers in production)"
        )
    if args.reload or args.dev_studio:
        raise UsageError("--production: --reload and --dev-studio are for development")
    runtime = http_runtime()
    check_exposure(args, current)
    argv, env = production_runtime(
        current, args.host, args.port, args.jobs or current.server.serve_jobs, runtime
    )
    current.data_dir.mkdir(parents=True, exist_ok=True)
    os.chdir(current.data_dir)  # .langgraph_api/ is written here: a volume in a container
    say(
        f"council API (production runtime, {runtime}) on http://{args.host}:{args.port}; "
        f"{env['N_JOBS_PER_WORKER']} runs at once; bearer token required"
    )
    os.execvpe(argv[0], argv, env)
    return 0  # not reached


def cmd_serve(args: argparse.Namespace) -> int:
    """The LangGraph server (offline) with council's graph, Valkey checkpointer and HTTP app."""
    if args.port == 2024:
        raise UsageError("--port: 2024 is taken on these machines; pick another")
    if args.production:
        return serve_production(args)
    exe = Path(sys.executable).parent / "langgraph"
    if not exe.exists():
        raise UsageError("the langgraph CLI is not installed: pip install 'council-agents[serve]'")
    if port_in_use(args.host, args.port):  # langgraph dev would move to another port silently
        raise UsageError(
            f"--port: {args.host}:{args.port} is in use by another process "
            "(another council serve?); stop it or choose another port"
        )
    with services(process_settings(args), announce=say) as current:
        check_exposure(args, current)
        jobs = args.jobs or current.server.serve_jobs
        # runtime files (.langgraph_api/) and the generated config live in the data directory
        workdir = current.data_dir / "api"
        workdir.mkdir(parents=True, exist_ok=True)
        config = serve_config(dev_studio=args.dev_studio)
        (workdir / "langgraph.json").write_text(json.dumps(config, indent=2))
        cmd = [
            str(exe),
            "dev",
            "--port",
            str(args.port),
            "--host",
            args.host,
            "--no-browser",
            "--n-jobs-per-worker",
            str(jobs),
            "--config",
            str(workdir / "langgraph.json"),
        ]
        if not args.reload:
            cmd.append("--no-reload")
        base = f"http://{args.host}:{args.port}"
        say(
            f"council API on {base} (docs: {base}/docs; councils: {base}/councils; "
            f"health: {base}/healthz); {jobs} runs at once; bearer token required"
        )
        if args.dev_studio:
            say(
                "--dev-studio: requests with `x-auth-scheme: langsmith` skip authentication "
                "(local development only)"
            )
            say(f"LangGraph Studio: https://smith.langchain.com/studio/?baseUrl={base}")
        say(f"LLM: {current.llm.base_url}")
        # the LangGraph server dies with this process, kill -9 included (the kernel's death
        # signal), and so does what it starts (it watches this pid: COUNCIL_SERVE_PARENT)
        env = {**serve_environment(current), "COUNCIL_SERVE_PARENT": str(os.getpid())}
        proc = subprocess.Popen(cmd, env=env, cwd=workdir, preexec_fn=killed_with_parent)

        def forward(signum: int, _frame: FrameType | None) -> None:
            proc.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        return proc.wait()


def cmd_worker(args: argparse.Namespace) -> int:
    """Consume planning.plan.approved and deliberate, until SIGTERM."""

    async def main(current: Settings) -> None:
        assert current.storage.valkey_url is not None
        async with valkey_saver(current.storage.valkey_url, current.storage.valkey_pool) as saver:
            await serve(
                saver,
                current,
                concurrency=args.concurrency,
                max_deliver=args.max_deliver,
                ack_wait=args.ack_wait,
                grace=args.grace,
            )

    with services(process_settings(args), announce=say) as current:
        port = current.server.metrics_port if args.metrics_port is None else args.metrics_port
        if port:
            worker_http.start(current, args.metrics_host, port)
            say(f"worker: /metrics and /healthz on http://{args.metrics_host}:{port}")
        say(f"worker: LLM {current.llm.base_url}, concurrency {args.concurrency}")
        asyncio.run(main(current))
    return 0


def cmd_publish_plan(args: argparse.Namespace) -> int:
    """Send a planning.plan.approved event by hand."""
    if args.file:
        try:
            event = load_json(Path(args.file).read_bytes(), "--file")
        except OSError as e:
            raise UsageError(f"--file: {e}") from None
    else:
        if not (args.story_id and args.plan_id and args.roles and args.task):
            raise UsageError("give --file, or --story-id, --plan-id, --roles and --task")
        event = {
            "story_id": args.story_id,
            "plan_id": args.plan_id,
            "approved_by": args.approved_by,
            "roles": [r.strip() for r in args.roles.split(",") if r.strip()],
            "task": args.task,
            "timestamp": datetime.now(UTC).isoformat(),
        }
        if args.rounds is not None:
            event["rounds"] = args.rounds
    events = Settings.from_environment().events
    if not events.nats_url:
        raise UsageError("set NATS_URL to the JetStream server the workers use")
    try:
        ack = asyncio.run(publish_plan(events.nats_url, event, creds=events.nats_creds))
    except PoisonMessage as e:
        raise UsageError(f"the event would be rejected: {e}") from None
    print(json.dumps(ack))
    return 0


def cmd_draw(args: argparse.Namespace) -> int:
    """The compiled graph as Mermaid (docs/graph.mmd), or --check that the drawing is current."""
    graph = compile_graph(Clients.of(Settings()))
    text = graph.get_graph().draw_mermaid()
    path = Path(args.out)
    if args.check:
        if not path.exists() or path.read_text() != text:
            say(f"stale graph drawing {path} (run `council draw`)")
            return 1
        return 0
    path.write_text(text)
    print(path)
    return 0


def cmd_streams(args: argparse.Namespace) -> int:
    """Create or update the JetStream streams and the workers' durable consumer."""
    events = Settings.from_environment().events
    nats_url = events.nats_url
    if not nats_url:
        raise UsageError("set NATS_URL to the JetStream server the workers use")

    async def declare() -> list[str]:
        nc = await connect_once(nats_url, events.nats_creds, timeout=10)
        try:
            js = nc.jetstream(timeout=10)
            done = await declare_streams(js, args.replicas)
            config = consumer_config(args.ack_wait, args.max_deliver)
            await js.add_consumer(PLANNING_STREAM, config)
            done.append(
                f"consumer {config.durable_name} on {PLANNING_STREAM} "
                f"(ack wait {args.ack_wait:g} s, max deliver {args.max_deliver})"
            )
            return done
        finally:
            await nc.close()

    try:
        for line in asyncio.run(declare()):
            print(line)
    except (OSError, TimeoutError) as e:
        say(
            f"council: error: cannot reach NATS at {display_url(nats_url)}: {type(e).__name__}: {e}"
        )
        return EXIT_CODES["nats"]
    except Exception as e:  # noqa: BLE001 - nats-py raises its own connection errors
        if type(e).__module__.startswith("nats"):
            say(f"council: error: NATS at {display_url(nats_url)}: {type(e).__name__}: {e}")
            return EXIT_CODES["nats"]
        raise
    return 0
