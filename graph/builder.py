"""The deliberation graph.

    START -> admit -> prepare -> tally --(Send x N)---------> propose  -> tally
                                       ----------------------> ground   -> tally
                                       --(Send x N(N-1))----> critique -> tally
                                       --(Send x N)---------> revise   -> tally
                                       --(Send x 2 + N)-----> judge, vote -> tally
                                       ----------------------> select -> [approve] -> publish -> END

``admit`` writes the door's admission (the validated input and the council) into the state;
``prepare`` checks the LLMs. ``tally`` is the join after every parallel stage: the router
behind it (``graph.routing``) looks at what is done and sends the next stage's tasks, one per
agent (or per critic/author pair). Rounds are counted from the drafts themselves, so resuming
needs no counter; they end at the ceiling, when a round's critiques find nothing severe, when
the drafts agree (the agreement gate, after ``ground`` ran the council's checkers on the new
drafts, with no LLM), or before the token budget would be exceeded. The judgements and the
peer vote run together; ``select`` is the aggregation (no LLM call).

The graph is built for one process's clients (``Clients``: the LLM client and the event
publisher, made from its settings by a door) and passed to the nodes that use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import RetryPolicy

from council_agents.core.context import Context
from council_agents.core.errors import broken_stream
from council_agents.core.metrics import FailureCounter
from council_agents.core.settings import Settings
from council_agents.core.state import CouncilState, InputState, OutputState
from council_agents.events.publisher import Events
from council_agents.graph.routing import after_select, carried_drafts, route
from council_agents.llm.client import LLM
from council_agents.nodes.admit import admit
from council_agents.nodes.approve import approve
from council_agents.nodes.critique import critique
from council_agents.nodes.ground import ground
from council_agents.nodes.judge import judge
from council_agents.nodes.prepare import prepare
from council_agents.nodes.propose import propose
from council_agents.nodes.publish import publish
from council_agents.nodes.revise import revise
from council_agents.nodes.select import select
from council_agents.nodes.vote import vote
from council_agents.storage.saver import ensure_checkpointable

Graph = StateGraph[CouncilState, Context, InputState, OutputState]
Compiled = CompiledStateGraph[CouncilState, Context, InputState, OutputState]


@dataclass(frozen=True)
class Clients:
    """What the nodes call out to: one process's LLM client and event publisher."""

    llm: LLM
    events: Events

    @classmethod
    def of(cls, settings: Settings) -> Clients:
        """The clients of a process with these settings: no LLM call is made unless the run's
        checkpoints can be written (``storage.saver.ensure_checkpointable``).
        """
        return cls(llm=LLM(settings.llm, guard=checkpointable), events=Events(settings.events))


async def checkpointable(stage: str, agent_id: str) -> None:
    """Before an LLM call: the run's Valkey answers (``StorageUnavailable`` otherwise)."""
    await ensure_checkpointable(stage, agent_id, "its LLM call")


async def tally(state: CouncilState) -> dict[str, object]:
    """Join point after each stage; routing happens in ``route``. Writes the drafts carried
    forward without a call (``graph.routing.carried_drafts``: authors with no severe critique).
    """
    carried = carried_drafts(state)
    return {"drafts": carried} if carried else {}


def build(clients: Clients) -> Graph:
    """The graph, not yet compiled."""
    # A stream that breaks mid-answer is retried once (the client retries failed requests).
    retry = RetryPolicy(max_attempts=2, initial_interval=1.0, retry_on=broken_stream)
    llm = clients.llm
    graph: Graph = StateGraph(
        CouncilState, context_schema=Context, input_schema=InputState, output_schema=OutputState
    )
    # admit writes the door's admission into the state; prepare checks the LLMs
    graph.add_node("admit", admit)
    graph.add_node("prepare", partial(prepare, llm=llm))
    # tally joins each parallel stage
    graph.add_node("tally", tally)
    # the agent stages run as parallel Send tasks (one payload type each)
    graph.add_node("propose", partial(propose, llm=llm), retry_policy=retry)
    graph.add_node("critique", partial(critique, llm=llm), retry_policy=retry)
    graph.add_node("revise", partial(revise, llm=llm), retry_policy=retry)
    graph.add_node("judge", partial(judge, llm=llm), retry_policy=retry)
    graph.add_node("vote", partial(vote, llm=llm), retry_policy=retry)
    # select aggregates the judgements and ballots into one decision
    # ground runs the council's checkers on new drafts (no LLM)
    graph.add_node("ground", ground)
    graph.add_node("select", select)
    # approve (an optional human decision) and the terminal publish
    graph.add_node("approve", approve)
    graph.add_node("publish", partial(publish, events=clients.events))
    graph.add_edge(START, "admit")
    graph.add_edge("admit", "prepare")
    graph.add_edge("prepare", "tally")
    graph.add_conditional_edges(
        "tally", route, ["propose", "ground", "critique", "revise", "judge", "vote", "select"]
    )
    graph.add_edge("ground", "tally")
    for stage in ("propose", "critique", "revise", "judge", "vote"):
        graph.add_edge(stage, "tally")
    graph.add_conditional_edges("select", after_select, ["approve", "publish"])
    graph.add_edge("approve", "publish")
    graph.add_edge("publish", END)
    return graph


def compile_graph(
    clients: Clients, checkpointer: BaseCheckpointSaver[str] | None = None
) -> Compiled:
    """The compiled graph, on ``checkpointer`` (none: the LangGraph server supplies one)."""
    compiled = build(clients).compile(checkpointer=checkpointer, name="council")
    # every failed run is counted once, whichever door started it (core.metrics)
    return compiled.with_config(callbacks=[FailureCounter()])
