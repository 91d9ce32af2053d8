"""Answers with a known truth, so tests can prove what the council decides (opt-in).

The simulator remembers which agent wrote each proposal it generated (propose, and the
``proposal`` field of a structured revision). With a ``Truth`` configured it then plays:

- judges: every proposal gets scores that follow its author's hidden ``quality`` (0..10), plus
  ``position_bias`` for the proposal listed first and Gaussian ``noise``;
- voters: a ranking by hidden quality plus ``vote_noise``;
- critics: a ``major`` defect in rounds up to ``major_until_round``, only ``minor`` ones after
  (so convergence can be scripted), and only ``minor`` ones for the proposals of
  ``minor_authors`` (so targeted revision can be scripted). Without a ``Truth``, critics
  always find a major defect, so deliberations run all their rounds;
- prompt changes: ``marks`` adds points to the quality of a proposal written from a prompt (any
  of its messages) that contains a given word, or of a revision of such a proposal (an agent's
  revision keeps the words of its proposal), so a prompt set can be scripted to write better
  or worse proposals;
- pairwise judges (a structured answer with a ``preferred`` field, as ``council compare``
  asks): the proposal of higher quality (with ``position_bias`` for the one shown first, and
  ``noise``) is preferred, ``tie`` when the two are equal.

It finds the proposals in judge and vote prompts by council's layout (``## Proposal P1``
sections, each fenced as data: ``content.proposal_sections``): the one place the simulator
knows council's prompt format.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from council_agents.sim_vllm import content


@dataclass
class Truth:
    """The hidden quality of each agent's work, and how the simulated judges err."""

    quality: dict[str, float] = field(default_factory=dict)
    """Agent id -> true quality 0..10 (unknown agents: 5)."""
    position_bias: float = 0.0
    """Points judges add to the proposal listed first."""
    noise: float = 0.0
    """Standard deviation of a judge's score."""
    vote_noise: float = 0.0
    """Standard deviation of a voter's sense of quality."""
    major_until_round: int | None = None
    """Critiques report a major defect up to this round, only minor ones after (None: random)."""
    marks: dict[str, float] = field(default_factory=dict)
    """Word -> quality points added to a proposal written from a prompt containing the word."""
    minor_authors: list[str] = field(default_factory=list)
    """Agents in whose proposals critics find only minor defects, whatever the round (the
    proposal under review is found by council's layout: ``content.under_review``)."""

    def marked(self, prompt: str) -> frozenset[str]:
        """The words of ``marks`` that ``prompt`` contains."""
        return frozenset(word for word in self.marks if word in prompt)

    def points(self, words: frozenset[str]) -> float:
        """The quality points ``marks`` gives a proposal written with ``words``."""
        return sum(self.marks.get(word, 0.0) for word in words)


class Authors:
    """Which agent wrote which text (the simulator's own proposals)."""

    def __init__(self) -> None:
        """No text known yet."""
        self.by_text: dict[str, str] = {}
        self.words: dict[str, frozenset[str]] = {}
        self.latest: dict[tuple[str | None, str], frozenset[str]] = {}

    def remember(
        self,
        agent: str | None,
        text: str,
        words: frozenset[str] = frozenset(),
        deliberation: str | None = None,
    ) -> None:
        """Record that ``agent`` wrote ``text`` in ``deliberation``, with the ``marks`` words
        of its prompt (and of the proposal it revises).
        """
        if agent:
            self.by_text[text.strip()] = agent
            self.words[text.strip()] = words
            self.latest[(deliberation, agent)] = words

    def inherited(self, deliberation: str | None, agent: str | None) -> frozenset[str]:
        """The ``marks`` words of ``agent``'s latest text in ``deliberation``."""
        return self.latest.get((deliberation, agent or ""), frozenset())

    def labelled(self, prompt: str) -> list[tuple[str, str | None]]:
        """``(label, author)`` for each proposal section of a judge or vote prompt, in order."""
        return [
            (label, self.by_text.get(text.strip()))
            for label, text in content.proposal_sections(prompt)
        ]

    def qualities(self, prompt: str, truth: Truth) -> list[tuple[str, float]]:
        """``(label, hidden quality)`` for each proposal section of a prompt, in order: its
        author's quality plus the points of the prompt it was written from.
        """
        return [
            (
                label,
                truth.quality.get(self.by_text.get(text.strip()) or "", 5.0)
                + truth.points(self.words.get(text.strip(), frozenset())),
            )
            for label, text in content.proposal_sections(prompt)
        ]


def _clamp(x: float) -> int:
    return max(0, min(10, round(x)))


