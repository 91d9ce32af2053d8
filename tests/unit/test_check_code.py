"""The code checker (``checks.code``): a code task's function, the answer's code, and its
outputs on the task's examples (run in the sandbox only when execution is on)."""

from __future__ import annotations

import asyncio

import pytest

from council_agents.checks import code, sandbox
from council_agents.evals.humaneval import load_problems, task_text
from council_agents.sim_vllm.scripted import answer_text

PROBLEM = load_problems("all")[0]  # has_close_elements, two doctest examples
TASK = code.code_task(task_text(PROBLEM))
needs_sandbox = pytest.mark.skipif(not sandbox.available(), reason="bubblewrap is not installed")


def test_a_code_task_names_its_function_and_a_plan_is_not_one():
    assert TASK is not None and TASK.entry_point == "has_close_elements"
    assert "def has_close_elements" in TASK.prompt
    assert code.code_task("Add rate limiting (100 requests per minute) to the API.") is None
    # a finished function is not a stub to write
    assert code.code_task("```python\ndef f(x):\n    '''doc'''\n    return x\n```") is None
    bare = 'def g(a, b):\n    """Add.\n    >>> g(1, 2)\n    3\n    """\n'
    assert code.code_task(bare) == code.CodeTask(bare, "g")


def test_examples_come_from_the_docstring():
    assert code.example_calls(TASK.prompt, TASK.entry_point) == [
        "has_close_elements([1.0, 2.0, 3.0], 0.5)",
        "has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)",
    ]


@pytest.mark.parametrize(
    "answer,hard",
    [
        ("```python\ndef has_close_elements(numbers, threshold)\n    return 1\n```", "parse"),
        ("```python\ndef close(numbers, threshold):\n    return True\n```", "define"),
    ],
)
def test_code_that_does_not_parse_or_define_the_function_fails_hard(answer, hard):
    found = asyncio.run(code.check(TASK, answer, run=False))
    assert len(found.hard) == 1 and hard in found.hard[0] and found.outputs is None


def test_without_execution_nothing_runs():
    found = asyncio.run(code.check(TASK, answer_text(PROBLEM), run=False))
    assert found.hard == [] and found.outputs is None
    assert "not run: execution is off for this council" in found.notes


@needs_sandbox
def test_with_execution_the_outputs_on_the_examples_are_the_evidence():
    found = asyncio.run(code.check(TASK, answer_text(PROBLEM), run=True))
    assert found.hard == [] and found.outputs == ("False", "True")
    assert "has_close_elements([1.0, 2.0, 3.0], 0.5) returned False" in found.notes
    crash = "```python\ndef has_close_elements(numbers, threshold):\n    return 1 / 0\n```"
    found = asyncio.run(code.check(TASK, crash, run=True))
    assert found.hard == ["it raised an exception on every example"]
    assert found.outputs == ("!ZeroDivisionError", "!ZeroDivisionError")
    hang = "```python\ndef has_close_elements(numbers, threshold):\n    while True: pass\n```"
    found = asyncio.run(code.check(TASK, hang, run=True))
    assert found.hard and "did not finish" in found.hard[0]


@pytest.mark.parametrize(
    "outputs,group",
    [
        ([("1",), ("1",), ("2",)], [0, 1]),
        ([("2",), ("1",), ("1",)], [1, 2]),
        ([("1",), ("2",), ("3",)], [0]),  # all differ: the first
        ([("!E",), ("!E",), ("3",)], [2]),  # only exceptions rank last
        ([None, None], []),
    ],
)
def test_agreeing_is_the_largest_group_that_is_not_only_exceptions(outputs, group):
    assert code.agreeing(outputs) == group
    assert code.pick(outputs) == (group[0] if group else 0)


def test_the_results_the_task_states_are_read_where_they_are_literals():
    assert code.expectations(TASK.prompt, TASK.entry_point) == {
        "has_close_elements([1.0, 2.0, 3.0], 0.5)": "False",
        "has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)": "True",
    }
    doc = (
        "def f(x):\n"
        '    """Double it.\n'
        "    f(2) ==> 4\n"
        "    f(3) -> 6.0\n"
        "    f(4) returns something large\n"
        "    >>> f(5)\n"
        "    ten\n"
        '    """\n'
    )
    # stated as a literal: kept; prose or a word that is not a literal: not a stated result
    assert code.expectations(doc, "f") == {"f(2)": "4", "f(3)": "6.0"}


@pytest.mark.parametrize(
    "output,stated,same",
    [
        ("4", "4", True),
        ("4.0000001", "4.0", True),
        ("6", "6.0", True),
        ("[1, 2]", "[1, 2]", True),
        ("(1, 2)", "(1, 2)", True),
        ("'ab'", "'ab'", True),
        ("set[1, 2]", "{2, 1}", True),
        ("5", "4", False),
        ("!ValueError", "4", False),
        ("<object at 0x1>", "4", None),
    ],
)
def test_an_output_matches_a_stated_result_by_value(output, stated, same):
    assert code.matches(output, stated) is same


@needs_sandbox
def test_an_answer_contradicting_a_stated_result_fails_hard_and_one_matching_all_is_verified():
    found = asyncio.run(code.check(TASK, answer_text(PROBLEM), run=True))
    assert found.verified and "it matches all 2 results the task states" in found.notes
    wrong = "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```"
    found = asyncio.run(code.check(TASK, wrong, run=True))
    assert not found.verified
    assert found.hard == [
        "it contradicts the examples the task states on 1 of 2: "
        "has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) gave False, the task says True"
    ]
