"""One resolution for every door: limits named in one line, stored councils, precedence."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from council_agents.core.context import Context
from council_agents.core.limits import MAX_CONSTRAINTS_CHARS, MAX_ROUNDS, MAX_TASK_CHARS
from council_agents.core.request import (
    CouncilSpec,
    RequestError,
    admit,
    default_council,
    parse_context,
    parse_council,
    parse_input,
)
from council_agents.core.settings import LLMSettings, Settings
from council_agents.events.planning import PlanApproved, deliberation_input

SETTINGS = Settings(llm=LLMSettings(base_url="http://llm.internal:8000/v1", model="served-model"))
OK = {"task": "Split the notifications module", "role": "ARCHITECT"}


def admitted(inp, context, stored, settings):
    """What ``admit`` gives, as (the admitted input, the council)."""
    admission = admit(inp, context, stored, settings)
    return admission["input"], admission["council"]


@pytest.mark.parametrize(
    "change,line",
    [
        ({"task": ""}, "task: String should have at least 1 character"),
        ({"task": "   \n "}, "task: is empty or only whitespace"),
        (
            {"role": "MANAGER"},
            "role: unknown role 'MANAGER'; known roles: DEV, QA, ARCHITECT, DEVOPS",
        ),
        ({"rounds": -1}, "rounds: Input should be greater than or equal to 0"),
        ({"rounds": MAX_ROUNDS + 1}, f"rounds: Input should be less than or equal to {MAX_ROUNDS}"),
        (
            {"task": "x" * (MAX_TASK_CHARS + 1)},
            f"task: String should have at most {MAX_TASK_CHARS} characters "
            f"(got {MAX_TASK_CHARS + 1})",
        ),
        ({"rubric": {}}, "rubric: Dictionary should have at least 1 item"),
        ({"rubric": {"a": ""}}, "rubric.a.meaning: String should have at least 1 character"),
        (
            {"constraints": "c" * (MAX_CONSTRAINTS_CHARS + 1)},
            "constraints: String should have at most",
        ),
        ({"base_url": "http://evil.example/v1"}, "base_url: unknown field"),
        ({"deliberation_id": "a\nb"}, "deliberation_id: 'a\\nb' does not match"),
    ],
)
def test_bad_input_is_one_line_naming_the_field_and_limit(change, line):
    with pytest.raises(RequestError) as e:
        admitted({**OK, **change}, None, None, SETTINGS.llm)
    assert str(e.value).startswith(line)
    assert "\n" not in str(e.value).replace("\\n", "")


@pytest.mark.parametrize(
    "context,line",
    [
        ({"agents": 1}, "context.agents: Input should be greater than or equal to 2"),
        ({"agents": 10}, "context.agents: Input should be less than or equal to 9"),
        ({"base_url": "http://127.0.0.1:9/v1"}, "context.base_url: unknown field"),
        ({"nats_url": "nats://127.0.0.1:9"}, "context.nats_url: unknown field"),
        (
            {"council": "x" * 65},
            "context.council: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... (65 characters) does not match "
            "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        ),
    ],
)
def test_context_holds_only_what_a_caller_may_choose(context, line):
    with pytest.raises(RequestError) as refused:
        parse_context(context)
    assert str(refused.value) == line


def test_built_in_council_endpoints_come_from_settings_only():
    req, council = admitted({**OK, "rounds": 2}, {"agents": 4}, None, SETTINGS.llm)
    assert req["role"] == "ARCHITECT" and req["rounds"] == 2 and req["rubric"]
    assert [a["agent_id"] for a in council["agents"]] == [
        f"agent-architect-00{i}" for i in range(1, 5)
    ]
    assert {a["base_url"] for a in council["agents"]} == {SETTINGS.llm.base_url}
    assert {a["model"] for a in council["agents"]} == {"served-model"}
    assert council["judge"]["agent_id"] == "judge-architect" and council["rounds"] == 2


def test_stored_council_fills_what_the_input_leaves_out():
    stored = parse_council(
        {
            "name": "platform",
            "role": "DEVOPS",
            "rounds": 2,
            "rubric": {"safety": "no outage"},
            "constraints": "no downtime",
            "require_approval": True,
            "agents": [
                {"agent_id": "ops-b", "model": "big", "temperature": 0.2},
                {"agent_id": "ops-a"},
            ],
        }
    )
    req, council = admitted(
        {"task": "Roll out the new ingress", "constraints": "by Friday"},
        Context(council="platform"),
        stored,
        SETTINGS.llm,
    )
    assert req["role"] == "DEVOPS" and req["rounds"] == 2
    assert council["rubric"]["safety"]["meaning"] == "no outage"
    assert council["rubric"]["safety"]["weight"] == 1 and set(
        council["rubric"]["safety"]["anchors"]
    ) == {"0", "5", "10"}
    assert council["constraints"] == "no downtime\nby Friday"
    assert [(a["agent_id"], a["model"]) for a in council["agents"]] == [
        ("ops-a", "served-model"),
        ("ops-b", "big"),
    ]
    assert council["require_approval"] is True and council["name"] == "platform"
    _, overridden = admitted(
        {"task": "t", "rounds": 0},
        {"council": "platform", "require_approval": False},
        stored,
        SETTINGS.llm,
    )
    assert overridden["rounds"] == 0 and overridden["require_approval"] is False


def test_stored_council_refusals_name_the_field():
    stored = default_council("QA")
    with pytest.raises(RequestError, match="^role: council 'qa' is a QA council, not DEV"):
        admitted({"task": "t", "role": "DEV"}, {"council": "qa"}, stored, SETTINGS.llm)
    with pytest.raises(RequestError, match="^context.agents: council 'qa' fixes its agents"):
        admitted({"task": "t"}, {"council": "qa", "agents": 4}, stored, SETTINGS.llm)
    with pytest.raises(RequestError, match="^context.council: unknown council 'nope'") as e:
        admitted({"task": "t"}, {"council": "nope"}, None, SETTINGS.llm)
    assert e.value.status == 404


AB = [{"agent_id": "a"}, {"agent_id": "b"}]


@pytest.mark.parametrize(
    "doc,line",
    [
        ({"name": "bad name", "role": "QA", "agents": AB}, "name: 'bad name' does not match"),
        ({"name": "x" * 10240, "role": "QA", "agents": AB}, "name: 'xxxxxxxx"),
        (
            {"name": "n", "role": "QA", "agents": [{"agent_id": "a\nb"}, {"agent_id": "b"}]},
            "agents.0.agent_id: 'a\\nb' does not match",
        ),
        (
            {"name": "n", "role": "QA", "agents": [{"agent_id": "a"}, {"agent_id": "a"}]},
            "agents: agent ids must be unique; repeated: a",
        ),
        (
            {
                "name": "n",
                "role": "QA",
                "agents": [{"agent_id": "a", "temperature": 99}, {"agent_id": "b"}],
            },
            "agents.0.temperature: Input should be less than or equal to 2",
        ),
        (
            {
                "name": "n",
                "role": "QA",
                "agents": [{"agent_id": "a", "api_key": "sk-1"}, {"agent_id": "b"}],
            },
            "agents.0.api_key: unknown field",
        ),
        (
            {
                "name": "n",
                "role": "QA",
                "agents": [{"agent_id": "a", "base_url": "http://evil:1/v1"}, {"agent_id": "b"}],
            },
            "agents.0.base_url: http://evil:1/v1 is not on the server's allow-list",
        ),
        (
            {
                "name": "n",
                "role": "QA",
                "agents": [{"agent_id": "a", "api_key_name": "VALKEY_URL"}, {"agent_id": "b"}],
            },
            "agents.0.api_key_name: 'VALKEY_URL' does not match",
        ),
        (
            {
                "name": "n",
                "role": "QA",
                "agents": [
                    {"agent_id": "a", "api_key_name": "COUNCIL_NOPE_API_KEY"},
                    {"agent_id": "b"},
                ],
            },
            "agents.0.api_key_name: no setting COUNCIL_NOPE_API_KEY on this server",
        ),
        (
            {"name": "n", "role": "QA", "agents": AB, "rubric": {"a": ""}},
            "rubric.a.meaning: String should have at least 1 character",
        ),
    ],
)
def test_council_definitions_are_validated(doc, line):
    with pytest.raises(RequestError) as e:
        parse_council(doc, SETTINGS.llm)
    assert str(e.value).startswith(line[:60])


def test_every_door_shapes_the_same_request():
    """The CLI's, the worker's, HTTP's and prepare's input shapes resolve alike."""
    cli = {"task": "Add rate limiting", "role": "dev", "deliberation_id": "delib-1"}
    event = PlanApproved(
        story_id="S-1",
        plan_id="P-1",
        approved_by="po",
        roles=["dev"],
        timestamp=datetime.now(UTC),
        task="Add rate limiting",
    )
    worker = deliberation_input(event, "DEV")
    http = {"task": "Add rate limiting", "role": "DEV"}
    councils = [admitted(shape, None, None, SETTINGS.llm)[1] for shape in (cli, worker, http)]
    assert councils[0] == councils[1] == councils[2]
    assert parse_input(worker).story_id == "S-1" and parse_input(worker).task_id == "P-1"


def test_five_built_in_councils_are_valid_stored_councils():
    for role in ("DEV", "QA", "ARCHITECT", "DEVOPS", "DATA"):
        spec = default_council(role)
        assert CouncilSpec.model_validate_json(spec.model_dump_json()) == spec
        assert len(spec.agents) == 3


def test_a_plan_asking_for_zero_rounds_gets_zero_rounds():
    event = PlanApproved(
        story_id="S-1",
        plan_id="P-1",
        approved_by="po",
        roles=["QA"],
        timestamp=datetime.now(UTC),
        task="t",
        rounds=0,
        constraints="",
    )
    req, council = admitted(deliberation_input(event, "QA"), None, None, SETTINGS.llm)
    assert req["rounds"] == 0 and council["rounds"] == 0


def test_mixed_council_endpoints_and_key_names_come_from_an_admin_within_the_allow_list():
    settings = Settings(
        llm=LLMSettings(
            base_url="http://a:8000/v1",
            model="m-a",
            allowed_urls=("http://b:8000/v1",),
            api_keys={"COUNCIL_B_API_KEY": "kb"},
        )
    )
    stored = parse_council(
        {
            "name": "mixed",
            "role": "DEV",
            "agents": [
                {"agent_id": "on-a"},
                {
                    "agent_id": "on-b",
                    "base_url": "http://B:8000/v1/",
                    "model": "m-b",
                    "api_key_name": "COUNCIL_B_API_KEY",
                },
            ],
            "judge": {
                "agent_id": "judge-b",
                "base_url": "http://b:8000/v1",
                "model": "m-j",
                "temperature": 0,
            },
        },
        settings.llm,
    )
    _, c = admitted({"task": "t"}, {"council": "mixed"}, stored, settings.llm)
    assert [(a["base_url"], a["model"], a["api_key_name"]) for a in c["agents"]] == [
        ("http://a:8000/v1", "m-a", None),
        ("http://B:8000/v1/", "m-b", "COUNCIL_B_API_KEY"),
    ]
    assert (c["judge"]["agent_id"], c["judge"]["model"]) == ("judge-b", "m-j")
    assert settings.llm.api_key_for("COUNCIL_B_API_KEY") == "kb"
    narrower = Settings(llm=LLMSettings(base_url="http://a:8000/v1", model="m-a"))
    with pytest.raises(RequestError, match="^agents.1.base_url: http://B:8000/v1/ is not on"):
        admitted({"task": "t"}, {"council": "mixed"}, stored, narrower.llm)


def test_rubric_with_weights_and_anchors():
    _, c = admitted(
        {
            "task": "t",
            "rubric": {
                "speed": {
                    "meaning": "p95 under 200 ms",
                    "weight": 3,
                    "anchors": {"10": "p95 < 100 ms"},
                },
                "cost": "cheap to run",
            },
        },
        None,
        None,
        SETTINGS.llm,
    )
    assert c["rubric"]["speed"] == {
        "meaning": "p95 under 200 ms",
        "weight": 3.0,
        "anchors": {"0": "absent or wrong", "5": "adequate, with gaps", "10": "p95 < 100 ms"},
    }
    assert c["rubric"]["cost"]["weight"] == 1.0
    with pytest.raises(RequestError, match="^rubric.speed.weight: Input should be greater than 0"):
        admitted(
            {"task": "t", "rubric": {"speed": {"meaning": "m", "weight": 0}}}, None, None, SETTINGS
        )


def test_aggregator_and_budget_are_run_knobs():
    _, c = admitted(
        {"task": "t"}, {"aggregator": "vote", "token_budget": 20000}, None, SETTINGS.llm
    )
    assert c["aggregator"] == "vote" and c["token_budget"] == 20000
    _, default = admitted({"task": "t"}, None, None, SETTINGS.llm)
    assert default["aggregator"] == "judge+vote" and default["token_budget"] is None
    with pytest.raises(RequestError, match="^context.aggregator: Input should be 'judge'"):
        parse_context({"aggregator": "dice"})
    with pytest.raises(RequestError, match="^context.token_budget: Input should be greater"):
        parse_context({"token_budget": 10})
