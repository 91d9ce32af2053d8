"""``council prune``: apply the retention policy to Valkey by hand (``server.retention``).

    council prune [--dry-run] [--json] [--thread ID ...]
                  [--history DURATION] [--finished DURATION|never]
                  [--unfinished-older-than DURATION|never]

The policy is the process settings' (``COUNCIL_RETAIN_*``); each flag overrides one of them
for this run. Every deliberation (or only ``--thread``) is listed with its status, age, what
was done and why, and the bytes it held before and after (``MEMORY USAGE``); ``--dry-run``
says what would be done and changes nothing. A deliberation that can still be resumed is
deleted only with ``--unfinished-older-than`` (or ``COUNCIL_RETAIN_UNFINISHED``); one whose
lease a worker holds is never touched. The same code runs in the periodic sweep.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from typing import Any

from council_agents.cli.render import pruned_line, say
from council_agents.core.settings import Settings, parse_duration
from council_agents.server import retention
from council_agents.server.services import services
from council_agents.storage.markers import done_marker
from council_agents.storage.saver import connect

_DONE = {"compact": "compacted", "expire": "expiry set", "delete": "deleted"}


def add_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``council prune``.

    Args:
        sub: The ``council`` command's subcommands.
    """
    p = sub.add_parser(
        "prune", help="apply the retention policy to the checkpoints in Valkey (--dry-run)"
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be done; change nothing")
    p.add_argument("--json", action="store_true", help="one JSON object per deliberation")
    p.add_argument("--thread", action="append", metavar="ID", help="only this deliberation")
    p.add_argument(
        "--history",
        metavar="DURATION",
        help="finished deliberations keep every checkpoint this long (COUNCIL_RETAIN_HISTORY)",
    )
    p.add_argument(
        "--finished",
        metavar="DURATION",
        help="then their final checkpoint this long, or never (COUNCIL_RETAIN_FINISHED)",
    )
    p.add_argument(
        "--unfinished-older-than",
        metavar="DURATION",
        help="delete failed, waiting and unfinished ones idle this long, or never "
        "(COUNCIL_RETAIN_UNFINISHED; default never)",
    )
    p.set_defaults(func=cmd_prune)


def policy_of(args: argparse.Namespace, settings: Settings) -> retention.Policy:
    """The settings' policy with this run's flags applied.

    Args:
        args: The parsed command line.
        settings: The process settings.

    Returns:
        The policy for this run.
    """
    policy = retention.Policy.of(settings)
    changes: dict[str, Any] = {}
    if args.history is not None:
        changes["history_s"] = parse_duration(args.history, "--history")
    if args.finished is not None:
        changes["finished_s"] = parse_duration(args.finished, "--finished", never=True)
    if args.unfinished_older_than is not None:
        changes["unfinished_s"] = parse_duration(
            args.unfinished_older_than, "--unfinished-older-than", never=True
        )
    return dataclasses.replace(policy, **changes)


async def prune(
    url: str, policy: retention.Policy, threads: list[str] | None, dry_run: bool
) -> tuple[retention.Sweep, dict[str, dict[str, Any] | None]]:
    """Apply ``policy`` once, measuring what each change freed.

    Args:
        url: The Valkey.
        policy: The policy.
        threads: Only these thread ids (None: every thread).
        dry_run: Decide without changing anything.

    Returns:
        The sweep, and for each of ``threads`` without checkpoints its done marker (or None).
    """
    client = connect(url)
    try:
        result = await retention.sweep(client, policy, dry_run=dry_run, only=threads, measure=True)
        seen = {action.thread_id for action in result.actions}
        gone = {tid: await done_marker(client, tid) for tid in threads or [] if tid not in seen}
        return result, gone
    finally:
        await client.aclose()


def _kb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1000:,.1f}"


def _row(action: retention.Action, dry_run: bool) -> str:
    if action.verb == "keep":
        what = "kept"
    elif action.error:
        what = "left (changed meanwhile)"
    else:
        what = f"would be {_DONE[action.verb]}" if dry_run else _DONE[action.verb]
    size = f"{_kb(action.bytes_before)} -> {_kb(action.bytes_after)} kB"
    size = "" if action.verb == "keep" else (f"{_kb(action.bytes_before)} kB" if dry_run else size)
    return (
        f"{action.thread_id:<36} {action.status:<10} {retention.span(action.age_s):>6}  "
        f"{what:<24} {size:<22} {action.reason}"
    )


def report(
    result: retention.Sweep, gone: dict[str, dict[str, Any] | None], dry_run: bool, as_json: bool
) -> None:
    """Print what was (or would be) done, per deliberation, and a summary line on stderr.

    Args:
        result: The sweep.
        gone: Each asked-for thread without checkpoints, with its done marker (or None).
        dry_run: Nothing was changed.
        as_json: One JSON object per line instead of a table.
    """
    if as_json:
        for action in result.actions:
            print(json.dumps({**action.as_dict(), "dry_run": dry_run}))
        for tid, marker in gone.items():
            status = "pruned" if marker else None
            print(json.dumps({"thread_id": tid, "status": status, "marker": marker}))
    else:
        for action in result.actions:
            print(_row(action, dry_run))
        for tid, marker in gone.items():
            print(pruned_line(tid, marker) if marker else f"{tid}: no such deliberation")
    changed = [a for a in result.actions if a.verb != "keep" and not a.error]
    freed = sum((a.bytes_before or 0) - (a.bytes_after or 0) for a in changed)
    counts = ", ".join(f"{sum(a.verb == verb for a in changed)} {_DONE[verb]}" for verb in _DONE)
    verb = "would change" if dry_run else "changed"
    tail = "" if dry_run else f"; {_kb(freed)} kB freed"
    say(f"prune: {len(result.actions)} deliberations, {verb}: {counts}{tail}")


def cmd_prune(args: argparse.Namespace) -> int:
    """Apply the retention policy (settings, overridden by the flags) once.

    Args:
        args: The parsed command line.

    Returns:
        The exit code.
    """
    current = Settings.from_environment()
    policy = policy_of(args, current)
    with services(current, need_nats=False, announce=say) as current:
        assert current.storage.valkey_url is not None
        url = current.storage.valkey_url
        result, gone = asyncio.run(prune(url, policy, args.thread, args.dry_run))
    report(result, gone, args.dry_run, args.json)
    return 0
