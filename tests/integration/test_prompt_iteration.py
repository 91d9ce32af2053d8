"""Iterating on prompts (docs/PROMPTS.md): every decision names its prompt set, a prompt
directory is checked before the first LLM request, and two prompt sets are compared with
``council compare`` from the command line, against the simulated vLLM and real valkey-server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from council_agents.core.settings import LLMSettings, Settings
from council_agents.llm.prompt_files import PromptFiles
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM, Truth
from council_agents.storage.saver import valkey_saver
from tests.helpers import ROOT, TASKS, deliberate, sim_requests

COUNCIL = [sys.executable, "-m", "council_agents.cli"]


def run(
    tmp_path: Path, *args: str, timeout: float = 240, **env: str
) -> subprocess.CompletedProcess:
    """``council ARGS`` as a user types it (no VALKEY_URL / NATS_URL: embedded servers)."""

    environ = {k: v for k, v in os.environ.items() if k not in ("VALKEY_URL", "NATS_URL")}
    environ.update(COUNCIL_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [*COUNCIL, *args],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def copy_prompts(target: Path) -> Path:
    """The installed prompt set, copied to ``target`` (what a team edits)."""
    shutil.copytree(ROOT / "prompts", target, ignore=shutil.ignore_patterns("__*", "*.pyc"))
    return target


def with_typo(prompts: Path) -> int:
    """``critique.md`` with ``${proposals}`` misspelt; the line it is on."""
    path = prompts / "critique.md"
    lines = path.read_text().splitlines()
    number = next(i for i, line in enumerate(lines, 1) if "${proposals}" in line)
    path.write_text(path.read_text().replace("${proposals}", "${proposl}"))
    return number


def test_a_placeholder_typo_exits_2_before_any_request_and_check_names_its_line(tmp_path, sim):
    prompts = copy_prompts(tmp_path / "prompts")
    line = with_typo(prompts)
    r = run(
        tmp_path,
        "deliberate",
        "Add idempotent retry handling to the webhook consumer.",
        "--base-url",
        sim.base_url,
        "--quiet",
        COUNCIL_PROMPTS_DIR=str(prompts),
    )
    assert r.returncode == 2, r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("council: error:")]
    assert errors == [
        f"council: error: prompt file {prompts}/critique.md:{line}: unknown placeholder "
        "${proposl}; known here: ${agent_id}, ${author}, ${constraints}, ${evidence}, ${label}, "
        "${own}, ${proposal}, ${proposals}, ${round}, ${rubric}, ${task}, ${version}"
    ]
    assert "Traceback" not in r.stderr
    assert sim_requests(sim) == []  # no request reached the LLM

    checked = run(tmp_path, "prompts", "check", str(prompts))
    assert checked.returncode == 2
    assert f"{prompts}/critique.md:{line}: unknown placeholder ${{proposl}}" in checked.stderr
    assert "1 problem(s) in 1 file(s)" in checked.stderr


def test_prompts_check_of_a_sound_directory_prints_each_hash_and_the_digest(tmp_path):
    prompts = copy_prompts(tmp_path / "prompts")
    (prompts / "critque.md").write_text("a misspelt file name\n")
    r = run(tmp_path, "prompts", "check", str(prompts))
    assert r.returncode == 0, r.stderr
    assert f"{prompts}/critque.md is not a prompt council renders" in r.stderr
    files = PromptFiles(prompts).snapshot()
    for name, digest in files.hashes.items():
        assert f"{digest}  {name}" in r.stdout
    assert f"prompt set {files.digest} ({prompts})" in r.stdout


async def test_an_edit_between_deliberations_changes_the_digest_and_a_straddled_one_says_so(
    sim, valkey_url, tmp_path
):
    prompts = copy_prompts(tmp_path / "prompts")
    settings = Settings(llm=LLMSettings(base_url=sim.base_url, prompts_dir=prompts))
    task = {"task": TASKS[0]["task"], "role": "DEV", "rounds": 1}

    async def once(on_update: Any = None) -> dict[str, Any]:
        async with valkey_saver(valkey_url) as saver:
            outcome = await deliberate(
                saver, f"prov-{uuid.uuid4().hex[:8]}", task, None, settings, on_update=on_update
            )
        event = outcome.values["result"].model_dump(mode="json")
        assert outcome.values["prompts"] == event["prompts"]  # the state Studio shows
        return {"event": event, "calls": outcome.values["calls"]}

    prepared: list[dict[str, Any]] = []
    first = await once(
        lambda mode, chunk: prepared.append(chunk["prepare"]) if "prepare" in chunk else None
    )
    before = PromptFiles(prompts).snapshot()
    # from its first step the state names the set prepare checked, every file of it
    assert prepared[0]["prompts"]["digest"] == before.digest
    assert prepared[0]["prompts"]["files"] == before.hashes
    assert first["event"]["prompts"] == {
        "digest": before.digest,
        "changed": False,
        "digests": [before.digest],
        "files": {n: before.hashes[n] for n in first["event"]["prompts"]["files"]},
        "changed_files": [],
    }
    judged = (
        [] if first["event"]["decision"].get("judges_skipped") else ["roles/judge.md", "judge.md"]
    )
    assert set(first["event"]["prompts"]["files"]) == {
        "roles/dev.md",
        "propose.md",
        "critique.md",
        "revise.md",
        "vote.md",
        *judged,  # the judges are asked only when the ballots are not unanimous
    }
    for call in first["calls"]:  # each call names the files it rendered
        assert call["prompt_set"] == before.digest
        assert call["prompts"]["roles/judge.md" if call["stage"] == "judge" else "roles/dev.md"]
        assert call["prompts"][f"{call['stage']}.md"] == before.hashes[f"{call['stage']}.md"]

    critique = prompts / "critique.md"
    critique.write_text(critique.read_text() + "\nName the single most severe defect first.\n")
    second = await once()
    after = PromptFiles(prompts).snapshot()
    assert second["event"]["prompts"]["digest"] == after.digest != before.digest
    assert second["event"]["prompts"]["changed"] is False

    def edit_after_propose(mode: str, chunk: Any) -> None:  # an edit while it runs
        if mode == "updates" and "propose" in chunk:
            critique.write_text(critique.read_text() + "\nQuote the line you criticise.\n")

    straddled = await once(edit_after_propose)
    edited = PromptFiles(prompts).snapshot()
    prompts_record = straddled["event"]["prompts"]
    assert prompts_record["changed"] is True
    assert prompts_record["digests"] == [after.digest, edited.digest]
    assert prompts_record["changed_files"] == ["critique.md"]
    propose = [c for c in straddled["calls"] if c["stage"] == "propose"]
    critiques = [c for c in straddled["calls"] if c["stage"] == "critique"]
    assert {c["prompt_set"] for c in propose} == {after.digest}
    assert {c["prompts"]["critique.md"] for c in critiques} == {edited.hashes["critique.md"]}


def test_deliberate_prints_the_prompt_set(tmp_path, sim):
    r = run(tmp_path, "deliberate", TASKS[0]["task"], "--base-url", sim.base_url, "--quiet")
    assert r.returncode == 0, r.stderr
    digest = PromptFiles().snapshot().digest
    assert f"Prompts: set {digest} (" in r.stdout


# --- council compare against a simulator whose judges are scripted by the prompts' words ----

MARKS = {"Zephyrquux": 3.0, "Quuxzephyr": -3.0, "Mildquux": 1.0}
"""The simulated judges: a proposal written from a prompt with the word is worth these points."""
BIAS = 2.0
"""Points the simulated judges give the proposal shown first."""
CHANGES = {"DEV": "Zephyrquux", "QA": "Quuxzephyr", "DEVOPS": "Mildquux"}
"""The candidate's change: one word added to the role's system prompt (ARCHITECT: none)."""


def scripted(role: str) -> tuple[str, bool]:
    """The outcome for the candidate and whether the orders disagree, counted here from the
    script alone: quality 5 plus the change's points, the first shown gets the bias.
    """
    candidate, baseline = 5.0 + MARKS.get(CHANGES.get(role, ""), 0.0), 5.0

    def preferred(first: tuple[str, float], second: tuple[str, float]) -> str:
        a, b = first[1] + BIAS, second[1]
        return "tie" if a == b else (first[0] if a > b else second[0])

    orders = [
        preferred(("baseline", baseline), ("candidate", candidate)),
        preferred(("candidate", candidate), ("baseline", baseline)),
    ]
    outcome = {"candidate": "win", "baseline": "loss"}.get(orders[0], "tie")
    outcome = outcome if orders[0] == orders[1] else "tie"
    return outcome, orders[0] != orders[1]


@pytest.fixture
def judging_sim():
    """A simulator whose judges prefer proposals written with the candidate's marked words."""
    truth = Truth(marks=MARKS, position_bias=BIAS)
    with ServerThread(SimVLLM(SimConfig(time_scale=0.002, truth=truth))) as s:
        yield s


