"""The strategies ``council eval`` compares, and how each one is run.

All of them answer with the same agents (the built-in DEV council of ``samples`` agents:
``agent-dev-001`` ... with seeds 1001 ..., temperature 0.7) and the same first-round prompt
(``evals/prompts/propose.md``), so on a server that honours seeds they start from the
same first answers and differ only in what they do with them. Every council strategy is the
council as it ships, grounded (``nodes.ground``: its default checkers, ``code`` and ``quotes``,
and its agreement gate, ``all``), with execution on: an answer that matches every result the
task states, or answers that all agree on the examples, decide at once; a draft that fails a
hard check cannot win while one that passes exists.

| strategy | what | LLM calls per problem (N agents) |
|---|---|---|
| ``single`` | the first agent's one answer | 1 |
| ``vote`` | N answers; the one whose outputs on the docstring's examples most answers share (:mod:`evals.agreement`) | N |
| ``judge`` | a council with 0 rounds and aggregator ``judge``: N answers, one judgement per rotation of the order picks (the peer vote runs too: it is part of every deliberation) | N when the checks decide, else 3N |
| ``peervote`` | a council with 0 rounds and aggregator ``vote``: the agents rank each other's answers | 2N |
| ``council1`` / ``council2`` | the full deliberation, 1 or 2 rounds, aggregator ``judge+vote`` (a round stops early when no critique finds a blocker or major defect; only authors with one revise; the judges are skipped when the ballots are unanimous) | N when the checks decide; 1 round: at most N + N(N-1) + N + N + N |
| ``mixed`` | ``council1`` with a stored council whose agents use different models | as ``council1`` |
| ``adaptive`` | a council that deliberates only when the checks cannot decide (issue 23): the code checker runs every draft on the examples in the sandbox; an answer matching every result the task states, or a majority with the same outputs (gate 0.6: 2 of 3, 3 of 5), decides at once; else one targeted round (one critic per proposal, only authors with a severe defect revise, the evidence shown to everyone, a draft failing a hard check cannot win) within a token budget of 12,000 (prompt and completion: the vote decides when the judges no longer fit) | N when the checks decide, else at most what fits in 12,000 tokens |
| ``oracle`` | ``oracle@N``: passed when any of the N answers of ``vote`` passes; the ceiling of any selection among them (no extra call; its cost is the N answers') | N |
"""  # noqa: E501

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from council_agents.core.terms import Aggregator

Kind = Literal["single", "samples", "council"]

RUBRIC: dict[str, dict[str, object]] = {
    "correctness": {
        "meaning": "returns what the docstring asks for every input it allows, edge cases too",
        "weight": 3,
        "anchors": {
            "0": "wrong on the docstring's own examples, or crashes",
            "5": "right on the examples, wrong on some edge case",
            "10": "right on every input the docstring allows",
        },
    },
    "completeness": {
        "meaning": "one complete, runnable function: signature, imports, no placeholder",
        "weight": 1,
        "anchors": {
            "0": "no function, or code missing",
            "5": "runs, with leftover or unused parts",
            "10": "complete and clean",
        },
    },
}
"""The rubric every eval council's judges score on (the deliberation input's ``rubric``)."""

EVAL_MAX_TOKENS: dict[str, int] = {
    "propose": 512,
    "critique": 384,
    "revise": 768,
    "judge": 768,
    "vote": 256,
}
"""Completion tokens per stage: enough for one function, its critique, its revision."""


@dataclass(frozen=True)
class Strategy:
    """One way to answer a problem."""

    name: str
    """As asked on the command line: ``single``, ``vote``, ``council1``, ..."""
    kind: Kind
    """``single``: one call; ``samples``: N calls (``vote``, ``oracle``); ``council``: a
    deliberation on its own thread."""
    rounds: int = 0
    """Council rounds (ceiling)."""
    aggregator: Aggregator = "judge+vote"
    """Council aggregator."""
    mixed: bool = False
    """A council with several models (a stored council)."""
    grounded: bool = True
    """The council as it ships: its default checkers (``code`` and ``quotes``) and agreement
    gate. False: no checker and the gate off, the council before grounding (issue 23), as the
    records in docs/eval/smollm2-tune and smollm2-test ran it."""
    gate: float | None = None
    """The agreement gate's share (None: the council's default, all)."""
    critics: int | None = None
    """Critics per proposal (None: every peer)."""
    token_budget: int | None = None
    """Prompt + completion tokens per deliberation (None: no budget)."""

    def label(self, samples: int) -> str:
        """The name in the results: ``oracle@N`` for the oracle, else the name."""
        return f"oracle@{samples}" if self.name == "oracle" else self.name


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("single", "single"),
        Strategy("vote", "samples"),
        Strategy("judge", "council", rounds=0, aggregator="judge"),
        Strategy("peervote", "council", rounds=0, aggregator="vote"),
        Strategy("council1", "council", rounds=1),
        Strategy("council2", "council", rounds=2),
        Strategy("mixed", "council", rounds=1, mixed=True),
        Strategy(
            "adaptive",
            "council",
            rounds=1,
            gate=0.6,
            critics=1,
            token_budget=12_000,
        ),
        Strategy("oracle", "samples"),
    )
}
DEFAULT_STRATEGIES = ("single", "vote", "judge", "council1", "council2", "oracle")
"""What runs when ``--strategies`` is not given (plus ``mixed`` when several models are on
offer)."""


class StrategyError(ValueError):
    """A strategy list that cannot run: an unknown name, or none at all."""


def parse_strategies(text: str) -> list[Strategy]:
    """``single,vote,...`` -> the strategies, in the order given, each once."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not names:
        raise StrategyError("--strategies: give at least one of " + ", ".join(STRATEGIES))
    unknown = [name for name in names if name not in STRATEGIES]
    if unknown:
        raise StrategyError(
            f"--strategies: unknown strategy {unknown[0]!r}; known: {', '.join(STRATEGIES)}"
        )
    return [STRATEGIES[name] for name in dict.fromkeys(names)]
