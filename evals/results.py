"""The records an eval writes: one per (problem, strategy), and one summary per strategy."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict


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


# --- council compare: two prompt sets on the same tasks, judged pairwise --------------------

Side = Literal["baseline", "candidate"]
"""The two prompt sets of a comparison: the one compared against, and the one under test."""
Verdict = Literal["baseline", "candidate", "tie"]
"""What one pairwise judgement preferred, mapped back from its neutral label."""
Outcome = Literal["win", "tie", "loss"]
"""A task's result for the candidate: preferred in both presentation orders (win), in neither
(loss: the baseline was), or anything else (tie, the orders' disagreements included)."""


class SideResult(TypedDict):
    """One prompt set's deliberation on one task."""

    thread: str  # the deliberation (thread) id
    status: str  # "completed", or "error" (the council could not decide)
    reason: str  # why it failed (empty when completed)
    winner: str | None  # the winning agent
    content: str  # the winner's final proposal (what the pairwise judge reads)
    prompt_set: str | None  # the digest of the prompt set it used (the event's)
    prompts_changed: bool  # the prompt set changed during the deliberation
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    llm_calls: int
    wall_s: float


class OrderVerdict(TypedDict):
    """One pairwise judgement: the two winners in one order under neutral labels."""

    shown: list[Side]  # the sides in the order shown (P1 first)
    label: str  # what the judge answered: "P1", "P2" or "tie"
    preferred: Verdict  # that label mapped back to its side
    comparison: str  # the judge's reasons, before its verdict


class TaskComparison(TypedDict):
    """One task of a comparison (one JSON line of ``results.jsonl``)."""

    task_id: str
    role: str
    baseline: SideResult
    candidate: SideResult
    verdicts: list[OrderVerdict]  # both presentation orders (empty when a side failed)
    outcome: Outcome  # for the candidate
    orders_disagree: bool  # the two judgements preferred different sides (or one a tie)
    judge_model: str
    judge_prompt_tokens: int
    judge_completion_tokens: int
    note: str  # how the outcome was reached when it was not judged (a side failed)


class SetSummary(TypedDict):
    """One prompt set over the tasks of a comparison."""

    side: Side
    prompts_dir: str
    prompt_sets: list[str]  # the digests its deliberations used
    failed: int  # deliberations that could not decide
    prompt_tokens_per_task: float
    completion_tokens_per_task: float
    llm_calls_per_task: float
    wall_s_per_task: float


class ComparisonSummary(TypedDict):
    """A whole comparison: the candidate against the baseline."""

    tasks: int
    wins: int
    ties: int
    losses: int
    win_rate: float | None  # wins / (wins + losses): ties left out (None: nothing decided)
    ci_low: float | None  # 95 % Wilson interval of the win rate
    ci_high: float | None
    sign_test_p: float  # two-sided exact sign test, wins against losses
    orders_disagree: int  # tasks whose two judgements disagreed
    disagreement_share: float
    sets: list[SetSummary]  # baseline, then candidate