def test_compare_reports_exactly_the_scripted_wins_ties_and_losses(tmp_path, judging_sim):
    candidate = copy_prompts(tmp_path / "candidate")
    for role, word in CHANGES.items():
        path = candidate / "roles" / f"{role.lower()}.md"
        path.write_text(path.read_text() + f"\n{word}.\n")
    roles = ["DEV", "QA", "ARCHITECT", "DEVOPS", "DEV", "QA", "DEV"]
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"task{i}",
                    "role": role,
                    "task": f"Task {i}: {TASKS[i]['task']}",
                    "rubric": {"correctness": "does what the task asks", "risk": "rollback"},
                }
            )
            + "\n"
            for i, role in enumerate(roles)
        )
    )
    out = tmp_path / "out"
    args = ["compare", str(candidate), "--tasks", str(tasks), "--out", str(out)]
    r = run(tmp_path, *args, "--base-url", judging_sim.base_url, "--concurrency", "2")
    assert r.returncode == 0, r.stderr

    expected = [scripted(role) for role in roles]
    wins = sum(1 for o, _ in expected if o == "win")
    losses = sum(1 for o, _ in expected if o == "loss")
    ties = len(roles) - wins - losses
    disagree = sum(1 for _, d in expected if d)
    assert (wins, ties, losses, disagree) == (3, 2, 2, 2)  # the script has all three outcomes

    summary = json.loads((out / "summary.json").read_text())
    assert (summary["wins"], summary["ties"], summary["losses"]) == (wins, ties, losses)
    assert summary["orders_disagree"] == disagree
    assert summary["disagreement_share"] == pytest.approx(disagree / len(roles))
    lines = (out / "results.jsonl").read_text().splitlines()
    records = {r["task_id"]: r for r in map(json.loads, lines)}
    for i, (outcome, disagrees) in enumerate(expected):
        record = records[f"task{i}"]
        assert (record["outcome"], record["orders_disagree"]) == (outcome, disagrees), record
    assert f"{wins} won, {ties} tied, {losses} lost" in r.stdout
    assert (out / "compare.png").stat().st_size > 0
    base, cand = summary["sets"]
    assert base["prompt_sets"] == [PromptFiles().snapshot().digest]
    assert cand["prompt_sets"] == [PromptFiles(candidate).snapshot().digest]

    # two pairwise judgements a task (both orders), the winners under neutral labels
    judged = [e for e in sim_requests(judging_sim) if ".pairwise" in (e["deliberation"] or "")]
    assert len(judged) == 2 * len(roles)

    # the summary of what finished, asking nothing
    report = run(tmp_path, *args, "--report", "--base-url", "http://127.0.0.1:9/v1")
    assert report.returncode == 0, report.stderr
    assert f"{wins} won, {ties} tied, {losses} lost" in report.stdout
    elsewhere = run(tmp_path, "compare", str(candidate), "--report", "--out", str(tmp_path))
    assert elsewhere.returncode == 2 and "holds no comparison (compare.json)" in elsewhere.stderr

    # resumable: the same command again asks nothing
    before = len(sim_requests(judging_sim))
    again = run(tmp_path, *args, "--base-url", judging_sim.base_url)
    assert again.returncode == 0, again.stderr
    assert len(sim_requests(judging_sim)) == before
    assert f"{wins} won, {ties} tied, {losses} lost" in again.stdout
