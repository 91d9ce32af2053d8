"""The quotes checker (``checks.quotes``), and where it applies: a critique's defects and a
judge's claims that quote text the proposal does not have are dropped and counted, in the
decision and in the completed event."""

from __future__ import annotations

import pytest

from council_agents.checks import quotes
from council_agents.core.state import Brief, CritiqueTask
from council_agents.nodes.critique import CritiqueAnswer, DefectAnswer, grounded
from council_agents.nodes.publish import build_completed
from council_agents.nodes.select import decide
from tests.helpers import council

PROPOSAL = """## Steps
1. **Add** a `token bucket` per API key, refilled at 100 requests per minute.
2. Return HTTP 429 with a Retry-After header when the bucket is empty.
"""


@pytest.mark.parametrize(
    "claim,missing",
    [
        ('Steps: "Return HTTP 429 with a Retry-After header"', []),
        ("Steps: “a token bucket per api key”", []),  # curly quotes, markdown and case ignored
        ('Steps: "add a token bucket per   API key, refilled"', []),  # markdown punctuation
        ('Steps: "Return HTTP 429 ... Retry-After header"', []),  # an elided quote
        ('Steps: "drop every request over the limit"', ["drop every request over the limit"]),
        ('Steps: "use Redis"', []),  # too short to check
        ("Steps, the second item", []),  # no quote: nothing to check
    ],
)
def test_a_quote_must_occur_in_the_proposal(claim, missing):
    assert quotes.missing(claim, PROPOSAL) == missing


def test_grounded_keeps_the_claims_that_quote_the_proposal_and_counts_the_rest():
    claims = ['"refilled at 100 requests per minute" is right', 'it says "retry forever on 503"']
    assert quotes.grounded(claims, PROPOSAL) == (claims[:1], 1)


def _task(checkers: list[str]) -> CritiqueTask:
    c = council("QA", 3, 1)
    brief = Brief(role="QA", rubric=c["rubric"], constraints="", checkers=checkers)  # type: ignore[typeddict-item]
    return CritiqueTask(
        deliberation_id="d",
        task="t",
        council=brief,
        agent=c["agents"][0],
        round=1,
        max_tokens=100,
        token_cap=None,
        author=c["agents"][1]["agent_id"],
        proposal=PROPOSAL,
    )


ANSWER = CritiqueAnswer(
    defects=[
        DefectAnswer(
            severity="blocker",
            where='Steps: "delete the production database nightly"',
            what="destroys data",
            fix="do not",
        ),
        DefectAnswer(
            severity="minor",
            where='Steps: "Return HTTP 429 with a Retry-After header"',
            what="say how long",
            fix="seconds",
        ),
    ],
    violations=[],
    summary="s",
)


def test_a_critique_quoting_text_not_in_the_proposal_is_dropped_and_counted():
    written = grounded(_task(["plan", "quotes"]), ANSWER)
    assert [d["severity"] for d in written["defects"]] == ["minor"]
    assert written["dropped"] == 1
    # without the quotes checker the critique stands as written
    assert len(grounded(_task(["plan"]), ANSWER)["defects"]) == 2


def test_the_count_reaches_the_decision_and_the_completed_event():
    c = council("QA", 3, 0)
    ids = [a["agent_id"] for a in c["agents"]]
    critique = {**grounded(_task(["quotes"]), ANSWER), "critic": ids[0], "author": ids[1]}
    state = {
        "deliberation_id": "d",
        "task": "t",
        "council": c,
        "started_at": 0.0,
        "drafts": [{"agent_id": a, "version": 0, "content": PROPOSAL} for a in ids],
        "critiques": [critique],
        "ballots": [
            {"voter": v, "ranking": [a for a in ids if a != v], "reason": "r"} for v in ids
        ],
        "judgements": [],
    }
    decision = decide(state)  # type: ignore[arg-type]
    assert decision["dropped_claims"] == 1
    event = build_completed({**state, "decision": decision})  # type: ignore[typeddict-item]
    assert event.schema_version == "1.3"
    assert event.decision is not None and event.decision.dropped_claims == 1
    assert event.proposals[1].critiques_received[0].dropped == 1
