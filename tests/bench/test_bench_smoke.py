"""Every bench command at its smallest arguments, as a user runs it (``python -m bench.X``): it
exits 0 and prints the figures it promises, so a change that breaks a benchmark fails CI.

Each runs in a subprocess with its own data and temporary directories; the benchmarks start
their own simulated vLLM, Valkey and NATS where they need them. Sizes are the smallest that
still run every code path of the command (time scale 0 or 0.01: seconds, not minutes).

Two need what CI cannot have; what of them is covered is said in their tests:

* ``bench.real_llm``, ``bench.real_eval`` and ``bench.real_compare`` start llama.cpp's
  llama-server (``--install`` compiles it): they run here with ``--base-url`` against the
  simulated vLLM instead, which
  covers everything but installing and starting llama-server (``llama_server``, ``install``);
* ``bench.peers`` runs AutoGen and CrewAI in virtualenvs it installs from PyPI: it runs here
  with ``--frameworks council`` (the figures, the table, the JSON) and its helpers on tiny
  inputs; the peers' own runs are not covered (``tests/unit/test_peers.py`` checks that their
  prompts and answer schemas are council's).
"""

from __future__ import annotations

import json
import os
import py_compile
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from council_agents.core.settings import LLMSettings, RetentionSettings, Settings
from council_agents.sim_vllm import ServerThread
from council_agents.storage.saver import valkey_saver
from tests.helpers import ROOT, TASKS, deliberate, expected_calls

STAGES = ["propose", "critique", "revise", "judge", "vote"]


def bench(tmp_path: Path, *args: str, timeout: float = 150) -> str:
    """``python -m bench.ARGS`` as a user runs it, in its own data and temporary directories;
    its stdout (it must exit 0)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VALKEY_URL", "NATS_URL")}
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    env.update(COUNCIL_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT), TMPDIR=str(scratch))
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (
        f"{' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}"
    )
    return done.stdout


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table(stdout: str, first: str) -> list[dict[str, str]]:
    """The rows of the Markdown table whose first column is ``first``, by column name."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first} |"))
    head = cells(lines[start])
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(head, cells(line), strict=True)))
    assert rows, f"table {first!r} has no rows:\n{stdout}"
    return rows


def positive(text: str) -> float:
    """A figure that must be a number above 0 (``1.50``, ``1,234``, ``46.0%``)."""
    value = float(text.replace(",", "").rstrip("%").split()[0])
    assert value > 0, text
    return value


def served_model(sim: ServerThread) -> str:
    model: str = httpx.get(sim.base_url + "/models").json()["data"][0]["id"]
    return model


@pytest.mark.parametrize("llm", ["sim", "replay"])
def test_overhead(tmp_path, llm):
    # replay: the in-process replay records its answers from the simulator in the warm-up, then
    # runs every deliberation on both savers with no LLM client
    out = bench(tmp_path, "bench.overhead", "--llm", llm, "--concurrency", "2", "--by-node")
    assert ("in-process replay" in out) == (llm == "replay")
    rows = table(out, "saver")
    assert [(r["saver"], r["concurrent deliberations"]) for r in rows] == [
        ("in-memory", "2"),
        ("valkey", "2"),
    ]
    for r in rows:
        for figure in ("super-steps", "LLM calls", "CPU per LLM call (ms)", "wall (s)"):
            positive(r[figure])
        for figure in ("overhead p50 (ms/step)", "p99 (ms/step)", "peak RSS (MB)"):
            float(r[figure])
    if llm == "replay":  # one task, the same answers: the same deliberations on both savers
        assert rows[0]["LLM calls"] == rows[1]["LLM calls"]
    assert "after propose" in out and "after publish" in out  # --by-node


def test_parallel(tmp_path):
    # aggregator judge: the judges always run (judge+vote skips them on unanimous ballots)
    out = bench(tmp_path, "bench.parallel", "--time-scale", "0.01", "--aggregator", "judge")
    rows = table(out, "rounds")
    assert [r["rounds"] for r in rows] == ["1", "2"]
    for r in rows:
        for figure in ("LLM calls", "council wall (s)", "critical path (s)", "serial wall (s)"):
            positive(r[figure])
        positive(r["serial / council"])
    tokens = table(out.split("Prefix cache and tokens")[1], "rounds")
    assert [r["stage"] for r in tokens] == STAGES * 2
    positive(tokens[0]["prefix-cache hit rate (prompt tokens)"])
    assert all(positive(r["prompt tokens"]) and positive(r["calls"]) for r in tokens)


