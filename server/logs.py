"""Structured logs (structlog): console or JSON lines; secrets are redacted, never printed.

The CLI, the worker and the simulator log to ``<data dir>/logs/council.jsonl`` (``configure``):
council's events, and every library's warnings and tracebacks (the standard ``logging`` of
nats, valkey, langgraph), so stderr shows only what a person needs. In ``council serve`` the
LangGraph server owns logging; ``to_file`` sends council's loggers (``council.*``) to the file
that ``COUNCIL_LOG_FILE`` names, away from the server's console.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import IO, Any

import structlog

_SECRET_KEYS = ("api_key", "apikey", "authorization", "password", "secret", "bearer")


def redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Structlog processor: values of secret-looking keys become ``[redacted]``."""
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


_file: Path | None = None


def log_file() -> Path | None:
    """The file this process logs to (None: stderr only)."""
    return _file


def configure(
    level: str = "INFO", json_lines: bool = True, file: Path | None = None, stderr: bool = False
) -> None:
    """Log at ``level`` to ``file`` (JSON lines) and/or stderr."""
    global _file
    _file = file
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
    # libraries' warnings and tracebacks go where council's logs go, not to the terminal
    logging.basicConfig(level=logging.WARNING, stream=_Tee(*streams), force=True)
    for noisy in ("httpx", "httpcore", "openai", "nats"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def to_file(path: Path, level: str = "INFO") -> None:
    """In the LangGraph server: council's loggers write JSON lines to ``path``, not the console.

    The server configures structlog on top of the standard ``logging`` module, so each
    ``structlog.get_logger("council.x")`` is the standard logger ``council.x``; a handler on
    ``council`` renders their events (secrets redacted) into the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                redact,  # type: ignore[list-item]
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(default=str),
            ],
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
        )
    )
    council = logging.getLogger("council")
    council.handlers = [handler]
    council.setLevel(logging.getLevelName(level.upper()))
    council.propagate = False
