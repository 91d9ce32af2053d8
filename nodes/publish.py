"""publish (terminal): the completed event, validated, to JetStream with ``Nats-Msg-Id``."""

from __future__ import annotations

from typing import Any

import structlog
from langgraph.runtime import Runtime

from graph.context import Context
from graph.state import CouncilState
from nodes.events import COMPLETED_SUBJECT, Publisher, build_completed
from nodes.metrics import DELIBERATION_SECONDS, DELIBERATIONS_COMPLETED

log = structlog.get_logger("council.publish")


async def publish(state: CouncilState, runtime: Runtime[Context]) -> dict[str, Any]:
    event = build_completed(state)
    DELIBERATIONS_COMPLETED.labels(event.role).inc()
    DELIBERATION_SECONDS.labels(event.role).observe(event.duration_ms / 1000)
    url = runtime.context.nats_url
    if not url:
        log.warning("event.not_published", deliberation_id=event.deliberation_id,
                    reason="no NATS server configured (NATS_URL unset)")
        return {"result": event.model_dump(mode="json"), "published": {}}
    ack = await Publisher.for_url(url).publish(COMPLETED_SUBJECT, event, f"{event.deliberation_id}:completed")
    log.info("event.published", deliberation_id=event.deliberation_id, **ack)
    return {"result": event.model_dump(mode="json"), "published": ack}
