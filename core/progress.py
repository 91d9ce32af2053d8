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


def unchanged(state: CouncilState) -> set[str]:
    """The agents whose newest version (a revision) has the same content as the one before it:
    carried forward, or answered ``UNCHANGED``. Their drafts are not critiqued again.
    """
    texts: dict[str, dict[int, str]] = {}
    for draft in state.get("drafts", []):
        texts.setdefault(draft["agent_id"], {})[draft["version"]] = draft["content"]
    same = set()
    for agent_id, versions in texts.items():
        newest = max(versions)
        if newest > 0 and versions.get(newest - 1) == versions[newest]:
            same.add(agent_id)
    return same


def critic_pairs(state: CouncilState) -> list[tuple[str, str]]:
    """The (critic, author) pairs of the next critique round: among the agents still in (id
    order), author i is critiqued by agents i+1..i+k (mod their number), k being the council's
    ``critics`` (every peer when unset); an author whose newest draft is unchanged is not
    critiqued again.
    """
    versions = versions_done(state)
    ids = [a["agent_id"] for a in state["council"]["agents"] if a["agent_id"] in versions]
    n = len(ids)
    k = state["council"].get("critics") or n - 1
    k = min(k, n - 1)
    same = unchanged(state)
    return [
        (ids[(i + step) % n], author)
        for i, author in enumerate(ids)
        if author not in same
        for step in range(1, k + 1)
    ]


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
    """Why the rounds ended: ``rounds_completed``, ``converged``, ``no_critiques``,
    ``unchanged`` (no draft changed, so no pair was left to critique) or ``budget``.
    """
    versions = versions_done(state)
    done = min(versions.values()) if versions else 0
    if done >= state["council"]["rounds"]:
        return "rounds_completed"
    received = [c for c in state.get("critiques", []) if c["round"] == done + 1]
    if converged(received):
        return "converged"
    if not received and not critic_pairs(state):
        return "unchanged"
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
