"""publish (terminal): the completed event, validated, to JetStream with ``Nats-Msg-Id``.

The event is a function of the state and of the time it was built (``finished_at``), so the
checkpoint keeps only those: ``completed_event`` rebuilds the same event from a finished
deliberation's values (the runner, the worker's republish, ``council resume``). The
deliberation counts as completed when JetStream acknowledges the event as new; a failed publish
raises ``PublishFailed`` naming the NATS URL, and the deliberation resumes here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

import nats.errors
import structlog

from council_agents.core import metrics, settings
from council_agents.core.errors import PublishFailed
from council_agents.core.settings import display_url
from council_agents.core.state import CouncilState
from council_agents.events.models import (
    COMPLETED_SUBJECT,
    DeliberationCompleted,
    build_completed,
    utcnow,
)
from council_agents.events.publisher import publisher

log = structlog.get_logger("council.publish")


def completed_event(values: Mapping[str, Any]) -> DeliberationCompleted | None:
    """The completed event of a finished deliberation's values, as it was published (None
    before it finished)."""
    if "finished_at" not in values:
        return None
    finished = datetime.fromisoformat(values["finished_at"])
    return build_completed(cast(CouncilState, values), now=finished)


async def publish(state: CouncilState) -> dict[str, Any]:
    """The completed event, and where JetStream stored it."""
    now = utcnow()
    event = build_completed(state, now=now)
    seconds = event.duration_ms / 1000
    done = {"result": event.model_dump(mode="json"), "finished_at": now.isoformat()}
    url = settings.current().nats_url
    if not url:
        log.warning(
            "event.not_published",
            deliberation_id=event.deliberation_id,
            reason="no NATS server configured (NATS_URL unset)",
        )
        metrics.completed(event.role, seconds)
        return {**done, "published": {}}
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
    return {**done, "published": ack}
