"""``council eval`` as a user runs it: bad input gets one named line and an exit code; an eval
killed in the middle of a deliberation resumes on Valkey without re-asking what finished; a
stored council with two models on two servers runs the ``mixed`` strategy.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from council_agents.core.request import AgentSpec, CouncilSpec
from council_agents.evals.humaneval import load_problems
from council_agents.evals.report import read_results
from council_agents.server.services import free_port, running_services
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from council_agents.storage.councils import CouncilStore
from tests.eval_script import SCRIPT, expected
from tests.helpers import sim_admin, sim_requests, tasks_stored
from tests.integration.test_cli import COUNCIL, ROOT, council, env


def eval_args(sim: ServerThread, out: Path, *more: str) -> list[str]:
    return ["eval", "--base-url", sim.base_url, "--out", str(out), "--quiet", *more]


@pytest.fixture(scope="module")
def scripted_sim():
    with ServerThread(SimVLLM(SimConfig(time_scale=0), humaneval=SCRIPT)) as sim:
        yield sim


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["--suite", "mbpp"], 2, "--suite: unknown suite 'mbpp'; known: humaneval"),
        (["--strategies", "single,debate"], 2, "--strategies: unknown strategy 'debate'"),
        (["--limit", "0"], 2, "--limit: must be at least 1, got 0"),
        (["--split", "train"], 2, "--split: unknown split 'train'"),
        (["--samples", "1"], 2, "--samples: must be 2..9, got 1"),
        (["--strategies", "mixed"], 2, "--strategies: mixed needs several models"),
    ],
)
def test_bad_input_is_one_named_line_and_exit_2(tmp_path, scripted_sim, args, code, needle):
    r = council(tmp_path, *eval_args(scripted_sim, tmp_path / "out", *args))
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == code and len(lines) == 1 and needle in lines[0], r.stderr


def test_an_unreachable_server_is_named_with_exit_3(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    r = council(tmp_path, "eval", "--base-url", url, "--quiet", "--limit", "1")
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 3 and len(lines) == 1, r.stderr
    assert f"cannot reach the LLM at {url}/models" in lines[0]


def finished(log: list[dict]) -> list[tuple]:
    return [
        (e["deliberation"], e["stage"], e["agent"], e["round"], e["prompt_sha"])
        for e in log
        if e["status"] == 200 and e.get("t_out")
    ]


def test_killed_mid_deliberation_resumes_without_reasking_what_finished(tmp_path):
    problems = load_problems("test", 3)
    out = tmp_path / "out"
    with ServerThread(SimVLLM(SimConfig(time_scale=0.002), humaneval=SCRIPT)) as sim:
        # the first critique agent-dev-003 writes in the second problem's council hangs
        httpx.post(
            sim_admin(sim, "/admin/faults"),
            json={"kind": "stall", "stage": "critique", "agent": "agent-dev-003", "nth": 3},
        )
        args = eval_args(sim, out, "--limit", "3", "--strategies", "single,council1")
        proc = subprocess.Popen(
            [*COUNCIL, *args, "--concurrency", "1"],
            env=env(tmp_path),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        second = "HumanEval-83.council1"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                critiques = [
                    e
                    for e in finished(sim_requests(sim))
                    if e[0].endswith(second) and e[1] == "critique"
                ]
                if len(critiques) == 5:
                    break
                time.sleep(0.05)
            assert len(critiques) == 5, "the second deliberation did not reach its critiques"
            embedded = running_services(tmp_path / "data")
            assert embedded and embedded["valkey_url"], embedded
            assert tasks_stored(embedded["valkey_url"], critiques[0][0], 5) == 5
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        before = sim_requests(sim)
        httpx.delete(sim_admin(sim, "/admin/faults"))
        r = council(tmp_path, *args, "--concurrency", "1", timeout=300)
        assert r.returncode == 0, r.stderr
        after = sim_requests(sim)[len(before) :]
    # what finished before the kill was not asked again; the first problem not at all
    assert not set(finished(before)) & set(finished(after))
    assert not [e for e in after if "HumanEval-82" in e["deliberation"]]
    resumed = [(e["stage"], e["agent"]) for e in after if e["deliberation"].endswith(second)]
    assert ("propose", "agent-dev-001") not in resumed and ("critique", "agent-dev-003") in resumed
    # and the figures are the script's, as if the eval had never stopped
    results = read_results(out / "results.jsonl")
    assert len(results) == 6
    for record in results:
        problem = next(p for p in problems if p["task_id"] == record["task_id"])
        got = (record["passed"], record["llm_calls"], record["completion_tokens"])
        assert got == expected(problem, record["strategy"]), record
    assert "| council1 | 3 |" in r.stdout and (out / "pass_vs_tokens.png").stat().st_size > 0


def test_a_stored_council_with_two_models_runs_the_mixed_strategy(tmp_path, valkey_url):
    a = ServerThread(SimVLLM(SimConfig(time_scale=0, model="sim-a"), humaneval=SCRIPT))
    b = ServerThread(SimVLLM(SimConfig(time_scale=0, model="sim-b"), humaneval=SCRIPT))
    with a, b:
        name = f"mixed-{tmp_path.name[-12:]}".replace("_", "-")
        spec = CouncilSpec(
            name=name,
            role="DEV",
            agents=[
                AgentSpec(agent_id="agent-dev-001", model="sim-a", seed=1001),
                AgentSpec(agent_id="agent-dev-002", model="sim-b", base_url=b.base_url, seed=1002),
                AgentSpec(agent_id="agent-dev-003", model="sim-a", seed=1003),
            ],
        )

        async def store() -> None:
            councils = CouncilStore(valkey_url)
            await councils.create(spec)
            await councils.aclose()

        asyncio.run(store())
        out = tmp_path / "out"
        r = council(
            tmp_path,
            *eval_args(a, out, "--limit", "2", "--strategies", "single,mixed", "--council", name),
            VALKEY_URL=valkey_url,
            COUNCIL_LLM_ALLOWED_URLS=b.base_url,
        )
        assert r.returncode == 0, r.stderr
        on_b = [e for e in sim_requests(b) if e["deliberation"].endswith(".mixed")]
    assert {e["agent"] for e in on_b} == {"agent-dev-002"} and {e["model"] for e in on_b} == {
        "sim-b"
    }
    results = {(r["task_id"], r["strategy"]) for r in read_results(out / "results.jsonl")}
    assert results == {(f"HumanEval/{i}", s) for i in (82, 83) for s in ("single", "mixed")}
    assert "| mixed | 2 |" in r.stdout
    assert json.loads((out / "eval.json").read_text())["model"] == "sim-a"


def test_sim_vllm_flag_answers_humaneval_by_script(tmp_path):
    from council_agents.evals.humaneval import task_text
    from council_agents.sim_vllm.scripted import solution_code

    port = free_port()
    proc = subprocess.Popen(
        [*COUNCIL, "sim-vllm", "--port", str(port), "--time-scale", "0"]
        + ["--humaneval-correct", "1"],
        env=env(tmp_path),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(url + "/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        problem = load_problems("test", 1)[0]
        body = {"messages": [{"role": "user", "content": task_text(problem)}], "seed": 5}
        answer = httpx.post(url + "/v1/chat/completions", json=body, timeout=10).json()
    finally:
        proc.terminate()
        proc.wait()
    assert solution_code(problem).strip("\n") in answer["choices"][0]["message"]["content"]


def test_a_server_with_several_models_gets_a_mixed_council_stored(valkey_url, monkeypatch):
    from council_agents.cli import eval as eval_cli
    from council_agents.core.settings import LLMSettings, Settings, StorageSettings

    async def served(base_url: str, api_key: str) -> list[str]:
        return ["model-a", "model-b"]

    monkeypatch.setattr(eval_cli, "served_models", served)
    settings = Settings(
        storage=StorageSettings(valkey_url=valkey_url), llm=LLMSettings(model="model-a")
    )

    async def mixed() -> tuple[CouncilSpec | None, CouncilSpec | None]:
        store = CouncilStore(valkey_url)
        try:
            made = await eval_cli.mixed_council(settings, store, 3, None)
            return made, (await store.get(made.name) if made else None)
        finally:
            await store.aclose()

    spec, stored = asyncio.run(mixed())
    assert spec is not None and spec.name.startswith("eval-mixed-") and stored == spec
    assert [a.model for a in spec.agents] == ["model-a", "model-b", "model-a"]
    again, _ = asyncio.run(mixed())
    assert again == spec  # the same mix, the same council

    async def one(base_url: str, api_key: str) -> list[str]:
        return ["model-a"]

    monkeypatch.setattr(eval_cli, "served_models", one)
    none, _ = asyncio.run(mixed())
    assert none is None


def test_an_out_dir_of_another_eval_is_refused_with_exit_2(tmp_path, scripted_sim):
    out = tmp_path / "out"
    out.mkdir()
    (out / "eval.json").write_text(
        json.dumps({"run_id": "x", "suite": "humaneval"} | {"model": "another-model", "samples": 3})
    )
    r = council(tmp_path, *eval_args(scripted_sim, out, "--limit", "1"))
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "holds an eval with model 'another-model'" in lines[0]


def test_prompts_dir_pairs_every_strategy_with_itself_on_the_eval_s_prompts(tmp_path, scripted_sim):
    import shutil

    from council_agents.evals.harness import PROMPTS_DIR
    from council_agents.llm.prompt_files import PromptFiles

    prompts = tmp_path / "prompts"
    shutil.copytree(PROMPTS_DIR, prompts)
    propose = prompts / "propose.md"
    propose.write_text(propose.read_text() + "\nKeep the function short.\n")
    digest = PromptFiles(prompts).snapshot().digest
    out = tmp_path / "out"
    args = eval_args(scripted_sim, out, "--limit", "2", "--strategies", "single,judge")
    r = council(tmp_path, *args, "--prompts-dir", str(prompts))
    assert r.returncode == 0, r.stderr
    labels = {(x["task_id"], x["strategy"]) for x in read_results(out / "results.jsonl")}
    ids = [p["task_id"] for p in load_problems("test", 2)]
    variants = [f"single [prompts {digest}]", f"judge [prompts {digest}]"]
    assert labels == {(t, s) for t in ids for s in ["single", "judge", *variants]}
    summary = (out / "summary.md").read_text()
    assert "Prompt sets, strategy by strategy (McNemar, the same problems)" in summary
    for strategy in ("single", "judge"):
        assert f"| {strategy} | {digest} | 2 |" in summary
    threads = {e["deliberation"] for e in sim_requests(scripted_sim)}
    assert any(t and t.endswith(f".judge-p{digest}") for t in threads)

    (prompts / "critique.md").write_text("${task} ${proposl}\n")
    bad = council(tmp_path, *args, "--prompts-dir", str(prompts))
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.returncode == 2 and len(lines) == 1, bad.stderr
    assert f"--prompts-dir: prompt file {prompts}/critique.md:1: unknown placeholder" in lines[0]
