"""The vote for code: example inputs read from the docstrings, answers grouped by their outputs."""

from __future__ import annotations

import asyncio

import pytest

from council_agents.checks.code import pick, run_examples
from council_agents.evals.agreement import choose, example_calls
from council_agents.evals.humaneval import load_problems
from council_agents.sim_vllm.scripted import answer_text, solution_code

ALL = load_problems("all")


def test_examples_are_read_from_every_docstring_format():
    by_id = {p["task_id"]: p for p in ALL}
    assert example_calls(by_id["HumanEval/0"]) == [
        "has_close_elements([1.0, 2.0, 3.0], 0.5)",
        "has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)",
    ]
    # "For lst = [...] the output should be ..." and "Input: arr = [...], k = 3"
    assert example_calls(by_id["HumanEval/133"])[0] == "sum_squares(lst=[1, 2, 3])"
    assert example_calls(by_id["HumanEval/120"])[0] == "maximum(arr=[-3, -4, 5], k=3)"
    # a recurrence in the docstring is not an example: only calls with literal arguments
    assert example_calls(by_id["HumanEval/46"]) == [
        "fib4(0)",
        "fib4(1)",
        "fib4(2)",
        "fib4(3)",
        "fib4(5)",
        "fib4(6)",
        "fib4(7)",
    ]
    assert sum(1 for p in ALL if example_calls(p)) >= 150


def test_every_canonical_solution_runs_on_its_examples():
    """The premise of the scripted vote: the canonical code returns values (not exceptions,
    not the early-return variant's ``None``) on every example of every problem.
    """

    async def main():
        gate = asyncio.Semaphore(4)

        async def one(problem):
            async with gate:
                calls = example_calls(problem)
                return (
                    problem,
                    calls,
                    await run_examples(
                        problem["prompt"], problem["entry_point"], solution_code(problem), calls
                    ),
                )

        return await asyncio.gather(*(one(p) for p in ALL))

    for problem, calls, run in asyncio.run(main()):
        assert run.status == "passed" and len(run.outputs) == len(calls), problem["task_id"]
        assert not any(o.startswith("!") for o in run.outputs), (problem["task_id"], run)
        assert not calls or set(run.outputs) != {"None"}, problem["task_id"]


@pytest.mark.parametrize(
    "outputs,chosen",
    [
        ([("1",), ("2",), ("1",)], 0),  # the larger group, its first answer
        ([("2",), ("1",), ("1",)], 1),
        ([None, ("1",), ("2",)], 1),  # an answer that does not run drops out; tie: earliest
        ([("!ValueError",), ("!ValueError",), ("3",)], 2),  # only exceptions rank last
        ([None, None, None], 0),  # nothing ran: the first answer
        ([(), (), ()], 0),  # no examples: every answer that runs agrees
    ],
)
def test_pick(outputs, chosen):
    assert pick(outputs) == chosen


def test_choose_runs_the_answers_and_follows_the_majority():
    problem = ALL[0]
    wrong = "```python\ndef has_close_elements(numbers, threshold):\n    return True\n```"
    answers = [wrong, answer_text(problem), answer_text(problem, correct=False), wrong]
    assert asyncio.run(choose(problem, answers)) == 0  # "always True" twice beats the rest
    assert asyncio.run(choose(problem, answers[1:3] + ["no code"])) == 0
