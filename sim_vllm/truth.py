"""Answers with a known truth, so tests can prove what the council decides (opt-in).

The simulator remembers which agent wrote each proposal it generated (propose, a plain-text
revision, and the ``proposal`` field of a structured one). With a ``Truth`` configured it then
plays judges, voters and critics. Two settings share the class:

**The scripts** (the default values of every parameter below the first five): judges score a
proposal by its author's hidden ``quality`` (0..10), plus ``position_bias`` for the proposal
listed first and Gaussian ``noise`` per criterion; voters rank by quality plus ``vote_noise``;
critics report a ``major`` defect in rounds up to ``major_until_round``, only ``minor`` ones
after (so convergence can be scripted), and only ``minor`` ones for the proposals of
``minor_authors`` (so targeted revision can be scripted). Without a ``Truth``, critics always
find a major defect, so deliberations run all their rounds.

**The realistic setting** (any other parameter set; ``Truth.fitted_smollm2()`` is the one fitted
to SmolLM2-135M, see docs/SIMULATOR.md):

- every *text* has a hidden quality: a first proposal its author's ``quality`` plus a draw of
  ``task_noise`` per deliberation and agent; a revision its previous version's, plus
  ``revise_gain`` (with ``revise_improve``), minus ``revise_loss`` (``revise_break``), or the
  same; a revision may also drop content (``revise_drop``: a section left out, which council
  must refuse) or answer ``UNCHANGED`` (``revise_unchanged``);
- the model misperceives each text by a draw of ``perception_noise`` (per deliberation and
  text, the same for its judges and its voters);
- a judge scores ``5 + judge_skill * (perceived - 5)``, plus ``position_bias``, ``middle_bias``
  or ``last_bias`` by where the proposal is listed (none when it is shown alone), plus
  ``length_preference`` points per 1,000 characters, plus ``self_preference`` when this server
  (the judge's model) wrote the proposal, plus a shift drawn per judgement
  (``calibration_noise``, the same for every proposal it scores), an impression drawn per
  proposal and judgement (``impression_noise``, shared by every criterion) and ``noise`` per
  criterion;
- a voter senses ``vote_skill * perceived``, plus ``vote_first_bias``, ``vote_middle_bias`` or
  ``vote_last_bias``, ``vote_length_preference`` per 1,000 characters, ``vote_self_preference``
  times how similar the proposal is to the voter's own current proposal *as the voter senses
  both* (``vote_skill`` times each perceived quality: 1 alike, 0 five or more points apart; a
  voter never sees its own proposal, so this is how it prefers what resembles it, and a voter
  that senses no quality finds everything alike), and ``vote_noise``;
- a critic reports a severe defect when the proposal has one (quality below ``severe_below``)
  unless it misses it (``critic_miss``), and invents one on a proposal without
  (``critic_false``);
- prompt changes (either setting): ``marks`` adds points to the quality of a proposal written
  from a prompt (any of its messages) that contains a given word, or of a revision of such a
  proposal (an agent's revision keeps the words of its proposal), so a prompt set can be
  scripted to write better or worse proposals (``council compare``);
- pairwise judges (a structured answer with a ``preferred`` field, as ``council compare``
  asks): the proposal of higher quality (with ``position_bias`` for the one shown first, and
  ``noise``) is preferred, ``tie`` when the two are equal;
- every answer attempt of a stage is invalid with probability ``invalid[stage]`` (garbage text,
  or a structured answer that is not JSON), so council's retries and omissions run.

In the realistic setting every draw is keyed by the deliberation too (``X-Council-Deliberation``),
so deliberations that send the same prompts still draw independently; and what an attempt
*does* (``Truth.behaviour``) is keyed by who asks, the attempt's seed and what it is about, not
by the prompt's wording, so one deliberation behaves the same however its prompts were sized.

It finds the proposals in judge and vote prompts by council's layout (``## Proposal P1``
sections): the one place the simulator knows council's prompt format.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from council_agents.sim_vllm import content

Revision = Literal["unchanged", "drop", "break", "improve", "same"]
"""What a revision does: answers ``UNCHANGED``, drops content, gets worse, better, or neither."""


@dataclass
class Truth:
    """The hidden quality of each agent's work, and how the simulated agents and judges err."""

    quality: dict[str, float] = field(default_factory=dict)
    """Agent id -> true quality 0..10 (unknown agents: 5)."""
    position_bias: float = 0.0
    """Points judges add to the proposal listed first."""
    noise: float = 0.0
    """Standard deviation of a judge's score (each criterion drawn on its own)."""
    vote_noise: float = 0.0
    """Standard deviation of a voter's sense of quality."""
    major_until_round: int | None = None
    """Critiques report a major defect up to this round, only minor ones after (None: random,
    or by quality with ``severe_below``)."""
    marks: dict[str, float] = field(default_factory=dict)
    """Word -> quality points added to a proposal written from a prompt containing the word."""
    minor_authors: list[str] = field(default_factory=list)
    """Agents in whose proposals critics find only minor defects, whatever the round (the
    proposal under review is found by council's layout: ``content.under_review``)."""

    # --- the realistic setting: every default below keeps the scripts above ---
    task_noise: float = 0.0
    """SD of a first proposal's quality around its author's, drawn per deliberation."""
    perception_noise: float = 0.0
    """SD of the model's misperception of a text (per deliberation and text; judges and voters
    share it)."""
    judge_skill: float = 1.0
    """How much of a quality difference a judge's scores show (1: all of it, 0: none)."""
    middle_bias: float = 0.0
    """Points judges add to a proposal listed neither first nor last."""
    last_bias: float = 0.0
    """Points judges add to the proposal listed last (of two or more)."""
    length_preference: float = 0.0
    """Points judges add per 1,000 characters of a proposal."""
    self_preference: float = 0.0
    """Points judges add to a proposal this server (the judge's own model) wrote."""
    impression_noise: float = 0.0
    """SD of a judge's error per proposal and judgement, the same on every criterion."""
    calibration_noise: float = 0.0
    """SD of a judgement's shift of every score it gives (the same for all its proposals: it
    cancels between proposals judged together, not between proposals judged alone)."""
    vote_skill: float = 1.0
    """How much of a quality difference a voter senses."""
    vote_first_bias: float = 0.0
    """Points a voter's sense adds to the proposal listed first."""
    vote_middle_bias: float = 0.0
    """Points a voter's sense adds to a proposal listed neither first nor last."""
    vote_last_bias: float = 0.0
    """Points a voter's sense adds to the proposal listed last."""
    vote_length_preference: float = 0.0
    """Points a voter's sense adds per 1,000 characters."""
    vote_self_preference: float = 0.0
    """Points a voter's sense adds to a proposal as good as its own, as it senses both (less
    the further apart)."""
    revise_unchanged: float = 0.0
    """Chance a revision answers ``UNCHANGED``."""
    revise_drop: float = 0.0
    """Chance a revision drops content (a fixed section; council refuses it)."""
    revise_break: float = 0.0
    """Chance a revision makes the proposal worse by ``revise_loss``."""
    revise_improve: float = 0.0
    """Chance a revision makes it better by ``revise_gain``."""
    revise_gain: float = 1.0
    """Quality a revision that improves adds."""
    revise_loss: float = 2.0
    """Quality a revision that breaks takes away."""
    severe_below: float | None = None
    """A proposal of lower quality has a real severe defect (None: critics as scripted)."""
    critic_false: float = 0.0
    """Chance a critic reports a severe defect a proposal does not have."""
    critic_miss: float = 0.0
    """Chance a critic misses the severe defect a proposal has."""
    invalid: dict[str, float] = field(default_factory=dict)
    """Stage -> chance an answer attempt is invalid (garbage, or not JSON)."""
    seed: int = 0
    """Varies every draw of the realistic setting."""

    def marked(self, prompt: str) -> frozenset[str]:
        """The words of ``marks`` that ``prompt`` contains."""
        return frozenset(word for word in self.marks if word in prompt)

    def points(self, words: frozenset[str]) -> float:
        """The quality points ``marks`` gives a proposal written with ``words``."""
        return sum(self.marks.get(word, 0.0) for word in words)

    @property
    def realistic(self) -> bool:
        """Whether any parameter of the realistic setting differs from its default."""
        defaults = Truth()
        return any(getattr(self, name) != getattr(defaults, name) for name in REALISTIC)

    @classmethod
    def fitted_smollm2(cls, **changes: Any) -> Truth:
        """The realistic setting fitted to SmolLM2-135M-Instruct (``python -m
        bench.fit_smollm2``; docs/SIMULATOR.md says how each value was obtained), with
        ``changes`` applied. A homogeneous council: every agent of quality 5.
        """
        fitted = cls(**SMOLLM2)
        return dataclasses.replace(fitted, **changes)

    def draw(self, *parts: object) -> random.Random:
        """A generator fixed by ``parts`` and the seed."""
        key = "|".join(map(str, (self.seed, *parts))).encode()
        return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))

    def behaviour(
        self, who: Mapping[str, Any], stage: str, seed: int | None, prompt: str, authors: Authors
    ) -> random.Random:
        """The generator of one attempt's behaviour (what a revision does, whether a critic
        flags, a judge's and a voter's errors, an invalid answer): keyed by who asks (the
        deliberation, the agent, the stage, the round), the attempt's seed and what it is
        about (the author under critique, the authors shown to a judge or voter, in order),
        not by the prompt's wording, so the same deliberation behaves the same however its
        prompts were sized.
        """
        if stage == "critique":
            under = content.under_review(prompt) or ""
            subject = authors.by_text.get(under) or _digest(under)
        elif stage in ("judge", "vote"):
            subject = ",".join(author or _digest(text) for _, author, text in authors.shown(prompt))
        else:
            subject = ""
        return self.draw(
            "behave",
            who.get("deliberation"),
            who.get("agent"),
            stage,
            who.get("round"),
            seed,
            subject,
        )

    def first_quality(self, deliberation: str | None, agent: str | None) -> float:
        """The hidden quality of ``agent``'s first proposal in ``deliberation``."""
        base = self.quality.get(agent or "", 5.0)
        if not self.task_noise:
            return base
        return base + self.draw("task", deliberation, agent).gauss(0, self.task_noise)

    def perceived(self, deliberation: str | None, text: str, quality: float) -> float:
        """The quality this server's model perceives in ``text``."""
        if not self.perception_noise:
            return quality
        seen = self.draw("seen", deliberation, _digest(text))
        return quality + seen.gauss(0, self.perception_noise)

    def revision(self, rng: random.Random) -> Revision:
        """What one revision attempt does."""
        u = rng.random()
        for kind, p in (
            ("unchanged", self.revise_unchanged),
            ("drop", self.revise_drop),
            ("break", self.revise_break),
            ("improve", self.revise_improve),
        ):
            if u < p:
                return kind  # type: ignore[return-value]
            u -= p
        return "same"

    def revised_quality(self, before: float, kind: Revision) -> float:
        """A revision's quality, from its previous version's."""
        if kind == "break":
            return before - self.revise_loss
        if kind == "improve":
            return before + self.revise_gain
        return before

    def invalid_now(self, stage: str, rng: random.Random) -> bool:
        """Whether this answer attempt of ``stage`` is invalid."""
        p = self.invalid.get(stage, 0.0)
        return p > 0 and rng.random() < p


