"""Council's checkpoints read straight from Valkey: threads, status, bytes, what dominates.

    python -m bench.storage_probe --valkey-url URL [--thread ID] [--json]
    python -m bench.storage_probe --valkey-url URL --compact ID [--ttl SECONDS] [--dry-run]

A prototype for issue 17 (retention): the lead moves the pruning logic into the product. It
needs no council module, only the key layout of langgraph-checkpoint-aws's Valkey saver
(``langgraph_checkpoint_aws/checkpoint/valkey/base.py``, 1.2.x) and LangGraph's serializer:

- ``checkpoint:{THREAD}:NS:ID`` string, JSON ``{thread_id, checkpoint_id, parent_checkpoint_id,
  type, checkpoint, metadata}``; ``checkpoint`` is the *whole* checkpoint (every channel value)
  serialised by ``JsonPlusSerializer`` (msgpack) then base64; ``metadata`` is base64 JSON.
- ``writes:{THREAD}:NS:ID`` string, JSON list of pending writes made from checkpoint ID:
  ``{task_id, idx, channel, type, value}``, ``value`` base64 msgpack.
- ``thread:{THREAD}:NS`` list of checkpoint ids, newest first (LPUSH on every put).

There are no blob or index keys: unlike the Postgres saver, nothing is stored per channel
version. ``{THREAD}`` is a hash tag, so all keys of a thread live in one cluster slot and one
MULTI/EXEC can change them together.

Status of a thread, from its latest checkpoint and that checkpoint's pending writes alone:

- ``waiting``: a pending ``__interrupt__`` write (e.g. approval); resumable.
- ``failed``: a pending ``__error__`` write (a stage failed after its retries); resumable.
- ``finished``: no next task and ``published`` among the channel values (publish ran).
- ``ended``: no next task, nothing published (not produced by today's graph; kept).
- ``unfinished``: next tasks remain and no error or interrupt: running now, or its process
  died. Valkey alone cannot tell which, except for worker runs, which hold
  ``council:lease:{THREAD}`` while they run (``lease`` in the row). Resumable.

Only ``finished`` threads are compacted here; everything else can still be resumed.
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import valkey
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import _DeltaSnapshot

SERDE = JsonPlusSerializer()
KINDS = ("checkpoint", "writes", "thread")
TASKS_CHANNEL = "__pregel_tasks"
BRANCH_PREFIX = "branch:to:"
BOOKKEEPING = ("channel_versions", "versions_seen", "updated_channels", "id", "ts", "v")


def key_kind(key: str) -> str:
    """The saver's kind of key (``checkpoint``, ``writes``, ``thread``) or ``other``."""
    kind = key.split(":", 1)[0]
    return kind if kind in KINDS else "other"


def key_thread(key: str) -> str | None:
    """The thread id inside a key's ``{hash tag}``, if any."""
    start = key.find("{")
    end = key.find("}:", start + 1)
    return key[start + 1:end] if start >= 0 and end > start else None


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a SCAN MATCH pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def packed_size(value: Any) -> int:
    """Bytes of ``value`` as the saver's serializer stores it (before base64)."""
    return len(SERDE.dumps_typed(value)[1])


@dataclass
class KeyUsage:
    """One key with the bytes Valkey itself reports for it (``MEMORY USAGE``)."""

    key: str
    kind: str
    thread: str | None
    bytes: int


def scan_usage(client: valkey.Valkey, match: str = "*", batch: int = 500) -> list[KeyUsage]:
    """Every key matching ``match`` with ``MEMORY USAGE key SAMPLES 0`` (exact, not sampled)."""
    keys = [k.decode() for k in client.scan_iter(match=match, count=1000)]
    out: list[KeyUsage] = []
    for i in range(0, len(keys), batch):
        chunk = keys[i:i + batch]
        pipe = client.pipeline(transaction=False)
        for k in chunk:
            pipe.execute_command("MEMORY", "USAGE", k, "SAMPLES", "0")
        for k, used in zip(chunk, pipe.execute()):
            if used is not None:  # expired between SCAN and MEMORY USAGE
                out.append(KeyUsage(k, key_kind(k), key_thread(k), int(used)))
    return out


