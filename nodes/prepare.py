"""prepare: check the prompt files, the LLMs, and that the council's shortest prompts fit
their windows.

Every prompt file the council renders must be there and use only the placeholders its stage
fills (``llm.stage.check_prompts``: a ``PromptError``, bad input, before any LLM request); the
prompt set's digest is recorded (``prompts``), so the event can say which prompt text it used.

Every endpoint the council names must answer and serve its agents' models (an agent without a
model adopts its server's first one). A deliberation whose shortest prompts cannot fit an
agent's context window (the task, constraints and rubric are never shortened) is refused here,
with the numbers. Runs again on resume when it failed (the LLM was down), never the admission.

The council's checkers are fixed here (``nodes.ground.checkers_for``: the default by the task's
kind); a council that runs code (``execute``) where no sandbox can run is refused (bad input,
one line), before anything else.
"""

from __future__ import annotations

import asyncio
import time

from council_agents.checks.sandbox import SandboxUnavailable, bwrap
from council_agents.core.metrics import DELIBERATIONS_STARTED
from council_agents.core.request import RequestError
from council_agents.core.state import Council, CouncilState, Prepared, PromptProvenance
from council_agents.llm.client import LLM
from council_agents.llm.stage import check_fits, check_prompts
from council_agents.nodes.ground import checkers_for


async def prepare(state: CouncilState, *, llm: LLM) -> Prepared:
    """The council with every model named, when the deliberation started, its prompt set."""
    if state["council"].get("execute"):
        try:
            await asyncio.to_thread(bwrap)  # looks on the PATH: off the event loop
        except SandboxUnavailable as e:
            raise RequestError("execute", f"refused: {e}") from None
    chosen = Council(**state["council"])
    chosen["checkers"] = checkers_for(chosen, state["task"])
    # the prompt files are read from disk: off the event loop
    files = await asyncio.to_thread(check_prompts, llm.prompts, chosen)
    council = await llm.ready(chosen)
    await check_fits(llm, council, state["task"], state["deliberation_id"])
    DELIBERATIONS_STARTED.labels(council["role"]).inc()
    prompts = PromptProvenance(
        digest=files.digest,
        changed=False,
        digests=[files.digest],
        files=files.hashes,
        changed_files=[],
    )
    return Prepared(council=council, started_at=time.time(), prompts=prompts)