def test_topology(tmp_path):
    out = bench(tmp_path, "bench.topology", "--n", "1", "--agents", "3")
    rows = table(out, "agents")
    assert [(r["agents"], r["critics per proposal"]) for r in rows] == [("3", "all"), ("3", "1")]
    assert float(rows[1]["critique calls"]) < float(rows[0]["critique calls"])  # the ring
    for r in rows:
        positive(r["calls"])
        positive(r["tokens"].replace(",", ""))


def test_parallel_stage_barrier(tmp_path):
    args = ["--stage-barrier", "--runs", "1", "--length-sigma", "0.25", "--time-scale", "0.01"]
    out = bench(tmp_path, "bench.parallel", *args)
    rows = table(out, "answer-length spread (sigma)")
    assert [(r["answer-length spread (sigma)"], r["rounds"]) for r in rows] == [
        ("0.25", "1"),
        ("0.25", "2"),
    ]
    for r in rows:
        barrier = positive(r["stage-barrier path (s)"])
        # no barrier can only wait less (rounding to 0.01 s aside)
        assert positive(r["dependency path (s)"]) <= barrier + 0.01
        positive(r["wall (s)"])


def test_decisions(tmp_path):
    """Every aggregator and presentation scheme on the fitted truth, two deliberations each
    (a round of critique and revision: the fitted revisions and critics run too)."""
    out = bench(tmp_path, "bench.decisions", "--n", "2", "--agents", "3", "--rounds", "1")
    rows = table(out, "agents")
    assert [(r["aggregator"], r["presentation"]) for r in rows] == [
        ("judge", "pair"),
        ("judge", "rotations"),
        ("judge", "pointwise"),
        ("vote", "-"),
        ("judge+vote", "pair"),
        ("judge+vote", "rotations"),
        ("judge+vote", "pointwise"),
    ]
    for r in rows:
        assert r["agents"] == "3" and r["deliberations"] == "2"
        assert 0 <= float(r["selection accuracy"].rstrip("%")) <= 100
        positive(r["calls / delib."])
        positive(r["tokens / delib."])
        float(r["mean regret"])
    assert "final proposals of unknown quality: 0;" in out
    assert "the same final qualities under every scheme: 2 of 2 deliberations" in out
    paired = table(out.split("Paired, on the same deliberations")[1], "agents")
    assert [p["comparison"] for p in paired][:3] == [
        f"judge+vote against judge, {s}" for s in ("pair", "rotations", "pointwise")
    ]
    assert all(0 <= float(p["McNemar p"]) <= 1 for p in paired)


def test_fit_smollm2(tmp_path):
    """The fit from the committed records and probes (``--measure`` needs llama-server: its
    path through council's nodes is what ``tests/unit/test_sim_truth.py`` checks the fit of)."""
    out = bench(tmp_path, "bench.fit_smollm2")
    rows = {r["parameter"]: r for r in table(out, "parameter")}
    for name in (
        "judge_skill",
        "calibration_noise",
        "vote_first_bias",
        "revise_drop",
        "critic_false",
    ):
        assert rows[name]["how"].startswith("probe:"), rows[name]
    assert rows["invalid[propose]"]["how"].startswith("records:")


def test_scaleout(tmp_path):
    out = bench(
        tmp_path, "bench.scaleout", "--events", "2", "--concurrency", "2", "--time-scale", "0"
    )
    rows = table(out, "workers")
    assert [(r["workers"], r["deliberations"]) for r in rows] == [("1", "2"), ("2", "2")]
    for r in rows:
        positive(r["deliberations/min"])
        positive(r["speed-up"])


def test_llm_path(tmp_path):
    out = bench(tmp_path, "bench.llm_path", "--calls", "4", "--concurrency", "2")
    rows = table(out, "layer")
    assert [r["layer"] for r in rows] == [
        "httpx",
        "aiohttp",
        "openai",
        "openai+aiohttp",
        "ChatOpenAI",
        "ChatOpenAI+aiohttp",
    ]
    assert all(positive(r["CPU per call (ms)"]) for r in rows)


