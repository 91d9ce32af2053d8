"""The council's deliberation written in AutoGen AgentChat: a ``GraphFlow`` of ``AssistantAgent``s.

Run by ``bench/peers.py`` inside AutoGen's own virtualenv: ``python autogen_run.py SPEC.json``.

The deliberation is a directed graph, so this uses AgentChat's documented team for one
(``GraphFlow`` + ``DiGraphBuilder``, "parallel fan-outs" and joins), with a node per piece of
work and ``MessageFilterAgent`` so each node reads only what it needs (the documented way to
keep a node's context to the messages of its sources)::

    user task ─> propose_i ─> critique_j_on_i (j != i) ─> revise_i ─┬─> judge_a, judge_b
                 (3 nodes)    (6 nodes)                   (3 nodes) └─> vote_i (its 2 peers)

GraphFlow starts every node whose sources are all done, all at once, and waits for the whole
set before the next (the group-chat manager's turn), so it has the same stage barrier as
council. The task, constraints and rubric block is the team's task message; each node's system
message is the role prompt (the judges': ``roles/judge.md``) and the rest of the stage prompt
from council's prompt files; the proposal, critiques and revisions it works on arrive as the
messages of their nodes. One ``OpenAIChatCompletionClient`` per node carries the stage's
``max_tokens`` and, as headers, who is calling (for the simulator's log). Critiques, revisions,
judgements and ballots are structured outputs (``output_content_type``) with council's schemas;
a revision is passed on as its ``proposal`` field (``output_content_type_format``), a critique
as its JSON document (a format string cannot render its list of defects as council does).
Judges and voters read the proposals under neutral labels in council's presentation orders,
but as messages of the revision nodes, which carry the authors' names.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any

import shared
from autogen_agentchat.agents import (
    AssistantAgent,
    MessageFilterAgent,
    MessageFilterConfig,
    PerSourceFilter,
)
from autogen_agentchat.messages import StructuredMessage
from autogen_agentchat.teams import DiGraphBuilder, GraphFlow
from autogen_core.models import ModelInfo
from autogen_ext.models.openai import OpenAIChatCompletionClient
from pydantic import BaseModel


def ident(agent_id: str) -> str:
    """AgentChat names must be Python identifiers: ``agent-dev-001`` -> ``agent_dev_001``."""
    return agent_id.replace("-", "_")


def seen(name: str) -> str:
    return f"(the message from {ident(name)} in this conversation)"


def proposals(labels: dict[str, str]) -> str:
    """The judge's or voter's proposals section: each label names the message that holds it."""
    return "\n\n".join(f"## Proposal {label}\n{seen(f'{a}_revise')}" for label, a in labels.items())


class Flow:
    """Builds the nodes of one deliberation from the spec."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.values = shared.shared_values(spec)
        self.role_prompt = shared.render(spec, f"roles/{spec['role'].lower()}", role=spec["role"])
        self.judge_prompt = shared.render(spec, "roles/judge", role=spec["role"])
        self.clients: list[OpenAIChatCompletionClient] = []
        self.builder = DiGraphBuilder()
        self.answers: list[type[BaseModel]] = []  # structured output types, for GraphFlow

    def client(self, member: dict[str, Any], stage: str) -> OpenAIChatCompletionClient:
        """The node's model client: the stage's max_tokens, the member's sampling, who calls."""
        spec = self.spec
        info = ModelInfo(
            vision=False,
            function_calling=False,
            json_output=True,
            family="unknown",
            structured_output=True,
        )
        client = OpenAIChatCompletionClient(
            model=spec["model"],
            base_url=spec["base_url"],
            api_key=spec["api_key"],
            model_info=info,
            max_tokens=spec["max_tokens"][stage],
            temperature=member["temperature"],
            seed=member["seed"],
            default_headers=shared.headers(spec, member["agent_id"], stage),
        )
        self.clients.append(client)
        return client

    def node(
        self,
        name: str,
        member: dict[str, Any],
        stage: str,
        sources: list[str],
        answer: type[BaseModel] | None = None,
        answer_format: str | None = None,
        **prompt: object,
    ) -> MessageFilterAgent:
        """An ``AssistantAgent`` that reads the task and the last message of each source."""
        _, rest = shared.split_shared(shared.render(self.spec, stage, **self.values, **prompt))
        system = self.judge_prompt if stage == "judge" else self.role_prompt
        if answer is not None and answer not in self.answers:
            self.answers.append(answer)
        inner = AssistantAgent(
            ident(name),
            model_client=self.client(member, stage),
            system_message=f"{system}\n\n{rest}",
            output_content_type=answer,
            output_content_type_format=answer_format,
        )
        keep = [PerSourceFilter(source="user", position="first", count=1)]
        keep += [PerSourceFilter(source=ident(s), position="last", count=1) for s in sources]
        node = MessageFilterAgent(
            name=ident(name), wrapped_agent=inner, filter=MessageFilterConfig(per_source=keep)
        )
        self.builder.add_node(node)
        for source in sources:
            self.builder.add_edge(ident(source), node)
        return node


