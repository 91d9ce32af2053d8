"""One bad agent never loses the deliberation: its answers rejected after every retry, it is left
out of that task, the council decides with the rest, and the event says who was left out and
why. Too few proposals fail in one line (exit 6). Real Valkey and NATS (``council deliberate``,
embedded), the simulated vLLM with a garbage fault on one agent at one stage."""

from __future__ import annotations

import json

import pytest

from council_agents.sim_vllm import FaultRule, ServerThread, SimConfig, SimVLLM
from tests.helpers import sim_requests
from tests.integration.test_cli import TASK, council


@pytest.mark.parametrize(
    "stage,agent,left_out",
    [
        ("propose", "agent-dev-002", 1),
        ("critique", "agent-dev-002", 2),  # it critiques the other two
        ("revise", "agent-dev-002", 1),
        ("vote", "agent-dev-002", 1),
        ("judge", "judge-dev", 3),  # every rotation's judgement
    ],
)
def test_one_agents_garbage_is_left_out_and_the_council_decides(tmp_path, stage, agent, left_out):
    fault = FaultRule(kind="garbage", stage=stage, agent=agent)
    with ServerThread(SimVLLM(SimConfig(time_scale=0.002), faults=[fault])) as sim:
        r = council(
            tmp_path,
            "deliberate",
            TASK,
            "--role",
            "DEV",
            "--rounds",
            "1",
            "--id",
            f"degrade-{stage}",
            "--base-url",
            sim.base_url,
            "--json",
            # judge+vote asks the judges only when the ballots are not unanimous: judge always
            *(["--aggregator", "judge"] if stage == "judge" else []),
        )
        asked = [e for e in sim_requests(sim) if e["stage"] == stage and e["agent"] == agent]
    assert r.returncode == 0, r.stderr
    event = json.loads(r.stdout)
    omissions = event["decision"]["omissions"]
    assert [(o["stage"], o["agent_id"]) for o in omissions] == [(stage, agent)] * left_out
    rejected = ("garbage answer", "invalid structured answer")  # prose, or a JSON document
    assert all(o["attempts"] == 3 and o["reason"].startswith(rejected) for o in omissions)
    assert len(asked) == 3 * left_out  # every attempt was made, each with a seed of its own
    assert len({(e["prompt_sha"], e["seed"]) for e in asked}) == len(asked)
    assert event["winner"]["author"]["agent_id"] != (agent if stage == "propose" else None)
    if stage == "propose":
        assert agent not in [p["author"]["agent_id"] for p in event["proposals"]]
    if stage == "revise":  # its previous version stands
        mine = next(p for p in event["proposals"] if p["author"]["agent_id"] == agent)
        assert mine["versions"][1] == mine["versions"][0]
    if stage == "judge":  # the peer vote decides (a tied vote says so: tiebreak)
        assert event["decision"]["decided_by"] in ("vote", "tiebreak")
        assert event["decision"]["judgements"] == []
        assert "every judgement was rejected" in event["justification"]
    assert schema_valid(event)


def schema_valid(event: dict) -> bool:
    import jsonschema

    from tests.helpers import ROOT

    schema = json.loads((ROOT / "docs/events/deliberation.completed.schema.json").read_text())
    jsonschema.validate(event, schema)
    return event["schema_version"] == "1.3"


def test_too_few_proposals_fail_in_one_line_with_their_own_exit_code(tmp_path):
    faults = [
        FaultRule(kind="garbage", stage="propose", agent="agent-dev-001"),
        FaultRule(kind="garbage", stage="propose", agent="agent-dev-003"),
    ]
    with ServerThread(SimVLLM(SimConfig(time_scale=0.002), faults=faults)) as sim:
        r = council(tmp_path, "deliberate", TASK, "--role", "DEV", "--base-url", sim.base_url)
    assert r.returncode == 6, r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("council: error:")]
    assert len(errors) == 1
    assert "1 of 3 proposals were accepted and a council needs 2" in errors[0]
    assert "agent-dev-001: garbage answer" in errors[0] and "Traceback" not in r.stderr
