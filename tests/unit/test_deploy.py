"""The deployment files agree with the code they deploy (deploy/, docs/DEPLOY.md).

- every environment variable the compose file and the Kubernetes manifests give council is in
  docs/DEPLOY.md's configuration table, and each name in that table is read where the table
  says (council's code, the image's entry point or Dockerfile, or the LangGraph runtime);
- every council command and flag the image is told to run exists (``council SUB --help``);
- the entry point turns *_FILE secrets into variables, and refuses ambiguity;
- deploy/secrets.sh writes consistent credentials, keeps them, and rotates one at a time;
- the compose secrets and the Kubernetes Secret keys are the files and keys that exist.

Grep-based on purpose: it holds while modules move. Validation of the manifests themselves
(kustomize + Kubernetes schemas, the compose specification) is deploy/check.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOC = REPO / "docs" / "DEPLOY.md"
CODE_DIRS = (
    "core",
    "llm",
    "events",
    "storage",
    "nodes",
    "graph",
    "server",
    "evals",
    "cli",
    "sim_vllm",
)
COUNCIL = Path(sys.executable).parent / "council"

# Commands the deployment runs that the council CLI does not have yet; each is specified in
# docs/DEPLOY.md ("What the image expects from council"). Strict: once one exists, its test
# fails until it is removed from here.
PENDING: set[tuple[str, str | None]] = set()


def _yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _council_services() -> dict[str, dict]:
    """Compose services that run the council image."""
    return {
        name: svc
        for name, svc in _compose()["services"].items()
        if "council" in str(svc.get("image", "")) and "vllm/" not in str(svc["image"])
    }


def _k8s_files() -> list[Path]:
    return sorted((DEPLOY / "k8s").rglob("*.yaml"))


def _council_containers() -> list[dict]:
    """Containers (base and components) whose image is council's."""
    out = []
    for path in _k8s_files():
        for doc in _yaml_docs(path):
            spec = doc.get("spec", {})
            pod = spec.get("template", {}).get("spec", {}) if isinstance(spec, dict) else {}
            for c in pod.get("containers", []):
                if c.get("image", "").rsplit("/", 1)[-1].split(":")[0] == "council":
                    out.append(c)
    return out


def _overlay_args() -> list[list[str]]:
    """Container args that overlays patch in."""
    out = []
    for path in (DEPLOY / "k8s" / "overlays").rglob("kustomization.yaml"):
        for p in yaml.safe_load(path.read_text()).get("patches", []):
            for op in yaml.safe_load(p.get("patch", "[]")) or []:
                if str(op.get("path", "")).endswith("/args"):
                    out.append(op["value"])
    return out


def _patched_env() -> list[dict]:
    """Container env entries that components and overlays patch in."""
    out = []
    for path in (DEPLOY / "k8s").rglob("kustomization.yaml"):
        for p in yaml.safe_load(path.read_text()).get("patches", []):
            for op in yaml.safe_load(p.get("patch", "[]")) or []:
                if isinstance(op, dict) and str(op.get("path", "")).endswith("/env"):
                    out += op["value"]
    return out


def _command_lines() -> list[list[str]]:
    lines = [list(s["command"]) for s in _council_services().values() if "command" in s]
    lines += [list(c["args"]) for c in _council_containers() if "args" in c]
    image_cmd = re.search(r"^CMD (\[.*\])$", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert image_cmd, "the Dockerfile has no CMD in exec form"
    lines.append(yaml.safe_load(image_cmd.group(1)))
    return lines + _overlay_args()


def _subcommand_flags() -> set[tuple[str, str | None]]:
    """(subcommand, flag) pairs the deployment runs; (subcommand, None) for the command."""
    pairs: set[tuple[str, str | None]] = set()
    for line in _command_lines():
        args = list(line)
        while args and args[0].startswith("--"):  # global options before the subcommand
            args = args[2:] if not args[0].startswith("--log-stderr") else args[1:]
        assert args, f"no subcommand in {line}"
        sub = args[0]
        pairs.add((sub, None))
        pairs.update((sub, a.split("=")[0]) for a in args[1:] if a.startswith("--"))
    return pairs


@functools.cache
def _help(sub: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(COUNCIL), sub, "--help"], capture_output=True, text=True, timeout=120
    )


