"""Fixtures that start real servers (valkey-server, nats-server, the simulated vLLM), and the
tiers: every test is marked by its directory (``tests/unit``: ``unit``, ``tests/integration``:
``integration``, ``tests/bench``: ``bench_smoke``; ``tests.helpers.TIERS``) with its tier's
timeout, so ``pytest -m unit`` is the fast gate."""

from __future__ import annotations

import os

import pytest

from council_agents.server.services import EmbeddedNats, EmbeddedValkey
from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from tests.helpers import tier_of


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier and, unless it names its own, the tier's timeout."""
    for item in items:
        tier = tier_of(item.path)
        if tier is None:
            continue
        marker, timeout = tier
        item.add_marker(marker)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(timeout))


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
