"""What the LangGraph server serves (``server/langgraph.json``), built from the environment.

The served process is a door of its own: its settings are read here, once, and passed to the
graph (its clients), the checkpointer, the authentication and the HTTP app. ``council serve``
prepares that environment (the embedded servers' URLs, the log file).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from langgraph_checkpoint_aws.checkpoint.valkey import AsyncValkeySaver

from council_agents.core.settings import Settings
from council_agents.graph.builder import Clients, compile_graph
from council_agents.server.app import create_app
from council_agents.server.auth import create_auth
from council_agents.storage.saver import valkey_saver

SETTINGS = Settings.from_environment()
"""The served process's settings."""

graph = compile_graph(Clients.of(SETTINGS))
"""The graph (the LangGraph server supplies the checkpointer)."""

auth = create_auth(SETTINGS)
"""Who may call (``server.auth``)."""

app = create_app(SETTINGS)
"""council's routes and run door beside the LangGraph API (``server.app``)."""


@contextlib.asynccontextmanager
async def checkpointer() -> AsyncIterator[AsyncValkeySaver]:
    """The saver the LangGraph server uses; ``council serve`` sets ``VALKEY_URL``."""
    url = SETTINGS.storage.valkey_url
    if not url:
        raise RuntimeError(
            "VALKEY_URL is not set: start the server with `council serve`, "
            "which embeds a valkey-server, or set VALKEY_URL"
        )
    async with valkey_saver(url, SETTINGS.storage.valkey_pool) as saver:
        yield saver