def decode_checkpoint(raw: bytes) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A stored checkpoint value as ``(stored JSON, checkpoint, metadata)``."""
    info = json.loads(raw)
    checkpoint = SERDE.loads_typed((info["type"], base64.b64decode(info["checkpoint"])))
    metadata = json.loads(base64.b64decode(info["metadata"]) or b"{}")
    return info, checkpoint, metadata


def decode_writes(raw: bytes | None) -> list[dict[str, Any]]:
    """Stored pending writes, each with its decoded ``value`` and ``stored`` (base64) length."""
    out = []
    for w in json.loads(raw) if raw else []:
        value = SERDE.loads_typed((w["type"], base64.b64decode(w["value"])))
        out.append({**w, "value": value, "stored": len(w["value"])})
    return out


def next_nodes(checkpoint: dict[str, Any]) -> list[str]:
    """Nodes LangGraph would run next from ``checkpoint`` (pending ``Send`` s and edges).

    The rule of ``langgraph.pregel._algo._triggers``: a node runs when one of its trigger
    channels (``branch:to:NODE``, or ``__start__``) holds a value whose version is newer than
    the one the node last saw. Consumed branch channels keep a bumped version but no value.
    """
    values, versions = checkpoint["channel_values"], checkpoint["channel_versions"]
    seen = checkpoint.get("versions_seen", {})
    nodes = [getattr(s, "node", "?") for s in values.get(TASKS_CHANNEL) or []]
    for channel in values:
        if channel == "__start__":
            node = "__start__"
        elif channel.startswith(BRANCH_PREFIX):
            node = channel[len(BRANCH_PREFIX):]
        else:
            continue
        if str(versions.get(channel, "")) > str(seen.get(node, {}).get(channel, "")):
            nodes.append(node)
    return nodes


@dataclass
class ThreadStatus:
    """What Valkey alone says about one deliberation (thread)."""

    thread_id: str
    status: str
    checkpoints: int
    keys: int
    bytes: int
    updated: str
    age_s: float
    step: int | None
    next: list[str] = field(default_factory=list)
    lease: bool = False
    error: str | None = None


def status_of(checkpoint: dict[str, Any], writes: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """``(status, next nodes)`` of a thread from its latest checkpoint and its pending writes."""
    channels = {w["channel"] for w in writes}
    pending = next_nodes(checkpoint)
    if "__interrupt__" in channels:
        return "waiting", pending
    if "__error__" in channels:
        return "failed", pending
    if pending:
        return "unfinished", pending
    return ("finished" if "published" in checkpoint["channel_values"] else "ended"), pending


def thread_keys(client: valkey.Valkey, thread_id: str) -> list[str]:
    """Every saver key of ``thread_id`` (all namespaces), found by SCAN on its hash tag."""
    tag = "{" + glob_escape(thread_id) + "}"
    return [k.decode() for kind in KINDS
            for k in client.scan_iter(match=f"{kind}:{tag}:*", count=1000)]


def thread_status(client: valkey.Valkey, thread_id: str, ns: str = "") -> ThreadStatus | None:
    """The status, size and age of one thread (root namespace), or None if it has no list."""
    ids = [x.decode() for x in client.lrange(f"thread:{{{thread_id}}}:{ns}", 0, -1)]
    if not ids:
        return None
    latest = client.get(f"checkpoint:{{{thread_id}}}:{ns}:{ids[0]}")
    keys = thread_keys(client, thread_id)
    used = sum(u.bytes for u in scan_usage_of(client, keys))
    lease = bool(client.exists(f"council:lease:{{{thread_id}}}"))
    if latest is None:  # the newest checkpoint expired or was deleted under its list
        return ThreadStatus(thread_id, "broken", len(set(ids)), len(keys), used, "", 0.0, None,
                            lease=lease)
    _, checkpoint, metadata = decode_checkpoint(latest)
    writes = decode_writes(client.get(f"writes:{{{thread_id}}}:{ns}:{ids[0]}"))
    status, pending = status_of(checkpoint, writes)
    error = next((repr(w["value"])[:200] for w in writes if w["channel"] == "__error__"), None)
    updated = datetime.fromisoformat(checkpoint["ts"])
    return ThreadStatus(thread_id, status, len(set(ids)), len(keys), used, checkpoint["ts"],
                        round(time.time() - updated.timestamp(), 1), metadata.get("step"),
                        pending, lease, error)


def scan_usage_of(client: valkey.Valkey, keys: list[str]) -> list[KeyUsage]:
    """``MEMORY USAGE`` of the given keys (missing keys are left out)."""
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.execute_command("MEMORY", "USAGE", k, "SAMPLES", "0")
    return [KeyUsage(k, key_kind(k), key_thread(k), int(u))
            for k, u in zip(keys, pipe.execute()) if u is not None]


def list_threads(client: valkey.Valkey) -> list[ThreadStatus]:
    """Every thread (root namespace) in this Valkey, oldest update first."""
    out = []
    for key in client.scan_iter(match="thread:*", count=1000):
        key = key.decode()
        thread_id = key_thread(key)
        if thread_id is not None and key.endswith("}:"):
            found = thread_status(client, thread_id)
            if found is not None:
                out.append(found)
    return sorted(out, key=lambda t: t.updated)


def history(client: valkey.Valkey, thread_id: str, ns: str = "") -> list[dict[str, Any]]:
    """Every checkpoint of a thread, oldest first, decoded, with its pending writes."""
    ids = [x.decode() for x in client.lrange(f"thread:{{{thread_id}}}:{ns}", 0, -1)]
    out = []
    for cid in reversed(list(dict.fromkeys(ids))):
        raw = client.get(f"checkpoint:{{{thread_id}}}:{ns}:{cid}")
        if raw is None:
            continue
        info, checkpoint, metadata = decode_checkpoint(raw)
        raw_writes = client.get(f"writes:{{{thread_id}}}:{ns}:{cid}")
        out.append({"id": cid, "stored": len(raw), "info": info, "checkpoint": checkpoint,
                    "metadata": metadata, "writes": decode_writes(raw_writes),
                    "writes_stored": len(raw_writes or b"")})
    return out


def breakdown(client: valkey.Valkey, thread_id: str) -> dict[str, Any]:
    """Where a thread's bytes go, summed over its whole history.

    ``checkpoint_channels``: msgpack bytes of each channel value, summed over every stored
    checkpoint (each checkpoint holds every channel). ``checkpoint_bookkeeping``: versions and
    versions seen. ``checkpoint_encoding``: what base64 and the JSON wrapper add on top.
    ``writes_channels``: stored (base64) bytes of pending writes per channel.
    ``blobs_per_version``: what the channel values would take if each channel were stored once
    per version, as the Postgres saver does. ``final``: the latest checkpoint alone.
    """
    steps = history(client, thread_id)
    per_channel: dict[str, int] = defaultdict(int)
    writes: dict[str, int] = defaultdict(int)
    writes_wrapper = bookkeeping = packed_total = stored_total = blobs = 0
    seen_versions: dict[str, Any] = {}
    for step in steps:
        cp = step["checkpoint"]
        packed_total += len(base64.b64decode(step["info"]["checkpoint"]))
        stored_total += step["stored"]
        for channel, value in cp["channel_values"].items():
            size = packed_size(value)
            per_channel[channel] += size
            version = cp["channel_versions"].get(channel)
            if seen_versions.get(channel) != version:
                seen_versions[channel] = version
                blobs += size
        bookkeeping += sum(packed_size(cp.get(k)) for k in BOOKKEEPING)
        for w in step["writes"]:
            writes[w["channel"]] += w["stored"]
        writes_wrapper += step["writes_stored"] - sum(w["stored"] for w in step["writes"])
    return {
        "checkpoints": len(steps),
        "checkpoint_stored": stored_total,
        "checkpoint_channels": dict(sorted(per_channel.items(), key=lambda kv: -kv[1])),
        "checkpoint_bookkeeping": bookkeeping,
        "checkpoint_encoding": stored_total - packed_total,
        "writes_stored": sum(s["writes_stored"] for s in steps),
        "writes_channels": dict(sorted(writes.items(), key=lambda kv: -kv[1])),
        "writes_wrapper": writes_wrapper,
        "blobs_per_version": blobs,
        "final": final_sizes(steps[-1]) if steps else {},
    }


def call_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Bytes of each call-record field in a checkpoint's ``calls``, and how many call contents
    are stored again, verbatim, as a draft or a critique."""
    sizes: dict[str, int] = defaultdict(int)
    calls = values.get("calls") or []
    for record in calls:
        for name, value in record.items():
            sizes[name] += packed_size(value)
    texts = {d["content"] for d in values.get("drafts") or []}
    texts |= {c["content"] for c in values.get("critiques") or []}
    return {"calls": len(calls), "fields": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
            "content_also_in_drafts_or_critiques": sum(r.get("content") in texts for r in calls)}


