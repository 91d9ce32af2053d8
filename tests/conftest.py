"""Fixtures that start real servers (valkey-server, nats-server, the simulated vLLM) on free ports."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from server.services import EmbeddedNats, EmbeddedValkey
from server.sim_vllm import ServerThread, SimConfig, SimVLLM

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def valkey_url(tmp_path_factory) -> str:
    if os.environ.get("VALKEY_URL"):
        yield os.environ["VALKEY_URL"]
        return
    with EmbeddedValkey(tmp_path_factory.mktemp("valkey")) as v:
        yield v.url


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory) -> str:
    if os.environ.get("NATS_URL"):
        yield os.environ["NATS_URL"]
        return
    with EmbeddedNats(tmp_path_factory.mktemp("nats")) as n:
        yield n.url


@pytest.fixture
def sim() -> ServerThread:
    """A fresh simulated vLLM, fast (time scale 0.002) so tests take milliseconds per call."""
    with ServerThread(SimVLLM(SimConfig(time_scale=0.002))) as s:
        yield s


def sim_admin(sim: ServerThread, path: str) -> str:
    return sim.base_url.removesuffix("/v1") + path


def sim_requests(sim: ServerThread) -> list[dict]:
    return httpx.get(sim_admin(sim, "/admin/requests")).json()["requests"]
