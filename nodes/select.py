"""select: one aggregation decides the winner, and the justification is about that winner.

No LLM call here: the judgements and the peer ballots are in the state.

- **The judges' signal**: each proposal's weighted mean score over every judgement that
  assessed it (the council's presentation scheme shows each proposal in each position equally
  often, or alone). The judges *agree* when every judgement that compared proposals put the
  same one first (None with fewer than two such judgements).
- **The vote's signal**: head-to-head majorities among neutral voters (Copeland: a pair counts
  only the voters who wrote neither proposal, since nobody votes on their own), then Borda
  points to break a Copeland tie. With two agents nobody is neutral: the vote cannot decide.
- **The aggregation**: ``judge``: the judges' signal; ``vote``: the vote's; ``judge+vote``
  (default): the judges' when they agree (or judged each proposal alone), else the vote's.
  Whatever signal decides, a tie falls to the other signal, then to the lower agent id; when
  that happens ``decided_by`` is ``tiebreak`` and the justification says so. With
  ``judge+vote`` the ballots come first; when they are unanimous the judges are not asked and
  the vote decides (``judges_skipped`` says why; so it does when the grounded checks single
  out one draft). With neither a
  judgement nor a ballot the deliberation fails (``AnswerRejected``). See docs/DECISIONS.md.
- **Grounding** (``nodes.ground``): when the agreement gate decided, the agreeing group's first
  agent (by id) wins, ``decided_by`` ``agreement``, ``stop_reason`` ``agreed`` (no judgement or
  ballot was asked for); when the checks left one draft passing, it wins (``checks``); else a
  draft that failed a hard check is ranked below every draft that passed, so it cannot win while
  one passes. The decision records the failed checks and the claims dropped for quoting text
  that is not there.
"""

from __future__ import annotations

from itertools import combinations

from council_agents.core.errors import AnswerRejected
from council_agents.core.progress import latest_drafts, stop_reason
from council_agents.core.state import (
    CouncilState,
    Decision,
    DecisionUpdate,
    Judgement,
    RankEntry,
)
from council_agents.core.terms import DecidedBy
from council_agents.nodes.ground import agreed, failed_checks, singled_out
from council_agents.nodes.judge import weighted_total
from council_agents.nodes.vote import borda, copeland, unanimous


def mean_scores(judgements: list[Judgement], agent_id: str) -> dict[str, float]:
    """A proposal's score per criterion, averaged over the judgements that assessed it."""
    mine = [
        j["assessments"][agent_id]["scores"] for j in judgements if agent_id in j["assessments"]
    ]
    if not mine:
        return {}
    return {c: round(sum(s[c] for s in mine) / len(mine), 3) for c in mine[0]}


def kendall_tau(a: dict[str, float], b: dict[str, float]) -> float:
    """Kendall's tau-a between two score maps over the agents both have (1: same order)."""
    ids = sorted(set(a) & set(b))
    pairs = [(x, y) for i, x in enumerate(ids) for y in ids[i + 1 :]]
    if not pairs:
        return 1.0
    concordant = sum((a[x] - a[y]) * (b[x] - b[y]) > 0 for x, y in pairs)
    discordant = sum((a[x] - a[y]) * (b[x] - b[y]) < 0 for x, y in pairs)
    return round((concordant - discordant) / len(pairs), 3)


def _leaders(values: dict[str, float]) -> list[str]:
    best = max(values.values())
    return sorted(a for a, v in values.items() if v == best)


def ranked(ids: list[str], *keys: dict[str, float]) -> list[str]:
    """``ids`` best first by ``keys`` in turn, then by id."""
    return sorted(ids, key=lambda a: (*(-k.get(a, 0.0) for k in keys), a))


def skipped_because(state: CouncilState) -> str | None:
    """Why the judges were not asked: with ``judge+vote`` the ballots come first, and when their
    first choices are unanimous (``nodes.vote.unanimous``) the judges are skipped (None: they
    were asked, or the council decides otherwise).
    """
    if state["council"]["aggregator"] != "judge+vote" or state.get("judgements"):
        return None
    winner = unanimous(state.get("ballots", []), sorted(latest_drafts(state)))
    if winner is None:
        return None
    return f"the ballots were unanimous: every voter who could put {winner} first did"


def decide(state: CouncilState) -> Decision:
    """The winner, the ranking and the story of how they were decided, with what the grounded
    checks found.
    """
    group = agreed(state)
    decision = _by_agreement(state, group) if group else _aggregated(state)
    failed = failed_checks(state)
    if failed:
        decision["failed_checks"] = failed
    dropped = sum(c.get("dropped", 0) for c in state.get("critiques", []))
    dropped += sum(j.get("dropped", 0) for j in state.get("judgements", []))
    if dropped or any("dropped" in c for c in state.get("critiques", [])):
        decision["dropped_claims"] = dropped
    return decision


