"""The keys and small values storage/ spells: every key council reads or writes (the saver's own
are checked against the saver on a real Valkey in tests/integration/test_valkey_checkpointer.py)
and the done marker.
"""

from __future__ import annotations

import fnmatch

from council_agents.storage import keys, markers

T = "did-42"


def test_every_key_of_a_thread_carries_its_hash_tag():
    assert keys.checkpoint_key(T, "c1") == "checkpoint:{did-42}::c1"
    assert keys.writes_key(T, "c1") == "writes:{did-42}::c1"
    assert keys.thread_key(T) == "thread:{did-42}:"
    assert keys.lease_key(T) == "council:lease:{did-42}"
    assert keys.marker_key(T) == "council:done:{did-42}"
    assert keys.checkpoint_key(T, "c1", "sub") == "checkpoint:{did-42}:sub:c1"


def test_the_scan_pattern_finds_root_lists_only_and_gives_their_thread_back():
    assert fnmatch.fnmatchcase(keys.thread_key(T), keys.THREADS_PATTERN)
    assert not fnmatch.fnmatchcase(keys.thread_key(T, "sub"), keys.THREADS_PATTERN)
    assert keys.thread_of_list(keys.thread_key(T)) == T


def test_each_key_says_what_it_holds():
    assert [
        keys.kind_of(k)
        for k in (
            keys.checkpoint_key(T, "c1"),
            keys.writes_key(T, "c1"),
            keys.thread_key(T),
            keys.lease_key(T),
            keys.marker_key(T),
            keys.COUNCILS_KEY,
            keys.APIKEYS_KEY,
            keys.SWEEP_LOCK_KEY,
            "something:else",
        )
    ] == ["checkpoint", "writes", "thread", "lease", "marker", "councils", "apikeys", None, None]


def test_a_done_marker_reads_back_as_written():
    published = {"stream": "ORCHESTRATOR_EVENTS", "seq": 7, "subject": "s", "duplicate": False}
    values = {"deliberation_id": "d-1", "published": published}
    marker = markers.marker_of(T, values, 1_800_000_000.5)
    assert marker == {
        "deliberation_id": "d-1",
        "finished_at": "2027-01-15T08:00:00.500000+00:00",
        "published": published,
    }
    assert markers.decode(markers.encode(marker).encode()) == marker
    assert markers.finished_at(marker) == 1_800_000_000.5
    assert markers.decode(None) is None
    assert markers.marker_of(T, {}, 0)["deliberation_id"] == T
