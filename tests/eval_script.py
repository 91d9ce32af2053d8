"""What a scripted simulator (``sim_vllm.humaneval``) implies for each ``council eval`` strategy:
whether it passes, its LLM calls and its completion tokens, worked out from the script alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from council_agents.checks import code
from council_agents.checks.code import agreeing, only_exceptions, pick
from council_agents.evals.agreement import example_calls
from council_agents.evals.humaneval import task_text
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


def unanimous_ballots(shown: list[tuple[str, bool]], right: bool) -> bool:
    """Whether the scripted ballots (each voter ranks its peers: the preferred kind of code
    first, each group in label order) put one proposal first on every ballot that could.
    """
    firsts = {
        label: vote_doc([s for s in shown if s[0] != label], right)["ranking"][0]
        for label, _ in shown
    }
    return any(all(first == x for voter, first in firsts.items() if voter != x) for x, _ in shown)


@dataclass(frozen=True)
class Found:
    """What the council's code checker finds in the scripted correct or broken answer."""

    hard: bool
    verified: bool
    outputs: tuple[str, ...] | None


_FOUND: dict[tuple[str, bool], Found] = {}


def found(problem, correct: bool) -> Found:
    """The code checker (execution on, in the sandbox) on the scripted answer of one kind."""
    key = (problem["task_id"], correct)
    if key not in _FOUND:
        task = code.code_task(task_text(problem))
        assert task is not None
        checked = asyncio.run(code.check(task, first_answer(problem, correct), run=True))
        _FOUND[key] = Found(bool(checked.hard), checked.verified, checked.outputs)
    return _FOUND[key]


def gate_decides(problem, correct: dict[str, bool]) -> bool | None:
    """The grounded council's agreement gate (``all``) on the newest drafts: whether the
    deciding draft is correct, or None when the gate does not decide.
    """
    checked = {a: found(problem, c) for a, c in correct.items()}
    verified = [a for a in AGENTS if checked[a].verified and not checked[a].hard]
    if verified:
        return correct[verified[0]]
    outputs = [None if checked[a].hard else checked[a].outputs for a in AGENTS]
    group = agreeing(outputs)
    if not group or only_exceptions(outputs[group[0]] or ()) or len(group) < N:
        return None
    return correct[AGENTS[group[0]]]


def expected_council(
    problem,
    rounds: int,
    aggregator: str = "judge+vote",
    script: HumanEvalScript = SCRIPT,
    grounded: bool = True,
):
    """(passed, calls, completion tokens) of a scripted deliberation (targeted: only broken
    code draws a blocker and is revised; a revision that changed nothing is not critiqued
    again; with ``judge+vote`` the judges are skipped when the ballots are unanimous).
    Grounded (the council as it ships): after propose and after each round's revisions the
    agreement gate may decide at once, a draft that fails a hard check cannot win while one
    passes, and when one draft alone passes the judges are skipped.
    """
    correct = {a: script.first_correct(problem, a) for a in AGENTS}
    calls = N
    tokens = sum(completion_tokens(first_answer(problem, c)) for c in correct.values())
    if grounded and (decided := gate_decides(problem, correct)) is not None:
        return decided, calls, tokens
    same: set[str] = set()  # authors whose newest version equals the one before it
    for round_ in range(1, rounds + 1):
        authors = [a for a in AGENTS if a not in same]
        if not authors:  # nothing changed: nothing left to critique
            break
        calls += len(authors) * (N - 1)
        tokens += sum(
            completion_tokens(critique_doc(correct[author]))
            for author in authors
            for _ in range(N - 1)
        )
        revising = [a for a in authors if not correct[a]]  # a blocker: it revises
        if not revising:  # no blocker: converged, no revision
            break
        after = {
            a: correct[a] or (a in revising and script.fixes(problem, a, round_)) for a in AGENTS
        }
        calls += len(revising)
        tokens += sum(
            completion_tokens(revise_text(problem, correct[a], after[a])) for a in revising
        )
        same = {a for a in AGENTS if a not in revising or after[a] == correct[a]}
        correct = after
        if grounded and (decided := gate_decides(problem, correct)) is not None:
            return decided, calls, tokens
    right = script.judges_right(problem)
    shown = [(f"P{i}", correct[a]) for i, a in enumerate(AGENTS, 1)]
    failed = {a for a in AGENTS if grounded and found(problem, correct[a]).hard}
    passing = [a for a in AGENTS if a not in failed]
    alone = len(passing) == 1 and len(failed) == N - 1  # the checks decide: no judge
    judged = not alone and (
        aggregator == "judge"
        or (aggregator == "judge+vote" and not unanimous_ballots(shown, right))
    )
    if judged:  # the default presentation: every rotation of the order, one judgement each
        calls += N
        tokens += N * completion_tokens(judge_doc(shown, list(RUBRIC), right))
    calls += N  # every agent ranks its peers
    tokens += sum(
        completion_tokens(vote_doc([s for s in shown if s[0] != f"P{i}"], right))
        for i in range(1, N + 1)
    )
    if alone:
        return correct[passing[0]], calls, tokens
    finals = [correct[a] for a in (passing or AGENTS)]  # a failing draft cannot win
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
    return expected_council(
        problem, strategy.rounds, strategy.aggregator, script, strategy.grounded
    )
