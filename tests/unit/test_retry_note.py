"""A retry after a refused answer is told why (``prompts/retry.md``), fenced as data."""

from __future__ import annotations

import asyncio
import dataclasses

from langchain_core.messages import HumanMessage

from council_agents.core.settings import LLMSettings
from council_agents.llm.client import LLM
from council_agents.llm.prompt import Prompt
from council_agents.llm.prompt_files import PromptFiles
from council_agents.sim_vllm import FaultRule, ServerThread, SimConfig, SimVLLM
from tests.unit.test_prompts import STAGE_VALUES

REASON = "the revision drops the previous version's code block"
PROPOSE = Prompt(system="roles/dev", stage="propose", role="DEV", values=STAGE_VALUES["propose"])


def test_a_refused_answer_is_named_in_a_last_fenced_user_message():
    files = PromptFiles().snapshot()
    first, _ = PROPOSE.render(files)
    retry, _ = dataclasses.replace(PROPOSE, refused=REASON).render(files)
    assert len(first) == 2 and retry[:2] == first  # the same prompt, the note after it
    note = retry[2]
    assert isinstance(note, HumanMessage) and "was refused" in str(note.content)
    assert f">\n{REASON}\n</data-" in str(note.content)  # the reason, fenced as data
    # a prompt set without retry.md retries without a note
    del files.files["retry.md"]
    assert dataclasses.replace(PROPOSE, refused=REASON).render(files)[0] == first


def test_the_attempt_after_a_refused_answer_renders_the_note(tmp_path):
    sim = SimVLLM(
        SimConfig(time_scale=0),
        faults=[FaultRule(kind="garbage", stage="propose", agent="agent-dev-001", nth=1)],
    )
    with ServerThread(sim) as server:

        async def ask():
            llm = LLM(LLMSettings(base_url=server.base_url))
            model = await llm.default_model()
            agent = {
                "agent_id": "agent-dev-001",
                "role": "DEV",
                "model": model,
                "base_url": server.base_url,
                "api_key_name": None,
                "temperature": 0.7,
                "seed": 1,
            }
            return await llm.call(
                agent,  # type: ignore[arg-type]
                PROPOSE,
                stage="propose",
                round_=0,
                deliberation_id="d-retry",
                max_tokens=256,
            )

        answer = asyncio.run(ask())
    first, second = answer.records
    assert (first["accepted"], second["accepted"]) == (False, True)
    assert first["problem"].startswith("garbage answer")
    assert "retry.md" not in first["prompts"] and "retry.md" in second["prompts"]
