"""What the state says has happened so far: derived from the data itself, so resuming needs no
counter. The router (``graph.routing``), ``select`` and the eval read progress only here; the
completed event reads which prompt set was used (``prompt_provenance``).
"""

from __future__ import annotations

from council_agents.core.state import CouncilState, Critique, PromptProvenance
from council_agents.core.terms import SEVERE, StopReason


def latest_drafts(state: CouncilState) -> dict[str, str]:
    """Each agent's newest version."""
    newest: dict[str, tuple[int, str]] = {}
    for draft in state.get("drafts", []):
        known = newest.get(draft["agent_id"])
        if known is None or draft["version"] > known[0]:
            newest[draft["agent_id"]] = (draft["version"], draft["content"])
    return {agent_id: content for agent_id, (_, content) in newest.items()}


def versions_done(state: CouncilState) -> dict[str, int]:
    """Each agent's newest version number."""
    versions: dict[str, int] = {}
    for draft in state.get("drafts", []):
        versions[draft["agent_id"]] = max(versions.get(draft["agent_id"], -1), draft["version"])
    return versions


def critiques_for(critiques: list[Critique], author: str) -> list[Critique]:
    """The critiques of ``author``'s proposal, in critic order."""
    return sorted((c for c in critiques if c["author"] == author), key=lambda c: c["critic"])


def severe(critique: Critique) -> bool:
    """A blocker, a major defect or a broken constraint."""
    return bool(critique["violations"]) or any(d["severity"] in SEVERE for d in critique["defects"])


def converged(critiques: list[Critique]) -> bool:
    """A round whose critiques (all in) found nothing that must or should change."""
    return bool(critiques) and not any(severe(c) for c in critiques)


def left_out(state: CouncilState) -> set[str]:
    """The agents whose proposals were rejected after every retry: they take no further part."""
    return {o["agent_id"] for o in state.get("omissions", []) if o["stage"] == "propose"}


def tokens_used(state: CouncilState) -> int:
    """Prompt and completion tokens of every call so far."""
    return sum(c["prompt_tokens"] + c["completion_tokens"] for c in state.get("calls", []))


def stop_reason(state: CouncilState) -> StopReason:
    """Why the rounds ended: ``rounds_completed``, ``converged`` or ``budget``."""
    versions = versions_done(state)
    done = min(versions.values()) if versions else 0
    if done >= state["council"]["rounds"]:
        return "rounds_completed"
    received = [c for c in state.get("critiques", []) if c["round"] == done + 1]
    if converged(received):
        return "converged"
    rejected = [
        o for o in state.get("omissions", []) if o["stage"] == "critique" and o["round"] == done + 1
    ]
    return "no_critiques" if rejected and not received else "budget"


def prompt_provenance(state: CouncilState) -> PromptProvenance | None:
    """Which prompt set the deliberation used: the digest ``prepare`` checked (when recorded),
    then every digest and file hash its calls read, in order (None: nothing recorded, e.g. a
    deliberation from before prompt provenance).
    """
    start = state.get("prompts")
    digests = [start["digest"]] if start else []
    seen: dict[str, list[str]] = {n: [h] for n, h in (start["files"] if start else {}).items()}
    rendered: set[str] = set()
    for call in state.get("calls", []):
        if "prompt_set" in call and call["prompt_set"] not in digests:
            digests.append(call["prompt_set"])
        for name, digest in call.get("prompts", {}).items():
            rendered.add(name)
            if digest not in seen.setdefault(name, []):
                seen[name].append(digest)
    if not digests:
        return None
    files = {name: seen[name][0] for name in sorted(rendered or seen)}
    return PromptProvenance(
        digest=digests[0],
        changed=len(digests) > 1,
        digests=digests,
        files=files,
        changed_files=sorted(name for name, hashes in seen.items() if len(hashes) > 1),
    )
