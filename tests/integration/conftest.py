"""Fixtures of the integration tier that several of its modules share (the session's servers and
the fresh, function-scoped ``sim`` are in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from council_agents.sim_vllm import ServerThread, SimConfig, SimVLLM
from tests.helpers import Served


@pytest.fixture(scope="module")
def module_sim() -> Iterator[ServerThread]:
    """One simulated vLLM (time scale 0.02) for all of a module's tests: the one ``served`` calls.

    Named apart from the function-scoped ``sim`` (a fresh, faster one per test) so a test says
    which it gets.
    """
    with ServerThread(SimVLLM(SimConfig(time_scale=0.02))) as s:
        yield s


@pytest.fixture(scope="module")
def served(tmp_path_factory, valkey_url, nats_url, module_sim) -> Iterator[Served]:
    """``council serve`` for all of a module's tests, on the session's Valkey and NATS and the
    module's ``module_sim``."""
    s = Served(tmp_path_factory.mktemp("secure"), valkey_url, nats_url, module_sim.base_url).start()
    yield s
    s.stop()
