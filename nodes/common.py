"""What the agent stages share: the Send payload and the record of a finished stage task."""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.config import get_stream_writer

from nodes.prompts import rubric_text


class AgentTask(TypedDict, total=False):
    """Payload of one ``Send``: one agent's work in one stage."""

    deliberation_id: str
    task: str
    council: dict[str, Any]
    agent: dict[str, Any]
    round: int
    author: str
    proposal: str
    critiques: list[dict[str, Any]]


def shared_prompt_values(t: AgentTask) -> dict[str, Any]:
    c = t["council"]
    return {"task": t["task"], "constraints": c["constraints"] or "(none)", "rubric": rubric_text(c["rubric"]),
            "agent_id": t["agent"]["agent_id"]}


def kept(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Call records as stored in the state (without the parsed object)."""
    return [{k: v for k, v in r.items() if k != "parsed"} for r in records]


def announce(stage: str, t: AgentTask, record: dict[str, Any]) -> None:
    """Tell streaming clients (stream mode ``custom``) that an agent finished a stage."""
    try:
        writer = get_stream_writer()
    except RuntimeError:  # not running inside a graph
        return
    writer({"event": "agent_finished", "stage": stage, "agent_id": t["agent"]["agent_id"],
            "round": t.get("round", 0), "completion_tokens": record["completion_tokens"],
            "latency_s": record["latency_s"], "content": record["content"]})