def test_storage(tmp_path):
    saved = tmp_path / "storage.json"
    out = bench(tmp_path, "bench.storage", "--n", "1", "--rounds", "1", "--save", str(saved))
    [row] = table(out, "rounds")
    for figure in ("history: keys", "checkpoint kB", "total kB", "AOF kB", "event kB"):
        positive(row[figure])
    assert "where the bytes go" in out and "its call records:" in out
    [result] = json.loads(saved.read_text())
    assert result["n"] == 1 and result["compacted"] == 1  # council prune compacted it
    mean = result["mean"]
    assert mean["checkpoints"] > 1 and mean["event_bytes"] > 0
    assert 0 < mean["retained_bytes"] < mean["total_bytes"]
    assert "drafts" in result["channels"]["final_channels"]


def test_storage_sweep(tmp_path):
    out = bench(tmp_path, "bench.storage", "--sweep", "20")
    cost = json.loads(out.strip().splitlines()[-1])
    assert cost["seconds"] > 0 and cost["keys"] > 0
    # 20 copies of a compacted deliberation and one of one with its history, and the two
    assert cost["retained"]["finished"] == 20 + 1 + 2


async def test_storage_probe(tmp_path, valkey_url, sim):
    settings = Settings(
        llm=LLMSettings(base_url=sim.base_url),
        retention=RetentionSettings(history_s=3600),  # its whole history stays to be probed
    )
    task = TASKS[0]
    inp = {"task": task["task"], "role": task["role"], "rounds": 1}
    thread = f"probe-{os.getpid()}-{tmp_path.name}"
    async with valkey_saver(valkey_url) as saver:
        outcome = await deliberate(saver, thread, inp, None, settings)
    assert outcome.status == "completed"
    out = bench(tmp_path, "bench.storage_probe", "--valkey-url", valkey_url, "--thread", thread)
    found = json.loads(out)
    assert found["checkpoints"] > 1 and found["checkpoint_stored"] > 0
    assert {"drafts", "critiques", "calls"} <= set(found["checkpoint_channels"])
    # the calls this deliberation's protocol made (revisers, judges unless skipped)
    event = outcome.values["result"].model_dump(mode="json")
    assert found["final"]["calls"]["calls"] == sum(expected_calls(event).values())


def test_peers_with_council_alone(tmp_path):
    """Covered: the command line, council's run as a user runs it (``council deliberate``),
    the figures from the simulator's log, the table and ``--out``. Not covered: AutoGen's and
    CrewAI's runs (their virtualenvs come from PyPI; see the module docstring)."""
    runs = tmp_path / "runs.json"
    args = ["--frameworks", "council", "--runs", "1", "--time-scale", "0"]
    out = bench(
        tmp_path, "bench.peers", *args, "--venvs", str(tmp_path / "peers"), "--out", str(runs)
    )
    [row] = table(out, "framework")
    assert row["framework"] == "council" and row["wall / council"] == "1.00"
    for figure in ("wall (s)", "process (s)", "completion tokens", "peak calls in flight"):
        positive(row[figure])
    [run] = json.loads(runs.read_text())["runs"]["council"]
    # the judges (one per rotation) run only when the ballots, which come first, are split
    judges = run["by_stage"].get("judge", 0)
    assert judges in (0, 3)
    expected = {"propose": 3, "critique": 6, "revise": 3, "vote": 3} | (
        {"judge": 3} if judges else {}
    )
    assert {stage: n for stage, n in run["by_stage"].items() if n} == expected
    assert row["LLM calls"] == str(sum(expected.values()))
    assert run["winner"].startswith("agent-dev-")


