"""The deliberation graph.

    START -> prepare -> tally --(Send x N)---------> propose  -> tally
                             --(Send x N(N-1))----> critique -> tally
                             --(Send x N)---------> revise   -> tally
                             ----------------------> select -> [approve] -> publish -> END

``tally`` is the join after every parallel stage: the router behind it looks at what is done
and sends the next stage's tasks, one per agent (or per critic/author pair). Rounds are counted
from the drafts themselves (a revision of round k is version k), so resuming needs no counter.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy, Send

from graph.context import Context
from graph.state import CouncilState, InputState, OutputState
from nodes.approve import approve
from nodes.critique import critique
from nodes.prepare import prepare
from nodes.propose import propose
from nodes.publish import publish
from nodes.revise import revise
from nodes.select import latest_drafts, select


async def tally(state: CouncilState) -> dict[str, Any]:
    """Join point after each stage; routing happens in ``route``."""
    return {}


def _task(state: CouncilState, agent: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"deliberation_id": state["deliberation_id"], "task": state["task"], "council": state["council"],
            "agent": agent, **extra}


def route(state: CouncilState) -> list[Send] | Literal["select"]:
    """Send the next stage's parallel tasks, or go to select when all rounds are done."""
    c = state["council"]
    agents = c["agents"]
    versions: dict[str, int] = {}
    for d in state.get("drafts", []):
        versions[d["agent_id"]] = max(versions.get(d["agent_id"], -1), d["version"])
    missing = [a for a in agents if a["agent_id"] not in versions]
    if missing:
        return [Send("propose", _task(state, a, round=0)) for a in missing]
    done = min(versions.values())
    if done >= c["rounds"]:
        return "select"
    rnd = done + 1
    finals = latest_drafts(state)
    got = [cr for cr in state.get("critiques", []) if cr["round"] == rnd]
    if not got:
        return [Send("critique", _task(state, critic, round=rnd, author=author["agent_id"],
                                       proposal=finals[author["agent_id"]]))
                for author in agents for critic in agents if critic["agent_id"] != author["agent_id"]]
    return [Send("revise", _task(state, a, round=rnd, proposal=finals[a["agent_id"]],
                                 critiques=sorted((cr for cr in got if cr["author"] == a["agent_id"]),
                                                  key=lambda cr: cr["critic"])))
            for a in agents if versions[a["agent_id"]] < rnd]


def after_select(state: CouncilState) -> Literal["approve", "publish"]:
    """Human approval when the council requires it."""
    return "approve" if state["council"].get("require_approval") else "publish"


def _transient(exc: BaseException) -> bool:
    """Retry a stage task once when a stream broke mid-answer (the client's own retries cover
    failed requests; a stream that dies after the response started is not retried there)."""
    import httpx

    from nodes.llm import LLMUnreachable

    return isinstance(exc, httpx.TransportError) or (
        isinstance(exc, LLMUnreachable) and isinstance(exc.__cause__, httpx.TransportError))


def build(name: str = "council") -> StateGraph:
    retry = RetryPolicy(max_attempts=2, initial_interval=1.0, retry_on=_transient)
    g = StateGraph(CouncilState, context_schema=Context, input_schema=InputState, output_schema=OutputState)
    g.add_node("prepare", prepare)
    g.add_node("tally", tally)
    g.add_node("propose", propose, retry_policy=retry)
    g.add_node("critique", critique, retry_policy=retry)
    g.add_node("revise", revise, retry_policy=retry)
    g.add_node("select", select, retry_policy=retry)
    g.add_node("approve", approve)
    g.add_node("publish", publish)
    g.add_edge(START, "prepare")
    g.add_edge("prepare", "tally")
    g.add_conditional_edges("tally", route, ["propose", "critique", "revise", "select"])
    for stage in ("propose", "critique", "revise"):
        g.add_edge(stage, "tally")
    g.add_conditional_edges("select", after_select, ["approve", "publish"])
    g.add_edge("approve", "publish")
    g.add_edge("publish", END)
    return g


def compile_graph(checkpointer: Any = None, name: str = "council"):
    return build().compile(checkpointer=checkpointer, name=name)


# Served by the LangGraph server (langgraph.json); it supplies the checkpointer.
graph = compile_graph()
