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

import shared  # noqa: E402
from crewai import LLM, Agent, Crew, Process, Task  # noqa: E402

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
        llm = LLM(
            model=f"hosted_vllm/{spec['model']}",
            base_url=spec["base_url"],
            api_key=spec["api_key"],
            max_tokens=spec["max_tokens"][stage],
            temperature=member["temperature"],
            seed=member["seed"],
            default_headers=shared.headers(spec, member["agent_id"], stage),
        )
        return Agent(
            role=f"{member['agent_id']}, {spec['role']} engineer",
            goal="The best solution to the council's task, as the rubric judges it",
            backstory=self.backstory,
            llm=llm,
            allow_delegation=False,
            verbose=False,
        )


class Deliberation:
    """The crew's tasks, in the order CrewAI runs them (the module docstring has the barriers)."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.members = Members(spec)
        self.values = shared.shared_values(spec)
        self.ids = [m["agent_id"] for m in spec["agents"]]
        self.tasks: list[Task] = []

    def task(
        self,
        stage: str,
        member: dict[str, Any],
        context: list[Task],
        sync: bool,
        prompt: dict[str, object],
        **options: Any,
    ) -> Task:
        one_at_a_time = bool(self.spec.get("sequential"))
        task = Task(
            description=shared.render(self.spec, stage, **self.values, **prompt),
            expected_output=EXPECTED[stage],
            agent=self.members.agent(member, stage),
            context=context,
            async_execution=not (sync or one_at_a_time),
            **options,
        )
        self.tasks.append(task)
        return task

    def crew(self) -> Crew:
        proposals = {
            m["agent_id"]: self.task("propose", m, [], False, {"agent_id": m["agent_id"]})
            for m in self.spec["agents"]
        }
        critiques = self.critiques(proposals)
        revisions = self.revisions(proposals, critiques)
        self.judge(revisions)
        agents = list({id(t.agent): t.agent for t in self.tasks}.values())
        return Crew(agents=agents, tasks=self.tasks, process=Process.sequential, verbose=False)

    def critiques(self, proposals: dict[str, Task]) -> dict[str, list[Task]]:
        """Every peer critiques every other proposal; the first critique must be synchronous."""
        out: dict[str, list[Task]] = {aid: [] for aid in self.ids}
        for author in self.ids:
            for critic in (m for m in self.spec["agents"] if m["agent_id"] != author):
                out[author].append(
                    self.task(
                        "critique",
                        critic,
                        [proposals[author]],
                        sync=not any(out.values()),
                        prompt={
                            "author": author,
                            "version": 0,
                            "round": 1,
                            "agent_id": critic["agent_id"],
                            "proposal": f"(the output of {author}'s proposal task, in the "
                            "context below)",
                        },
                    )
                )
        return out

    def revisions(
        self, proposals: dict[str, Task], critiques: dict[str, list[Task]]
    ) -> dict[str, Task]:
        """Each author revises from its critiques; the first revision must be synchronous."""
        return {
            aid: self.task(
                "revise",
                member,
                [proposals[aid], *critiques[aid]],
                sync=i == 0,
                prompt={
                    "author": aid,
                    "version": 0,
                    "round": 1,
                    "agent_id": aid,
                    "proposal": f"(the output of {aid}'s proposal task, first in the context "
                    "below)",
                    "critiques": "(the outputs of the critique tasks, after it in the context "
                    "below)",
                },
            )
            for i, (aid, member) in enumerate(zip(self.ids, self.spec["agents"], strict=False))
        }

    def judge(self, revisions: dict[str, Task]) -> Task:
        order = shared.judge_order(self.spec, self.ids)
        proposals = "\n\n".join(
            f"## Proposal by {aid} (version 1)\n(the output of {aid}'s "
            "revision task in the context below)"
            for aid in order
        )
        verdict = shared.judgement_model(self.ids, list(self.spec["rubric"]))
        return self.task(
            "select",
            self.spec["judge"],
            [revisions[aid] for aid in order],
            True,
            {"proposals": proposals, "candidates": ", ".join(order)},
            output_pydantic=verdict,
        )


def main() -> None:
    spec = shared.load_spec()
    crew = Deliberation(spec).crew()
    with shared.Clock() as clock:
        result = crew.kickoff()
    verdict = result.pydantic
    shared.report(
        spec,
        version("crewai"),
        clock,
        verdict.winner,
        verdict.justification,
        tasks=len(result.tasks_output),
    )


if __name__ == "__main__":
    main()
