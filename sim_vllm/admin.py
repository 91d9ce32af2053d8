"""The simulator's own endpoints, under ``/admin`` (vLLM has none of them).

Owns reading and clearing the request log, adding, listing and clearing fault rules, reading and
changing the configuration at run time, and emptying the prefix cache (docs/SIMULATOR.md).
"""

from __future__ import annotations

from dataclasses import asdict

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from council_agents.sim_vllm.engine import SimVLLM
from council_agents.sim_vllm.faults import FaultRule
from council_agents.sim_vllm.protocol import error


class Admin:
    """The ``/admin`` endpoints of one simulated server."""

    def __init__(self, sim: SimVLLM) -> None:
        """The endpoints for ``sim``."""
        self.sim = sim

    def routes(self) -> list[Route]:
        """Every ``/admin`` route."""
        return [
            Route("/admin/requests", self.get_requests),
            Route("/admin/requests", self.clear_requests, methods=["DELETE"]),
            Route("/admin/faults", self.get_faults),
            Route("/admin/faults", self.add_faults, methods=["POST"]),
            Route("/admin/faults", self.clear_faults, methods=["DELETE"]),
            Route("/admin/config", self.config, methods=["GET", "PATCH"]),
            Route("/admin/prefix-cache", self.clear_cache, methods=["DELETE"]),
        ]

    async def get_requests(self, _: Request) -> Response:
        """``GET /admin/requests``: the request log, oldest first."""
        return JSONResponse({"requests": self.sim.log})

    async def clear_requests(self, _: Request) -> Response:
        """``DELETE /admin/requests``: empty the request log."""
        self.sim.log.clear()
        return JSONResponse({"cleared": True})

    async def get_faults(self, _: Request) -> Response:
        """``GET /admin/faults``: the fault rules, with how often each has matched and fired."""
        return JSONResponse({"faults": self._faults()})

    async def add_faults(self, request: Request) -> Response:
        """``POST /admin/faults``: add one rule, or ``{"faults": [...]}``; 400 if any is invalid."""
        try:
            body = await request.json()
            rules = [FaultRule.model_validate(r) for r in (body.get("faults") or [body])]
        except (ValueError, ValidationError, AttributeError) as e:
            return error(400, f"invalid fault rule: {e}")
        self.sim.faults.extend(rules)
        return JSONResponse({"faults": self._faults()})

    async def clear_faults(self, _: Request) -> Response:
        """``DELETE /admin/faults``: remove every rule."""
        self.sim.faults.clear()
        return JSONResponse({"faults": []})

    async def config(self, request: Request) -> Response:
        """``GET /admin/config``: the configuration; ``PATCH`` changes the fields given first.

        A ``PATCH`` body that is not a JSON object, or names a field :class:`SimConfig` does not
        have, is a 400 and changes nothing.
        """
        if request.method == "PATCH":
            try:
                changes = await request.json()
            except ValueError as e:
                return error(400, f"Malformed JSON body: {e}")
            if not isinstance(changes, dict):
                return error(400, "config changes must be a JSON object")
            unknown = [k for k in changes if not hasattr(self.sim.config, k)]
            if unknown:
                return error(400, f"unknown config keys: {unknown}")
            self.sim.reconfigure(changes)
        return JSONResponse(asdict(self.sim.config))

    async def clear_cache(self, _: Request) -> Response:
        """``DELETE /admin/prefix-cache``: empty the prefix cache."""
        self.sim.cache.blocks.clear()
        return JSONResponse({"cleared": True})

    def _faults(self) -> list[dict[str, object]]:
        return [f.model_dump() for f in self.sim.faults]