def test_peers_helpers(tmp_path):
    """The parts of ``bench.peers`` that the council-only run does not reach: council's
    aggregation of a peer's judgements and ballots, the argument checks, an interpreter given
    instead of a virtualenv, and the peers' runner scripts compiling."""
    from bench import peers

    task = peers.load_task("t01")
    agents = [{"agent_id": f"agent-dev-00{i}"} for i in (1, 2, 3)]
    ids = [a["agent_id"] for a in agents]

    def judgement(order: list[str]) -> dict[str, Any]:  # agent-dev-002 is best on everything
        scores = {a: 9 if a == "agent-dev-002" else 4 for a in order}
        assessments = {
            a: {
                "strengths": [],
                "defects": [],
                "verdict": "v",
                "scores": dict.fromkeys(task["rubric"], s),
            }
            for a, s in scores.items()
        }
        return {"judge": "judge-dev", "model": "m", "order": order, "assessments": assessments}

    ballots = [
        {
            "voter": v,
            "reason": "r",
            "ranking": sorted((a for a in ids if a != v), key=lambda a: a != "agent-dev-002"),
        }
        for v in ids
    ]
    assert (
        peers.winner(task, agents, [judgement(ids), judgement(ids[::-1])], ballots)
        == "agent-dev-002"
    )

    with pytest.raises(SystemExit) as refused:
        peers.main(["--frameworks", "council,nope", "--venvs", str(tmp_path)])
    assert refused.value.code == 2
    given = tmp_path / "python"
    assert peers.peer_python("autogen", tmp_path, str(given)) == given
    assert not (tmp_path / "autogen-venv").exists()  # nothing installed
    for runner in ("autogen_run.py", "crewai_run.py", "shared.py"):
        py_compile.compile(
            str(ROOT / "bench" / "peers" / runner), doraise=True, cfile=str(tmp_path / "c.pyc")
        )


def test_real_llm_against_the_simulator(tmp_path, sim):
    """Covered: the deliberations, the report and ``--measure-tokens`` against a server that is
    up (``--base-url``: the simulated vLLM, which counts tokens as vLLM does). Not covered:
    ``--install`` and starting llama-server (``llama_server``: needs the compiled binary)."""
    out = bench(
        tmp_path, "bench.real_llm", "--base-url", sim.base_url, "--roles", "DEV", "--measure-tokens"
    )
    rows = table(out, "role")
    assert rows[0]["role"] == "DEV" and rows[0]["outcome"].startswith("completed")
    # the stages the deliberation's log records, in the order they first ran: the judges run
    # only on split ballots (judge+vote), the revise only for authors with a severe defect
    log = Path(out.split("full LLM content: ", 1)[1].split()[0])
    ran: list[str] = []
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if record.get("event") == "llm.call" and record["stage"] not in ran:
            ran.append(record["stage"])
    assert {"propose", "critique", "vote"} <= set(ran) <= set(STAGES)
    assert [r["stage"] for r in rows] == ran
    for r in rows:
        positive(r["calls"])
        positive(r["prompt tok"])
    assert "estimate / server count over " in out and "no prompt could be counted" not in out
    assert "full LLM content: " in out


def test_real_llm_helpers():
    """The import, the command line's defaults, the installed check and the report of a failed
    deliberation (which the simulator run does not produce)."""
    from bench import real_llm

    args = real_llm.parse_args([])
    assert args.base_url is None and args.models == list(real_llm.MODELS)
    assert args.roles == ["DEV", "QA"] and args.parallel * args.ctx_per_slot == 8192
    assert isinstance(real_llm.installed("gemma"), bool)
    failed = {
        "role": "QA",
        "task": "t03",
        "status": "failed",
        "error": "judge: no\nanswer",
        "wall_s": 1.0,
        "calls": [],
    }
    report = real_llm.report([failed])
    assert "| QA | t03 | failed: judge: no answer | - | 0 |" in report


