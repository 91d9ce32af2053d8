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

from autogen_agentchat.agents import (AssistantAgent, MessageFilterAgent, MessageFilterConfig,
                                      PerSourceFilter)
from autogen_agentchat.messages import StructuredMessage
from autogen_agentchat.teams import DiGraphBuilder, GraphFlow
from autogen_core.models import ModelInfo
from autogen_ext.models.openai import OpenAIChatCompletionClient

import shared


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

    def client(self, member: dict[str, Any], stage: str) -> OpenAIChatCompletionClient:
        spec = self.spec
        info = ModelInfo(vision=False, function_calling=False, json_output=True, family="unknown",
                         structured_output=True)
        client = OpenAIChatCompletionClient(
            model=spec["model"], base_url=spec["base_url"], api_key=spec["api_key"], model_info=info,
            max_tokens=spec["max_tokens"][stage], temperature=member["temperature"], seed=member["seed"],
            default_headers=shared.headers(spec, member["agent_id"], stage))
        self.clients.append(client)
        return client

    def instructions(self, stage: str, **values: object) -> str:
        """Role prompt, then the stage prompt without the shared block (that is the task)."""
        _, rest = shared.split_shared(shared.render(self.spec, stage, **self.values, **values))
        return f"{self.role_prompt}\n\n{rest}"

    def node(self, name: str, member: dict[str, Any], stage: str, sources: list[str],
             system: str, **kwargs: Any) -> MessageFilterAgent:
        inner = AssistantAgent(name, model_client=self.client(member, stage), system_message=system,
                               **kwargs)
        keep = [shared_filter("user", "first")] + [shared_filter(s, "last") for s in sources]
        return MessageFilterAgent(name=name, wrapped_agent=inner,
                                  filter=MessageFilterConfig(per_source=keep))


def shared_filter(source: str, position: str) -> PerSourceFilter:
    return PerSourceFilter(source=source, position=position, count=1)  # type: ignore[arg-type]


def build(spec: dict[str, Any]) -> tuple[GraphFlow, Flow]:
    """The graph: propose fans out to the critics, critiques join at revise, revisions at the judge."""
    flow = Flow(spec)
    members = [{**a, "agent_id": ident(a["agent_id"])} for a in spec["agents"]]
    ids = [m["agent_id"] for m in members]
    builder = DiGraphBuilder()
    propose, revise = {}, {}
    for m in members:  # one proposal per member, all from the task message
        aid = m["agent_id"]
        propose[aid] = flow.node(f"{aid}_propose", m, "propose", [],
                                 flow.instructions("propose", agent_id=aid))
        builder.add_node(propose[aid])
    critiques: dict[str, list[Any]] = {aid: [] for aid in ids}
    for author in ids:  # every peer critiques every other proposal
        for critic in (m for m in members if m["agent_id"] != author):
            name = f"{critic['agent_id']}_critiques_{author}"
            node = flow.node(name, critic, "critique", [f"{author}_propose"], flow.instructions(
                "critique", author=author, version=0, round=1, agent_id=critic["agent_id"],
                proposal=f"(the message from {author}_propose in this conversation)"))
            builder.add_node(node).add_edge(propose[author], node)
            critiques[author].append(node)
    for m in members:  # each author revises from the critiques of its own proposal
        aid = m["agent_id"]
        sources = [f"{aid}_propose"] + [c.name for c in critiques[aid]]
        revise[aid] = flow.node(f"{aid}_revise", m, "revise", sources, flow.instructions(
            "revise", author=aid, version=0, round=1, agent_id=aid,
            proposal=f"(the message from {aid}_propose in this conversation)",
            critiques="(the messages from " + ", ".join(c.name for c in critiques[aid]) + " in this conversation)"))
        builder.add_node(revise[aid])
        for c in critiques[aid]:
            builder.add_edge(c, revise[aid])
    order = shared.judge_order(spec, ids)
    judge = {**spec["judge"], "agent_id": ident(spec["judge"]["agent_id"])}
    verdict = shared.judgement_model(ids, list(spec["rubric"]))
    proposals = "\n\n".join(f"## Proposal by {aid} (version 1)\n(the message from {aid}_revise in this conversation)"
                            for aid in order)
    judge_node = flow.node("judge", judge, "select", [f"{aid}_revise" for aid in order],
                           flow.instructions("select", proposals=proposals, candidates=", ".join(order)),
                           output_content_type=verdict)
    builder.add_node(judge_node)
    for aid in ids:
        builder.add_edge(revise[aid], judge_node)
    team = GraphFlow(participants=builder.get_participants(), graph=builder.build(),
                     custom_message_types=[StructuredMessage[verdict]])  # the judge's answer
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
    shared.report(spec, version("autogen-agentchat"), clock.wall_s, verdict.content.winner,
                  verdict.content.justification, messages=len(result.messages),
                  stop_reason=result.stop_reason)


if __name__ == "__main__":
    asyncio.run(main())
