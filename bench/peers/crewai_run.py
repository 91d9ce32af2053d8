"""The council's deliberation written in CrewAI: Agents, Tasks with ``context=``, one ``Crew``.

Run by ``bench/peers.py`` inside CrewAI's own virtualenv (CrewAI pins openai < 3, council uses
openai 3): ``python crewai_run.py SPEC.json``.

A sequential crew (``Process.sequential``) with CrewAI's documented parallelism: tasks marked
``async_execution=True`` start without waiting, and a later task whose ``context`` names them
waits for them. CrewAI allows an asynchronous task to read an asynchronous task only when a
synchronous task lies between the two (its ``Crew`` validators refuse it otherwise), and a
synchronous task starts only once every asynchronous task before it is done. So the most
parallel crew CrewAI accepts for this deliberation is::

    propose x3 (async) | critique 1 (sync) | critique x5 (async) | revise 1 (sync)
    | revise x2 (async) | judge (sync, reads the three revisions)

One critique and one revision run alone (before their stage's other calls start, not
alongside them): two more calls on the critical path than council's four stages. With
``"sequential": true`` in the spec every task is synchronous: the crew as CrewAI's quick start
and most of its examples write it, one call at a time.

Each council member is one CrewAI ``Agent`` per stage, because an ``Agent`` carries its ``LLM``
and the ``LLM`` carries ``max_tokens`` (council's budget differs per stage) and, as headers, who
is calling (for the simulator's log). The role prompt is the agent's backstory; the task
description is council's stage prompt, whose proposal and critiques arrive as CrewAI context.
The judge's task has ``output_pydantic``, the same schema council's judge answers.
"""

from __future__ import annotations

import os
from importlib.metadata import version
from typing import Any

for name in ("CREWAI_DISABLE_TELEMETRY", "CREWAI_DISABLE_TRACKING", "OTEL_SDK_DISABLED"):
    os.environ.setdefault(name, "true")  # no network here; CrewAI would try to send telemetry
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")

from crewai import LLM, Agent, Crew, Process, Task  # noqa: E402

import shared  # noqa: E402

EXPECTED = {
    "propose": "Your proposal in Markdown: approach, steps, risks with a way back, verification.",
    "critique": "Your critique of the proposal in Markdown: strengths, weaknesses, suggestions.",
    "revise": "Your full revised proposal in Markdown.",
    "select": "The JSON document with every score, the winner and the justification.",
}


class Members:
    """One ``Agent`` per council member and stage (the ``LLM`` fixes max_tokens and headers)."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.backstory = shared.render(spec, f"roles/{spec['role'].lower()}", role=spec["role"])

    def agent(self, member: dict[str, Any], stage: str) -> Agent:
        spec = self.spec
        llm = LLM(model=f"hosted_vllm/{spec['model']}", base_url=spec["base_url"],
                  api_key=spec["api_key"], max_tokens=spec["max_tokens"][stage],
                  temperature=member["temperature"], seed=member["seed"],
                  default_headers=shared.headers(spec, member["agent_id"], stage))
        return Agent(role=f"{member['agent_id']}, {spec['role']} engineer",
                     goal="The best solution to the council's task, as the rubric judges it",
                     backstory=self.backstory, llm=llm, allow_delegation=False, verbose=False)


def build(spec: dict[str, Any]) -> Crew:
    """The tasks in the order CrewAI runs them (see the module docstring for the barriers)."""
    members = Members(spec)
    one_at_a_time = bool(spec.get("sequential"))
    values = shared.shared_values(spec)
    ids = [m["agent_id"] for m in spec["agents"]]

    def task(stage: str, member: dict[str, Any], context: list[Task], sync: bool = False,
             **prompt_values: object) -> Task:
        description = shared.render(spec, stage, **values, **prompt_values)
        return Task(description=description, expected_output=EXPECTED[stage],
                    agent=members.agent(member, stage), context=context,
                    async_execution=not (sync or one_at_a_time))

    propose = {m["agent_id"]: task("propose", m, [], agent_id=m["agent_id"])
               for m in spec["agents"]}
    critiques: dict[str, list[Task]] = {aid: [] for aid in ids}
    ordered = list(propose.values())
    for author in ids:  # every peer critiques every other proposal; the first one must be sync
        for critic in (m for m in spec["agents"] if m["agent_id"] != author):
            t = task("critique", critic, [propose[author]], sync=len(ordered) == len(ids),
                     author=author, version=0, round=1, agent_id=critic["agent_id"],
                     proposal=f"(the output of {author}'s proposal task, in the context below)")
            critiques[author].append(t)
            ordered.append(t)
    revise = {}
    for i, m in enumerate(spec["agents"]):  # the first revision must be sync too
        aid = m["agent_id"]
        revise[aid] = task("revise", m, [propose[aid], *critiques[aid]], sync=i == 0,
                           author=aid, version=0, round=1, agent_id=aid,
                           proposal=f"(the output of {aid}'s proposal task, first in the context "
                                    "below)",
                           critiques="(the outputs of the critique tasks, after it in the context "
                                     "below)")
        ordered.append(revise[aid])
    order = shared.judge_order(spec, ids)
    proposals = "\n\n".join(f"## Proposal by {aid} (version 1)\n(the output of {aid}'s revision "
                            "task in the context below)" for aid in order)
    judge = Task(description=shared.render(spec, "select", **values, proposals=proposals,
                                           candidates=", ".join(order)),
                 expected_output=EXPECTED["select"], agent=members.agent(spec["judge"], "select"),
                 context=[revise[aid] for aid in order],
                 output_pydantic=shared.judgement_model(ids, list(spec["rubric"])))
    ordered.append(judge)
    agents = list({id(t.agent): t.agent for t in ordered}.values())
    return Crew(agents=agents, tasks=ordered, process=Process.sequential, verbose=False)


def main() -> None:
    spec = shared.load_spec()
    crew = build(spec)
    with shared.Clock() as clock:
        result = crew.kickoff()
    verdict = result.pydantic
    shared.report(spec, version("crewai"), clock, verdict.winner, verdict.justification,
                  tasks=len(result.tasks_output))


if __name__ == "__main__":
    main()
