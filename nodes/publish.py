"""publish (terminal): the completed event, validated, to JetStream with ``Nats-Msg-Id``.

The deliberation counts as completed when JetStream acknowledges the event as new; a failed
publish raises ``PublishFailed`` naming the NATS URL, and the deliberation resumes here.
"""

from __future__ import annotations

from typing import Any

import nats.errors
import structlog

from graph import settings
from graph.settings import display_url
from graph.state import CouncilState
from nodes import metrics
from nodes.errors import PublishFailed
from nodes.events import COMPLETED_SUBJECT, build_completed
from nodes.nats_publisher import publisher

log = structlog.get_logger("council.publish")


async def publish(state: CouncilState) -> dict[str, Any]:
    """The completed event, and where JetStream stored it."""
    event = build_completed(state)
    seconds = event.duration_ms / 1000
    url = settings.current().nats_url
    if not url:
        log.warning(
            "event.not_published",
            deliberation_id=event.deliberation_id,
            reason="no NATS server configured (NATS_URL unset)",
        )
        metrics.completed(event.role, seconds)
        return {"result": event.model_dump(mode="json"), "published": {}}
    try:
        ack = await publisher(url).publish(
            COMPLETED_SUBJECT, event, f"{event.deliberation_id}:completed"
        )
    except (nats.errors.Error, OSError, TimeoutError) as e:
        cause = f"{type(e).__name__}: {e}".rstrip(": ")
        raise PublishFailed(display_url(url), cause) from e
    log.info("event.published", deliberation_id=event.deliberation_id, **ack)
    if not ack["duplicate"]:
        metrics.completed(event.role, seconds)
    return {"result": event.model_dump(mode="json"), "published": ack}
