"""select: one aggregation decides the winner, and the justification is about that winner.

No LLM call here: the judgements (two, in opposite orders) and the peer ballots are in the
state. ``judge``: the best weighted mean score over both judgements. ``vote``: the Borda
winner. ``judge+vote`` (default): the judges' winner when both judgements put the same proposal
first; when they disagree, the peer vote decides (head-to-head majorities among the peers who
wrote neither proposal, then Borda). Ties fall to the other signal, then to the lower agent id,
so the outcome is deterministic. See docs/DECISIONS.md.
"""

from __future__ import annotations

from council_agents.core.progress import latest_drafts, stop_reason
from council_agents.core.state import (
    CouncilState,
    Decision,
    DecisionUpdate,
    Judgement,
    RankEntry,
)
from council_agents.core.terms import DecidedBy
from council_agents.nodes.judge import weighted_total
from council_agents.nodes.vote import borda, copeland


def mean_scores(judgements: list[Judgement], agent_id: str) -> dict[str, float]:
    """A proposal's score per criterion, averaged over the judgements."""
    if not judgements:
        return {}
    criteria = judgements[0]["assessments"][agent_id]["scores"]
    return {
        c: round(
            sum(j["assessments"][agent_id]["scores"][c] for j in judgements) / len(judgements), 3
        )
        for c in criteria
    }


def kendall_tau(a: dict[str, float], b: dict[str, float]) -> float:
    """Kendall's tau-a between two score maps over the same agents (1: same order)."""
    ids = sorted(a)
    pairs = [(x, y) for i, x in enumerate(ids) for y in ids[i + 1 :]]
    if not pairs:
        return 1.0
    concordant = sum((a[x] - a[y]) * (b[x] - b[y]) > 0 for x, y in pairs)
    discordant = sum((a[x] - a[y]) * (b[x] - b[y]) < 0 for x, y in pairs)
    return round((concordant - discordant) / len(pairs), 3)


def _top(totals: dict[str, float], tie: dict[str, int]) -> str:
    return min(totals, key=lambda a: (-totals[a], -tie.get(a, 0), a))


def decide(state: CouncilState) -> Decision:
    """The winner, the ranking and the story of how they were decided."""
    council = state["council"]
    ids = sorted(latest_drafts(state))
    judgements = state.get("judgements", [])
    ballots = state.get("ballots", [])
    points = borda(ballots, ids)
    wins = copeland(ballots, ids)
    scores = {a: mean_scores(judgements, a) for a in ids}
    totals = {a: weighted_total(scores[a], council["rubric"]) if judgements else 0.0 for a in ids}
    vote_winner = _top(
        {a: float(points[a]) for a in ids}, {a: round(totals[a] * 1000) for a in ids}
    )
    firsts = [_top(j["totals"], points) for j in judgements]
    agree = len(set(firsts)) == 1 if judgements else None
    aggregator = council["aggregator"]
    decided_by: DecidedBy
    if aggregator == "vote" or not judgements:
        winner, decided_by = vote_winner, "vote"
    elif aggregator == "judge" or agree:
        winner, decided_by = _top(totals, points), "judges"
    else:  # the two orders disagree: position swayed the judge, so the peer vote decides
        winner, decided_by = vote_winner, "vote"
    by_vote = decided_by == "vote"
    rest = sorted(
        (a for a in ids if a != winner),
        key=lambda a: (
            (-wins[a], -points[a], -totals[a]) if by_vote else (-totals[a], -points[a], 0),
            a,
        ),
    )
    ranking = [
        RankEntry(
            rank=place,
            agent_id=a,
            scores=scores[a],
            total=totals[a],
            borda=points[a],
            rationale=" / ".join(j["assessments"][a]["verdict"] for j in judgements),
        )
        for place, a in enumerate([winner, *rest], 1)
    ]
    tau = (
        kendall_tau(judgements[0]["totals"], judgements[1]["totals"])
        if len(judgements) == 2
        else None
    )
    return Decision(
        winner=winner,
        justification=justify(ranking, decided_by, judgements, agree, points),
        ranking=ranking,
        aggregator=aggregator,
        decided_by=decided_by,
        judges_agree=agree,
        rank_agreement=tau,
        vote_winner=vote_winner,
        stop_reason=stop_reason(state),
    )


def justify(
    ranking: list[RankEntry],
    decided_by: DecidedBy,
    judgements: list[Judgement],
    agree: bool | None,
    points: dict[str, int],
) -> str:
    """Why the winner won, from the numbers that decided it and the judges' own evidence on
    the winner; never a judge's words about another proposal.
    """
    win, second = ranking[0], (ranking[1] if len(ranking) > 1 else ranking[0])
    name = win["agent_id"]
    if decided_by == "judges":
        how = (
            f"{name} has the best weighted mean score, {win['total']:.2f} of 10 against "
            f"{second['total']:.2f} for {second['agent_id']}, over two judgements in "
            f"opposite orders ({'they agree' if agree else 'averaged'})."
        )
    elif judgements:
        how = (
            f"{name} won the peer vote, which decided because the two judgements put different "
            f"proposals first (head-to-head majorities among the peers who wrote neither "
            f"proposal, then Borda points: {win['borda']} against {second['borda']} for "
            f"{second['agent_id']}; judged {win['total']:.2f} of 10)."
        )
    else:
        how = (
            f"{name} won the peer vote (head-to-head majorities among the peers who wrote "
            f"neither proposal, then Borda points: {win['borda']} against {second['borda']} "
            f"for {second['agent_id']})."
        )
    evidence = []
    for j in judgements:
        a = j["assessments"][name]
        strengths = "; ".join(x.strip().rstrip(".") for x in a["strengths"][:3])
        verdict = a["verdict"].strip().rstrip(".")
        evidence.append(f"{verdict}." + (f" Strengths: {strengths}." if strengths else ""))
    return how + ("" if not evidence else " Judges on " + name + ": " + " | ".join(evidence))


async def select(state: CouncilState) -> DecisionUpdate:
    """The decision."""
    return DecisionUpdate(decision=decide(state))