def stored_size(info: dict[str, Any], checkpoint: dict[str, Any]) -> int:
    """Bytes of the saver's JSON value (``info``) if it held ``checkpoint`` instead."""
    packed = base64.b64encode(SERDE.dumps_typed(checkpoint)[1]).decode()
    return len(json.dumps({**info, "checkpoint": packed}, separators=(",", ":")))


def final_sizes(step: dict[str, Any]) -> dict[str, Any]:
    """The latest checkpoint now, and what it would be without what is stored twice in it."""
    cp = step["checkpoint"]
    values = cp["channel_values"]
    texts = {d["content"] for d in values.get("drafts") or []}
    texts |= {c["content"] for c in values.get("critiques") or []}
    slim_calls = [{k: v for k, v in r.items() if k != "content" or v not in texts}
                  for r in values.get("calls") or []]
    without_result = {**cp, "channel_values": {k: v for k, v in values.items() if k != "result"}}
    slim = {**without_result,
            "channel_values": {**without_result["channel_values"], "calls": slim_calls}}
    return {
        "stored": step["stored"],
        "msgpack": len(base64.b64decode(step["info"]["checkpoint"])),
        "channels": {k: packed_size(v) for k, v in sorted(values.items(),
                                                           key=lambda kv: -packed_size(kv[1]))},
        "calls": call_fields(values),
        "estimate_without_result": stored_size(step["info"], without_result),
        "estimate_without_result_and_call_content": stored_size(step["info"], slim),
        "estimate_slim_as_raw_msgpack": len(SERDE.dumps_typed(slim)[1]),
    }


