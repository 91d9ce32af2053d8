"""What the CLI shows a person: progress as agents finish, then the decision."""

from __future__ import annotations

import sys
import time
from typing import Any

from council_agents.core.events import PromptSetRecord
from council_agents.core.state import CouncilState


def say(*parts: Any) -> None:
    """A line on stderr (stdout is for results)."""
    print(*parts, file=sys.stderr, flush=True)


class Progress:
    """Prints each agent's finished stage as it happens (stream mode ``updates``)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.t0 = time.monotonic()

    def __call__(self, mode: str, chunk: Any) -> None:
        """Print the calls and stages of one streamed update."""
        if self.quiet or mode != "updates":
            return
        for node, update in chunk.items():
            if node == "__interrupt__":
                say("  ⏸  waiting for human approval")
                continue
            for call in (update or {}).get("calls", []):
                say(self._call_line(call))
            if node == "prepare":
                council = update["council"]
                agent = council["agents"][0]
                say(
                    f"council {council['role']}: {len(council['agents'])} agents, "
                    f"{council['rounds']} round(s), model {agent['model']} at {agent['base_url']}"
                )
            if node == "publish" and update.get("published"):
                p = update["published"]
                dup = " (duplicate, dropped)" if p.get("duplicate") else ""
                say(f"  ✓ published {p['subject']} to {p['stream']} seq {p['seq']}{dup}")

    def _call_line(self, call: dict[str, Any]) -> str:
        flag = "✓" if call.get("accepted", True) else "✗"
        note = f"  ({call['problem']})" if call.get("problem") else ""
        rnd = f" r{call['round']}" if call["stage"] in ("critique", "revise") else ""
        return (
            f"  {flag} {time.monotonic() - self.t0:6.1f}s {call['stage']:<8}{rnd:<4} "
            f"{call['agent_id']:<16} {call['completion_tokens']:>5} tokens "
            f"{call['latency_s']:6.2f}s{note}"
        )


def print_result(values: CouncilState, as_json: bool) -> None:
    """The completed event: as JSON, or the winner, why, how it was decided, and the cost."""
    event = values.get("result")
    if event is None:
        return
    if as_json:
        print(event.model_dump_json(indent=2))
        return
    decision = event.decision
    how = (
        f"decided by {decision.decided_by}; aggregator {decision.aggregator}; " if decision else ""
    )
    print(
        f"\nWinner: {event.winner.author.agent_id}  ({how}stopped: {event.stop_reason} after "
        f"{event.rounds} of {event.max_rounds} round(s))"
    )
    print(f"Why: {event.justification}\n")
    if decision and decision.judgements:
        agree = "agree" if decision.judges_agree else "DISAGREE"
        print(
            f"Judges: two judgements in opposite orders {agree} on the winner "
            f"(Kendall tau {decision.rank_agreement or 0:+.2f})"
        )
    if decision and decision.votes:
        borda = ", ".join(
            f"{a} {p}" for a, p in sorted(decision.borda.items(), key=lambda x: -x[1])
        )
        print(f"Peer vote (Borda): {borda}; vote winner {decision.vote_winner}")
    print("\nRanking:")
    for row in event.ranking:
        scores = ", ".join(f"{k} {v:g}" for k, v in row.scores.items())
        print(f"  {row.rank}. {row.agent_id:<16} {row.total:5.2f}  borda {row.borda}  [{scores}]")
    omissions = decision.omissions if decision else []
    if omissions:
        print("\nLeft out (answers rejected after every retry; the council went on without them):")
        for o in omissions:
            about = f" on {o.subject}" if o.subject and o.stage == "critique" else ""
            print(
                f"  {o.stage} r{o.round} {o.agent_id}{about}: {o.reason} "
                f"({o.attempts} attempt(s), {o.completion_tokens} tokens)"
            )
    usage = event.usage
    print(
        f"\nTokens: {usage.prompt_tokens} prompt ({usage.cached_tokens} cached), "
        f"{usage.completion_tokens} completion in {usage.calls} calls; "
        f"{event.duration_ms / 1000:.1f}s"
    )
    print(prompts_line(event.prompts))
    print(f"Deliberation id: {event.deliberation_id}\n")
    print("Winning proposal:\n" + event.winner.content)


def pruned_line(thread_id: str, marker: dict[str, Any]) -> str:
    """A deliberation retention pruned: when it finished and where its event is."""
    where = marker.get("published") or {}
    event = (
        f"its completed event is {where.get('stream')} seq {where.get('seq')}"
        if where
        else "its completed event was not published"
    )
    return (
        f"council: deliberation {thread_id} finished at {marker.get('finished_at')}; "
        f"its checkpoints were pruned (retention) and {event}"
    )


def prompts_line(prompts: PromptSetRecord | None) -> str:
    """Which prompt set the deliberation used, and whether it changed while it ran."""
    if prompts is None:
        return "Prompts: not recorded"
    if not prompts.changed:
        return f"Prompts: set {prompts.digest} ({len(prompts.files)} files rendered)"
    files = ", ".join(prompts.changed_files) or "a file it did not render"
    return (
        f"Prompts: CHANGED during the deliberation: sets {' -> '.join(prompts.digests)} "
        f"({files} edited)"
    )
