"""Where one deliberation's bytes go in Valkey, by channel (a bench tool; retention itself is
``server.retention`` and ``council prune``).

    python -m bench.storage_probe --valkey-url URL --thread ID

Decodes every checkpoint and pending write of the thread (``storage.checkpoints``' decoders)
and prints JSON: the msgpack bytes of each channel summed over every checkpoint (each
checkpoint holds every channel), what versions and the base64+JSON encoding add, the pending
writes by channel, what the values would take stored once per version (the Postgres saver's
layout), and the final checkpoint alone with its call records' fields.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from typing import Any

import valkey

from council_agents.storage.checkpoints import (
    SERDE,
    decode_checkpoint,
    decode_writes,
    serialized_size,
)
from council_agents.storage.keys import checkpoint_key, thread_key, writes_key
from council_agents.storage.saver import client_url

BOOKKEEPING = ("channel_versions", "versions_seen", "updated_channels", "id", "ts", "v")


def packed_size(value: Any) -> int:
    """Bytes of ``value`` as the saver's serializer stores it (before base64)."""
    return len(SERDE.dumps_typed(value)[1])


def history(client: valkey.Valkey, thread_id: str) -> list[dict[str, Any]]:
    """Every checkpoint of a thread, oldest first, decoded, with its pending writes."""
    ids = [x.decode() for x in client.lrange(thread_key(thread_id), 0, -1)]
    out = []
    for cid in reversed(list(dict.fromkeys(ids))):
        raw = client.get(checkpoint_key(thread_id, cid))
        if raw is None:
            continue
        info, checkpoint, metadata = decode_checkpoint(raw)
        raw_writes = client.get(writes_key(thread_id, cid))
        out.append(
            {
                "id": cid,
                "stored": len(raw),
                "info": info,
                "checkpoint": checkpoint,
                "metadata": metadata,
                "writes": decode_writes(raw_writes),
                "writes_stored": len(raw_writes or b""),
            }
        )
    return out


def _by_size(sizes: dict[str, int]) -> dict[str, int]:
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


def call_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Bytes of each call-record field in a checkpoint's ``calls``."""
    sizes: dict[str, int] = defaultdict(int)
    calls = values.get("calls") or []
    for record in calls:
        for name, value in record.items():
            sizes[name] += packed_size(value)
    return {"calls": len(calls), "fields": _by_size(sizes)}


def final_sizes(step: dict[str, Any]) -> dict[str, Any]:
    """The latest checkpoint: stored bytes, msgpack bytes, by channel, its call records."""
    values = step["checkpoint"]["channel_values"]
    return {
        "stored": step["stored"],
        "msgpack": serialized_size(step["info"]),
        "channels": _by_size({k: packed_size(v) for k, v in values.items()}),
        "calls": call_fields(values),
    }


def breakdown(client: valkey.Valkey, thread_id: str) -> dict[str, Any]:
    """Where a thread's bytes go, summed over its whole history (see the module docstring)."""
    steps = history(client, thread_id)
    per_channel: dict[str, int] = defaultdict(int)
    writes: dict[str, int] = defaultdict(int)
    writes_wrapper = bookkeeping = packed_total = stored_total = blobs = 0
    seen_versions: dict[str, Any] = {}
    for step in steps:
        checkpoint = step["checkpoint"]
        packed_total += serialized_size(step["info"])
        stored_total += step["stored"]
        for channel, value in checkpoint["channel_values"].items():
            size = packed_size(value)
            per_channel[channel] += size
            version = checkpoint["channel_versions"].get(channel)
            if seen_versions.get(channel) != version:
                seen_versions[channel] = version
                blobs += size
        bookkeeping += sum(packed_size(checkpoint.get(k)) for k in BOOKKEEPING)
        for write in step["writes"]:
            writes[write["channel"]] += write["stored"]
        writes_wrapper += step["writes_stored"] - sum(w["stored"] for w in step["writes"])
    return {
        "checkpoints": len(steps),
        "checkpoint_stored": stored_total,
        "checkpoint_channels": _by_size(per_channel),
        "checkpoint_bookkeeping": bookkeeping,
        "checkpoint_encoding": stored_total - packed_total,
        "writes_stored": sum(s["writes_stored"] for s in steps),
        "writes_channels": _by_size(writes),
        "writes_wrapper": writes_wrapper,
        "blobs_per_version": blobs,
        "final": final_sizes(steps[-1]) if steps else {},
    }


def main() -> None:
    """Print one thread's breakdown as JSON."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--valkey-url", required=True)
    ap.add_argument("--thread", required=True)
    args = ap.parse_args()
    client = valkey.Valkey.from_url(client_url(args.valkey_url))
    print(json.dumps(breakdown(client, args.thread), indent=2, default=str))


if __name__ == "__main__":
    main()
