"""The records an eval writes: one per (problem, strategy), and one summary per strategy."""

from __future__ import annotations

from typing import NotRequired, TypedDict


class ProblemResult(TypedDict):
    """What one strategy did on one problem (one JSON line of ``results.jsonl``)."""

    task_id: str  # "HumanEval/82"
    strategy: str  # "single", "vote", "judge", "council-r1", "oracle@3", ...
    passed: bool
    status: str  # the sandbox's outcome: passed, failed, timeout, memory, error
    reason: str  # why it did not pass (empty when passed)
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    llm_calls: int
    wall_s: float
    answer: NotRequired[str]  # the chosen answer's text, for reading failures afterwards
    answered: NotRequired[bool]  # False: the strategy gave no answer (agent or council failed)


class Paired(TypedDict):
    """A strategy against the baseline on the problems both ran (McNemar's exact test)."""

    baseline: str
    problems: int  # paired problems
    only_baseline: int  # the baseline passed, this strategy failed
    only_strategy: int  # this strategy passed, the baseline failed
    difference: float  # pass@1 of the strategy minus the baseline's, on the paired problems
    p_value: float  # two-sided exact McNemar


class StrategySummary(TypedDict):
    """One strategy over all its problems."""

    strategy: str
    problems: int
    passed: int
    unanswered: int  # problems the strategy gave no answer to (counted as failed)
    pass_at_1: float
    ci_low: float  # 95 % Wilson interval of pass@1
    ci_high: float
    prompt_tokens_per_problem: float
    cached_tokens_per_problem: float
    completion_tokens_per_problem: float
    llm_calls_per_problem: float
    wall_s_per_problem: float
    pass_per_1k_completion_tokens: float | None  # None when no completion tokens were spent
    vs_baseline: Paired | None  # None for the baseline itself, or when it did not run
