"""The council's deliberation written in CrewAI: Agents, Tasks with ``context=``, one ``Crew``.

Run by ``bench/peers.py`` inside CrewAI's own virtualenv (CrewAI pins openai < 3, council uses
openai 3): ``python crewai_run.py SPEC.json``.

A sequential crew (``Process.sequential``) with CrewAI's documented parallelism: tasks marked
``async_execution=True`` start without waiting, and a later task whose ``context`` names them
waits for them. CrewAI allows an asynchronous task to read an asynchronous task only when a
synchronous task lies between the two, a synchronous task starts only once every asynchronous
task before it is done, and a crew may end with at most one asynchronous task (its ``Crew``
validators refuse the rest). So the most parallel crew CrewAI accepts for this deliberation
is::

    propose x3 (async) | critique 1 (sync) | critique x5 (async) | revise 1 (sync)
    | revise x2 (async) | judge A (sync) | judge B, vote x2 (async) | vote 3 (sync)

Three calls run alone (one critique, one revision, one judgement) and a fourth (the last
ballot) after the other selection calls, where council has four stages. With
``"sequential": true`` in the spec every task is synchronous: the crew as CrewAI's quick start
and most of its examples write it, one call at a time.

Each council member is one CrewAI ``Agent`` per stage, because an ``Agent`` carries its ``LLM``
and the ``LLM`` carries ``max_tokens`` (council's budget differs per stage) and, as headers, who
is calling (for the simulator's log). The role prompt is the agent's backstory (the judges':
``roles/judge.md``); the task description is council's stage prompt, whose proposal, critiques
and revisions arrive as CrewAI context: each task's whole output, so a critique arrives as its
JSON document and a revision with its lists of addressed and rejected defects. Critiques,
revisions, judgements and ballots are ``output_pydantic`` tasks with council's schemas. Judges
and voters read the revisions in council's presentation orders, under neutral labels.
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
from pydantic import BaseModel  # noqa: E402

EXPECTED = {
    "propose": "Your proposal in Markdown, with the six sections the assignment names.",
    "critique": "The JSON document with the defects, the violations and a summary.",
    "revise": "The JSON document with the addressed and rejected defects and the proposal.",
    "judge": "The JSON document with every proposal's evidence, scores and verdict.",
    "vote": "The JSON document with your reason and the ranking.",
}


def context_note(what: str) -> str:
    return f"(the output of {what}, in the context below)"


class Members:
    """One ``Agent`` per council member and stage (the ``LLM`` fixes max_tokens and headers)."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.backstory = shared.render(spec, f"roles/{spec['role'].lower()}", role=spec["role"])
        self.judge_backstory = shared.render(spec, "roles/judge", role=spec["role"])

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
        judging = stage == "judge"
        return Agent(
            role=f"{member['agent_id']}, {'judge' if judging else spec['role'] + ' engineer'}",
            goal="The best solution to the council's task, as the rubric judges it",
            backstory=self.judge_backstory if judging else self.backstory,
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
        self.by_id = {m["agent_id"]: m for m in spec["agents"]}
        self.tasks: list[Task] = []
        self.judges: list[tuple[list[str], Task]] = []
        self.voters: list[tuple[str, list[str], Task]] = []

    def task(
        self,
        stage: str,
        member: dict[str, Any],
        context: list[Task],
        sync: bool,
        prompt: dict[str, object],
        answer: type[BaseModel] | None = None,
    ) -> Task:
        one_at_a_time = bool(self.spec.get("sequential"))
        task = Task(
            description=shared.render(self.spec, stage, **self.values, **prompt),
            expected_output=EXPECTED[stage],
            agent=self.members.agent(member, stage),
            context=context,
            async_execution=not (sync or one_at_a_time),
            output_pydantic=answer,
        )
        self.tasks.append(task)
        return task

    def crew(self) -> Crew:
        proposals = {
            aid: self.task("propose", self.by_id[aid], [], False, {"agent_id": aid})
            for aid in self.ids
        }
        critiques = self.critiques(proposals)
        revisions = self.revisions(proposals, critiques)
        self.selection(revisions)
        agents = list({id(t.agent): t.agent for t in self.tasks}.values())
        return Crew(agents=agents, tasks=self.tasks, process=Process.sequential, verbose=False)

    def critiques(self, proposals: dict[str, Task]) -> dict[str, list[Task]]:
        """Every peer critiques every other proposal; the first critique must be synchronous."""
        out: dict[str, list[Task]] = {aid: [] for aid in self.ids}
        for author in self.ids:
            for critic in (a for a in self.ids if a != author):
                out[author].append(
                    self.task(
                        "critique",
                        self.by_id[critic],
                        [proposals[author]],
                        sync=not any(out.values()),
                        prompt={
                            "author": author,
                            "version": 0,
                            "round": 1,
                            "agent_id": critic,
                            "proposal": context_note(f"{author}'s proposal task"),
                        },
                        answer=shared.CritiqueAnswer,
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
                self.by_id[aid],
                [proposals[aid], *critiques[aid]],
                sync=i == 0,
                prompt={
                    "author": aid,
                    "version": 0,
                    "round": 1,
                    "agent_id": aid,
                    "proposal": context_note(f"{aid}'s proposal task, first"),
                    "critiques": context_note("the critique tasks, after it"),
                },
                answer=shared.RevisionAnswer,
            )
            for i, aid in enumerate(self.ids)
        }

    def selection(self, revisions: dict[str, Task]) -> None:
        """Two judgements in opposite orders and a ballot per agent; the first judgement and
        the last ballot must be synchronous.
        """
        order = shared.presentation_order(self.spec, self.ids)
        criteria = tuple(self.spec["rubric"])
        for i, shown in enumerate((order, order[::-1])):
            labels = shared.labels_for(shown)
            text = "\n\n".join(
                f"## Proposal {label}\n" + context_note(f"revision {n} of {len(labels)}")
                for n, label in enumerate(labels, 1)
            )
            task = self.task(
                "judge",
                self.spec["judge"],
                [revisions[a] for a in shown],
                sync=i == 0,
                prompt={"proposals": text, "labels": ", ".join(labels)},
                answer=shared.judgement_model(tuple(labels), criteria),
            )
            self.judges.append((shown, task))
        for i, voter in enumerate(self.ids):
            shown = [a for a in shared.presentation_order(self.spec, self.ids, voter) if a != voter]
            labels = shared.labels_for(shown)
            text = "\n\n".join(
                f"## Proposal {label}\n" + context_note(f"revision {n} of {len(labels)}")
                for n, label in enumerate(labels, 1)
            )
            task = self.task(
                "vote",
                self.by_id[voter],
                [revisions[a] for a in shown],
                sync=i == len(self.ids) - 1,
                prompt={"proposals": text, "labels": ", ".join(labels), "agent_id": voter},
                answer=shared.ballot_model(tuple(labels)),
            )
            self.voters.append((voter, shown, task))


def main() -> None:
    spec = shared.load_spec()
    deliberation = Deliberation(spec)
    crew = deliberation.crew()
    with shared.Clock() as clock:
        result = crew.kickoff()
    judgements = [
        shared.judgement(spec, shown, task.output.pydantic) for shown, task in deliberation.judges
    ]
    ballots = [
        shared.ballot(voter, shown, task.output.pydantic)
        for voter, shown, task in deliberation.voters
    ]
    shared.report(
        spec, version("crewai"), clock, judgements, ballots, tasks=len(result.tasks_output)
    )


if __name__ == "__main__":
    main()
