"""The statistics of an eval, as pure functions (standard library only: no scipy).

- pass@1 with a Wilson score interval (Wilson 1927), which stays inside [0, 1] and keeps its
  coverage for small n and rates near 0, where the normal-approximation interval fails;
- McNemar's exact test for two strategies on the same problems: under the null hypothesis the
  discordant pairs (one passed, the other failed) split 50/50, so the two-sided p-value is
  ``min(1, 2 * P(X <= min(b, c)))`` with ``X ~ Binomial(b + c, 1/2)``, computed exactly with
  integer binomial coefficients (:func:`math.comb`);
- the sign test of a pairwise comparison (``council compare``): under the null hypothesis the
  tasks one prompt set won and the other won (ties left out) split 50/50; it is the same exact
  binomial test as McNemar's, on wins and losses;
- pass@1 per 1,000 completion tokens: solved problems per 1,000 tokens generated, the price of
  a strategy's accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from statistics import NormalDist

from council_agents.evals.results import Paired, ProblemResult, StrategySummary


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion ``successes / trials``."""
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in 0..{trials}, got {successes}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / denominator
    # Clamp rounding at the ends: 0/n must give exactly 0, n/n exactly 1.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def binomial_cdf_half(k: int, n: int) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, 1/2)``, exactly (integer arithmetic, one division)."""
    if n < 0:
        raise ValueError(f"n must be at least 0, got {n}")
    if k < 0:
        return 0.0
    return float(sum(math.comb(n, i) for i in range(min(k, n) + 1)) / 2**n)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    ``only_a``: pairs where A passed and B failed; ``only_b``: B passed and A failed. With no
    discordant pairs there is no evidence of a difference: 1.0.
    """
    if only_a < 0 or only_b < 0:
        raise ValueError(f"counts must be at least 0, got {only_a}, {only_b}")
    n = only_a + only_b
    if n == 0:
        return 1.0
    return min(1.0, 2 * binomial_cdf_half(min(only_a, only_b), n))


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test of ``wins`` against ``losses`` (ties left out): 1.0 when
    there is no decided task.
    """
    return mcnemar_exact(wins, losses)


def pass_per_1k_tokens(passed: int, completion_tokens: int) -> float | None:
    """Problems solved per 1,000 completion tokens (= pass@1 / (tokens per problem / 1,000))."""
    if completion_tokens <= 0:
        return None
    return 1000 * passed / completion_tokens


def paired(
    baseline: Mapping[str, bool], strategy: Mapping[str, bool], baseline_name: str
) -> Paired | None:
    """Compare two strategies' pass/fail on the problems both have (``task_id -> passed``)."""
    common = [task for task in strategy if task in baseline]
    if not common:
        return None
    only_baseline = sum(1 for t in common if baseline[t] and not strategy[t])
    only_strategy = sum(1 for t in common if strategy[t] and not baseline[t])
    return Paired(
        baseline=baseline_name,
        problems=len(common),
        only_baseline=only_baseline,
        only_strategy=only_strategy,
        difference=(only_strategy - only_baseline) / len(common),
        p_value=mcnemar_exact(only_baseline, only_strategy),
    )


def summarize(results: Iterable[ProblemResult], baseline: str = "single") -> list[StrategySummary]:
    """One summary per strategy, in order of first appearance; each compared with ``baseline``.

    A (problem, strategy) that appears more than once counts once: the last record wins (an
    eval that was resumed may have written a problem again).
    """
    latest: dict[str, dict[str, ProblemResult]] = {}
    for result in results:
        latest.setdefault(result["strategy"], {})[result["task_id"]] = result
    outcomes = {name: {t: r["passed"] for t, r in rows.items()} for name, rows in latest.items()}
    summaries = []
    for name, rows in latest.items():
        n = len(rows)
        passed = sum(1 for r in rows.values() if r["passed"])
        low, high = wilson_interval(passed, n)
        completion = sum(r["completion_tokens"] for r in rows.values())
        compare = None
        if name != baseline and baseline in outcomes:
            compare = paired(outcomes[baseline], outcomes[name], baseline)
        summaries.append(
            StrategySummary(
                strategy=name,
                problems=n,
                passed=passed,
                unanswered=sum(1 for r in rows.values() if not r.get("answered", True)),
                pass_at_1=passed / n,
                ci_low=low,
                ci_high=high,
                prompt_tokens_per_problem=sum(r["prompt_tokens"] for r in rows.values()) / n,
                cached_tokens_per_problem=sum(r["cached_tokens"] for r in rows.values()) / n,
                completion_tokens_per_problem=completion / n,
                llm_calls_per_problem=sum(r["llm_calls"] for r in rows.values()) / n,
                wall_s_per_problem=sum(r["wall_s"] for r in rows.values()) / n,
                pass_per_1k_completion_tokens=pass_per_1k_tokens(passed, completion),
                vs_baseline=compare,
            )
        )
    return summaries
