"""The done marker: what is left of a finished deliberation once its checkpoints are gone.

``council:done:{T}`` (``storage.keys.marker_key``) holds JSON ``{deliberation_id,
finished_at, published}``: when it finished (ISO 8601, UTC) and where its completed event is
(``{stream, seq, subject, duplicate}``, JetStream's ack). ``storage.compaction.settle`` writes
it, in the transaction that compacts or deletes the thread, with an expiry; the runner, the
worker and ``council resume`` read it (``done_marker``) to answer "pruned" without running the
deliberation again.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import valkey.asyncio as avalkey

from council_agents.storage import keys


def marker_of(thread_id: str, values: dict[str, Any], finished_at: float) -> dict[str, Any]:
    """The done marker of a finished deliberation.

    Args:
        thread_id: Its thread id (the deliberation id, unless the values name one).
        values: Its final checkpoint's channel values.
        finished_at: Unix time it finished (``storage.checkpoints.finished_at``).

    Returns:
        ``{deliberation_id, finished_at, published}``.
    """
    return {
        "deliberation_id": values.get("deliberation_id", thread_id),
        "finished_at": datetime.fromtimestamp(finished_at, UTC).isoformat(),
        "published": values.get("published") or None,
    }


def encode(marker: dict[str, Any]) -> str:
    """A marker as stored.

    Args:
        marker: As ``marker_of`` made it.

    Returns:
        Its JSON.
    """
    return json.dumps(marker)


def decode(raw: bytes | str | None) -> dict[str, Any] | None:
    """A stored marker.

    Args:
        raw: The value of a ``council:done:`` key (None: no marker).

    Returns:
        The marker, or None.
    """
    if not raw:
        return None
    marker: dict[str, Any] = json.loads(raw)
    return marker


def finished_at(marker: dict[str, Any]) -> float:
    """When the deliberation a marker describes finished.

    Args:
        marker: A decoded marker.

    Returns:
        Unix time.
    """
    return datetime.fromisoformat(marker["finished_at"]).timestamp()


async def done_marker(client: avalkey.Valkey, thread_id: str) -> dict[str, Any] | None:
    """The done marker of a finished deliberation, if kept.

    Args:
        client: The Valkey holding it.
        thread_id: The thread (deliberation) id.

    Returns:
        ``{deliberation_id, finished_at, published}``, or None.
    """
    return decode(await client.get(keys.marker_key(thread_id)))
