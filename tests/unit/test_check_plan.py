"""The plan checker (``checks.plan``): the fixed sections, embedded code by language, and
measurable acceptance criteria."""

from __future__ import annotations

import pytest

from council_agents.checks import plan

PLAN = """1. **Approach**: cache the token lookups; rejected: a bigger database.
2. **Steps**:
   1. Add the cache.
```python
def lookup(key):
    return CACHE.get(key)
```
3. **Acceptance criteria**:
   - p99 latency of /token is under 50 ms at 200 requests per second
   - an expired token is rejected with status 401
   - the code is clean
4. **Tests**: a load test and a unit test per path.
5. **Risks and rollback**: stale entries; roll back by turning the flag off.
6. **Assumptions and open questions**: tokens live 15 minutes.
"""


def test_a_plan_with_every_section_and_parsing_code_passes():
    found = plan.check(PLAN)
    assert found.hard == [] and found.missing == [] and found.measurable
    assert "every fixed section is present" in found.notes
    assert "code block 1 (python): parses" in found.notes
    assert "acceptance criteria: 2 of 3 measurable" in found.notes


def test_missing_sections_and_unmeasurable_criteria_are_noted_not_hard():
    text = "## Approach\nDo it.\n## Acceptance criteria\n- it is good\n- users like it\n"
    found = plan.check(text)
    assert found.hard == []
    assert found.missing == [
        "Steps",
        "Tests",
        "Risks and rollback",
        "Assumptions and open questions",
    ]
    assert not found.measurable and "acceptance criteria: 0 of 2 measurable" in found.notes
    assert "no acceptance criteria" in plan.check("## Approach\nx\n").notes


@pytest.mark.parametrize(
    "language,code,ok",
    [
        ("python", "def f(:\n", False),
        ("json", '{"a": 1}', True),
        ("json", "{'a': 1, // no\n}", False),
        ("yaml", "a: 1\nb: [1, 2]\n", True),
        ("yaml", "a: [1, 2\n", False),
        ("sql", "SELECT id FROM users WHERE name = 'x';", True),
        ("sql", "SELECT id FROM users WHERE name = 'x;", False),
        ("sql", "users WHERE id = 1;", False),
        ("bash", 'if [ -f x ]; then\n  echo "ok"\nfi\n', True),
        ("bash", "for x in a b; do\n  echo $x\n", False),
        ("Dockerfile", 'FROM python:3.12\nRUN pip install \\\n    x\nCMD ["x"]\n', True),
        ("dockerfile", "RUN make\nFROM debian\n", False),
        ("dockerfile", "FROM debian\nrun-it now\n", False),
        ("toml", "anything = [", None),  # not checked
    ],
)
def test_embedded_code_is_checked_by_its_language(language, code, ok):
    assert plan.check_block(language, code)[0] is ok


def test_code_that_does_not_parse_is_a_hard_failure():
    broken = PLAN.replace("def lookup(key):", "def lookup(key:")
    found = plan.check(broken)
    assert len(found.hard) == 1 and found.hard[0].startswith("code block 1 (python) does not parse")


@pytest.mark.parametrize(
    "item,measurable",
    [
        ("p99 under 50 ms", True),
        ("returns 404 for an unknown id", True),
        ("at least one alert fires", True),
        ("the export contains every column", True),
        ("the code is clean and maintainable", False),
        ("users are happy", False),
    ],
)
def test_a_criterion_is_measurable_with_a_number_a_comparison_or_a_verifiable_outcome(
    item, measurable
):
    assert plan.measurable(item) is measurable
