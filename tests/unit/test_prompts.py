"""Prompt files are read at call time; problems name the file and the placeholder."""

from __future__ import annotations

import pytest

from council_agents.llm.prompt_files import PromptError, PromptFiles

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
        round=1,
    ),
    "revise": dict(
        task="T",
        constraints="C",
        rubric="R",
        agent_id="a1",
        author="a1",
        version=0,
        proposal="P",
        critiques="X",
        round=1,
    ),
    "judge": dict(task="T", constraints="C", rubric="R", proposals="P", labels="P1, P2"),
    "vote": dict(task="T", constraints="C", rubric="R", proposals="P", labels="P1", agent_id="a1"),
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
    """What vLLM's prefix cache can reuse: a revision's prompt starts like the critiques'."""
    crit = prompts.render(
        "critique", **{**STAGE_VALUES["critique"], "author": "a1", "agent_id": "a2"}
    )
    rev = prompts.render("revise", **STAGE_VALUES["revise"])
    shared = crit[: crit.index("## Your assignment")]
    assert rev.startswith(shared) and "## Proposal under review (version 0)\nP" in shared


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
    with pytest.raises(PromptError, match=f"{tmp_path}/critique.md is missing"):
        prompts.render("critique", task="x")


def test_unknown_placeholder_names_file_and_placeholder(own_prompts, tmp_path):
    prompts = own_prompts
    (tmp_path / "propose.md").write_text("${task} and ${budget}")
    with pytest.raises(PromptError, match=r"propose.md uses unknown placeholder\(s\) \$\{budget\}"):
        prompts.render("propose", task="x")


def test_braces_in_prompts_are_plain_text(own_prompts, tmp_path):
    prompts = own_prompts
    (tmp_path / "judge.md").write_text('answer like {"winner": "..."} for ${task}')
    assert prompts.render("judge", task="x") == 'answer like {"winner": "..."} for x'
