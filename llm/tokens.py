"""Counting a prompt's tokens: an upper estimate from its bytes, or the server's own tokenizer.

The server's tokenizer is not available here. A call whose *estimate* (``ceil(UTF-8 bytes /
BYTES_PER_TOKEN)`` plus ``PER_MESSAGE`` template tokens per message) fits with its whole budget
is sent without another request: the estimate is an upper bound for every tokenizer measured
(docs/REAL_LLM.md). Otherwise the server counts the rendered prompt itself: vLLM's
``POST /tokenize`` (messages, with the chat template), llama.cpp's ``POST /apply-template`` then
``POST /tokenize``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

import httpx
from langchain_core.messages import BaseMessage

BYTES_PER_TOKEN = 2.5
"""Estimate: at most one token per this many UTF-8 bytes of prompt text. Measured: SmolLM2's
tokenizer 3.1 bytes a token on council's Markdown and JSON (3.6 on Python), the simulator's
2.7-2.9, Gemma 3's more (docs/REAL_LLM.md)."""
PER_MESSAGE = 8
"""Estimate: chat-template tokens per message (role markers), plus the same once more."""

Tokenizer = Literal["vllm", "llama.cpp"]
"""Servers whose tokenizer council can ask."""


def text_of(message: BaseMessage) -> str:
    """A message's text."""
    return message.content if isinstance(message.content, str) else str(message.content)


def estimate(messages: list[BaseMessage]) -> int:
    """An upper estimate of a prompt's tokens (see ``BYTES_PER_TOKEN``)."""
    size = sum(len(text_of(m).encode()) for m in messages)
    return math.ceil(size / BYTES_PER_TOKEN) + PER_MESSAGE * (len(messages) + 1)


def wire(messages: list[BaseMessage]) -> list[dict[str, str]]:
    """Messages as the OpenAI API sends them."""
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    return [{"role": roles.get(m.type, m.type), "content": text_of(m)} for m in messages]


def server_root(base_url: str) -> str:
    """The server root of an OpenAI base URL (``/tokenize`` and ``/props`` live there)."""
    return re.sub(r"/v1/?$", "", base_url.rstrip("/"))


async def tokenize(
    client: httpx.AsyncClient,
    base_url: str,
    api_key: str,
    model: str,
    messages: list[BaseMessage],
    tokenizer: Tokenizer,
    enable_thinking: bool | None = None,
) -> int:
    """The prompt's tokens as the server counts them (raises ``httpx.HTTPError``,
    ``KeyError`` or ``ValueError`` when it cannot).
    """
    headers = {"Authorization": f"Bearer {api_key}"}
    root = server_root(base_url)
    if tokenizer == "vllm":
        body: dict[str, Any] = {
            "model": model,
            "messages": wire(messages),
            "add_generation_prompt": True,
        }
        if enable_thinking is not None:
            body["chat_template_kwargs"] = {"enable_thinking": enable_thinking}
        response = await client.post(root + "/tokenize", json=body, headers=headers)
        response.raise_for_status()
        return int(response.json()["count"])
    response = await client.post(
        root + "/apply-template", json={"messages": wire(messages)}, headers=headers
    )
    response.raise_for_status()
    prompt = response.json()["prompt"]
    response = await client.post(
        root + "/tokenize", json={"content": prompt, "add_special": True}, headers=headers
    )
    response.raise_for_status()
    return len(response.json()["tokens"])