def test_real_eval_then_eval_anatomy_against_the_simulator(tmp_path, sim):
    """Covered: ``bench.real_eval`` with ``--base-url`` (``council eval`` on one problem, a
    single answer and a council), then ``bench.eval_anatomy`` on its results and its log (the
    default log of the data directory). Not covered: ``--install`` and starting llama-server."""
    results = tmp_path / "eval"
    args = ["--base-url", sim.base_url, "--model", served_model(sim), "--limit", "1"]
    out = bench(
        tmp_path, "bench.real_eval", *args, "--strategies", "single,council1", "--out", str(results)
    )
    assert "council eval exited 0" in out
    assert {"eval.json", "results.jsonl", "summary.md"} <= {p.name for p in results.iterdir()}
    rows = [json.loads(line) for line in (results / "results.jsonl").read_text().splitlines()]
    assert sorted(r["strategy"] for r in rows) == ["council1", "single"]

    anatomy = bench(tmp_path, "bench.eval_anatomy", "--out", str(results))
    assert "### council1 (1 problems)" in anatomy
    stages = {r["stage"]: r for r in table(anatomy, "stage")}
    every = stages.pop("**all**")  # the strategy's total: every stage's calls
    assert int(every["calls"]) == sum(int(r["calls"]) for r in stages.values())
    # the stages the run's log records (only the council critiques, revises, judges and
    # votes): judge+vote skips the judges on unanimous ballots, only severe defects' authors
    # revise, so which ran and how often is the run's own
    logged: dict[str, int] = {}
    for line in (tmp_path / "data" / "logs" / "council.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("event") == "llm.call" and record.get("stage") != "propose":
            logged[record["stage"]] = logged.get(record["stage"], 0) + 1
    assert set(stages) == {"propose", *logged} <= set(STAGES)
    assert stages["propose"]["calls"] == "3"
    assert {s: int(stages[s]["calls"]) for s in logged} == logged
    assert {"critique", "vote"} <= set(logged)
    drafts = table(anatomy, "draft")
    assert drafts[0]["draft"] == "first answer" and drafts[0]["drafts"] == "3"
    revisions = [d for d in drafts[1:]]
    assert [d["draft"] for d in revisions] == (["revision 1"] if "revise" in logged else [])
    assert all(0 < int(d["drafts"]) <= logged["revise"] for d in revisions)
    assert "Revisions: pass -> fail " in anatomy


def test_real_eval_helpers(tmp_path):
    """The import, the command line and the ``council eval`` command it runs (the default
    model is llama-server's alias), the installed check."""
    from bench import real_eval

    args = real_eval.parse_args(
        ["--base-url", "http://x/v1", "--limit", "2", "--strategies", "single"]
    )
    cmd = real_eval.eval_command(args, args.base_url, tmp_path)
    assert cmd[1:4] == ["-m", "council_agents.cli", "eval"]
    assert cmd[cmd.index("--limit") + 1] == "2" and cmd[cmd.index("--strategies") + 1] == "single"
    assert cmd[cmd.index("--model") + 1] == real_eval.MODEL_ALIAS
    assert isinstance(real_eval.installed(), bool)


def test_real_compare_against_the_simulator(tmp_path, sim):
    """Covered: ``bench.real_compare`` with ``--base-url`` (the candidate prompt set written
    with its one change, ``council compare`` on one shipped task with 2 agents and 0 rounds).
    Not covered: ``--install`` and starting llama-server."""
    from council_agents.llm.prompt_files import PromptFiles

    results = tmp_path / "compare"
    args = ["--base-url", sim.base_url, "--model", served_model(sim), "--limit", "1"]
    out = bench(
        tmp_path,
        "bench.real_compare",
        *args,
        "--agents",
        "2",
        "--rounds",
        "0",
        "--out",
        str(results),
    )
    assert "council compare exited 0" in out and "1 task(s): " in out
    assert {"compare.json", "results.jsonl", "summary.md", "summary.json"} <= {
        p.name for p in results.iterdir()
    }
    candidate = (results / "candidate-prompts" / "propose.md").read_text()
    assert "at most about 200 words in all, one line per step" in candidate
    summary = json.loads((results / "summary.json").read_text())
    assert summary["tasks"] == 1
    assert summary["sets"][1]["prompt_sets"] == [
        PromptFiles(results / "candidate-prompts").snapshot().digest
    ]


def test_real_compare_helpers(tmp_path):
    """The command line and the ``council compare`` command it runs."""
    from bench import real_compare

    args = real_compare.parse_args(["--base-url", "http://x/v1", "--limit", "2"])
    cmd = real_compare.compare_command(args, args.base_url, tmp_path)
    assert cmd[1:5] == ["-m", "council_agents.cli", "compare", str(tmp_path / "candidate-prompts")]
    assert cmd[cmd.index("--limit") + 1] == "2" and cmd[cmd.index("--rounds") + 1] == "1"
    assert cmd[cmd.index("--model") + 1] == real_compare.MODEL_ALIAS
