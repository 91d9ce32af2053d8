"""ground: the council's checkers on every new draft, with no LLM (after propose and each revise).

The checkers (``checks/``) a council runs are its ``checkers`` (``prepare`` fills the default
by the task's kind: ``code`` and ``quotes`` for a code task, ``plan`` and ``quotes`` otherwise).
Here the draft checkers run: ``code`` (the code parses, defines the function the task names,
and, when the council enables execution, its outputs on the task's examples, in the sandbox
only) and ``plan`` (the fixed sections, embedded code that parses, measurable acceptance
criteria). ``quotes`` runs where claims are made (``nodes.critique``, ``nodes.judge``).

What they found (``Evidence``) is in the state, one record per draft and checker, and is shown
to critics, authors, judges and voters (``evidence_text``: under the names their prompt uses,
fenced as data since it holds program output). The functions below read it for the router and
``select``:

- ``failed_checks``: the hard failures of each agent's newest draft (a draft with one cannot
  win while a draft without exists);
- ``agreed``: the agreement gate: when some newest drafts are *verified* (they match every
  result the task states for its examples, ``checks.code``), the largest group of them with
  the same outputs decides at once; else the newest drafts' outputs on the task's examples,
  grouped: when the largest group that is not only exceptions holds at least the council's
  ``gate`` share of the drafts, the deliberation stops; either way that group's first agent
  (by id: the lower neutral label) wins, without critiques or judges;
- ``singled_out``: exactly one newest draft passes the hard checks: the judges are skipped.
"""

from __future__ import annotations

import asyncio

from council_agents.checks import code, plan
from council_agents.core.progress import latest_drafts, versions_done
from council_agents.core.state import Council, CouncilState, Draft, Evidence, GroundUpdate
from council_agents.core.terms import Checker

DRAFT_CHECKERS: tuple[Checker, ...] = ("code", "plan")
"""The checkers that read drafts (``quotes`` reads claims about them)."""


def checkers_for(council: Council, task: str) -> list[Checker]:
    """The council's checkers, or the default by the task's kind."""
    chosen = council.get("checkers")
    if chosen is not None:
        return list(chosen)
    return ["code", "quotes"] if code.code_task(task) is not None else ["plan", "quotes"]


def _draft_checkers(state: CouncilState) -> list[Checker]:
    return [c for c in checkers_for(state["council"], state["task"]) if c in DRAFT_CHECKERS]


def _newest(state: CouncilState) -> list[Draft]:
    versions = versions_done(state)
    return [d for d in state.get("drafts", []) if d["version"] == versions[d["agent_id"]]]


def ungrounded(state: CouncilState) -> list[Draft]:
    """The newest drafts no checker has read yet."""
    if not _draft_checkers(state):
        return []
    seen = {(e["agent_id"], e["version"]) for e in state.get("evidence", [])}
    return [d for d in _newest(state) if (d["agent_id"], d["version"]) not in seen]


async def _check(
    state: CouncilState, draft: Draft, checker: Checker, task: code.CodeTask | None
) -> Evidence:
    found = Evidence(
        agent_id=draft["agent_id"],
        version=draft["version"],
        checker=checker,
        hard=[],
        notes=[],
        outputs=None,
    )
    before = [
        e
        for e in state.get("evidence", [])
        if e["agent_id"] == draft["agent_id"] and e["checker"] == checker
    ]
    if draft.get("carried") and before:  # the same text as the version before: the same findings
        newest = max(before, key=lambda e: e["version"])
        return Evidence(**{**newest, "version": draft["version"]})
    if checker == "code":
        if task is None:
            found["notes"] = ["not checked: the task names no function to write"]
            return found
        checked = await code.check(
            task, draft["content"], run=state["council"].get("execute", False)
        )
        found["hard"], found["notes"] = checked.hard, checked.notes
        found["outputs"] = None if checked.outputs is None else list(checked.outputs)
        found["verified"] = checked.verified
    else:
        planned = await asyncio.to_thread(plan.check, draft["content"])
        found["hard"], found["notes"] = planned.hard, planned.notes
    return found


async def ground(state: CouncilState) -> GroundUpdate:
    """Every draft checker on every newest draft not yet read (in parallel)."""
    task = code.code_task(state["task"])
    jobs = [
        _check(state, draft, checker, task)
        for draft in ungrounded(state)
        for checker in _draft_checkers(state)
    ]
    return GroundUpdate(evidence=list(await asyncio.gather(*jobs)))


def _newest_evidence(state: CouncilState) -> dict[str, list[Evidence]]:
    versions = versions_done(state)
    finals = latest_drafts(state)
    found: dict[str, list[Evidence]] = {a: [] for a in finals}
    for e in state.get("evidence", []):
        if e["agent_id"] in finals and e["version"] == versions[e["agent_id"]]:
            found[e["agent_id"]].append(e)
    return found


def failed_checks(state: CouncilState) -> dict[str, list[str]]:
    """Agent -> the hard checks its newest draft failed (only agents that failed one)."""
    return {
        a: [h for e in found for h in e["hard"]]
        for a, found in _newest_evidence(state).items()
        if any(e["hard"] for e in found)
    }


def passing(state: CouncilState) -> list[str]:
    """The agents whose newest draft was checked and failed no hard check, by id."""
    failed = failed_checks(state)
    return sorted(a for a, found in _newest_evidence(state).items() if found and a not in failed)


def singled_out(state: CouncilState) -> str | None:
    """The one agent whose newest draft passes the hard checks when every other failed one."""
    finals = latest_drafts(state)
    ok = passing(state)
    return ok[0] if len(ok) == 1 and len(failed_checks(state)) == len(finals) - 1 else None


def agreed(state: CouncilState) -> list[str]:
    """The agreement gate: the agents of the agreeing group when it decides, by id, else []."""
    gate = state["council"].get("gate")
    if not gate:
        return []
    found = _newest_evidence(state)
    ids = sorted(found)
    failed = failed_checks(state)
    outputs: list[tuple[str, ...] | None] = []
    for a in ids:
        run = [e["outputs"] for e in found[a] if e["checker"] == "code" and e["outputs"]]
        outputs.append(tuple(run[0]) if run and a not in failed else None)
    checked = [a for a in ids if a not in failed and any(e.get("verified") for e in found[a])]
    if checked:  # matches every result the task states: decided whatever the others say
        among = [outputs[ids.index(a)] for a in checked]
        return [checked[i] for i in code.agreeing(among)] or checked[:1]
    group = code.agreeing(outputs)
    if not group or code.only_exceptions(outputs[group[0]] or ()):
        return []
    return [ids[i] for i in group] if len(group) >= gate * len(ids) else []


def evidence_text(state: CouncilState, names: dict[str, str]) -> str:
    """What the checkers found in the newest drafts of ``names`` (agent -> the name the reader
    knows it by: a neutral label, or "the proposal under review"), one block each.
    """
    found = _newest_evidence(state)
    blocks = []
    for agent_id, name in names.items():
        lines = [
            f"- {checker_line}"
            for e in found.get(agent_id, [])
            for checker_line in ([f"FAILS ({e['checker']}): {h}" for h in e["hard"]] + e["notes"])
        ]
        if lines:
            blocks.append(f"{name}:\n" + "\n".join(lines))
    return "\n\n".join(blocks) or "(no checks ran)"
