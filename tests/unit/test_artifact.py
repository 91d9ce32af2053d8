"""What a revision must keep (``checks.artifact``) and how a revision is read
(``nodes.revise.read_revision``)."""

from __future__ import annotations

import pytest

from council_agents.checks.artifact import dropped, sections, top_level_names
from council_agents.nodes.revise import read_revision

CODE = "Here it is.\n\n```python\nimport math\n\ndef area(r):\n    return math.pi * r * r\n```\n"
PLAN = (
    "1. **Approach**: cache the lookups.\n2. **Steps**:\n   1. add the cache\n"
    "3. **Acceptance criteria**: p99 under 50 ms\n4. **Tests**: a load test\n"
    "5. **Risks and rollback**: stale reads; a flag turns it off\n"
    "6. **Assumptions and open questions**: none\n"
)


@pytest.mark.parametrize(
    "revised,problem",
    [
        ("addressed", "drops the previous version's code block"),
        ("```text\nno python here\n```", "drops the previous version's Python code"),
        ("```python\ndef area(r):\n    return (\n```", "no longer parses"),
        ("```python\ndef circle(r):\n    return 1\n```", "no longer defines area"),
    ],
)
def test_a_revision_that_drops_the_code_is_refused(revised, problem):
    assert problem in (dropped(CODE, revised) or "")


BROKEN = "def solve(N):\n    return (\n```\n"  # no opening fence, and it does not parse


@pytest.mark.parametrize(
    "previous,revised",
    [
        (BROKEN, "The complete revised function is within the line above."),
        (
            "```python\ndef sort_array(arr):\n    return sorted(*[\n```",
            "```python\ndef sort_list(arr):\n    return sorted(*[\n```",
        ),
    ],
)
def test_a_function_defined_in_code_that_does_not_parse_must_stay(previous, revised):
    """SmolLM2's revisions of its own broken code (HumanEval/84 and /88)."""
    assert "no longer defines" in (dropped(previous, revised) or "")
    fixed = revised.replace("sort_list", "sort_array") if "sort" in revised else BROKEN
    assert dropped(previous, fixed) is None


def test_a_revision_that_keeps_and_changes_the_code_is_accepted():
    better = (
        "```python\nimport math\n\ndef area(r: float) -> float:\n    return math.pi * r**2\n```"
    )
    assert dropped(CODE, better) is None
    assert top_level_names(better.split("```python\n")[1].split("```")[0]) == {"area"}


def test_a_plan_keeps_its_sections_and_most_of_its_text():
    assert sections(PLAN) == {
        "approach",
        "steps",
        "acceptance criteria",
        "tests",
        "risks",
        "assumptions",
    }
    without_tests = PLAN.replace("4. **Tests**: a load test\n", "")
    assert dropped(PLAN, without_tests) == "the revision drops the section(s) tests"
    assert dropped(PLAN, PLAN.replace("cache the lookups", "memoise the lookups")) is None
    long = PLAN + "\n" + "More detail. " * 60
    headings = "\n".join(line.split(":")[0] for line in PLAN.splitlines() if "**" in line)
    assert "keeps" in (dropped(long, headings) or "")


def test_a_revision_is_read_loosely_and_unchanged_carries_the_previous_version():
    answer = (
        PLAN.replace("cache the lookups", "cache the lookups for 60 s")
        + "\n=== CHANGES ===\nADDRESSED: no TTL -> 60 s TTL\n- rejected: use Redis -> not needed\n"
        + "some chatter\n"
    )
    revision = read_revision(answer, PLAN)
    assert revision.proposal is not None and "60 s" in revision.proposal
    assert "CHANGES" not in revision.proposal
    assert [c["defect"] for c in revision.addressed] == ["no TTL"]
    assert [(c["defect"], c["response"]) for c in revision.rejected] == [
        ("use Redis", "not needed")
    ]
    assert read_revision("UNCHANGED", PLAN).proposal is None
    assert read_revision(PLAN, PLAN).proposal == PLAN.strip()  # no list of changes: fine
    with pytest.raises(ValueError, match="drops the section"):
        read_revision("1. **Approach**: x\n=== CHANGES ===\nADDRESSED: a -> b", PLAN)
    with pytest.raises(ValueError, match="no proposal"):
        read_revision("=== CHANGES ===\nADDRESSED: a -> b", PLAN)