class CannotCompact(RuntimeError):
    """The thread is left as it was: it can still be resumed, changed while compacting, or its
    final checkpoint does not hold its whole state (``DeltaChannel``)."""


def compact(client: valkey.Valkey, thread_id: str, ttl_s: int | None = None,
            dry_run: bool = False, snapshots: dict[str, Any] | None = None) -> dict[str, Any]:
    """Reduce a *finished* thread to its final checkpoint; optionally give what is left a TTL.

    Deletes every older checkpoint and every pending-writes key of the root namespace, keeps
    the final checkpoint (its ``parent_checkpoint_id`` cleared, so nothing points at a deleted
    checkpoint) and a one-element thread list. Atomic: WATCH on the thread list, so a
    checkpoint added meanwhile (a fork in Studio, ``update_state``) aborts it. Raises
    ``CannotCompact`` for anything that is not ``finished``. Returns what it removed and kept.

    A graph with ``DeltaChannel`` fields keeps their values in the ancestors' writes; then
    ``snapshots`` must give every such channel's whole value (``graph.aget_state(...).values``),
    and it is written into the final checkpoint as a ``_DeltaSnapshot`` before the ancestors go.
    """
    thread_key = f"thread:{{{thread_id}}}:"
    with client.pipeline(transaction=True) as pipe:
        pipe.watch(thread_key)
        ids = list(dict.fromkeys(x.decode() for x in pipe.lrange(thread_key, 0, -1)))
        if not ids:
            raise CannotCompact(f"{thread_id}: no checkpoints")
        final_key = f"checkpoint:{{{thread_id}}}::{ids[0]}"
        raw = pipe.get(final_key)
        if raw is None:
            raise CannotCompact(f"{thread_id}: its latest checkpoint is missing")
        info, checkpoint, metadata = decode_checkpoint(raw)
        writes = decode_writes(pipe.get(f"writes:{{{thread_id}}}::{ids[0]}"))
        status, _ = status_of(checkpoint, writes)
        if status != "finished":
            raise CannotCompact(f"{thread_id} is {status}; only finished threads are compacted")
        delta = set(metadata.get("counters_since_delta_snapshot") or {})
        if delta - set(snapshots or {}):
            # DeltaChannel values live in the ancestors' writes, not in the final checkpoint:
            # deleting those would silently empty them (no error on read).
            raise CannotCompact(f"{thread_id} keeps {sorted(delta)} as DeltaChannel writes; "
                                "pass their values as snapshots")
        if delta:
            values = {**checkpoint["channel_values"],
                      **{k: _DeltaSnapshot(snapshots[k]) for k in delta}}  # type: ignore[index]
            typ, packed = SERDE.dumps_typed({**checkpoint, "channel_values": values})
            info["type"], info["checkpoint"] = typ, base64.b64encode(packed).decode()
            metadata.pop("counters_since_delta_snapshot")
            info["metadata"] = base64.b64encode(json.dumps(metadata).encode()).decode()
        doomed = [f"checkpoint:{{{thread_id}}}::{cid}" for cid in ids[1:]]
        doomed += [f"writes:{{{thread_id}}}::{cid}" for cid in ids]
        doomed = [k for k in doomed if pipe.exists(k)]
        result = {"thread_id": thread_id, "deleted": len(doomed), "kept": [final_key, thread_key],
                  "ttl_s": ttl_s}
        if dry_run:
            pipe.unwatch()
            return result
        pipe.multi()
        for i in range(0, len(doomed), 500):
            pipe.delete(*doomed[i:i + 500])
        info["parent_checkpoint_id"] = None
        pipe.set(final_key, json.dumps(info, separators=(",", ":")), keepttl=True)
        pipe.ltrim(thread_key, 0, 0)
        if ttl_s:
            pipe.expire(final_key, ttl_s)
            pipe.expire(thread_key, ttl_s)
        try:
            pipe.execute()
        except valkey.WatchError:
            raise CannotCompact(f"{thread_id} changed while compacting; left as it was") from None
    return result


