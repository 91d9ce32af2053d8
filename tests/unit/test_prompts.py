"""Prompt files are read at call time; problems name the file, the line and the placeholder;
each call reads a snapshot whose files have content hashes and whose set has one digest."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from council_agents.cli.prompts import check_directory
from council_agents.cli.render import prompts_line
from council_agents.core.errors import describe
from council_agents.core.events import PromptSetRecord
from council_agents.core.progress import prompt_provenance
from council_agents.core.request import RequestError
from council_agents.llm.prompt_files import Problem, PromptError, PromptFiles, set_digest
from tests.helpers import ROOT

STAGE_VALUES = {
    "propose": dict(task="T", constraints="C", rubric="R", agent_id="a1"),
    "critique": dict(
        task="T",
        constraints="C",
        rubric="R",
        agent_id="a1",
        author="a2",
        version=0,
        proposal="P",
        proposals="## Proposal P1\nP\n\n## Proposal P2\nQ",
        label="P1",
        own="P2",
        round=1,
        evidence="E",
    ),
    "revise": dict(
        task="T",
        constraints="C",
        rubric="R",
        agent_id="a1",
        author="a1",
        version=0,
        proposal="Q",
        proposals="## Proposal P1\nP\n\n## Proposal P2\nQ",
        label="P2",
        own="P2",
        critiques="X",
        round=1,
        evidence="E",
    ),
    "judge": dict(
        task="T", constraints="C", rubric="R", proposals="P", labels="P1, P2", evidence="E"
    ),
    "vote": dict(
        task="T",
        constraints="C",
        rubric="R",
        proposals="P",
        labels="P1",
        own="P2",
        agent_id="a1",
        evidence="E",
    ),
}

prompts = PromptFiles()
"""The installed prompt files."""


@pytest.mark.parametrize("name", list(STAGE_VALUES))
def test_shipped_stage_prompts_render_with_shared_part_first(name):
    text = prompts.render(name, **STAGE_VALUES[name])
    assert text.startswith("## Task\nT")
    # no agent is told its id (a proposal that names its author would tell the judges whose)
    assert "a1" not in text and "a2" not in text


def test_revise_shares_the_critique_prefix_of_the_same_proposal():
    """What vLLM's prefix cache can reuse: every critique of a round and every revision start
    with the same task block and the same proposals; which one is under review comes last.
    """
    crit = prompts.render(
        "critique", **{**STAGE_VALUES["critique"], "author": "a1", "agent_id": "a2"}
    )
    other = prompts.render("critique", **{**STAGE_VALUES["critique"], "label": "P2", "own": "P1"})
    rev = prompts.render("revise", **STAGE_VALUES["revise"])
    shared = crit[: crit.index("## Your assignment")]
    assert rev.startswith(shared) and other.startswith(shared)
    assert (
        "## Proposal P1\nP\n\n## Proposal P2\nQ" in shared
        and "P1" not in crit[len(shared) :].split("Review proposal")[0]
    )
    tail = crit[len(shared) :]
    assert tail.rstrip().endswith("Review proposal P1 (round 1); your own proposal is P2.")


@pytest.mark.parametrize("role", ["dev", "qa", "architect", "devops", "data", "judge"])
def test_every_role_has_its_own_system_prompt(role):
    assert role.upper() in prompts.render(f"roles/{role}", role=role.upper())


@pytest.fixture
def own_prompts(tmp_path):
    """Prompt files read from ``tmp_path`` (as COUNCIL_PROMPTS_DIR would)."""
    return PromptFiles(tmp_path)


def test_edit_takes_effect_on_next_call(own_prompts, tmp_path):
    prompts = own_prompts
    (tmp_path / "propose.md").write_text("first ${task}")
    assert prompts.render("propose", task="x") == "first x"
    (tmp_path / "propose.md").write_text("second ${task}")
    assert prompts.render("propose", task="x") == "second x"


def test_missing_file_names_the_file(own_prompts, tmp_path):
    prompts = own_prompts
    with pytest.raises(PromptError, match=f"prompt file {tmp_path}/critique.md: is missing"):
        prompts.render("critique", task="x")


def test_unknown_placeholder_names_file_line_placeholder_and_what_is_known(own_prompts, tmp_path):
    (tmp_path / "propose.md").write_text("## Task\n${task}\n\nwithin ${budget} tokens\n")
    with pytest.raises(PromptError) as caught:
        own_prompts.render("propose", task="x", agent_id="a1")
    assert str(caught.value) == (
        f"prompt file {tmp_path}/propose.md:4: unknown placeholder ${{budget}}; "
        "known here: ${agent_id}, ${task}"
    )


def test_a_malformed_placeholder_is_named_with_its_line(own_prompts, tmp_path):
    (tmp_path / "vote.md").write_text("${task}\ncosts $5 a call\n")
    with pytest.raises(PromptError, match=r"vote.md:2: malformed placeholder at '\$5 a call'"):
        own_prompts.render("vote", task="x")


def test_a_prompt_problem_is_bad_input():
    """Exit 2 at every door: ``describe`` sees a ``RequestError``."""
    error = PromptError("/p", [Problem("critique.md", 3, "unknown placeholder ${x}")])
    assert isinstance(error, RequestError)
    assert describe(error).kind == "input"
    assert describe(error).message == "prompt file /p/critique.md:3: unknown placeholder ${x}"


def test_each_file_has_its_content_hash_and_the_set_one_digest(tmp_path):
    (tmp_path / "roles").mkdir()
    (tmp_path / "propose.md").write_bytes(b"${task}\r\n")
    (tmp_path / "roles" / "dev.md").write_text("You are ${role}.")
    (tmp_path / "README.md").write_text("not a prompt")
    (tmp_path / "notes.txt").write_text("not a prompt either")
    files = PromptFiles(tmp_path).snapshot()
    assert set(files.hashes) == {"propose.md", "roles/dev.md"}
    for name, digest in files.hashes.items():  # what `sha256sum FILE | cut -c1-16` prints
        assert digest == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()[:16]
    assert files.digest == set_digest(dict(reversed(list(files.hashes.items()))))
    assert files.rendered == {}
    files.render("propose", task="x")
    assert files.rendered == {"propose.md": files.hashes["propose.md"]}

    (tmp_path / "README.md").write_text("edited, still not a prompt")
    assert PromptFiles(tmp_path).snapshot().digest == files.digest
    (tmp_path / "roles" / "dev.md").write_text("You are a ${role}.")
    assert PromptFiles(tmp_path).snapshot().digest != files.digest


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(PromptError, match=f"prompt file {tmp_path}/gone/.: is not a directory"):
        PromptFiles(tmp_path / "gone").snapshot()


def _call(stage: str, prompt_set: str, files: dict[str, str]) -> dict:
    return {"stage": stage, "prompt_set": prompt_set, "prompts": files}


def test_provenance_says_when_the_set_changed_during_the_deliberation():
    start = {"digest": "d1", "changed": False, "digests": ["d1"], "files": {}, "changed_files": []}
    start["files"] = {"propose.md": "p1", "critique.md": "c1", "roles/qa.md": "q1"}
    calls = [
        _call("propose", "d1", {"roles/dev.md": "r1", "propose.md": "p1"}),
        _call("critique", "d2", {"roles/dev.md": "r1", "critique.md": "c2"}),
        _call("critique", "d2", {"roles/dev.md": "r1", "critique.md": "c2"}),
    ]
    provenance = prompt_provenance({"prompts": start, "calls": calls})
    assert provenance == {
        "digest": "d1",
        "changed": True,
        "digests": ["d1", "d2"],
        "files": {"critique.md": "c1", "propose.md": "p1", "roles/dev.md": "r1"},
        "changed_files": ["critique.md"],
    }
    # rebuilt from a finished state (publish wrote it back): the same
    assert prompt_provenance({"prompts": provenance, "calls": calls}) == provenance
    unchanged = prompt_provenance({"prompts": start, "calls": calls[:1]})
    assert unchanged is not None and not unchanged["changed"]
    assert prompt_provenance({"calls": [{"stage": "propose"}]}) is None  # before provenance


def test_the_event_and_the_cli_name_the_prompt_set():
    record = PromptSetRecord(
        digest="d1", changed=True, digests=["d1", "d2"], files={}, changed_files=["critique.md"]
    )
    assert prompts_line(record) == (
        "Prompts: CHANGED during the deliberation: sets d1 -> d2 (critique.md edited)"
    )
    same = record.model_copy(update={"changed": False, "digests": ["d1"], "files": {"a.md": "h"}})
    assert prompts_line(same) == "Prompts: set d1 (1 files rendered)"
    assert prompts_line(None) == "Prompts: not recorded"


def test_check_names_every_problem_of_every_role_and_the_unused_files(tmp_path):
    shutil.copytree(ROOT / "prompts", tmp_path / "p", ignore=shutil.ignore_patterns("__*"))
    critique = tmp_path / "p" / "critique.md"
    critique.write_text(critique.read_text().replace("${proposals}", "${proposl}"))
    (tmp_path / "p" / "roles" / "qa.md").write_text("You test for ${rol}. Costs $5.\n")
    (tmp_path / "p" / "roles" / "data.md").unlink()
    (tmp_path / "p" / "critque.md").write_text("misspelt\n")
    checked = check_directory(tmp_path / "p")
    assert [str(p) for p in checked.problems] == [
        f"critique.md:{_line_of(critique, 'proposl')}: unknown placeholder ${{proposl}}; "
        "known here: ${agent_id}, ${author}, ${constraints}, ${evidence}, ${label}, ${own}, "
        "${proposal}, ${proposals}, ${round}, ${rubric}, ${task}, ${version}",
        "roles/data.md: is missing",
        "roles/qa.md:1: malformed placeholder at '$5.' (use ${name}, and $$ for a literal $)",
        "roles/qa.md:1: unknown placeholder ${rol}; known here: ${role}",
    ]
    assert checked.unused == ["critque.md"]
    shipped = check_directory(None)
    assert shipped.problems == [] and shipped.unused == []


def _line_of(path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_braces_in_prompts_are_plain_text(own_prompts, tmp_path):
    prompts = own_prompts
    (tmp_path / "judge.md").write_text('answer like {"winner": "..."} for ${task}')
    assert prompts.render("judge", task="x") == 'answer like {"winner": "..."} for x'


def test_an_edit_is_seen_even_when_it_keeps_the_size_and_the_mtime(tmp_path):
    """Files are read again only when their stat changed (or they are recent): an edit that
    keeps the size and puts the old mtime back still changes the ctime."""
    import os
    import time

    path = tmp_path / "propose.md"
    path.write_text("first ${task}")
    old = time.time() - 100
    os.utime(path, (old, old))
    files = PromptFiles(tmp_path)
    before = files.snapshot()
    assert files.snapshot().hashes == before.hashes  # unchanged: from what was read
    time.sleep(0.01)
    path.write_text("other ${task}")
    os.utime(path, (old, old))
    after = files.snapshot()
    assert after.hashes["propose.md"] != before.hashes["propose.md"]
    assert after.render("propose", task="x") == "other x"
