"""JetStream: the streams council uses, its subjects, and the publisher of its events.

Every event is validated by its model (``core.events``) and serialised to JSON before it leaves
(the replaced system crashed here), and carries ``Nats-Msg-Id`` so JetStream drops a repeated
publish. ``Events`` is one process's publisher, built from ``EventSettings`` by a door and
passed to the graph's ``publish`` node and the worker.
"""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from pydantic import BaseModel

from council_agents.core.settings import EventSettings
from council_agents.core.state import PublishAck

STREAM = "ORCHESTRATOR_EVENTS"
COMPLETED_SUBJECT = "orchestration.deliberation.completed"
FAILED_SUBJECT = "orchestration.deliberation.failed"


def completed_id(deliberation_id: str) -> str:
    """The ``Nats-Msg-Id`` of a deliberation's completed event: ``<deliberation_id>:completed``
    (the id is the server's, ``nodes.admit``), so JetStream keeps one per deliberation.
    """
    return f"{deliberation_id}:completed"


def failed_id(deliberation_id: str) -> str:
    """The ``Nats-Msg-Id`` of a deliberation's failed event."""
    return f"{deliberation_id}:failed"


# The replaced system's streams (limits retention, discard old, one replica), with a 24 h
# duplicate window so a re-published event (same Nats-Msg-Id) is dropped.
STREAMS: dict[str, dict[str, Any]] = {
    STREAM: {"subjects": ["orchestration.>"], "max_age": 7 * 24 * 3600, "max_msgs": 50_000},
    "PLANNING_EVENTS": {
        "subjects": ["planning.>"],
        "max_age": 30 * 24 * 3600,
        "max_msgs": 1_000_000,
    },
}


def stream_config(name: str, replicas: int = 1) -> StreamConfig:
    """The configuration of one of council's streams."""
    spec = STREAMS[name]
    return StreamConfig(
        name=name,
        subjects=spec["subjects"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
        max_age=spec["max_age"],
        max_msgs=spec["max_msgs"],
        duplicate_window=24 * 3600,
    )


async def declare_streams(js: JetStreamContext, replicas: int = 1) -> list[str]:
    """Create or update every stream council uses (``council streams``); what was done."""
    done = []
    for name in STREAMS:
        try:
            await js.stream_info(name)
            await js.update_stream(stream_config(name, replicas))
            done.append(f"updated stream {name} ({replicas} replica(s))")
        except NotFoundError:
            await js.add_stream(stream_config(name, replicas))
            done.append(f"created stream {name} ({replicas} replica(s))")
    return done


async def connect(url: str, creds: Path | None = None, **options: Any) -> NATS:
    """A connection to ``url`` (``nats://user:password@host`` is honoured) with a credentials
    file (``NATS_CREDS``), if any: every NATS client uses this.
    """
    if creds is not None:
        options.setdefault("user_credentials", str(creds))
    return await nats.connect(url, **options)


async def ensure_stream(js: JetStreamContext, name: str) -> None:
    """Create the named stream (file storage) unless a stream already holds its subjects."""
    spec = STREAMS[name]
    try:
        await js.find_stream_name_by_subject(spec["subjects"][0].replace(">", "x"))
    except NotFoundError:
        await js.add_stream(stream_config(name))


async def _quiet(_: Exception) -> None:
    """nats-py reports every failed attempt here; the caller names the failure once."""


async def connect_once(url: str, creds: Path | None = None, timeout: float = 5.0) -> NATS:
    """A connection for a short job, or an error within ``timeout`` (nats-py's
    ``max_reconnect_attempts=0`` would retry the first connect forever).
    """
    return await asyncio.wait_for(
        connect(
            url,
            creds,
            connect_timeout=min(2.0, timeout),
            max_reconnect_attempts=1,
            allow_reconnect=False,
            error_cb=_quiet,
        ),
        timeout=timeout,
    )


class Publisher:
    """One NATS connection to one server, with the orchestrator stream ensured."""

    def __init__(self, url: str, creds: Path | None = None):
        self.url, self.creds = url, creds
        self.nc: NATS | None = None
        self.js: JetStreamContext | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> JetStreamContext:
        """The JetStream context, connecting (and ensuring the stream) on first use."""
        async with self._lock:
            if self.js is not None and self.nc is not None and self.nc.is_connected:
                return self.js
            self.nc = await connect(
                self.url,
                self.creds,
                connect_timeout=5,
                max_reconnect_attempts=5,
                allow_reconnect=True,
            )
            self.js = self.nc.jetstream(timeout=10)
            await ensure_stream(self.js, STREAM)
            return self.js

    async def publish(self, subject: str, event: BaseModel, msg_id: str) -> PublishAck:
        """Publish a validated event as JSON; JetStream drops a repeated ``Nats-Msg-Id``."""
        js = await self.connect()
        ack = await js.publish(
            subject, event.model_dump_json().encode(), headers={"Nats-Msg-Id": msg_id}
        )
        return PublishAck(
            stream=ack.stream,
            seq=ack.seq,
            duplicate=bool(ack.duplicate),
            msg_id=msg_id,
            subject=subject,
        )

    async def close(self) -> None:
        """Flush and close the connection."""
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.flush(timeout=5)
            await self.nc.close()


class Events:
    """One process's event publishing: its NATS settings and a publisher per event loop
    (connections belong to the loop that opened them).
    """

    def __init__(self, settings: EventSettings) -> None:
        self.settings = settings
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Publisher] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def url(self) -> str | None:
        """The NATS URL events go to (None: events are not published)."""
        return self.settings.nats_url

    def publisher(self) -> Publisher:
        """This event loop's publisher (``nats_url`` must be set)."""
        if self.settings.nats_url is None:
            raise RuntimeError("no NATS server configured (NATS_URL unset)")
        loop = asyncio.get_running_loop()
        if loop not in self._loops:
            self._loops[loop] = Publisher(self.settings.nats_url, self.settings.nats_creds)
        return self._loops[loop]

    async def publish(self, subject: str, event: BaseModel, msg_id: str) -> PublishAck:
        """Publish ``event`` with ``Nats-Msg-Id: msg_id`` through this loop's publisher."""
        return await self.publisher().publish(subject, event, msg_id)

    async def close(self) -> None:
        """Close this event loop's publisher."""
        publisher = self._loops.pop(asyncio.get_running_loop(), None)
        if publisher is not None:
            await publisher.close()
