"""Errors of a stage, each naming the stage, the agent and the cause; and what a failure was.

``describe(exc)`` is the one classification of a failed deliberation, used by the metrics
(``kind`` label) and the CLI (one line; ``cli.commands`` maps each kind to its exit code): bad
input, the LLM (unreachable, overloaded, refusing), the model's answers (rejected after every
retry, where the deliberation cannot do without them), Valkey, NATS, other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import httpx2
import nats.errors
import valkey.exceptions

from council_agents.core.request import RequestError


class CouncilError(RuntimeError):
    """A stage failed for good; names the stage, the agent and the cause."""

    transient = False
    """True when trying again later may succeed (LLM down, overloaded, timing out)."""

    def __init__(self, stage: str, agent_id: str, cause: str):
        who = "" if agent_id == "-" else f" for {agent_id}"
        super().__init__(f"{stage} failed{who}: {cause}")
        self.stage, self.agent_id, self.cause = stage, agent_id, cause
        self.records: list[Any] = []
        """The ``CallRecord`` of every attempt that finished before the failure (what it cost)."""

    def after(self, records: list[Any]) -> CouncilError:
        """This error, carrying the records of the attempts that led to it."""
        self.records = list(records)
        return self


class AnswerRejected(CouncilError):
    """Every attempt's answer was rejected (empty, garbage, invalid for its schema, or dropping
    what the previous version had). A stage leaves such an agent out and goes on; only when the
    deliberation cannot do without it (fewer than two proposals, no judgement and no ballot) does
    it fail with this error.
    """


class LLMUnreachable(CouncilError):
    """The LLM could not be reached, timed out, or kept failing with 5xx/429 after retries."""

    transient = True


class PublishFailed(CouncilError):
    """JetStream did not acknowledge the completed event (the deliberation is resumable)."""

    transient = True

    def __init__(self, url: str, cause: str):
        super().__init__("publish", "-", f"NATS at {url} did not acknowledge the event: {cause}")
        self.url = url

    def __str__(self) -> str:
        return f"publish failed: {self.cause}"


class StorageUnavailable(CouncilError):
    """The checkpointer's Valkey does not answer: the stage stops before its LLM call (nothing
    could save the answer) or ``publish`` before the event (no event for a state that was not
    saved); the deliberation resumes from its last checkpoint once Valkey is back.
    """

    transient = True

    def __init__(self, stage: str, agent_id: str, url: str, cause: str, before: str) -> None:
        super().__init__(stage, agent_id, f"Valkey at {url} does not answer ({cause})")
        who = "" if agent_id == "-" else f" for {agent_id}"
        self.args = (f"{stage} stopped{who} before {before}: {self.cause}",)
        self.url = url


def broken_stream(exc: BaseException) -> bool:
    """True for an answer whose stream broke after it started (the peer closed mid-body, a
    read failed): the openai client retries a request that fails, not a stream that dies
    half-way, so the stage task is retried. A refused connection or a timeout is not.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, httpx2.RemoteProtocolError | httpx2.ReadError):
            return True
        seen = seen.__cause__
    return False


Kind = Literal["input", "llm", "answers", "valkey", "nats", "other"]


@dataclass(frozen=True)
class Failure:
    """What a failed deliberation ran into."""

    kind: Kind
    """What failed: the request itself, the LLM, the model's answers, Valkey, NATS, or something
    else."""
    stage: str
    """Where: ``prepare``, a stage (``propose`` ...), ``publish``, or ``checkpoint``."""
    message: str
    """One line: what failed, where, and for which agent."""
    named: bool = False
    """The message names the server that failed, with its URL, already."""


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def describe(exc: BaseException) -> Failure:
    """The kind, stage and one-line message of a failure (the cause chain is searched)."""
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, RequestError):
            return Failure("input", "prepare", str(e))
        if isinstance(e, PublishFailed):
            return Failure("nats", "publish", str(e), named=True)
        if isinstance(e, StorageUnavailable):
            return Failure("valkey", "checkpoint", str(e), named=True)
        if isinstance(e, AnswerRejected):
            return Failure("answers", e.stage, str(e))
        if isinstance(e, CouncilError):
            stage = "prepare" if e.stage == "preflight" else e.stage
            return Failure("llm", stage, str(e))
    for e in chain:
        if isinstance(e, valkey.exceptions.ValkeyError):
            return Failure("valkey", "checkpoint", f"{type(e).__name__}: {e}")
        if isinstance(e, nats.errors.Error):
            return Failure("nats", "publish", f"{type(e).__name__}: {e}")
    return Failure("other", "-", f"{type(exc).__name__}: {exc}")
