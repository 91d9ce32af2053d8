"""The eval's statistics against published values and binomial tails worked out by hand."""

from __future__ import annotations

import math

import pytest

from council_agents.evals.stats import (
    binomial_cdf_half,
    mcnemar_exact,
    paired,
    pass_per_1k_tokens,
    summarize,
    wilson_interval,
)


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Statistics in
# Medicine 17:857-872, Table I, method 3 (Wilson score, no continuity correction), 4 decimals.
@pytest.mark.parametrize(
    "successes,trials,low,high",
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),  # never below 0, unlike the normal approximation
        (1, 29, 0.0061, 0.1718),
        (5, 10, 0.2366, 0.7634),  # symmetric around 0.5 (not in the table; any Wilson calculator)
    ],
)
def test_wilson_interval_matches_published_values(successes, trials, low, high):
    assert wilson_interval(successes, trials) == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_ends_are_exact():
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_wilson_interval_narrows_with_more_trials_and_widens_with_confidence():
    narrow, wide = wilson_interval(50, 100), wilson_interval(5, 10)
    assert wide[0] < narrow[0] < 0.5 < narrow[1] < wide[1]
    assert wilson_interval(5, 10, 0.99)[0] < wide[0]


@pytest.mark.parametrize(
    "args,needle", [((1, 0), "trials"), ((11, 10), "successes"), ((5, 10, 1.0), "confidence")]
)
def test_wilson_interval_rejects_impossible_input(args, needle):
    with pytest.raises(ValueError, match=needle):
        wilson_interval(*args)


def test_binomial_cdf_half_is_exact():
    assert binomial_cdf_half(2, 4) == 11 / 16
    assert binomial_cdf_half(4, 4) == 1.0
    assert binomial_cdf_half(-1, 4) == 0.0
    # large n: exact integers, no overflow or underflow to nonsense
    assert binomial_cdf_half(500, 1000) == pytest.approx(0.5 + math.comb(1000, 500) / 2**1001)


@pytest.mark.parametrize(
    "only_a,only_b,p",
    [
        (0, 6, 2 / 64),  # 0.03125
        (1, 5, 2 * 7 / 64),  # 0.21875
        (2, 8, 2 * 56 / 1024),  # 0.109375
        (3, 12, 2 * 576 / 32768),  # 0.03515625
        (4, 4, 1.0),  # capped at 1
        (0, 0, 1.0),  # no discordant pairs: no evidence
    ],
)
def test_mcnemar_exact_matches_hand_computed_binomial_tails(only_a, only_b, p):
    assert mcnemar_exact(only_a, only_b) == pytest.approx(p, rel=1e-12)
    assert mcnemar_exact(only_b, only_a) == mcnemar_exact(only_a, only_b)


def test_mcnemar_rejects_negative_counts():
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_pass_per_1k_tokens():
    assert pass_per_1k_tokens(3, 1500) == 2.0
    assert pass_per_1k_tokens(0, 1500) == 0.0
    assert pass_per_1k_tokens(3, 0) is None


def test_paired_counts_only_common_problems():
    base = {"a": True, "b": False, "c": False, "d": True}
    other = {"a": True, "b": True, "c": True, "d": False, "e": True}  # "e": baseline did not run it
    result = paired(base, other, "single")
    assert result == {
        "baseline": "single",
        "problems": 4,
        "only_baseline": 1,
        "only_strategy": 2,
        "difference": 0.25,
        "p_value": 1.0,
    }
    assert paired(base, {"x": True}, "single") is None


def record(task: str, strategy: str, passed: bool, completion: int = 100, **extra) -> dict:
    return {
        "task_id": task,
        "strategy": strategy,
        "passed": passed,
        "status": "passed" if passed else "failed",
        "reason": "",
        "prompt_tokens": 50,
        "cached_tokens": 10,
        "completion_tokens": completion,
        "llm_calls": 1,
        "wall_s": 2.0,
        **extra,
    }


def test_summarize_per_strategy_with_the_paired_test_against_single():
    results = [record(f"P/{i}", "single", i < 2) for i in range(10)]
    results += [record(f"P/{i}", "vote", i < 8, completion=300, llm_calls=3) for i in range(10)]
    single, vote = summarize(results)
    assert (single["strategy"], single["passed"], single["pass_at_1"]) == ("single", 2, 0.2)
    assert single["vs_baseline"] is None
    assert (vote["ci_low"], vote["ci_high"]) == pytest.approx(wilson_interval(8, 10))
    assert vote["completion_tokens_per_problem"] == 300 and vote["llm_calls_per_problem"] == 3
    assert vote["pass_per_1k_completion_tokens"] == pytest.approx(8 / 3)
    assert vote["vs_baseline"] == {
        "baseline": "single",
        "problems": 10,
        "only_baseline": 0,
        "only_strategy": 6,
        "difference": 0.6,
        "p_value": pytest.approx(2 / 64),
    }


def test_summarize_counts_a_rerun_problem_once_the_last_record_winning():
    results = [
        record("P/0", "single", False),
        record("P/1", "single", True),
        record("P/0", "single", True),
    ]
    (single,) = summarize(results)
    assert (single["problems"], single["passed"]) == (2, 2)


def test_summarize_without_the_baseline_compares_nothing():
    (vote,) = summarize([record("P/0", "vote", True)])
    assert vote["vs_baseline"] is None
