"""The HumanEval scorer: every canonical solution passes, every broken variant fails, and code that
hangs, allocates without bound, exits early or reads stdin gets a recorded outcome, not a crash.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from council_agents.checks.code import extract_code
from council_agents.evals.humaneval import SuiteError, load_problems, task_text
from council_agents.evals.sandbox import (
    build_program,
    run_tests,
    score_answer_sync,
    score_many,
)
from council_agents.sim_vllm.scripted import (
    BROKEN_KINDS,
    answer_text,
    broken_kind_for,
    solution_code,
)

ALL = load_problems("all")


def toy(test: str, prompt: str = 'def f():\n    """Return 1."""\n') -> dict:
    """A one-function problem whose tests are ``test`` (the body of ``check(candidate)``)."""
    return {
        "task_id": "Toy/0",
        "index": 0,
        "prompt": prompt,
        "canonical_solution": "",
        "test": "def check(candidate):\n" + test,
        "entry_point": "f",
    }


def run(problem: dict, code: str, **limits):
    return asyncio.run(run_tests(problem, code, **limits))


# --- the suite ---------------------------------------------------------------------------------


def test_splits_are_fixed_halves_and_limit_takes_the_first():
    tune, test = load_problems("tune"), load_problems("test")
    assert [p["index"] for p in tune] == list(range(0, 82))
    assert [p["index"] for p in test] == list(range(82, 164))
    assert [p["task_id"] for p in load_problems("test", limit=3)] == [
        "HumanEval/82",
        "HumanEval/83",
        "HumanEval/84",
    ]
    assert len(ALL) == 164


@pytest.mark.parametrize(
    "split,limit,needle",
    [("train", None, "unknown split 'train'"), ("test", 0, "limit must be at least 1")],
)
def test_bad_suite_arguments_are_named_errors(split, limit, needle):
    with pytest.raises(SuiteError, match=needle):
        load_problems(split, limit)


def test_task_text_shows_the_prompt_in_a_python_block():
    text = task_text(ALL[0])
    assert "```python\nfrom typing import List" in text and "def has_close_elements" in text


# --- extraction --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer,expected",
    [
        ("Sure:\n```python\ndef f():\n    return 1\n```\nDone.", "def f():\n    return 1\n"),
        ("```\ndef f():\n    return 1\n```", "def f():\n    return 1\n"),
        ("```py\ndef f(): return 1\n```", "def f(): return 1\n"),
        ("def f():\n    return 1\n", "def f():\n    return 1"),  # no fence: the raw answer
        ("```python\ndef f():\n    return 1", "def f():\n    return 1"),  # cut off mid-block
        # an example block first, the block that defines the entry point wins
        (
            "```python\nprint(g())\n```\n```python\ndef f():\n    return 2\n```",
            "def f():\n    return 2\n",
        ),
        ("```text\nf() -> 1\n```\n```python\nx = 1\n```", "x = 1\n"),  # python over other labels
    ],
)
def test_extract_code(answer, expected):
    assert extract_code(answer, "f") == expected


def test_a_body_completes_the_prompt_and_a_whole_function_replaces_its_stub():
    problem = toy("    assert candidate() == 1\n")
    assert run(problem, "    return 1\n").passed
    assert run(problem, "def f():\n    return 1\n").passed
    # a whole function keeps the prompt's helpers (and imports) in scope, and replaces its stub
    # (which here has no docstring, so on its own it would not even compile)
    helper = toy(
        "    assert candidate() == 2\n",
        prompt="import math\n\ndef one():\n    return 1\n\n\ndef f():\n",
    )
    program = build_program(helper, "def f():\n    return one() + int(math.sqrt(1))\n")
    assert "def one" in program and program.count("def f") == 1
    assert run(helper, "def f():\n    return one() + int(math.sqrt(1))\n").passed


# --- outcomes ----------------------------------------------------------------------------------


def test_a_failed_assertion_is_failed_and_names_the_line():
    out = run(toy("    assert candidate() == 1\n"), "def f():\n    return 2\n")
    assert out.status == "failed" and "assert candidate() == 1" in out.reason


@pytest.mark.parametrize(
    "code,needle",
    [
        ("def f():\n    return 1/0\n", "ZeroDivisionError"),
        ("def f(:\n", "SyntaxError"),
        ("def f():\n    return input()\n", "EOFError"),  # stdin is /dev/null, not the terminal
        ("import sys\nsys.exit(0)\n", "exit(0)"),
        ("import os\nos._exit(0)\n", "exited with status 0 before it finished"),
        ("", "no code"),
    ],
)
def test_errors_are_recorded_with_their_cause(code, needle):
    out = run(toy("    assert candidate() == 1\n"), code)
    assert out.status == "error" and needle in out.reason


def test_code_that_hangs_times_out():
    out = run(
        toy("    assert candidate() == 1\n"),
        "def f():\n    while True:\n        pass\n",
        timeout=1.0,
    )
    assert out.status == "timeout" and out.seconds < 5


def test_code_that_sleeps_in_a_child_process_times_out_and_the_child_is_killed(tmp_path):
    marker = tmp_path / "still-running"
    code = (
        "import subprocess, sys\n"
        "def f():\n"
        "    subprocess.Popen([sys.executable, '-c', 'import time, pathlib; time.sleep(2); "
        f"pathlib.Path(\\'{marker}\\').touch()'])\n"
        "    import time\n    time.sleep(60)\n"
    )
    out = run(toy("    assert candidate() == 1\n"), code, timeout=1.0)
    assert out.status == "timeout"
    asyncio.run(asyncio.sleep(2.5))
    assert not marker.exists()  # the grandchild died with the process group


def test_code_that_allocates_without_bound_hits_the_memory_limit():
    code = "def f():\n    hoard = []\n    while True:\n        hoard.append(bytearray(1 << 20))\n"
    out = run(toy("    assert candidate() == 1\n"), code, memory_mb=256)
    assert out.status == "memory" and "256 MiB" in out.reason


def test_the_child_gets_a_clean_environment_and_its_own_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("COUNCIL_API_KEY", "sk-secret")
    monkeypatch.chdir(tmp_path)
    code = (
        "import os\n"
        "def f():\n"
        "    assert 'COUNCIL_API_KEY' not in os.environ, 'secret leaked'\n"
        "    open('left-behind.txt', 'w').write('x')\n"
        f"    assert os.getcwd() != {str(tmp_path)!r}\n"
        "    return 1\n"
    )
    assert run(toy("    assert candidate() == 1\n"), code).passed
    assert not (tmp_path / "left-behind.txt").exists()


def test_runaway_output_is_cut_off_not_read_back():
    code = "def f():\n    while True:\n        print('x' * 10000)\n"
    out = run(toy("    assert candidate() == 1\n"), code, timeout=5.0)
    assert out.status == "error" and "output limit" in out.reason


def test_score_many_keeps_order_and_outcomes_apart():
    problem = toy("    assert candidate() == 1\n")
    answers = [
        "```python\ndef f():\n    return 1\n```",
        "def f():\n    return 0\n",
        "def f():\n    raise ValueError('no')\n",
    ]
    outcomes = asyncio.run(score_many([(problem, a) for a in answers], concurrency=2))
    assert [o.status for o in outcomes] == ["passed", "failed", "error"]


# --- all 164 problems: the scorer is right, the scripted answers are what they claim ------------


def test_every_canonical_solution_passes():
    outcomes = asyncio.run(score_many([(p, answer_text(p, correct=True)) for p in ALL]))
    failures = {p["task_id"]: o.reason for p, o in zip(ALL, outcomes, strict=False) if not o.passed}
    assert failures == {}


def test_every_broken_variant_fails():
    pairs = [(p, answer_text(p, correct=False, kind=kind)) for kind in BROKEN_KINDS for p in ALL]
    outcomes = asyncio.run(score_many(pairs))
    passing = [
        (p["task_id"], a.splitlines()[0])
        for (p, a), o in zip(pairs, outcomes, strict=False)
        if o.passed
    ]
    assert passing == []
    assert set(Counter(o.status for o in outcomes)) <= {"failed", "error"}


def test_broken_variants_keep_the_length_of_the_answer():
    for problem in ALL[:20]:
        right = solution_code(problem)
        wrong = solution_code(problem, False, broken_kind_for(problem))
        assert wrong.endswith(problem["canonical_solution"]) and 0 < len(wrong) - len(right) < 40


def test_score_answer_sync_scores_without_an_event_loop():
    problem = ALL[82]
    assert score_answer_sync(problem, answer_text(problem)).passed
    assert score_answer_sync(problem, answer_text(problem, correct=False)).status == "failed"
