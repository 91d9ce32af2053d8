"""What one LLM call costs the caller's CPU, layer by layer: raw HTTP, the openai SDK, ChatOpenAI.

    python -m bench.llm_path [--calls 600] [--concurrency 32]

The simulated vLLM runs in its own process at time scale 0 (answers at once), so the CPU this
process spends is the client's alone. The same request (a critique: council's system and stage
prompts, ``max_tokens`` 768, the critique's JSON Schema as ``response_format``) is sent
``--calls`` times, ``--concurrency`` at once, through each layer:

* ``httpx`` / ``aiohttp``: a raw POST of the JSON body, the answer parsed with ``json.loads``;
* ``openai`` / ``openai+aiohttp``: ``AsyncOpenAI.chat.completions.create`` (its default
  transport, httpx2, or its ``aiohttp`` extra);
* ``ChatOpenAI`` / ``ChatOpenAI+aiohttp``: the chat model of council's LLM client
  (``llm.client.LLM.chat_model``) and ``ainvoke`` with council's call parameters, as a node
  calls it (``COUNCIL_LLM_HTTP=httpx`` and ``aiohttp``, the default).

Reports CPU milliseconds per call (process user + system time / calls), each layer measured
twice, interleaved, and the lower figure shown.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import resource
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx2
import openai
from langchain_core.messages import convert_to_openai_messages

from bench.common import TASKS, SimProcess, machine
from council_agents.core.settings import LLMSettings
from council_agents.llm import client as llm_client
from council_agents.llm.prompt_files import PromptFiles
from council_agents.llm.stage import stage_prompt
from council_agents.nodes.critique import CritiqueAnswer, critique_inputs


def cpu_seconds() -> float:
    """This process's CPU time (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def critique_request(
    settings: LLMSettings,
) -> tuple[Any, list[Any], dict[str, Any], dict[str, Any]]:
    """A critique call as council makes it: agent, messages, ChatOpenAI params, raw JSON body."""
    task = TASKS[0]
    council: Any = {
        "role": task["role"],
        "constraints": "",
        "rubric": {
            name: {"meaning": meaning, "weight": 1.0, "anchors": {"0": "bad", "10": "good"}}
            for name, meaning in task["rubric"].items()
        },
    }
    agent: Any = {
        "agent_id": "agent-dev-001",
        "role": task["role"],
        "model": settings.model,
        "base_url": settings.base_url,
        "api_key_name": None,
        "temperature": 0.7,
        "seed": 1,
    }
    proposal = "\n".join(f"{i}. a step of the proposal, with some detail" for i in range(60))
    order = ["agent-dev-001", "agent-dev-002", "agent-dev-003"]
    # the critique node's own inputs (every latest version under its label), rendered as the
    # LLM client renders them
    crit: Any = {
        "deliberation_id": "llm-path",
        "task": task["task"],
        "council": council,
        "agent": agent,
        "round": 1,
        "max_tokens": 768,
        "token_cap": None,
        "author": "agent-dev-002",
        "proposal": proposal,
        "order": order,
        "proposals": dict.fromkeys(order, proposal),
    }
    messages, _ = stage_prompt(crit, "critique", **critique_inputs(crit)).render(
        PromptFiles(settings.prompts_dir)
    )
    response_format, _ = llm_client.structured(CritiqueAnswer, "critique")
    params = llm_client.call_params(
        settings,
        agent,
        stage="critique",
        round_=1,
        max_tokens=768,
        deliberation_id="llm-path",
        response_format=response_format,
    )
    body = {
        "model": settings.model,
        "messages": convert_to_openai_messages(messages),
        "temperature": 0.7,
        "max_tokens": 768,
        "seed": 1,
        "response_format": response_format,
    }
    return agent, messages, params, body


async def measure(name: str, one: Callable[[], Awaitable[Any]], calls: int, at_once: int) -> float:
    """CPU ms per call of ``calls`` calls, ``at_once`` in flight."""
    gate = asyncio.Semaphore(at_once)

    async def gated() -> None:
        async with gate:
            await one()

    for _ in range(at_once):  # warm connections
        await one()
    before = cpu_seconds()
    await asyncio.gather(*(gated() for _ in range(calls)))
    return (cpu_seconds() - before) / calls * 1000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.llm_path", description=__doc__)
    ap.add_argument("--calls", type=int, default=600)
    ap.add_argument("--concurrency", type=int, default=32)
    return ap.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
    print(f"machine: {machine()}")
    with SimProcess("--time-scale", "0", "--max-num-seqs", "1024") as sim:
        served = await llm_client.served_models(sim.base_url, "EMPTY")
        settings = LLMSettings(base_url=sim.base_url, model=served[0])
        agent, messages, params, body = critique_request(settings)
        url = sim.base_url + "/chat/completions"
        headers = params["extra_headers"]
        n = args.concurrency
        limits = httpx2.Limits(max_connections=n, max_keepalive_connections=n)
        raw_httpx = httpx2.AsyncClient(limits=limits, timeout=60)
        raw_aiohttp = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n))
        sdk = openai.AsyncOpenAI(
            base_url=sim.base_url,
            api_key="EMPTY",
            http_client=openai.DefaultAsyncHttpxClient(limits=limits),
        )
        sdk_aiohttp = openai.AsyncOpenAI(
            base_url=sim.base_url,
            api_key="EMPTY",
            http_client=openai.DefaultAioHttpClient(limits=limits),
        )
        # council's own LLM client's chat model (llm.client.LLM), on each of its transports;
        # the clients are kept: their HTTP connections close when they go
        council_httpx = llm_client.LLM(dataclasses.replace(settings, http="httpx"))
        council_aiohttp = llm_client.LLM(dataclasses.replace(settings, http="aiohttp"))
        chat = council_httpx.chat_model(agent)
        chat_aiohttp = council_aiohttp.chat_model(agent)

        async def via_httpx() -> Any:
            response = await raw_httpx.post(url, json=body, headers=headers)
            return json.loads(response.content)

        async def via_aiohttp() -> Any:
            async with raw_aiohttp.post(url, json=body, headers=headers) as response:
                return json.loads(await response.read())

        async def via_sdk() -> Any:
            return await sdk.chat.completions.create(**body, extra_headers=headers)

        async def via_sdk_aiohttp() -> Any:
            return await sdk_aiohttp.chat.completions.create(**body, extra_headers=headers)

        async def via_chat() -> Any:
            return await chat.ainvoke(messages, **params)

        async def via_chat_aiohttp() -> Any:
            return await chat_aiohttp.ainvoke(messages, **params)

        layers: dict[str, Callable[[], Awaitable[Any]]] = {
            "httpx": via_httpx,
            "aiohttp": via_aiohttp,
            "openai": via_sdk,
            "openai+aiohttp": via_sdk_aiohttp,
            "ChatOpenAI": via_chat,
            "ChatOpenAI+aiohttp": via_chat_aiohttp,
        }
        best: dict[str, float] = {}
        for _ in range(2):
            for name, one in layers.items():
                ms = await measure(name, one, args.calls, n)
                best[name] = min(best.get(name, ms), ms)
                print(f"  {name:<20} {ms:6.2f} ms CPU per call", flush=True)
        await raw_httpx.aclose()
        await raw_aiohttp.close()
        await sdk.close()
        await sdk_aiohttp.close()
    print(
        f"\n{args.calls} critique calls, {n} in flight, simulated vLLM at time scale 0\n\n"
        "| layer | CPU per call (ms) |\n|---|---|"
    )
    for name, ms in best.items():
        print(f"| {name} | {ms:.2f} |")


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
