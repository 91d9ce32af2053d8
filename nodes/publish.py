"""publish (terminal): the completed event, validated, to JetStream with ``Nats-Msg-Id``."""

from __future__ import annotations

from typing import Any

import structlog

from graph import settings
from graph.state import CouncilState
from nodes.events import COMPLETED_SUBJECT, build_completed
from nodes.metrics import DELIBERATION_SECONDS, DELIBERATIONS_COMPLETED
from nodes.nats_publisher import publisher

log = structlog.get_logger("council.publish")


async def publish(state: CouncilState) -> dict[str, Any]:
    """The completed event, and where JetStream stored it."""
    event = build_completed(state)
    DELIBERATIONS_COMPLETED.labels(event.role).inc()
    DELIBERATION_SECONDS.labels(event.role).observe(event.duration_ms / 1000)
    url = settings.current().nats_url
    if not url:
        log.warning(
            "event.not_published",
            deliberation_id=event.deliberation_id,
            reason="no NATS server configured (NATS_URL unset)",
        )
        return {"result": event.model_dump(mode="json"), "published": {}}
    ack = await publisher(url).publish(
        COMPLETED_SUBJECT, event, f"{event.deliberation_id}:completed"
    )
    log.info("event.published", deliberation_id=event.deliberation_id, **ack)
    return {"result": event.model_dump(mode="json"), "published": ack}
