"""Errors of a stage, each naming the stage, the agent and the cause."""

from __future__ import annotations

from typing import Any

import httpx2


class CouncilError(RuntimeError):
    """A stage failed for good; names the stage, the agent and the cause."""

    transient = False
    """True when trying again later may succeed (LLM down, overloaded, timing out)."""

    def __init__(self, stage: str, agent_id: str, cause: str):
        super().__init__(f"{stage} failed for {agent_id}: {cause}")
        self.stage, self.agent_id, self.cause = stage, agent_id, cause
        self.records: list[Any] = []
        """The ``CallRecord`` of every attempt that finished before the failure (what it cost)."""

    def after(self, records: list[Any]) -> CouncilError:
        """This error, carrying the records of the attempts that led to it."""
        self.records = list(records)
        return self


class LLMUnreachable(CouncilError):
    """The LLM could not be reached, timed out, or kept failing with 5xx/429 after retries."""

    transient = True


def broken_stream(exc: BaseException) -> bool:
    """True for an answer whose stream broke after it started (the peer closed mid-body, a
    read failed): the openai client retries a request that fails, not a stream that dies
    half-way, so the stage task is retried. A refused connection or a timeout is not."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, httpx2.RemoteProtocolError | httpx2.ReadError):
            return True
        seen = seen.__cause__
    return False
