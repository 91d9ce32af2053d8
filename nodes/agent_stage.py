"""What the agent stages share: the prompt, the call, the news for streaming clients."""

from __future__ import annotations

from typing import Any

from langgraph.config import get_stream_writer
from pydantic import BaseModel

from graph import settings
from graph.state import AgentTask
from nodes import llm_client, prompt_files


def shared_values(task: AgentTask) -> dict[str, Any]:
    """Placeholders every stage prompt can use."""
    council = task["council"]
    return {
        "task": task["task"],
        "constraints": council["constraints"] or "(none)",
        "rubric": prompt_files.rubric_text(council["rubric"]),
        "agent_id": task["agent"]["agent_id"],
    }


def labelled(order: list[str], proposals: dict[str, str]) -> tuple[dict[str, str], str]:
    """Neutral labels (P1, P2, ... in presentation order) -> agent, and the proposals as the
    judge or voter reads them."""
    labels = {f"P{i}": agent_id for i, agent_id in enumerate(order, 1)}
    text = "\n\n".join(
        f"## Proposal {label}\n{proposals[agent_id]}" for label, agent_id in labels.items()
    )
    return labels, text


def announce(stage: str, task: AgentTask, answer: llm_client.Answer) -> None:
    """Tell streaming clients (stream mode ``custom``) that an agent finished a stage."""
    try:
        writer = get_stream_writer()
    except RuntimeError:  # not running inside a graph
        return
    record = answer.records[-1]
    writer(
        {
            "event": "agent_finished",
            "stage": stage,
            "agent_id": task["agent"]["agent_id"],
            "round": task.get("round", 0),
            "completion_tokens": record["completion_tokens"],
            "latency_s": record["latency_s"],
            "content": answer.content,
        }
    )


async def run_agent(
    task: AgentTask,
    stage: str,
    *,
    system: str | None = None,
    answer: type[BaseModel] | None = None,
    **values: Any,
) -> llm_client.Answer:
    """Render ``<stage>.md`` for the task's agent (system prompt: its role's, or ``system``),
    call its LLM (answering ``answer``'s JSON Schema when given), and announce the answer."""
    council = task["council"]
    current = settings.current()
    messages = prompt_files.messages(
        system or f"roles/{council['role'].lower()}",
        stage,
        role=council["role"],
        **shared_values(task),
        **values,
    )
    response_format, validate = (
        llm_client.structured(answer, stage) if answer is not None else (None, None)
    )
    result = await llm_client.call(
        current,
        task["agent"],
        messages,
        stage=stage,
        round_=task.get("round", 0),
        deliberation_id=task["deliberation_id"],
        max_tokens=current.max_tokens[stage],
        response_format=response_format,
        validate=validate,
    )
    announce(stage, task, result)
    return result
