"""Fixtures that start real servers (valkey-server, nats-server, the simulated vLLM) on free ports."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from server.services import EmbeddedNats, EmbeddedValkey
from server.sim_vllm import ServerThread, SimConfig, SimVLLM

ROOT = Path(__file__).resolve().parent.parent


def _server_url(env: str, server_cls, tmp_path_factory):
    """The server named by ``env`` when set; otherwise a real embedded one for the session."""
    if os.environ.get(env):
        yield os.environ[env]
        return
    with server_cls(tmp_path_factory.mktemp(server_cls.name)) as server:
        yield server.url


@pytest.fixture(scope="session")
def valkey_url(tmp_path_factory) -> str:
    yield from _server_url("VALKEY_URL", EmbeddedValkey, tmp_path_factory)


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory) -> str:
    yield from _server_url("NATS_URL", EmbeddedNats, tmp_path_factory)


@pytest.fixture
def sim() -> ServerThread:
    """A fresh simulated vLLM, fast (time scale 0.002) so tests take milliseconds per call."""
    with ServerThread(SimVLLM(SimConfig(time_scale=0.002))) as s:
        yield s


def sim_admin(sim: ServerThread, path: str) -> str:
    return sim.base_url.removesuffix("/v1") + path


def sim_requests(sim: ServerThread) -> list[dict]:
    return httpx.get(sim_admin(sim, "/admin/requests")).json()["requests"]
