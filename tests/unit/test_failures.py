"""The fast tier of failures: each has a kind, a stage and an exit code, URLs are shown without
their password, and a failed run counts once in the metrics (the real-server tier is
tests/integration/test_failures.py and tests/integration/test_metrics.py).
"""

from __future__ import annotations

import httpx
import nats
import pytest
import valkey.exceptions
from langgraph.checkpoint.memory import InMemorySaver
from prometheus_client import REGISTRY

from council_agents.cli.commands import exit_code
from council_agents.core.context import Context
from council_agents.core.errors import CouncilError, LLMUnreachable, PublishFailed, describe
from council_agents.core.request import RequestError
from council_agents.core.settings import LLMSettings, Settings, display_url
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from tests.helpers import deliberate, sim_admin


def wrapped(outer: Exception, cause: BaseException) -> Exception:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    "exc,kind,stage,code",
    [
        (RequestError("rounds", "too many"), "input", "prepare", 2),
        (LLMUnreachable("preflight", "-", "down"), "llm", "prepare", 3),
        (CouncilError("critique", "agent-a", "garbage"), "llm", "critique", 3),
        (PublishFailed("nats://h:1", "NoServersError"), "nats", "publish", 5),
        (valkey.exceptions.ConnectionError("refused"), "valkey", "checkpoint", 4),
        (
            wrapped(RuntimeError("x"), valkey.exceptions.TimeoutError("t")),
            "valkey",
            "checkpoint",
            4,
        ),
        (nats.errors.NoServersError(), "nats", "publish", 5),
        (KeyError("x"), "other", "-", 1),
    ],
)
def test_every_failure_has_a_kind_a_stage_and_an_exit_code(exc, kind, stage, code):
    failure = describe(exc)
    assert (failure.kind, failure.stage, exit_code(failure)) == (kind, stage, code)
    assert "\n" not in failure.message


def test_urls_are_shown_without_their_password():
    assert display_url("valkey://:s3cret@127.0.0.1:6379/0") == "valkey://:***@127.0.0.1:6379/0"
    assert display_url("nats://council:s3cret@h:4222") == "nats://council:***@h:4222"
    assert display_url("nats://h:4222") == "nats://h:4222"
    assert "s3cret" not in str(PublishFailed(display_url("nats://u:s3cret@h:1"), "down"))


def failed_runs() -> dict[tuple[str, str], float]:
    return {
        (s.labels["kind"], s.labels["stage"]): s.value
        for m in REGISTRY.collect()
        if m.name == "council_deliberations_failed"
        for s in m.samples
        if s.name.endswith("_total")
    }


async def test_a_failed_run_counts_once_though_its_parallel_tasks_all_fail():
    with ServerThread(SimVLLM(SimConfig(time_scale=0))) as sim:
        fault = {"kind": "http_500", "stage": "critique"}
        assert httpx.post(sim_admin(sim, "/admin/faults"), json=fault).status_code == 200
        settings = Settings(llm=LLMSettings(base_url=sim.base_url, max_retries=0))
        before = failed_runs().get(("llm", "critique"), 0)
        with pytest.raises(LLMUnreachable, match="^critique failed for agent-dev-00"):
            await deliberate(
                InMemorySaver(), "six-critiques", {"task": "t", "rounds": 1}, Context(), settings
            )
    assert failed_runs()[("llm", "critique")] == before + 1  # six critique calls failed
