"""How storage reads a thread's status from its newest checkpoint and pending writes."""

from __future__ import annotations

from langgraph.types import Send

from council_agents.storage.checkpoints import next_nodes, status_of


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