def _by_agreement(state: CouncilState, group: list[str]) -> Decision:
    """The agreement gate's decision: the agreeing group's first agent, by id."""
    ids = sorted(latest_drafts(state))
    order = group + [a for a in ids if a not in group]
    winner = order[0]
    ranking = [
        RankEntry(rank=place, agent_id=a, scores={}, total=0.0, borda=0, rationale="")
        for place, a in enumerate(order, 1)
    ]
    share = f"{len(group)} of {len(ids)}"
    verified = any(e.get("verified") for e in state.get("evidence", []) if e["agent_id"] == winner)
    why = (
        f"{winner} was chosen by the checks: its outputs match every result the task states "
        f"for its examples (run in the sandbox; {share} drafts return those outputs), so no "
        f"critique or judge was asked; {winner} is the first of them."
        if verified
        else f"{winner} was chosen by agreement: {share} drafts return the same outputs on the "
        "task's examples (run in the sandbox), which meets the council's gate, so no "
        f"critique or judge was asked; {winner} is the first of them."
    )
    return Decision(
        winner=winner,
        justification=why,
        ranking=ranking,
        aggregator=state["council"]["aggregator"],
        decided_by="agreement",
        judges_agree=None,
        rank_agreement=None,
        vote_winner=None,
        stop_reason="agreed",
    )


def _aggregated(state: CouncilState) -> Decision:
    """The aggregation of the judgements and the ballots, grounded: a draft that failed a hard
    check ranks below every draft that passed.
    """
    council = state["council"]
    ids = sorted(latest_drafts(state))
    judgements = state.get("judgements", [])
    ballots = state.get("ballots", [])
    only = singled_out(state)
    if only is not None and not judgements:
        return _by_checks(state, only)
    if not judgements and not ballots:
        raise AnswerRejected(
            "select", "-", "no judgement and no ballot was accepted: nothing to decide by"
        )
    skipped = skipped_because(state)
    points = borda(ballots, ids)
    wins = copeland(ballots, ids)
    scores = {a: mean_scores(judgements, a) for a in ids}
    totals = {a: weighted_total(scores[a], council["rubric"]) if scores[a] else 0.0 for a in ids}
    compared = [j for j in judgements if len(j["order"]) > 1]
    firsts = {ranked(list(j["totals"]), j["totals"])[0] for j in compared}
    agree = len(firsts) == 1 if len(compared) > 1 else None
    vote_key = [{a: float(v) for a, v in wins.items()}, {a: float(v) for a, v in points.items()}]
    by_vote = bool(ballots) and (
        council["aggregator"] == "vote"
        or not judgements
        or (council["aggregator"] == "judge+vote" and agree is False)
    )
    if by_vote:
        order = ranked(ids, *vote_key, totals)
        decided_by: DecidedBy = (
            "vote" if len(_leaders(wins)) == 1 or _unique(points, _leaders(wins)) else "tiebreak"
        )
    else:
        order = ranked(ids, totals, *vote_key)
        decided_by = "judges" if len(_leaders(totals)) == 1 else "tiebreak"
    failed = failed_checks(state)
    grounded = [a for a in order if a not in failed] + [a for a in order if a in failed]
    demoted = grounded[0] != order[0]
    order = grounded
    winner = order[0]
    ranking = [
        RankEntry(
            rank=place,
            agent_id=a,
            scores=scores[a],
            total=totals[a],
            borda=points[a],
            rationale=" / ".join(
                j["assessments"][a]["verdict"] for j in judgements if a in j["assessments"]
            ),
        )
        for place, a in enumerate(order, 1)
    ]
    why = justify(state, ranking, by_vote, decided_by, agree, wins, skipped)
    if demoted:
        why = (
            f"{winner} ranks first among the drafts that pass the grounded checks; the drafts "
            f"that fail one ({', '.join(a for a in order if a in failed)}) cannot win while one "
            "passes. " + why
        )
    return Decision(
        winner=winner,
        justification=why,
        ranking=ranking,
        aggregator=council["aggregator"],
        decided_by=decided_by,
        judges_agree=agree,
        rank_agreement=_rank_agreement(compared),
        vote_winner=ranked(ids, *vote_key)[0] if ballots else None,
        stop_reason=stop_reason(state),
        judges_skipped=skipped,
    )


