"""bench/peers.py: the figures it reads from the simulator's log; the prompt split of its peers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bench.peers import busy, peak_in_flight, stage_bound

ROOT = Path(__file__).resolve().parents[2]


def calls(*spans: tuple[float, float], stage: str = "critique") -> list[dict]:
    return [{"t_in": a, "t_out": b, "stage": stage} for a, b in spans]


def test_peak_counts_overlapping_calls_and_an_answer_before_an_arrival_at_the_same_instant():
    assert peak_in_flight(calls((0, 2), (1, 3), (2, 4))) == 2
    assert peak_in_flight(calls((0, 1), (0, 1), (0.5, 2))) == 3
    assert peak_in_flight(calls((0, 1), (1, 2), (2, 3))) == 1


def test_busy_is_the_union_of_the_call_spans():
    assert busy(calls((3, 4), (0, 1), (0.5, 2))) == pytest.approx(3.0)
    assert busy(calls((0, 5), (1, 2))) == pytest.approx(5.0)


def test_stage_bound_sums_the_slowest_call_of_each_stage():
    log = calls((0, 1), (0, 2), stage="propose") + calls((2, 2.5), stage="critique")
    assert stage_bound(log) == pytest.approx(2.5)


def _shared():
    spec = importlib.util.spec_from_file_location("peers_shared", ROOT / "bench/peers/shared.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("stage", ["propose", "critique", "revise", "judge", "vote"])
def test_every_stage_prompt_splits_into_the_same_task_block_and_its_own_assignment(stage):
    shared = _shared()
    run = {
        "prompts_dir": str(ROOT / "prompts"),
        "task": "Fix the bug.",
        "constraints": "",
        "rubric": {"correctness": "it works"},
    }
    values = {
        "agent_id": "a",
        "author": "b",
        "version": 0,
        "round": 1,
        "proposal": "P",
        "critiques": "C",
        "proposals": "## Proposal by a (version 1)\nP",
        "candidates": "a",
        "labels": "P1",
    }
    common = shared.shared_values(run)
    block, rest = shared.split_shared(shared.render(run, stage, **common, **values))
    expected, _ = shared.split_shared(shared.render(run, "propose", **common, agent_id="a"))
    assert block == expected
    assert block.startswith("## Task\nFix the bug.")
    assert block.endswith("- **correctness**: it works")
    assert rest.startswith("## ") and "## Your assignment" in rest
