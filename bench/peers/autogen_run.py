"""The council's deliberation written in AutoGen AgentChat: a ``GraphFlow`` of ``AssistantAgent``s.

Run by ``bench/peers.py`` inside AutoGen's own virtualenv: ``python autogen_run.py SPEC.json``.

The deliberation is a directed graph, so this uses AgentChat's documented team for one
(``GraphFlow`` + ``DiGraphBuilder``, "parallel fan-outs" and joins), with a node per piece of
work and ``MessageFilterAgent`` so each node reads only what it needs (the documented way to
keep a node's context to the messages of its sources)::

    user task ─┬─> propose_i ──> critique_j_on_i (j != i) ──> revise_i ──> judge
               (3 nodes)         (6 nodes)                    (3 nodes)    (1 node)

GraphFlow starts every node whose sources are all done, all at once, and waits for the whole
set before the next (the group-chat manager's turn), so it has the same stage barrier as
council. The task, constraints and rubric block is the team's task message; each node's system
message is the role prompt and the rest of the stage prompt from council's prompt files, the
proposal and critiques it works on arrive as the messages of their nodes. One
``OpenAIChatCompletionClient`` per node carries the stage's ``max_tokens`` and, as headers, who
is calling (for the simulator's log). The judge answers a JSON-schema structured output
(``output_content_type``), like council's.
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


def ident(agent_id: str) -> str:
    """AgentChat names must be Python identifiers: ``agent-dev-001`` -> ``agent_dev_001``."""
    return agent_id.replace("-", "_")


class Flow:
    """Builds the nodes of one deliberation from the spec."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.values = shared.shared_values(spec)
        self.role_prompt = shared.render(spec, f"roles/{spec['role'].lower()}", role=spec["role"])
        self.clients: list[OpenAIChatCompletionClient] = []
        self.builder = DiGraphBuilder()
        self.verdict = shared.judgement_model(
            [ident(a["agent_id"]) for a in spec["agents"]], list(spec["rubric"])
        )  # the judge's answer

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
        parents: list[MessageFilterAgent],
        **prompt: object,
    ) -> MessageFilterAgent:
        """An ``AssistantAgent`` that reads the task and the last message of each source."""
        _, rest = shared.split_shared(shared.render(self.spec, stage, **self.values, **prompt))
        extra = {"output_content_type": self.verdict} if stage == "select" else {}
        inner = AssistantAgent(
            name,
            model_client=self.client(member, stage),
            system_message=f"{self.role_prompt}\n\n{rest}",
            **extra,
        )
        keep = [PerSourceFilter(source="user", position="first", count=1)]
        keep += [PerSourceFilter(source=s, position="last", count=1) for s in sources]
        node = MessageFilterAgent(
            name=name, wrapped_agent=inner, filter=MessageFilterConfig(per_source=keep)
        )
        self.builder.add_node(node)
        for parent in parents:
            self.builder.add_edge(parent, node)
        return node


def seen(name: str) -> str:
    return f"(the message from {name} in this conversation)"


def build(spec: dict[str, Any]) -> tuple[GraphFlow, Flow]:
    """Propose fans out to the critics, critiques join at revise, revisions at the judge."""
    flow = Flow(spec)
    members = [{**a, "agent_id": ident(a["agent_id"])} for a in spec["agents"]]
    ids = [m["agent_id"] for m in members]
    propose = {
        aid: flow.node(f"{aid}_propose", m, "propose", [], [], agent_id=aid)
        for aid, m in zip(ids, members, strict=False)
    }
    critiques: dict[str, list[MessageFilterAgent]] = {aid: [] for aid in ids}
    for author in ids:  # every peer critiques every other proposal
        for critic in (m for m in members if m["agent_id"] != author):
            critiques[author].append(
                flow.node(
                    f"{critic['agent_id']}_critiques_{author}",
                    critic,
                    "critique",
                    [f"{author}_propose"],
                    [propose[author]],
                    author=author,
                    version=0,
                    round=1,
                    agent_id=critic["agent_id"],
                    proposal=seen(f"{author}_propose"),
                )
            )
    revise = {}
    for aid, m in zip(
        ids, members, strict=False
    ):  # each author revises from the critiques of its proposal
        names = [c.name for c in critiques[aid]]
        revise[aid] = flow.node(
            f"{aid}_revise",
            m,
            "revise",
            [f"{aid}_propose", *names],
            critiques[aid],
            author=aid,
            version=0,
            round=1,
            agent_id=aid,
            proposal=seen(f"{aid}_propose"),
            critiques="\n".join(seen(n) for n in names),
        )
    order = shared.judge_order(spec, ids)
    proposals = "\n\n".join(
        f"## Proposal by {aid} (version 1)\n{seen(aid + '_revise')}" for aid in order
    )
    judge = {**spec["judge"], "agent_id": ident(spec["judge"]["agent_id"])}
    flow.node(
        "judge",
        judge,
        "select",
        [f"{aid}_revise" for aid in order],
        [revise[aid] for aid in order],
        proposals=proposals,
        candidates=", ".join(order),
    )
    team = GraphFlow(
        participants=flow.builder.get_participants(),
        graph=flow.builder.build(),
        custom_message_types=[StructuredMessage[flow.verdict]],
    )
    return team, flow


async def main() -> None:
    spec = shared.load_spec()
    team, flow = build(spec)
    task = shared.split_shared(shared.render(spec, "propose", **flow.values, agent_id="-"))[0]
    with shared.Clock() as clock:
        result = await team.run(task=task)
    for client in flow.clients:
        await client.close()
    verdict = next(m for m in reversed(result.messages) if isinstance(m, StructuredMessage))
    shared.report(
        spec,
        version("autogen-agentchat"),
        clock,
        verdict.content.winner,
        verdict.content.justification,
        messages=len(result.messages),
        stop_reason=result.stop_reason,
    )


if __name__ == "__main__":
    asyncio.run(main())