def _by_checks(state: CouncilState, only: str) -> Decision:
    """The grounded checks' decision: the one draft that passes them wins (the judges were not
    asked; the ballots, if any, are recorded).
    """
    ids = sorted(latest_drafts(state))
    ballots = state.get("ballots", [])
    points = borda(ballots, ids)
    wins = copeland(ballots, ids)
    vote_key = [{a: float(v) for a, v in wins.items()}, {a: float(v) for a, v in points.items()}]
    order = [only] + [a for a in ranked(ids, *vote_key) if a != only]
    ranking = [
        RankEntry(rank=place, agent_id=a, scores={}, total=0.0, borda=points[a], rationale="")
        for place, a in enumerate(order, 1)
    ]
    return Decision(
        winner=only,
        justification=(
            f"{only} was chosen by the grounded checks: its draft is the only one that passes "
            "them (every other fails a hard check: see failed_checks), so no judge was asked."
        ),
        ranking=ranking,
        aggregator=state["council"]["aggregator"],
        decided_by="checks",
        judges_agree=None,
        rank_agreement=None,
        vote_winner=ranked(ids, *vote_key)[0] if ballots else None,
        stop_reason=stop_reason(state),
        judges_skipped=None
        if state["council"]["aggregator"] == "vote"
        else f"the grounded checks left one draft passing ({only})",
    )


def _unique(points: dict[str, int], among: list[str]) -> bool:
    """Whether Borda points separate the first of ``among`` from the others."""
    best = max(points[a] for a in among)
    return sum(points[a] == best for a in among) == 1


def _rank_agreement(compared: list[Judgement]) -> float | None:
    """Mean Kendall tau over pairs of judgements that compared proposals (None: fewer than 2)."""
    taus = [kendall_tau(a["totals"], b["totals"]) for a, b in combinations(compared, 2)]
    return round(sum(taus) / len(taus), 3) if taus else None


def justify(
    state: CouncilState,
    ranking: list[RankEntry],
    by_vote: bool,
    decided_by: DecidedBy,
    agree: bool | None,
    wins: dict[str, float],
    skipped: str | None = None,
) -> str:
    """Why the winner won, from the numbers that decided it and the judges' own evidence on the
    winner; never a judge's words about another proposal.
    """
    win, second = ranking[0], (ranking[1] if len(ranking) > 1 else ranking[0])
    name, other = win["agent_id"], second["agent_id"]
    judgements = state.get("judgements", [])
    agents = len(ranking)
    if by_vote:
        why = (
            "the council decides by vote"
            if state["council"]["aggregator"] == "vote"
            else "the judgements put different proposals first"
            if judgements
            else skipped or _no_judges(state)
        )
        if agents == 2:
            broke = (
                f"judged {win['total']:.2f} of 10 against {second['total']:.2f}"
                if judgements
                else "the lower agent id"
            )
            how = (
                f"{name} was chosen because {why}, and a vote between two agents cannot decide "
                f"(each votes only on the other): the tie-break chose it ({broke})."
            )
        elif decided_by == "tiebreak":
            how = (
                f"{name} was chosen because {why}; the vote tied (head-to-head wins "
                f"{wins[name]:g} against {wins[other]:g}, Borda {win['borda']} against "
                f"{second['borda']}), and the tie-break chose it "
                f"({'by judged score' if judgements else 'by the lower agent id'})."
            )
        else:
            how = (
                f"{name} won the peer vote, which decided because {why}: head-to-head majorities "
                f"among the peers who wrote neither proposal ({wins[name]:g} against "
                f"{wins[other]:g} for {other}), then Borda points ({win['borda']} against "
                f"{second['borda']})"
                + (f"; judged {win['total']:.2f} of 10." if judgements else ".")
            )
    elif decided_by == "tiebreak":
        how = (
            f"{name} was chosen by the tie-break: the judges scored it {win['total']:.2f} of 10, "
            f"the same as {other}, and the vote put it ahead."
        )
    else:
        agreement = {True: "they agree on the winner", False: "averaged", None: "averaged"}[agree]
        how = (
            f"{name} has the best weighted mean score, {win['total']:.2f} of 10 against "
            f"{second['total']:.2f} for {other}, over {len(judgements)} judgement(s) "
            f"({agreement})."
        )
    evidence = []
    for j in judgements:
        if name not in j["assessments"]:
            continue
        a = j["assessments"][name]
        strengths = "; ".join(x.strip().rstrip(".") for x in a["strengths"][:3])
        verdict = a["verdict"].strip().rstrip(".")
        evidence.append(f"{verdict}." + (f" Strengths: {strengths}." if strengths else ""))
    return how + ("" if not evidence else " Judges on " + name + ": " + " | ".join(evidence))


def _no_judges(state: CouncilState) -> str:
    rejected = [o for o in state.get("omissions", []) if o["stage"] == "judge"]
    if rejected:
        return "every judgement was rejected"
    return "the judges no longer fit the token budget"


async def select(state: CouncilState) -> DecisionUpdate:
    """The decision."""
    return DecisionUpdate(decision=decide(state))