def _print_threads(rows: list[ThreadStatus]) -> None:
    print(f"{'thread':<28} {'status':<10} {'ckpts':>5} {'keys':>4} {'bytes':>9} {'age':>8}  next")
    for t in rows:
        lease = " (lease)" if t.lease else ""
        print(f"{t.thread_id:<28} {t.status:<10} {t.checkpoints:>5} {t.keys:>4} {t.bytes:>9} "
              f"{t.age_s:>7.0f}s  {','.join(sorted(set(t.next)))}{lease}")


def main() -> None:
    """List threads, show one thread's breakdown, or compact one finished thread."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--valkey-url", required=True)
    ap.add_argument("--thread", help="show where this thread's bytes go")
    ap.add_argument("--compact", metavar="THREAD", help="compact this finished thread")
    ap.add_argument("--ttl", type=int, help="with --compact: expire what is left after SECONDS")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    client = valkey.Valkey.from_url(args.valkey_url.replace("valkey://", "redis://", 1))
    if args.compact:
        print(json.dumps(compact(client, args.compact, args.ttl, args.dry_run), indent=2))
    elif args.thread:
        print(json.dumps(breakdown(client, args.thread), indent=2, default=str))
    else:
        rows = list_threads(client)
        if args.json:
            print(json.dumps([asdict(r) for r in rows], indent=2))
        else:
            _print_threads(rows)


if __name__ == "__main__":
    main()
