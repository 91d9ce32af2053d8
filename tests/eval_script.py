"""What a scripted simulator (``sim_vllm.humaneval``) implies for each ``council eval`` strategy:
whether it passes, its LLM calls and its completion tokens, worked out from the script alone.
"""

from __future__ import annotations

from council_agents.checks.code import pick
from council_agents.evals.agreement import example_calls
from council_agents.evals.strategies import RUBRIC, STRATEGIES
from council_agents.sim_vllm import HumanEvalScript
from council_agents.sim_vllm.humaneval import (
    completion_tokens,
    critique_doc,
    first_answer,
    judge_doc,
    revise_text,
    vote_doc,
)
from council_agents.sim_vllm.scripted import broken_kind_for

N = 3
AGENTS = [f"agent-dev-{i:03d}" for i in range(1, N + 1)]
SCRIPT = HumanEvalScript(correct=0.45, fix=0.5, judge_accuracy=0.7, seed=3)


def expected_vote(problem, correct: list[bool]) -> bool:
    """The agreement vote on scripted answers: canonical code, or its broken variant, whose
    outputs are all ``None`` (early return) or all exceptions (raise).
    """
    if not example_calls(problem):
        return correct[0]  # nothing to compare: every answer runs, the first is chosen
    broken = "!" if broken_kind_for(problem) == "raise" else "None"
    return correct[pick([("ok",) if c else (broken,) for c in correct])]


def expected_council(problem, rounds: int, judges: bool, script: HumanEvalScript = SCRIPT):
    """(passed, calls, completion tokens) of a scripted deliberation."""
    correct = {a: script.first_correct(problem, a) for a in AGENTS}
    calls = N
    tokens = sum(completion_tokens(first_answer(problem, c)) for c in correct.values())
    for round_ in range(1, rounds + 1):
        calls += N * (N - 1)
        tokens += sum(
            completion_tokens(critique_doc(correct[author]))
            for author in AGENTS
            for _ in range(N - 1)
        )
        if all(correct.values()):  # no blocker: converged, no revision
            break
        after = {a: correct[a] or script.fixes(problem, a, round_) for a in AGENTS}
        calls += N
        tokens += sum(completion_tokens(revise_text(problem, correct[a], after[a])) for a in AGENTS)
        correct = after
    right = script.judges_right(problem)
    shown = [(f"P{i}", correct[a]) for i, a in enumerate(AGENTS, 1)]
    if judges:  # the default presentation: every rotation of the order, one judgement each
        calls += N
        tokens += N * completion_tokens(judge_doc(shown, list(RUBRIC), right))
    calls += N  # every agent ranks its peers
    tokens += sum(
        completion_tokens(vote_doc([s for s in shown if s[0] != f"P{i}"], right))
        for i in range(1, N + 1)
    )
    finals = list(correct.values())
    passed = any(finals) if right else all(finals)  # both prefer the same kind of code
    return passed, calls, tokens


def expected(problem, name: str, script: HumanEvalScript = SCRIPT):
    """(passed, calls, completion tokens) the script implies for one strategy."""
    correct = [script.first_correct(problem, a) for a in AGENTS]
    answers = [completion_tokens(first_answer(problem, c)) for c in correct]
    if name == "single":
        return correct[0], 1, answers[0]
    if name == "vote":
        return expected_vote(problem, correct), N, sum(answers)
    if name == "oracle@3":
        return any(correct), N, sum(answers)
    strategy = STRATEGIES[name]
    return expected_council(problem, strategy.rounds, strategy.aggregator != "vote", script)
