"""The storage probe on a real Valkey: thread status, and compaction of finished threads only.

Deliberations run through the ``council`` CLI (``demo``, simulated vLLM at time scale 0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import valkey

from bench.storage_probe import (CannotCompact, compact, decode_checkpoint, scan_usage,
                                 thread_status)

ROOT = Path(__file__).resolve().parents[2]


def demo(tmp_path: Path, valkey_url: str, nats_url: str, *args: str) -> str:
    thread_id = f"probe-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "VALKEY_URL": valkey_url, "NATS_URL": nats_url,
           "COUNCIL_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "server.cli", "demo", "--time-scale", "0",
                           "--quiet", "--json", "--id", thread_id, *args],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return thread_id


@pytest.fixture
def client(valkey_url):
    return valkey.Valkey.from_url(valkey_url.replace("valkey://", "redis://", 1))


def footprint(client, thread_id: str) -> dict[str, int]:
    return {u.key: u.bytes for u in scan_usage(client, match=f"*{{{thread_id}}}*")}


def test_finished_thread_compacts_to_its_final_checkpoint(tmp_path, client, valkey_url, nats_url):
    thread_id = demo(tmp_path, valkey_url, nats_url)
    before = thread_status(client, thread_id)
    assert before.status == "finished" and before.checkpoints > 2

    compact(client, thread_id, ttl_s=3600)

    keys = footprint(client, thread_id)
    assert sorted(k.split(":", 1)[0] for k in keys) == ["checkpoint", "thread"]
    assert all(0 < client.ttl(k) <= 3600 for k in keys)
    after = thread_status(client, thread_id)
    assert after.status == "finished" and after.checkpoints == 1
    assert sum(keys.values()) < before.bytes / 4
    final = next(k for k in keys if k.startswith("checkpoint:"))
    info, cp, _ = decode_checkpoint(client.get(final))
    assert info["parent_checkpoint_id"] is None
    assert cp["channel_values"]["published"]["seq"] >= 1
    assert len(cp["channel_values"]["drafts"]) == 6  # 3 proposals + 3 revisions kept


def test_a_thread_waiting_for_approval_is_never_compacted(tmp_path, client, valkey_url, nats_url):
    thread_id = demo(tmp_path, valkey_url, nats_url, "--approval")
    status = thread_status(client, thread_id)
    assert status.status == "waiting" and status.next == ["approve"]
    before = footprint(client, thread_id)

    with pytest.raises(CannotCompact, match="waiting"):
        compact(client, thread_id, ttl_s=60)

    assert footprint(client, thread_id) == before
    assert all(client.ttl(k) == -1 for k in before)


def test_dry_run_changes_nothing(tmp_path, client, valkey_url, nats_url):
    thread_id = demo(tmp_path, valkey_url, nats_url)
    before = footprint(client, thread_id)
    report = compact(client, thread_id, dry_run=True)
    assert report["deleted"] == len(before) - 2
    assert footprint(client, thread_id) == before
    assert json.dumps(report)