def _digest(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()[:16]


_SCRIPTED = (
    "quality",
    "position_bias",
    "noise",
    "vote_noise",
    "major_until_round",
    "marks",
    "minor_authors",
)
REALISTIC = tuple(f.name for f in dataclasses.fields(Truth) if f.name not in (*_SCRIPTED, "seed"))
"""The parameters of the realistic setting (all but the scripts' six, and the seed)."""

SMOLLM2: dict[str, Any] = {
    # `python -m bench.fit_smollm2` prints every fitted value and how it was obtained (the eval
    # records in docs/eval/smollm2-*, the probes in docs/eval/smollm2-probe); docs/SIMULATOR.md
    # explains each. tests/unit/test_sim_truth.py checks them against the fit. Assumed values
    # (nothing here can measure them) are marked.
    "task_noise": 1.5,  # assumed: no record compares one model's plans
    "perception_noise": 0.0,  # undetermined: the judge shows no quality to misperceive
    "judge_skill": 0.003,
    "position_bias": 0.04,
    "middle_bias": -0.1,
    "last_bias": 0.06,
    "length_preference": -0.71,
    "self_preference": 0.5,  # assumed (one model here); no effect when every agent shares it
    "impression_noise": 0.6,
    "calibration_noise": 1.95,
    "vote_skill": 0.0,
    "vote_noise": 1.0,  # the unit of a voter's sense
    "vote_first_bias": 0.74,
    "vote_self_preference": 0.5,  # assumed; no effect while vote_skill is 0
    "revise_unchanged": 0.0,
    "revise_drop": 0.706,
    "revise_break": 0.294,
    "revise_improve": 0.0,
    "revise_loss": 2.0,  # assumed: what a worse plan loses
    "severe_below": 5.0,  # assumed: half the proposals have a real severe defect
    "critic_false": 1.0,
    "critic_miss": 0.0,
    "invalid": {"propose": 0.047, "critique": 0.0, "revise": 0.0, "judge": 0.0, "vote": 0.0},
}
"""``Truth.fitted_smollm2()``'s parameters (the rest keep their defaults)."""


class Authors:
    """Which agent wrote which text (the simulator's own proposals), and each text's quality."""

    def __init__(self) -> None:
        """No text known yet."""
        self.by_text: dict[str, str] = {}
        self.quality: dict[str, float] = {}
        """Text -> hidden quality (the realistic setting)."""
        self.latest: dict[tuple[str | None, str], str] = {}
        """(deliberation, agent) -> the agent's current proposal."""
        self.words: dict[str, frozenset[str]] = {}
        """Text -> the truth's ``marks`` words of the prompt it was written from."""

    def remember(
        self,
        agent: str | None,
        text: str,
        quality: float | None = None,
        deliberation: str | None = None,
        words: frozenset[str] = frozenset(),
    ) -> None:
        """Record that ``agent`` wrote ``text`` (of ``quality``, when known) in
        ``deliberation``, from a prompt with the ``marks`` words ``words``.
        """
        if agent:
            key = text.strip()
            self.by_text[key] = agent
            self.latest[(deliberation, agent)] = key
            self.words[key] = words
            if quality is not None:
                self.quality[key] = quality

    def inherited(self, deliberation: str | None, agent: str | None) -> frozenset[str]:
        """The ``marks`` words of ``agent``'s current proposal in ``deliberation``."""
        latest = self.latest.get((deliberation, agent or ""))
        return self.words.get(latest, frozenset()) if latest is not None else frozenset()

    def labelled(self, prompt: str) -> list[tuple[str, str | None]]:
        """``(label, author)`` for each proposal section of a judge or vote prompt, in order."""
        return [
            (label, self.by_text.get(text.strip()))
            for label, text in content.proposal_sections(prompt)
        ]

    def shown(self, prompt: str) -> list[tuple[str, str | None, str]]:
        """``(label, author, text)`` for each proposal section of a judge or vote prompt."""
        return [
            (label, self.by_text.get(text.strip()), text.strip())
            for label, text in content.proposal_sections(prompt)
        ]

    def base_quality(self, text: str, truth: Truth, agent: str | None = None) -> float:
        """The hidden quality of ``text`` (else its author's, else 5), before ``marks``."""
        key = text.strip()
        if key in self.quality:
            return self.quality[key]
        return truth.quality.get(agent or self.by_text.get(key) or "", 5.0)

    def quality_of(self, text: str, truth: Truth, agent: str | None = None) -> float:
        """The hidden quality of ``text``: its base quality plus the points of its ``marks``."""
        return self.base_quality(text, truth, agent) + truth.points(
            self.words.get(text.strip(), frozenset())
        )


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
        who: Who asks: ``agent``, ``round`` and ``deliberation`` are read.
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
        authors.remember(agent, doc["proposal"], deliberation=deliberation, words=words)
    if truth is None:
        if stage == "critique":  # a first look always finds something: every round runs
            truth = Truth(major_until_round=10**6)
        else:
            return doc
    realistic = truth.realistic
    qualities = [
        (label, authors.quality_of(text, truth, author))
        for label, author, text in authors.shown(prompt)
    ]
    if stage == "judge" and "preferred" in doc:
        _prefer(doc, qualities, rng, truth)
    elif stage == "judge":
        if realistic:
            _judge(doc, prompt, who, rng, truth, authors)
        else:
            _score(doc, qualities, rng, truth)
    elif stage == "vote" and isinstance(doc.get("ranking"), list):
        if realistic:
            _vote(doc, prompt, who, rng, truth, authors)
        else:
            _rank(doc, qualities, rng, truth)
    elif stage == "critique" and truth.major_until_round is not None:
        author = authors.by_text.get((content.under_review(prompt) or "").strip())
        severe = int(who.get("round") or 0) <= truth.major_until_round
        _grade_defects(doc, severe and author not in truth.minor_authors)
    elif stage == "critique" and truth.severe_below is not None:
        under = content.under_review(prompt)
        quality = authors.quality_of(under or "", truth)
        real = quality < truth.severe_below
        found = rng.random() >= truth.critic_miss if real else rng.random() < truth.critic_false
        _grade_defects(doc, found)
    return doc


def _score(
    doc: dict[str, Any], shown: list[tuple[str, float]], rng: random.Random, truth: Truth
) -> None:
    """A judgement's scores: the text's quality, the first position's bias, the judge's noise."""
    for position, (label, true) in enumerate(shown):
        scored = doc.get(label)
        if not isinstance(scored, dict) or not isinstance(scored.get("scores"), dict):
            continue
        bias = truth.position_bias if position == 0 else 0.0
        scored["scores"] = {
            k: _clamp(true + bias + rng.gauss(0, truth.noise)) for k in scored["scores"]
        }


def _place(position: int, count: int, first: float, middle: float, last: float) -> float:
    """The bonus of a place in a list of ``count`` (none for a proposal shown alone)."""
    if count < 2:
        return 0.0
    return first if position == 0 else last if position == count - 1 else middle


def _judge(
    doc: dict[str, Any],
    prompt: str,
    who: Mapping[str, Any],
    rng: random.Random,
    truth: Truth,
    authors: Authors,
) -> None:
    """A judgement's scores in the realistic setting (the module doc's formula)."""
    shown = authors.shown(prompt)
    deliberation = who.get("deliberation")
    shift = rng.gauss(0, truth.calibration_noise) if truth.calibration_noise else 0.0
    for position, (label, author, text) in enumerate(shown):
        scored = doc.get(label)
        if not isinstance(scored, dict) or not isinstance(scored.get("scores"), dict):
            continue
        seen = truth.perceived(deliberation, text, authors.quality_of(text, truth, author))
        score = 5.0 + truth.judge_skill * (seen - 5.0) + shift
        score += _place(
            position, len(shown), truth.position_bias, truth.middle_bias, truth.last_bias
        )
        score += truth.length_preference * len(text) / 1000
        score += truth.self_preference if author is not None else 0.0
        score += rng.gauss(0, truth.impression_noise) if truth.impression_noise else 0.0
        scored["scores"] = {
            k: _clamp(score + (rng.gauss(0, truth.noise) if truth.noise else 0.0))
            for k in scored["scores"]
        }


def similarity(a: float, b: float) -> float:
    """How alike two qualities are: 1 equal, 0 five or more points apart."""
    return max(0.0, 1.0 - abs(a - b) / 5.0)


def _vote(
    doc: dict[str, Any],
    prompt: str,
    who: Mapping[str, Any],
    rng: random.Random,
    truth: Truth,
    authors: Authors,
) -> None:
    """A ballot in the realistic setting (the module doc's formula)."""
    shown = authors.shown(prompt)
    deliberation = who.get("deliberation")
    own_text = authors.latest.get((deliberation, who.get("agent") or ""))
    own = (
        truth.perceived(deliberation, own_text, authors.quality_of(own_text, truth))
        if own_text is not None
        else None
    )
    sense: dict[str, float] = {}
    for position, (label, author, text) in enumerate(shown):
        seen = truth.perceived(deliberation, text, authors.quality_of(text, truth, author))
        value = truth.vote_skill * seen
        value += _place(
            position,
            len(shown),
            truth.vote_first_bias,
            truth.vote_middle_bias,
            truth.vote_last_bias,
        )
        value += truth.vote_length_preference * len(text) / 1000
        if own is not None:
            alike = similarity(truth.vote_skill * own, truth.vote_skill * seen)
            value += truth.vote_self_preference * alike
        sense[label] = value + (rng.gauss(0, truth.vote_noise) if truth.vote_noise else 0.0)
    doc["ranking"] = sorted(doc["ranking"], key=lambda label: -sense.get(label, 0.0))


def _rank(
    doc: dict[str, Any], shown: list[tuple[str, float]], rng: random.Random, truth: Truth
) -> None:
    """A ballot's ranking: by the texts' quality as a noisy voter senses it."""
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
