"""Structured logs (structlog): console or JSON lines; secrets are redacted, never printed."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import IO, Any

import structlog

_SECRET_KEYS = ("api_key", "apikey", "authorization", "password", "secret", "bearer")


def redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: values of secret-looking keys become ``[redacted]``."""
    for k in list(event):
        if any(s in k.lower() for s in _SECRET_KEYS):
            event[k] = "[redacted]"
    return event


class _Tee:
    def __init__(self, *streams: IO[str]):
        self.streams = streams

    def write(self, s: str) -> None:
        for st in self.streams:
            st.write(s)

    def flush(self) -> None:
        for st in self.streams:
            st.flush()


def configure(
    level: str = "INFO", json_lines: bool = True, file: Path | None = None, stderr: bool = False
) -> None:
    """Log at ``level`` to ``file`` (JSON lines) and/or stderr."""
    streams: list[IO[str]] = []
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        streams.append(open(file, "a", encoding="utf-8", buffering=1))
    if stderr or not streams:
        streams.append(sys.stderr)
    renderer = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,  # type: ignore[list-item]
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(_Tee(*streams)),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for noisy in ("httpx", "httpcore", "openai", "nats"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
