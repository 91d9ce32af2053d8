"""bench/parallel.py --stage-barrier: the two critical paths it compares, from task spans."""

from __future__ import annotations

import pytest

from bench.parallel import dependency_path, stage_barrier_path


def span(node: str, seconds: float, agent: str = "", **inp: object) -> dict:
    return {"node": node, "t0": 0.0, "t1": seconds, "input": {"agent": {"agent_id": agent}, **inp}}


# a's proposal is slow (5 s), b's quick (1 s); each critique takes 1 s, each revision 2 s
ROUND = [
    span("propose", 5, "a", round=0),
    span("propose", 1, "b", round=0),
    span("critique", 1, "b", round=1, author="a"),
    span("critique", 1, "a", round=1, author="b"),
    span("revise", 2, "a", round=1),
    span("revise", 2, "b", round=1),
    span("judge", 3, "j", round=1, order=["a", "b"]),
    span("vote", 1, "a", round=1, order=["b"]),
    span("vote", 1, "b", round=1, order=["a"]),
]


def test_the_stage_barrier_path_waits_for_each_stages_slowest_task():
    # propose 5 + critique 1 + revise 2 + (judges and voters together) 3
    assert stage_barrier_path(ROUND) == pytest.approx(11)


def test_the_dependency_path_lets_each_chain_go_on_alone():
    # b's chain is ready at 1 + 1 + 2 = 4, a's at 5 + 1 + 2 = 8; the judge reads both: 8 + 3
    assert dependency_path(ROUND) == pytest.approx(11)
    quick_judge = [*ROUND[:6], span("judge", 0.5, "j", round=1, order=["a", "b"]), *ROUND[7:]]
    # b votes on a (ready at 8): 9; a votes on b (ready at 4): 5; the judge: 8.5
    assert dependency_path(quick_judge) == pytest.approx(9)
    assert stage_barrier_path(quick_judge) == pytest.approx(9)


def test_a_second_round_critiques_the_first_revision():
    second = [
        span("critique", 1, "b", round=2, author="a"),
        span("critique", 4, "a", round=2, author="b"),
        span("revise", 2, "a", round=2),
        span("revise", 2, "b", round=2),
    ]
    spans = [*ROUND[:6], *second, span("judge", 0.5, "j", round=2, order=["a", "b"])]
    # a: 8 + 1 + 2 = 11; b: 4 + 4 + 2 = 10; judge 11.5. With the barrier: 5+1+2 + 4+2 + 0.5
    assert dependency_path(spans) == pytest.approx(11.5)
    assert stage_barrier_path(spans) == pytest.approx(14.5)
