"""The LLM client's HTTP transport: chosen by a setting, closed when its event loop shuts down."""

from __future__ import annotations

import asyncio

import pytest

from council_agents.core.settings import LLMSettings, Settings, SettingsError
from council_agents.llm.client import LLM

AGENT = {
    "agent_id": "agent-dev-001",
    "role": "DEV",
    "model": "m",
    "base_url": "http://127.0.0.1:9/v1",
    "api_key_name": None,
    "temperature": 0.7,
    "seed": 1,
}


def test_the_transport_is_a_setting_named_in_its_error():
    assert Settings.from_env({}).llm.http == "aiohttp"
    assert Settings.from_env({"COUNCIL_LLM_HTTP": "httpx"}).llm.http == "httpx"
    with pytest.raises(SettingsError, match="COUNCIL_LLM_HTTP: 'curl' is not one of"):
        Settings.from_env({"COUNCIL_LLM_HTTP": "curl"})


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_clients_are_closed_when_their_loop_shuts_down(transport):
    async def build() -> tuple[object, object]:
        llm = LLM(LLMSettings(http=transport))
        model = llm.chat_model(AGENT)  # type: ignore[arg-type]
        assert llm.chat_model(AGENT) is model  # type: ignore[arg-type]
        return model, model.http_async_client

    model, http = asyncio.run(build())
    assert http.is_closed  # type: ignore[attr-defined]
    assert type(http).__module__.startswith("openai")
    uses_aiohttp = "Aio" in type(http).__name__
    assert uses_aiohttp == (transport == "aiohttp")
