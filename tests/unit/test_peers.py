"""bench/peers.py: the figures it reads from the simulator's log; the prompt split of its peers."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

from bench.peers import busy, peak_in_flight, stage_bound
from council_agents.core.request import normal_rubric
from council_agents.llm.prompt_files import PromptFiles, rubric_text

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
    sys.modules[spec.name] = module  # pydantic resolves the models' annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("stage", ["propose", "critique", "revise", "judge", "vote"])
def test_peers_render_councils_prompts_and_split_off_the_same_task_block(stage):
    shared = _shared()
    rubric = normal_rubric({"correctness": "it works"})
    run = {
        "prompts_dir": str(ROOT / "prompts"),
        "task": "Fix the bug.",
        "constraints": "",
        "rubric_text": rubric_text(rubric),
    }
    values = {
        "agent_id": "a",
        "author": "b",
        "version": 0,
        "round": 1,
        "proposal": "P",
        "critiques": "C",
        "proposals": "## Proposal P1\nP",
        "labels": "P1",
        "label": "P1",
        "own": "P2",
    }
    common = shared.shared_values(run)
    rendered = shared.render(run, stage, **common, **values)
    assert rendered == PromptFiles().render(stage, **common, **values)
    block, rest = shared.split_shared(rendered)
    expected, _ = shared.split_shared(shared.render(run, "propose", **common, agent_id="a"))
    assert block == expected
    assert block.startswith("## Task\nFix the bug.")
    assert block.endswith(run["rubric_text"])
    assert rest.startswith("## ") and "## Your assignment" in rest


@pytest.mark.parametrize(
    ("peers", "council"),
    [
        ("CritiqueAnswer", "council_agents.nodes.critique:CritiqueAnswer"),
    ],
)
def test_peers_ask_for_councils_answer_schemas(peers, council):
    module, name = council.split(":")
    theirs = getattr(importlib.import_module(module), name).model_json_schema()
    assert getattr(_shared(), peers).model_json_schema() == theirs


def test_peers_judge_and_ballot_schemas_are_councils():
    from council_agents.nodes.judge import judgement_model
    from council_agents.nodes.vote import ballot_model

    shared = _shared()
    labels, criteria = ("P1", "P2", "P3"), ("correctness", "tests")
    assert shared.judgement_model(labels, criteria).model_json_schema(
        by_alias=True
    ) == judgement_model(labels, criteria).model_json_schema(by_alias=True)
    assert (
        shared.ballot_model(labels[:2]).model_json_schema()
        == ballot_model(labels[:2]).model_json_schema()
    )
