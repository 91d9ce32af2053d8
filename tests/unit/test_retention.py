"""Retention's reading of a checkpoint (status) and its policy (what to do with a thread)."""

from __future__ import annotations

import pytest
from langgraph.types import Send

from council_agents.core.settings import Settings, SettingsError, parse_duration
from council_agents.server.retention import Plan, Policy, Thread, decide, next_nodes, status_of

NOW = 1_800_000_000.0
HOUR, DAY = 3600.0, 86400.0


def checkpoint(values: dict, versions: dict, seen: dict) -> dict:
    return {"channel_values": values, "channel_versions": versions, "versions_seen": seen}


def test_a_consumed_branch_channel_is_not_a_next_node():
    # publish ran: its branch channel's version was bumped past what it saw, but holds no value
    cp = checkpoint(
        {"published": {"seq": 1}},
        {"branch:to:publish": "3"},
        {"publish": {"branch:to:publish": "2"}},
    )
    assert next_nodes(cp) == []
    assert status_of(cp, []) == "finished"


def test_a_branch_value_newer_than_seen_is_next():
    cp = checkpoint(
        {"branch:to:approve": None},
        {"branch:to:approve": "5"},
        {"approve": {"branch:to:approve": "4"}},
    )
    assert next_nodes(cp) == ["approve"]


def test_pending_sends_are_next_and_an_error_write_means_failed():
    cp = checkpoint({"__pregel_tasks": [Send("critique", {}), Send("critique", {})]}, {}, {})
    assert next_nodes(cp) == ["critique", "critique"]
    assert status_of(cp, [{"channel": "__error__"}]) == "failed"
    assert status_of(cp, []) == "unfinished"


def test_an_interrupt_write_means_waiting_even_with_no_next_node():
    assert status_of(checkpoint({}, {}, {}), [{"channel": "__interrupt__"}]) == "waiting"


def test_no_next_node_and_nothing_published_is_not_finished():
    assert status_of(checkpoint({"decision": {}}, {}, {}), []) == "ended"


def finished(age: float, checkpoints: int = 12, expires_at: float | None = None) -> Thread:
    return Thread(
        "t",
        "finished",
        checkpoints,
        "c",
        updated_at=NOW - age,
        finished_at=NOW - age,
        expires_at=expires_at,
    )


def idle(status: str, age: float, lease: bool = False) -> Thread:
    return Thread("t", status, 5, "c", updated_at=NOW - age, lease=lease)  # type: ignore[arg-type]


DEFAULT = Policy.of(Settings())


def test_the_default_policy_compacts_a_finished_deliberation_at_once_and_expires_it_in_a_day():
    plan = decide(finished(age=1), DEFAULT, NOW)
    assert plan.verb == "compact"
    assert plan.expire_at == NOW - 1 + DAY
    assert plan.marker_until == NOW - 1 + 30 * DAY


def test_history_is_kept_for_its_time_then_compacted():
    policy = Policy(history_s=HOUR)
    assert decide(finished(age=HOUR - 5), policy, NOW).verb == "keep"
    assert decide(finished(age=HOUR + 5), policy, NOW).verb == "compact"


def test_a_compacted_deliberation_is_left_alone_while_its_expiry_matches_the_policy():
    thread = finished(age=HOUR, checkpoints=1, expires_at=NOW - HOUR + DAY)
    assert decide(thread, DEFAULT, NOW).verb == "keep"
    # a policy that keeps finished deliberations longer moves the expiry; one that keeps them
    # shorter than their age deletes them now
    assert decide(thread, Policy(finished_s=7 * DAY), NOW).verb == "expire"
    assert decide(thread, Policy(finished_s=None), NOW) == Plan(
        "expire", "compacted; now kept", None, NOW - HOUR + 30 * DAY
    )
    assert decide(thread, Policy(finished_s=HOUR / 2), NOW).verb == "delete"


def test_a_finished_deliberation_older_than_its_retention_is_deleted_and_keeps_a_marker():
    plan = decide(finished(age=2 * DAY), DEFAULT, NOW)
    assert plan.verb == "delete" and plan.marker_until == NOW - 2 * DAY + 30 * DAY


@pytest.mark.parametrize("status", ["failed", "waiting", "unfinished"])
def test_resumable_deliberations_are_never_deleted_by_default_however_old(status):
    assert decide(idle(status, age=365 * DAY), DEFAULT, NOW).verb == "keep"


@pytest.mark.parametrize("status", ["failed", "waiting", "unfinished"])
def test_resumable_deliberations_idle_longer_than_the_setting_are_deleted(status):
    policy = Policy(unfinished_s=7 * DAY)
    assert decide(idle(status, age=7 * DAY - 60), policy, NOW).verb == "keep"
    assert decide(idle(status, age=7 * DAY + 60), policy, NOW).verb == "delete"


@pytest.mark.parametrize("status", ["ended", "broken"])
def test_threads_council_did_not_leave_that_way_are_kept(status):
    assert decide(idle(status, age=365 * DAY), Policy(unfinished_s=0), NOW).verb == "keep"


def test_a_thread_whose_lease_a_worker_holds_is_never_touched():
    policy = Policy(finished_s=0, unfinished_s=0)
    assert decide(idle("failed", age=DAY, lease=True), policy, NOW).verb == "keep"
    leased = finished(age=DAY)
    leased.lease = True
    assert decide(leased, policy, NOW).verb == "keep"


def test_durations_name_the_variable_when_refused():
    assert parse_duration("90", "X") == 90 and parse_duration("1.5h", "X") == 5400
    assert parse_duration("never", "X", never=True) is None
    env = {"COUNCIL_RETAIN_FINISHED": "never", "COUNCIL_RETAIN_UNFINISHED": "30d"}
    settings = Settings.from_env(env)
    assert settings.retention.finished_s is None and settings.retention.unfinished_s == 30 * DAY
    with pytest.raises(SettingsError, match="^COUNCIL_RETAIN_HISTORY: 'never'"):
        Settings.from_env({"COUNCIL_RETAIN_HISTORY": "never"})
    with pytest.raises(SettingsError, match="^COUNCIL_PRUNE_INTERVAL: '5x' is not a duration"):
        Settings.from_env({"COUNCIL_PRUNE_INTERVAL": "5x"})
    with pytest.raises(SettingsError, match="^COUNCIL_VALKEY_MEMORY_WARN"):
        Settings.from_env({"COUNCIL_VALKEY_MEMORY_WARN": "80"})