def _pending_marks(pair: tuple[str, str | None]) -> list:
    sub, _ = pair
    if pair in PENDING or (sub, None) in PENDING:
        return [pytest.mark.xfail(strict=True, reason="specified in docs/DEPLOY.md, not built")]
    return []


@pytest.mark.parametrize(
    "pair",
    [
        pytest.param(p, marks=_pending_marks(p), id=f"{p[0]} {p[1]}")
        for p in sorted(_subcommand_flags(), key=str)
    ],
)
def test_the_image_runs_council_commands_that_exist(pair: tuple[str, str | None]) -> None:
    sub, flag = pair
    result = _help(sub)
    assert result.returncode == 0, f"council {sub}: {result.stderr.strip()[-300:]}"
    if flag is not None:
        assert re.search(rf"(^|[\s\[,]){re.escape(flag)}\b", result.stdout), (
            f"council {sub} has no {flag}"
        )


# ---- environment variables --------------------------------------------------------------

_TABLE_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]+)` \| ([a-z ]+?) \|", re.M)
READERS = ("council", "entrypoint", "image", "langgraph runtime")


def _documented() -> dict[str, str]:
    """docs/DEPLOY.md's configuration table: name -> who reads it."""
    rows = dict(_TABLE_ROW.findall(DOC.read_text()))
    assert rows, "docs/DEPLOY.md has no configuration table rows"
    bad = {k: v for k, v in rows.items() if v not in READERS}
    assert not bad, f"unknown 'read by' values {bad}; use one of {READERS}"
    return rows


def _deployed_env() -> set[str]:
    """Names the compose file and the manifests set for council's containers."""
    names: set[str] = set()
    for svc in _council_services().values():
        env = svc.get("environment") or {}
        names.update(env if isinstance(env, dict) else (e.split("=")[0] for e in env))
    for c in _council_containers():
        names.update(e["name"] for e in c.get("env", []))
    names.update(e["name"] for e in _patched_env())
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "base" / "kustomization.yaml").read_text())
    for gen in kustomization.get("configMapGenerator", []):
        names.update(lit.split("=")[0] for lit in gen.get("literals", []))
    return names


def test_every_deployed_variable_is_documented() -> None:
    missing = _deployed_env() - set(_documented())
    assert not missing, f"set by deploy/ but not in docs/DEPLOY.md's table: {sorted(missing)}"


@functools.cache
def _source(reader: str) -> str:
    if reader == "council":
        files = [p for d in CODE_DIRS if (REPO / d).is_dir() for p in (REPO / d).rglob("*.py")]
    elif reader == "entrypoint":
        files = [DEPLOY / "entrypoint.sh"]
    elif reader == "image":
        files = [DEPLOY / "Dockerfile"]
    else:
        files = []
        for pkg in ("langgraph_api", "langgraph_runtime_inmem"):
            spec = importlib.util.find_spec(pkg)
            if spec is None or not spec.submodule_search_locations:
                pytest.skip(f"{pkg} is not installed (pip install -e '.[serve]')")
            files += Path(list(spec.submodule_search_locations)[0]).rglob("*.py")
    return "\n".join(p.read_text(errors="replace") for p in files)


def _entrypoint_file_vars() -> set[str]:
    line = re.search(r"^for name in ([A-Z_ ]+); do", (DEPLOY / "entrypoint.sh").read_text(), re.M)
    assert line, "entrypoint.sh: no `for name in ...` list of secret variables"
    return {f"{n}_FILE" for n in line.group(1).split()}


@pytest.mark.parametrize("name", sorted(_documented()))
def test_documented_variable_is_read_where_the_table_says(name: str) -> None:
    reader = _documented()[name]
    if reader == "entrypoint" and name.endswith("_FILE"):
        assert name in _entrypoint_file_vars(), f"entrypoint.sh does not read {name}"
        return
    text = _source(reader)
    assert re.search(rf"[\"'${{]{name}\b", text), f"{name} is not read by {reader}"


# ---- the entry point and the secrets script ----------------------------------------------


@pytest.fixture
def shim(tmp_path: Path) -> dict[str, str]:
    """PATH with a fake `council` that prints its arguments and the variables it got."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "council"
    fake.write_text('#!/bin/sh\necho "args=$*"\nenv | grep -E "^(VALKEY|NATS|COUNCIL)_" | sort\n')
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}


def _entrypoint(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", str(DEPLOY / "entrypoint.sh"), "worker", "--concurrency", "8"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_entrypoint_reads_secrets_from_files(shim: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "v").write_text("valkey://:pw@valkey:6379/0\n")
    (tmp_path / "k").write_text("sk-123")
    out = _entrypoint(
        {
            **shim,
            "VALKEY_URL_FILE": str(tmp_path / "v"),
            "COUNCIL_API_KEY_FILE": str(tmp_path / "k"),
            "NATS_URL": "nats://n:4222",
        }
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "args=worker --concurrency 8"
    assert "VALKEY_URL=valkey://:pw@valkey:6379/0" in lines
    assert "COUNCIL_API_KEY=sk-123" in lines and "NATS_URL=nats://n:4222" in lines
    assert not [x for x in lines if x.split("=")[0].endswith("_FILE")], "a *_FILE was left set"


def test_entrypoint_refuses_both_or_unreadable(shim: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "n").write_text("nats://a:b@nats:4222")
    both = _entrypoint({**shim, "NATS_URL": "nats://x", "NATS_URL_FILE": str(tmp_path / "n")})
    assert both.returncode == 2 and "both NATS_URL and NATS_URL_FILE" in both.stderr
    gone = _entrypoint({**shim, "NATS_URL_FILE": str(tmp_path / "missing")})
    assert gone.returncode == 2 and "not a readable file" in gone.stderr
    assert "args=" not in both.stdout + gone.stdout


def _secrets(directory: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(DEPLOY / "secrets.sh"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "SECRETS_DIR": str(directory), "LLM_API_KEY": "sk-given"},
    )


def test_secrets_script_is_consistent_kept_and_rotates_one(tmp_path: Path) -> None:
    d = tmp_path / "secrets"
    assert _secrets(d).returncode == 0
    read = lambda name: (d / name).read_text().strip()  # noqa: E731
    vk, nats = read("valkey_password"), read("nats_password")
    assert vk != nats and len(vk) >= 40 and not vk.isdigit()
    assert read("valkey_url") == f"valkey://:{vk}@valkey:6379/0"
    assert read("valkey_auth.conf") == f"requirepass {vk}"
    assert read("nats_url") == f"nats://council:{nats}@nats:4222"
    assert f'password: "{nats}"' in read("nats_auth.conf")
    assert read("llm_api_key") == "sk-given"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "valkey_url").stat().st_mode) == 0o444

    assert _secrets(d).returncode == 0
    assert (read("valkey_password"), read("nats_password")) == (vk, nats), "re-run changed them"
    assert _secrets(d, "--rotate", "nats").returncode == 0
    assert read("valkey_password") == vk and read("nats_password") != nats
    assert read("nats_url") == f"nats://council:{read('nats_password')}@nats:4222"
    assert _secrets(d, "--rotate", "postgres").returncode == 2


def test_compose_secrets_are_files_the_script_writes(tmp_path: Path) -> None:
    compose = _compose()
    declared = compose["secrets"]
    used = {
        s if isinstance(s, str) else s["source"]
        for svc in compose["services"].values()
        for s in svc.get("secrets", [])
    }
    assert used <= set(declared), f"undeclared secrets {used - set(declared)}"
    assert _secrets(tmp_path / "s").returncode == 0
    written = {p.name for p in (tmp_path / "s").iterdir()}
    for name, spec in declared.items():
        assert Path(spec["file"]).parent == Path("secrets"), name
        assert Path(spec["file"]).name in written, f"secrets.sh does not write {spec['file']}"


def test_kubernetes_secret_keys_are_the_ones_docs_create() -> None:
    """*_FILE paths point into the `council` Secret's mount; DEPLOY.md creates those keys."""
    created = set(re.findall(r"--from-file=([a-z-]+)=", DOC.read_text()))
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "base" / "kustomization.yaml").read_text())
    paths = [
        lit.split("=", 1)[1]
        for gen in kustomization["configMapGenerator"]
        for lit in gen["literals"]
        if lit.split("=")[0].endswith("_FILE")
    ]
    paths += [e["value"] for e in _patched_env() if e["name"].endswith("_FILE")]
    assert paths
    for path in paths:
        assert path.startswith("/run/secrets/council/"), path
        assert path.rsplit("/", 1)[1] in created, f"docs/DEPLOY.md does not create key of {path}"
    refs = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for p in _k8s_files()
        for d in _yaml_docs(p)
        for c in d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs <= created, f"secretKeyRef keys not created in docs: {refs - created}"


# ---- the production HTTP runtimes (council serve --production) --------------------------


def _production(monkeypatch: pytest.MonkeyPatch, runtime: str, **env: str):
    from council_agents.cli import commands
    from council_agents.core.settings import Settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    current = Settings().with_services("valkey://:pw@valkey:6379/0", "nats://n:4222")
    return commands.production_runtime(current, "0.0.0.0", 8123, 7, runtime)


def test_inmem_runtime_is_langgraph_api_with_a_strict_lifespan(monkeypatch) -> None:
    argv, env = _production(monkeypatch, "inmem")
    assert argv[argv.index("uvicorn") + 1] == "langgraph_api.server:app"
    assert argv[argv.index("--lifespan") + 1] == "on"  # "auto" serves 500s after a failed start
    assert argv[argv.index("--workers") + 1] == "1"
    assert env["LANGGRAPH_RUNTIME_EDITION"] == "inmem" and env["N_JOBS_PER_WORKER"] == "7"
    assert env["BG_JOB_MAX_RETRIES"] == "10"
    assert "LANGSMITH_LANGGRAPH_API_VARIANT" not in env


def test_postgres_runtime_environment(monkeypatch) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "langgraph_runtime_pg" else find_spec(name, *a),
    )
    argv, env = _production(monkeypatch, "postgres", DATABASE_URI="postgresql://u:p@db:5432/c")
    assert argv[argv.index("uvicorn") + 1] == "council_agents.server.pg_runtime:app"
    assert argv[argv.index("--lifespan") + 1] == "on"
    assert env["LANGGRAPH_RUNTIME_EDITION"] == "pg"
    assert env["DATABASE_URI"] == "postgresql://u:p@db:5432/c"
    assert env["REDIS_URI"] == "redis://:pw@valkey:6379/0"  # run heartbeats in council's Valkey
    assert env["LG_BG_JOB_HEARTBEAT"] == "10" and "MIGRATIONS_PATH" not in env
    assert json.loads(env["LANGGRAPH_CHECKPOINTER"])["path"].endswith("checkpointer")
    _, kept = _production(monkeypatch, "postgres", LG_BG_JOB_HEARTBEAT="30")
    assert kept["LG_BG_JOB_HEARTBEAT"] == "30"


def test_postgres_runtime_refusals(monkeypatch) -> None:
    from council_agents.cli import commands

    monkeypatch.delenv("DATABASE_URI", raising=False)
    with pytest.raises(commands.UsageError, match="set DATABASE_URI to the PostgreSQL URL"):
        _production(monkeypatch, "postgres")
    if importlib.util.find_spec("langgraph_runtime_pg") is None:  # council's own venv
        with pytest.raises(commands.UsageError, match="pip install 'langgraph-runtime-pg=="):
            _production(monkeypatch, "postgres", DATABASE_URI="postgresql://db/c")
    monkeypatch.setenv("COUNCIL_HTTP_RUNTIME", "sqlite")
    with pytest.raises(commands.UsageError, match="COUNCIL_HTTP_RUNTIME=sqlite: unknown"):
        commands.http_runtime()
    monkeypatch.delenv("COUNCIL_HTTP_RUNTIME")
    assert commands.http_runtime() == "inmem"


def test_redis_uri_from_valkey_url() -> None:
    from council_agents.cli.commands import redis_uri

    assert redis_uri("valkey://:pw@h:6379/0") == "redis://:pw@h:6379/0"
    assert redis_uri("valkeys://:pw@h:6380/1") == "rediss://:pw@h:6380/1"
    assert redis_uri("redis://h:6379") == "redis://h:6379"


def test_postgres_requirement_is_the_version_council_names() -> None:
    from council_agents.cli.commands import PG_RUNTIME

    pinned = [
        line.strip()
        for line in (DEPLOY / "requirements-postgres.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert pinned == [PG_RUNTIME]
