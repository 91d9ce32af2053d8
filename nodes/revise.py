r"""revise: an author revises its own proposal from the critiques it received (in parallel).

The author answers in plain text: first the full revised proposal (a code block for code), then a
``=== CHANGES ===`` line and the defects it addressed and rejected, one per line (read loosely); or
only ``UNCHANGED``, which carries the previous version forward. A revision that drops what the
previous version had (``checks.artifact``: its code block, code that no longer parses or defines
the same names, a fixed section, most of its text) is rejected and, unless it was cut at
``max_tokens``, not asked for again (``llm.client.NoRetry``): the previous version stands, which is
all a retry could restore (on SmolLM2 a retry bought a revision 1 time in 4, and none passed a test
its previous version failed: docs/EVAL.md). An author with no critique to answer keeps its version
without a call (the router sends no task to an author without a severe critique: ``tally`` carries
its draft). The prompt shows the proposals exactly as the round's critics saw them (every agent's,
in the deliberation's fixed order, under neutral labels, so the prefix cache serves it), then the
critiques, then which label is the author's; to fit a window the critiques are shortened first,
then the other proposals, never the author's own.
Headings the fence escaped (``\## ...``) and copied back are restored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from council_agents.checks.artifact import dropped
from council_agents.core.state import Change, Draft, DraftUpdate, ReviseTask
from council_agents.llm.client import LLM, NoRetry
from council_agents.llm.prompt import Critiques
from council_agents.llm.stage import (
    LEFT_OUT,
    evidence_piece,
    labels_for,
    omission,
    proposals_piece,
    run_agent,
)

CHANGES = re.compile(r"^\s*[=#*-]*\s*changes\s*[=#*:-]*\s*$", re.I | re.M)
"""The line between the revised proposal and its list of changes."""
_FENCE = re.compile(r"^\s*</?data-[0-9a-f]{12}>\s*$", re.M)
"""A fence line (``llm.prompt.fence``) the author copied back with its proposal."""
_ESCAPED = re.compile(r"^( {0,3})\\(#)", re.M)
"""A heading the fence escaped (``llm.prompt.escaped``), copied back with the proposal."""
_ITEM = re.compile(r"^\s*[-*]?\s*(addressed|rejected)\s*[:-]\s*(.+)$", re.I)
UNCHANGED = "UNCHANGED"


@dataclass
class Revision:
    """A revision as read from the author's answer."""

    proposal: str | None
    """The revised proposal (None: unchanged)."""
    addressed: list[Change] = field(default_factory=list)
    rejected: list[Change] = field(default_factory=list)


def _change(text: str) -> Change:
    parts = re.split(r"\s*(?:->|→)\s*", text, maxsplit=1)
    defect, response = (parts[0], parts[1]) if len(parts) == 2 else (text, "")
    return Change(defect=defect.strip()[:800], response=response.strip()[:800])


def read_revision(answer: str, previous: str) -> Revision:
    """The revision in ``answer``; ``NoRetry`` (one line) when it is empty or drops what
    ``previous`` had.
    """
    text = _ESCAPED.sub(r"\1\2", _FENCE.sub("", answer)).strip()
    if text.upper().startswith(UNCHANGED) and len(text) < len(UNCHANGED) + 200:
        return Revision(None)
    marker = CHANGES.search(text)
    proposal = (text[: marker.start()] if marker else text).strip()
    if not proposal:
        raise NoRetry("the revision has no proposal before its list of changes")
    problem = dropped(previous, proposal)
    if problem:
        raise NoRetry(problem)
    revision = Revision(proposal)
    for line in text[marker.end() :].splitlines() if marker else []:
        item = _ITEM.match(line)
        if item:
            kept = revision.addressed if item.group(1).lower() == "addressed" else revision.rejected
            kept.append(_change(item.group(2)))
    return revision


def carried(task: ReviseTask, why: str) -> Draft:
    """The previous version, carried forward as this round's."""
    return Draft(
        agent_id=task["agent"]["agent_id"],
        version=task["round"],
        content=task["proposal"],
        carried=why,
    )


def revise_inputs(task: ReviseTask) -> dict[str, Any]:
    """The values and pieces of ``revise.md`` for ``task`` (``llm.stage.stage_prompt``'s
    keyword arguments): the critiques, every version the critics saw (the author's own never
    cut), the author's label, the evidence.
    """
    previous = task["proposal"]
    author = task["agent"]["agent_id"]
    order = task.get("order") or [author]
    labels = {a: label for label, a in labels_for(order).items()}
    return {
        "author": author,
        "version": task["round"] - 1,
        "round": task["round"],
        "proposal": previous,
        "label": labels[author],
        "own": labels[author],
        "pieces": {
            "critiques": Critiques(task["critiques"]),  # shortened first
            "proposals": proposals_piece(  # the author's own is never cut
                order, task.get("proposals") or {author: previous}, frozenset({author})
            ),
            "evidence": evidence_piece(task),  # shortened last
        },
    }


async def revise(task: ReviseTask, *, llm: LLM) -> DraftUpdate:
    """The agent's version ``round``: revised, unchanged, or (its revision rejected after every
    retry) the previous one carried forward, with an omission that says why.
    """
    if not task["critiques"]:
        return DraftUpdate(drafts=[carried(task, "unchanged: no critique to answer")], calls=[])
    previous = task["proposal"]
    try:
        answer = await run_agent(
            llm,
            task,
            "revise",
            check=lambda text: read_revision(text, previous),
            min_answer=len(previous) // 3 + 64,  # room to rewrite the whole proposal
            **revise_inputs(task),
        )
    except LEFT_OUT as e:
        left = omission(task, "revise", e)
        kept = carried(task, f"revision rejected: {e.cause}")
        return DraftUpdate(drafts=[kept], omissions=[left], calls=e.records)
    revision: Revision = answer.parsed
    if revision.proposal is None:
        return DraftUpdate(drafts=[carried(task, "unchanged")], calls=answer.records)
    draft = Draft(
        agent_id=task["agent"]["agent_id"],
        version=task["round"],
        content=revision.proposal,
        addressed=revision.addressed,
        rejected=revision.rejected,
    )
    return DraftUpdate(drafts=[draft], calls=answer.records)
