"""Helpers the tests share (imported by tests; fixtures stay in conftest.py)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from graph.request import resolve
from graph.settings import Settings
from graph.state import Council
from sim_vllm import ServerThread

ROOT = Path(__file__).resolve().parent.parent
TASKS = [
    json.loads(x)
    for x in resources.files("server").joinpath("tasks.jsonl").read_text().splitlines()
]


def sim_admin(sim: ServerThread, path: str) -> str:
    """An admin URL of a simulated vLLM."""
    return sim.base_url.removesuffix("/v1") + path


def sim_requests(sim: ServerThread) -> list[dict[str, Any]]:
    """The simulated vLLM's request log."""
    requests: list[dict[str, Any]] = httpx.get(sim_admin(sim, "/admin/requests")).json()["requests"]
    return requests


def council(role: str = "QA", agents: int = 3, rounds: int = 1, **inp: Any) -> Council:
    """A built-in council, resolved as prepare resolves it."""
    settings = Settings(model="m")
    _, resolved = resolve(
        {"task": "t", "role": role, "rounds": rounds, **inp}, {"agents": agents}, None, settings
    )
    return resolved
