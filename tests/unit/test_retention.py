"""Retention's policy (what to do with a thread) and the figures a sweeper exports; how a
thread's status is read is tests/unit/test_checkpoints.py.
"""

from __future__ import annotations

import pytest

from council_agents.core.settings import Settings, SettingsError, parse_duration
from council_agents.server.retention import (
    Memory,
    Plan,
    Policy,
    StorageCollector,
    Survey,
    Sweeper,
    decide,
)
from council_agents.storage.checkpoints import Thread

NOW = 1_800_000_000.0
HOUR, DAY = 3600.0, 86400.0


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


def test_the_exported_figures_are_the_sweepers_own_last_survey():
    sweeper = Sweeper(None, Settings(), owner="test")  # its client is never used here
    collector = StorageCollector(sweeper)
    assert [m.samples for m in collector.collect()] == [[], [], [], []]  # before the first pass
    sweeper.last = Survey(NOW, {"finished": 3, "failed": 1}, Memory(100, 1000, "maxmemory"))
    samples = {
        (s.name, tuple(s.labels.values())): s.value for m in collector.collect() for s in m.samples
    }
    assert samples == {
        ("council_retained_deliberations", ("finished",)): 3,
        ("council_retained_deliberations", ("failed",)): 1,
        ("council_valkey_used_memory_bytes", ()): 100,
        ("council_valkey_memory_limit_bytes", ()): 1000,
        ("council_retention_sweep_timestamp_seconds", ()): NOW,
    }