def build(spec: dict[str, Any]) -> tuple[GraphFlow, Flow, dict[str, list[str]]]:
    """Propose fans out to the critics, critiques join at revise, revisions at judges and
    voters. Returns the team, its builder and who reads what in which order.
    """
    flow = Flow(spec)
    members = {a["agent_id"]: a for a in spec["agents"]}
    ids = list(members)
    for aid, member in members.items():
        flow.node(f"{aid}_propose", member, "propose", [], agent_id=aid)
    critics: dict[str, list[str]] = {aid: [] for aid in ids}
    for author in ids:  # every peer critiques every other proposal
        for critic in (a for a in ids if a != author):
            name = f"{critic}_critiques_{author}"
            critics[author].append(name)
            flow.node(
                name,
                members[critic],
                "critique",
                [f"{author}_propose"],
                answer=shared.CritiqueAnswer,
                author=author,
                version=0,
                round=1,
                agent_id=critic,
                proposal=seen(f"{author}_propose"),
            )
    for aid in ids:  # each author revises from the critiques of its proposal
        flow.node(
            f"{aid}_revise",
            members[aid],
            "revise",
            [f"{aid}_propose", *critics[aid]],
            answer=shared.RevisionAnswer,
            answer_format="{proposal}",
            author=aid,
            version=0,
            round=1,
            agent_id=aid,
            proposal=seen(f"{aid}_propose"),
            critiques="\n".join(seen(n) for n in critics[aid]),
        )
    order = shared.presentation_order(spec, ids)
    orders = {"judge_a": order, "judge_b": order[::-1]}  # two judgements, opposite orders
    criteria = tuple(spec["rubric"])
    for name, shown in orders.items():
        labels = shared.labels_for(shown)
        flow.node(
            name,
            spec["judge"],
            "judge",
            [f"{a}_revise" for a in shown],
            answer=shared.judgement_model(tuple(labels), criteria),
            proposals=proposals(labels),
            labels=", ".join(labels),
        )
    for voter in ids:  # each agent ranks its peers, in an order of its own
        shown = [a for a in shared.presentation_order(spec, ids, voter) if a != voter]
        labels = shared.labels_for(shown)
        orders[f"{voter}_vote"] = shown
        flow.node(
            f"{voter}_vote",
            members[voter],
            "vote",
            [f"{a}_revise" for a in shown],
            answer=shared.ballot_model(tuple(labels)),
            proposals=proposals(labels),
            labels=", ".join(labels),
            agent_id=voter,
        )
    team = GraphFlow(
        participants=flow.builder.get_participants(),
        graph=flow.builder.build(),
        custom_message_types=[StructuredMessage[a] for a in flow.answers],
    )
    return team, flow, orders


async def main() -> None:
    spec = shared.load_spec()
    team, flow, orders = build(spec)
    task = shared.split_shared(shared.render(spec, "propose", **flow.values, agent_id="-"))[0]
    with shared.Clock() as clock:
        result = await team.run(task=task)
    for client in flow.clients:
        await client.close()
    answers = {m.source: m for m in result.messages if isinstance(m, StructuredMessage)}
    judgements = [
        shared.judgement(spec, orders[name], answers[ident(name)].content)
        for name in ("judge_a", "judge_b")
    ]
    ballots = [
        shared.ballot(voter, orders[f"{voter}_vote"], answers[ident(f"{voter}_vote")].content)
        for voter in (a["agent_id"] for a in spec["agents"])
    ]
    shared.report(
        spec,
        version("autogen-agentchat"),
        clock,
        judgements,
        ballots,
        messages=len(result.messages),
        stop_reason=result.stop_reason,
    )


if __name__ == "__main__":
    asyncio.run(main())
