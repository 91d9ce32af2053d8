"""The endpoints vLLM serves besides completions: models, tokenize, health and metrics.

Owns what a client learns about the server without asking for an answer: the one served model
and its context window, token counts exactly as a chat request with the same messages counts
them, liveness, and the Prometheus exposition (``sim_vllm.metrics``).
"""

from __future__ import annotations

import zlib

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from council_agents.sim_vllm import content
from council_agents.sim_vllm.engine import SimVLLM
from council_agents.sim_vllm.latency import render_prompt
from council_agents.sim_vllm.metrics import CONTENT_TYPE
from council_agents.sim_vllm.protocol import error

VOCAB_SIZE = 151_936
"""Token ids are hashes of the token's text below Qwen's vocabulary size."""


class Info:
    """The informational endpoints of one simulated server."""

    def __init__(self, sim: SimVLLM) -> None:
        """The endpoints for ``sim``."""
        self.sim = sim

    def routes(self) -> list[Route]:
        """``/v1/models``, ``/health``, ``/metrics`` and ``POST /tokenize``."""
        return [
            Route("/v1/models", self.models),
            Route("/health", self.health),
            Route("/metrics", self.metrics),
            Route("/tokenize", self.tokenize, methods=["POST"]),
        ]

    async def models(self, _: Request) -> Response:
        """``GET /v1/models``: the one served model."""
        config = self.sim.config
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": config.model,
                        "object": "model",
                        "created": int(self.sim.started),
                        "owned_by": "vllm",
                        "root": config.model,
                        "parent": None,
                        "max_model_len": config.max_model_len,
                    }
                ],
            }
        )

    async def health(self, _: Request) -> Response:
        """``GET /health``: 200."""
        return Response(status_code=200)

    async def metrics(self, _: Request) -> Response:
        """``GET /metrics``: Prometheus's text format."""
        return Response(self.sim.metrics.exposition(), media_type=CONTENT_TYPE)

    async def tokenize(self, request: Request) -> Response:
        """``POST /tokenize`` as vLLM serves it: messages (with the chat template) or a prompt."""
        try:
            body = await request.json()
        except ValueError as e:
            return error(400, f"Malformed JSON body: {e}")
        if not isinstance(body, dict) or not (
            isinstance(body.get("messages"), list) or isinstance(body.get("prompt"), str)
        ):
            return error(400, "either 'messages' (a list) or 'prompt' (a string) is required")
        model = body.get("model")
        if model is not None and model != self.sim.config.model:
            return error(404, f"The model `{model}` does not exist.", param="model")
        if "messages" in body:
            text = render_prompt(body["messages"])
            if body.get("add_generation_prompt", True) is False:
                text = text.removesuffix("<|im_start|>assistant\n")
        else:
            text = body["prompt"]
        tokens = content.tokenize(text)
        return JSONResponse(
            {
                "count": len(tokens),
                "max_model_len": self.sim.config.max_model_len,
                "tokens": [zlib.crc32(t.encode()) % VOCAB_SIZE for t in tokens],
                "token_strs": tokens if body.get("return_token_strs") else None,
            }
        )
