"""prepare: validate the request, check the LLMs, and fix the effective council.

A deliberation whose shortest prompts cannot fit an agent's context window (the task,
constraints and rubric are never shortened) is refused here, with the numbers.
"""

from __future__ import annotations

import time
from typing import Any

from langgraph.config import get_config
from langgraph.runtime import Runtime

from council_agents.core import settings
from council_agents.core.context import Context
from council_agents.core.metrics import DELIBERATIONS_STARTED
from council_agents.core.request import parse_context, resolve
from council_agents.core.state import CouncilState, InputState
from council_agents.llm import client as llm_client
from council_agents.llm import stage as agent_stage
from council_agents.storage.councils import stored_council

INPUT_KEYS = InputState.__required_keys__ | InputState.__optional_keys__


async def prepare(state: CouncilState, runtime: Runtime[Context]) -> dict[str, Any]:
    """The validated input and the council, snapshotted for the whole deliberation."""
    context = parse_context(runtime.context)
    current = settings.current()
    stored = await stored_council(current.valkey_url, context.council)
    current = await llm_client.preflight(current)
    request, council = resolve(
        {k: v for k, v in state.items() if k in INPUT_KEYS}, context, stored, current
    )
    thread_id = get_config()["configurable"].get("thread_id") or ""
    deliberation_id = request.deliberation_id or str(thread_id)
    await llm_client.check_endpoints(current, [*council["agents"], council["judge"]])
    await agent_stage.check_fits(current, council, request.task, deliberation_id)
    DELIBERATIONS_STARTED.labels(council["role"]).inc()
    return {
        **request.model_dump(exclude_none=True),
        "deliberation_id": deliberation_id,
        "council": council,
        "started_at": time.time(),
    }
