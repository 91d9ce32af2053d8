"""Process settings: where council connects and with which secret, read once from the environment.

Nothing a caller sends can change these: a run's input and context choose *what* to deliberate
and *how many* rounds, never an endpoint or a key. The CLI and the worker start from
``from_environment()``, apply their flags and the URLs of the servers they embedded, and run
graphs under ``using(settings)``; the served graph (``langgraph.json``) reads the environment.

| variable | default | what |
|---|---|---|
| ``COUNCIL_LLM_BASE_URL`` | ``http://localhost:8000/v1`` | OpenAI-compatible server (vLLM first) |
| ``COUNCIL_MODEL`` | the server's first model | model name |
| ``COUNCIL_API_KEY`` / ``_FILE`` | ``EMPTY`` | bearer key for the LLM server (never logged) |
| ``COUNCIL_<NAME>_API_KEY`` / ``_FILE`` | | more keys, named by stored councils' agents |
| ``COUNCIL_LLM_ALLOWED_URLS`` | the base URL | comma-separated endpoints a council may name |
| ``COUNCIL_LLM_TIMEOUT`` | ``120`` | seconds per LLM request |
| ``COUNCIL_LLM_MAX_RETRIES`` | ``3`` | client retries on 5xx, 429, timeouts, broken connections |
| ``COUNCIL_LLM_MAX_CONNECTIONS`` | ``64`` | HTTP connections per LLM server |
| ``COUNCIL_LLM_CONCURRENCY`` | ``0`` | calls in flight per LLM server (0: no limit) |
| ``COUNCIL_LLM_HTTP`` | ``aiohttp`` | HTTP transport of LLM calls: ``aiohttp`` or ``httpx`` |
| ``COUNCIL_ENABLE_THINKING`` | unset | ``true``/``false``: Qwen3's ``enable_thinking`` |
| ``VALKEY_URL`` | embedded | checkpoints and stored councils |
| ``NATS_URL`` | embedded | JetStream for events |
| ``COUNCIL_DATA_DIR`` | ``./.council-data`` | embedded servers' data, logs |
| ``COUNCIL_PROMPTS_DIR`` | the installed ``prompts`` | prompt files, read on every call |
| ``COUNCIL_VALKEY_POOL`` | ``32`` | Valkey connections per process |
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_BASE_URL = "http://localhost:8000/v1"
DEFAULT_MAX_TOKENS: dict[str, int] = {
    "propose": 1536,
    "critique": 768,
    "revise": 2048,
    "judge": 1536,
    "vote": 512,
}


KEY_NAME = re.compile(r"COUNCIL_[A-Z0-9_]+_API_KEY")
"""Settings that may hold an LLM key a stored council names."""


def normal_url(url: str) -> str:
    """A base URL as compared against the allow-list (no trailing slash, lower-case host)."""
    url = url.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}{sep}{host.lower()}{slash}{path}"


class SettingsError(ValueError):
    """An environment variable holds a value council cannot use; names the variable."""


def _secret(env: Mapping[str, str], name: str, default: str) -> str:
    """``NAME`` or the contents of the file named by ``NAME_FILE`` (a mounted secret)."""
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise SettingsError(f"{name}_FILE: cannot read {path}: {e.strerror}") from None
    return env.get(name) or default


def _number(env: Mapping[str, str], name: str, default: float, kind: type = float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a {kind.__name__}") from None
    if value < 0:
        raise SettingsError(f"{name}: {raw!r} must not be negative")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (the first when unset)."""
    raw = (env.get(name) or "").strip().lower()
    if raw and raw not in choices:
        raise SettingsError(f"{name}: {raw!r} is not one of {', '.join(choices)}")
    return raw or choices[0]


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}: {raw!r} is not true or false")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything about *where* and *with what* council runs; fixed for the process."""

    llm_base_url: str = DEFAULT_BASE_URL
    """OpenAI-compatible base URL of the default LLM server."""
    model: str | None = None
    """Model name; ``None`` adopts the server's first model at preflight."""
    api_key: str = field(default="EMPTY", repr=False)
    """Bearer key sent to the LLM server; never logged, never in the state."""
    api_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    """More keys by setting name (``COUNCIL_<NAME>_API_KEY``), for councils with several
    endpoints; an agent names the setting, never the key."""
    llm_allowed_urls: tuple[str, ...] = ()
    """Endpoints a stored council may name besides ``llm_base_url``."""
    llm_timeout_s: float = 120.0
    """Per-request timeout of an LLM call."""
    llm_max_retries: int = 3
    """Client retries of an LLM request on 5xx, 429, timeouts and broken connections."""
    llm_max_connections: int = 64
    """HTTP connections per LLM server (more parallel calls wait for one)."""
    llm_concurrency: int = 0
    """At most this many calls in flight per LLM server from this process (0: no limit)."""
    llm_http: str = "aiohttp"
    """The openai client's HTTP transport: ``aiohttp`` (its aiohttp extra, about a millisecond
    less CPU per call) or ``httpx`` (its default, httpx2)."""
    answer_retries: int = 2
    """Extra attempts when an answer is empty, garbage or (select) invalid for its schema."""
    max_tokens: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_TOKENS))
    """Completion-token budget per stage (reasoning included when it is inline)."""
    enable_thinking: bool | None = None
    """Send ``chat_template_kwargs.enable_thinking`` (Qwen3 on vLLM); ``None`` sends nothing."""
    valkey_url: str | None = None
    """Valkey for checkpoints and stored councils; ``None``: the CLI embeds one."""
    valkey_pool: int = 32
    """Valkey connections per process (a blocking pool)."""
    nats_url: str | None = None
    """JetStream for events; ``None`` skips publishing (logged)."""
    data_dir: Path = Path(".council-data")
    """Embedded servers' data and the log file."""
    prompts_dir: Path | None = None
    """Prompt files to read instead of the installed ones."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Settings from an environment mapping; a bad value raises ``SettingsError``."""
        prompts = env.get("COUNCIL_PROMPTS_DIR")
        names = {
            n.removesuffix("_FILE") for n in env if KEY_NAME.fullmatch(n.removesuffix("_FILE"))
        }
        allowed = (env.get("COUNCIL_LLM_ALLOWED_URLS") or "").split(",")
        return cls(
            api_keys={name: _secret(env, name, "") for name in sorted(names)},
            llm_allowed_urls=tuple(normal_url(u) for u in allowed if u.strip()),
            llm_base_url=env.get("COUNCIL_LLM_BASE_URL") or DEFAULT_BASE_URL,
            model=env.get("COUNCIL_MODEL") or None,
            api_key=_secret(env, "COUNCIL_API_KEY", "") or _secret(env, "OPENAI_API_KEY", "EMPTY"),
            llm_timeout_s=_number(env, "COUNCIL_LLM_TIMEOUT", 120.0),
            llm_max_retries=int(_number(env, "COUNCIL_LLM_MAX_RETRIES", 3, int)),
            llm_max_connections=int(_number(env, "COUNCIL_LLM_MAX_CONNECTIONS", 64, int)) or 1,
            llm_concurrency=int(_number(env, "COUNCIL_LLM_CONCURRENCY", 0, int)),
            llm_http=_choice(env, "COUNCIL_LLM_HTTP", ("aiohttp", "httpx")),
            enable_thinking=_flag(env, "COUNCIL_ENABLE_THINKING"),
            valkey_url=env.get("VALKEY_URL") or None,
            valkey_pool=int(_number(env, "COUNCIL_VALKEY_POOL", 32, int)) or 1,
            nats_url=env.get("NATS_URL") or None,
            data_dir=Path(env.get("COUNCIL_DATA_DIR") or ".council-data").resolve(),
            prompts_dir=Path(prompts).resolve() if prompts else None,
        )

    def allows(self, base_url: str) -> bool:
        """Whether a council may send calls (and keys) to ``base_url``."""
        url = normal_url(base_url)
        return url == normal_url(self.llm_base_url) or url in self.llm_allowed_urls

    def api_key_for(self, name: str | None) -> str:
        """The key held by the setting ``name`` (None: the default key)."""
        if name is None:
            return self.api_key
        return self.api_keys.get(name) or "EMPTY"

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (``None`` values are ignored: an unset flag keeps the value)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


@functools.cache
def from_environment() -> Settings:
    """The process environment's settings, read once."""
    return Settings.from_env(os.environ)


_current: ContextVar[Settings | None] = ContextVar("council_settings", default=None)


def current() -> Settings:
    """The settings of the run in progress (``using``), else the environment's."""
    return _current.get() or from_environment()


@contextlib.contextmanager
def using(settings: Settings) -> Iterator[Settings]:
    """Run graphs started in this block (and the tasks they spawn) with ``settings``."""
    token = _current.set(settings)
    try:
        yield settings
    finally:
        _current.reset(token)