def shape(
    doc: Any,
    stage: str,
    prompt: str,
    who: Mapping[str, Any],
    rng: random.Random,
    truth: Truth | None,
    authors: Authors,
    revise_tokens: int,
    words: frozenset[str] = frozenset(),
) -> Any:
    """A schema-valid document adjusted to the stage (and to the truth, when one is set).

    Args:
        doc: The document generated from the request's schema (changed in place).
        stage: The council stage asking.
        prompt: The request's last message (where judge and vote prompts show proposals).
        who: Who asks: ``agent`` and ``round`` are read.
        rng: The request's generator (the same request draws the same numbers).
        truth: The scripted truth, or None for random judges and voters.
        authors: The proposals the simulator wrote, by agent (a revision's is recorded).
        revise_tokens: The length of a revision's ``proposal`` text.
        words: The truth's ``marks`` words in the request's prompt (a revision adds those of
            the agent's proposal).

    Returns:
        The document: lists shortened to one to three items for critiques and revisions, a
        revision's proposal written as prose, and scores, rankings or defects as the truth says.
    """
    if not isinstance(doc, dict):
        return doc
    for key, value in doc.items():  # a model lists a few points, not a schema's maximum
        if isinstance(value, list) and stage in ("critique", "revise"):
            doc[key] = value[: rng.randint(1, 3)]
    if stage == "revise" and "proposal" in doc:
        doc["proposal"] = content.make_text(
            rng, "revise", prompt, revise_tokens, who.get("agent") or ""
        )
        agent, deliberation = who.get("agent"), who.get("deliberation")
        words = words | authors.inherited(deliberation, agent)
        authors.remember(agent, doc["proposal"], words, deliberation)
    if truth is None:
        if stage == "critique":  # a first look always finds something: every round runs
            truth = Truth(major_until_round=10**6)
        else:
            return doc
    if stage == "judge" and "preferred" in doc:
        _prefer(doc, authors.qualities(prompt, truth), rng, truth)
    elif stage == "judge":
        _score(doc, authors.qualities(prompt, truth), rng, truth)
    elif stage == "vote" and isinstance(doc.get("ranking"), list):
        _rank(doc, authors.qualities(prompt, truth), rng, truth)
    elif stage == "critique" and truth.major_until_round is not None:
        author = authors.by_text.get(content.under_review(prompt).strip())
        severe = int(who.get("round") or 0) <= truth.major_until_round
        _grade_defects(doc, severe and author not in truth.minor_authors)
    return doc


def _score(
    doc: dict[str, Any], shown: list[tuple[str, float]], rng: random.Random, truth: Truth
) -> None:
    """A judgement's scores: the author's quality, the first position's bias, the judge's noise."""
    for position, (label, true) in enumerate(shown):
        scored = doc.get(label)
        if not isinstance(scored, dict) or not isinstance(scored.get("scores"), dict):
            continue
        bias = truth.position_bias if position == 0 else 0.0
        scored["scores"] = {
            k: _clamp(true + bias + rng.gauss(0, truth.noise)) for k in scored["scores"]
        }


def _rank(
    doc: dict[str, Any], shown: list[tuple[str, float]], rng: random.Random, truth: Truth
) -> None:
    """A ballot's ranking: by the authors' quality as a noisy voter senses it."""
    sense = {label: true + rng.gauss(0, truth.vote_noise) for label, true in shown}
    doc["ranking"] = sorted(doc["ranking"], key=lambda label: -sense.get(label, 0.0))


def _prefer(
    doc: dict[str, Any], shown: list[tuple[str, float]], rng: random.Random, truth: Truth
) -> None:
    """A pairwise verdict: the proposal of higher quality (the first shown gets the position
    bias, each the judge's noise); ``tie`` when the two are equal.
    """
    if len(shown) != 2:
        return
    seen = [
        (label, true + (truth.position_bias if i == 0 else 0.0) + rng.gauss(0, truth.noise))
        for i, (label, true) in enumerate(shown)
    ]
    (first, a), (second, b) = seen
    doc["preferred"] = "tie" if abs(a - b) < 1e-9 else (first if a > b else second)


def _grade_defects(doc: dict[str, Any], severe: bool) -> None:
    """A critique's defects: the first ``major`` when ``severe`` (one is added if none).

    Every other defect is ``minor``, and there are no violations.
    """
    defects = doc.get("defects") or []
    if severe and not defects:
        defects = [
            {"severity": "major", "where": "Steps", "what": "missing a step", "fix": "add it"}
        ]
    for i, defect in enumerate(defects):
        defect["severity"] = "major" if severe and i == 0 else "minor"
    doc["defects"], doc["violations"] = defects, []
