"""The deliberation graph.

    START -> prepare -> tally --(Send x N)---------> propose  -> tally
                             --(Send x N(N-1))----> critique -> tally
                             --(Send x N)---------> revise   -> tally
                             --(Send x 2 + N)-----> judge, vote -> tally
                             ----------------------> select -> [approve] -> publish -> END

``tally`` is the join after every parallel stage: the router behind it (``graph.routing``)
looks at what is done and sends the next stage's tasks, one per agent (or per critic/author
pair). Rounds are counted from the drafts themselves, so resuming needs no counter; they end at
the ceiling, when a round's critiques find nothing severe, or before the token budget would be
exceeded. Two judgements (opposite orders) and the peer vote run together; ``select`` is
the aggregation (no LLM call).
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import RetryPolicy

from council_agents.core.context import Context
from council_agents.core.errors import broken_stream
from council_agents.core.metrics import FailureCounter
from council_agents.core.state import CouncilState, InputState, OutputState
from council_agents.graph.routing import after_select, route
from council_agents.nodes.approve import approve
from council_agents.nodes.critique import critique
from council_agents.nodes.judge import judge
from council_agents.nodes.prepare import prepare
from council_agents.nodes.propose import propose
from council_agents.nodes.publish import publish
from council_agents.nodes.revise import revise
from council_agents.nodes.select import select
from council_agents.nodes.vote import vote


async def tally(state: CouncilState) -> dict[str, Any]:
    """Join point after each stage; routing happens in ``route``."""
    return {}


Graph = StateGraph[CouncilState, Context, InputState, OutputState]


def build() -> Graph:
    """The graph, not yet compiled."""
    # A stream that breaks mid-answer is retried once (the client retries failed requests).
    retry = RetryPolicy(max_attempts=2, initial_interval=1.0, retry_on=broken_stream)
    graph: Graph = StateGraph(
        CouncilState, context_schema=Context, input_schema=InputState, output_schema=OutputState
    )
    # prepare validates the request and fixes the council; tally joins each parallel stage
    graph.add_node("prepare", prepare)
    graph.add_node("tally", tally)
    # the agent stages run as parallel Send tasks (payload: AgentTask); select is the judge
    graph.add_node("propose", propose, retry_policy=retry)  # type: ignore[arg-type]
    graph.add_node("critique", critique, retry_policy=retry)  # type: ignore[arg-type]
    graph.add_node("revise", revise, retry_policy=retry)  # type: ignore[arg-type]
    graph.add_node("judge", judge, retry_policy=retry)  # type: ignore[arg-type]
    graph.add_node("vote", vote, retry_policy=retry)  # type: ignore[arg-type]
    # select aggregates the judgements and ballots into one decision
    graph.add_node("select", select)
    # approve (an optional human decision) and the terminal publish
    graph.add_node("approve", approve)
    graph.add_node("publish", publish)
    graph.add_edge(START, "prepare")
    graph.add_edge("prepare", "tally")
    graph.add_conditional_edges(
        "tally", route, ["propose", "critique", "revise", "judge", "vote", "select"]
    )
    for stage in ("propose", "critique", "revise", "judge", "vote"):
        graph.add_edge(stage, "tally")
    graph.add_conditional_edges("select", after_select, ["approve", "publish"])
    graph.add_edge("approve", "publish")
    graph.add_edge("publish", END)
    return graph


def compile_graph(
    checkpointer: Any = None,
) -> CompiledStateGraph[CouncilState, Context, InputState, OutputState]:
    """The compiled graph, on ``checkpointer`` (none: the LangGraph server supplies one)."""
    compiled = build().compile(checkpointer=checkpointer, name="council")
    # every failed run is counted once, whichever door started it (nodes.metrics)
    return compiled.with_config(callbacks=[FailureCounter()])


# Served by the LangGraph server (langgraph.json); it supplies the checkpointer.
graph = compile_graph()
