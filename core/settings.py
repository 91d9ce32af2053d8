"""Process settings: where council connects and with which secret, read once from the environment.

Nothing a caller sends can change these: a run's input and context choose *what* to deliberate
and *how many* rounds, never an endpoint or a key. Each door reads them once
(``Settings.from_environment()``: the CLI and the worker, then their flags and the URLs of the
servers they embedded; the served process in ``server.served``) and passes each part to whoever
uses it: ``llm`` to the LLM client, ``storage`` to Valkey, ``events`` to NATS, ``retention`` to
the sweep, ``server`` to authentication and serving. Nothing reads them from an ambient place.

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
| ``COUNCIL_LLM_REPETITION_PENALTY`` | ``1.1`` | the server's repetition control (0: none) |
| ``COUNCIL_LLM_CONTEXT_WINDOW`` | learned | context window: ``N``, or ``URL=N,...`` per endpoint |
| ``VALKEY_URL`` | embedded | checkpoints and stored councils |
| ``NATS_URL`` | embedded | JetStream for events |
| ``COUNCIL_DATA_DIR`` | ``./.council-data`` | embedded servers' data, logs |
| ``COUNCIL_PROMPTS_DIR`` | the installed ``prompts`` | prompt files, read on every call |
| ``COUNCIL_VALKEY_POOL`` | ``32`` | Valkey connections per process |
| ``NATS_CREDS`` | unset | NATS credentials file (JWT + nkey seed) for ``NATS_URL`` |
| ``COUNCIL_SERVE_JOBS`` | ``10`` | runs the LangGraph server executes at once (``council serve``) |
| ``COUNCIL_JWT_SECRET`` / ``_FILE`` | unset | HS256 shared secret: accept JWTs signed with it |
| ``COUNCIL_JWT_JWKS_URL`` | unset | accept JWTs signed by a key of this JWKS (RS256, ES256) |
| ``COUNCIL_JWT_AUDIENCE``, ``_ISSUER`` | unset | required ``aud`` / ``iss`` of accepted JWTs |
| ``COUNCIL_METRICS_PORT`` | ``0`` | ``council worker`` serves ``/metrics`` on this port (0: none) |
| ``COUNCIL_LOG_FILE`` | unset | served graph's structured logs (``council serve`` sets it) |
| ``COUNCIL_RETAIN_HISTORY`` | ``0`` | a finished deliberation's whole history, then compacted |
| ``COUNCIL_RETAIN_FINISHED`` | ``24h`` | its final checkpoint, from the finish (``never``: kept) |
| ``COUNCIL_RETAIN_UNFINISHED`` | ``never`` | failed, waiting, unfinished ones untouched this long |
| ``COUNCIL_RETAIN_MARKER`` | ``30d`` | a finished one's done marker (where its event is) |
| ``COUNCIL_PRUNE_INTERVAL`` | ``5m`` | how often serve and worker apply retention (``0``: never) |
| ``COUNCIL_VALKEY_MEMORY_WARN`` | ``0.8`` | warn above this share of Valkey's maxmemory |

Durations are seconds or a number with ``s``, ``m``, ``h`` or ``d`` (``90s``, ``24h``, ``30d``);
the reasoning behind the retention defaults is in docs/STORAGE.md.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

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
        value: float = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a {kind.__name__}") from None
    if value < 0:
        raise SettingsError(f"{name}: {raw!r} must not be negative")
    return value


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NEVER = ("never", "off", "none")


def parse_duration(raw: str, name: str, never: bool = False) -> float | None:
    """Seconds from ``90``, ``90s``, ``5m``, ``24h``, ``30d``; ``never`` is None when allowed.
    ``name`` (a variable or a flag) starts the ``SettingsError`` of a bad value.
    """
    text = raw.strip().lower()
    if text in _NEVER:
        if never:
            return None
        raise SettingsError(f"{name}: {raw!r}: a duration is required here")
    unit = _UNITS.get(text[-1:])
    try:
        value = float(text[:-1] if unit else text) * (unit or 1)
    except ValueError:
        forms = "seconds, or a number with s, m, h or d" + (", or never" if never else "")
        raise SettingsError(f"{name}: {raw!r} is not a duration ({forms})") from None
    if value < 0:
        raise SettingsError(f"{name}: {raw!r} must not be negative")
    return value


def _duration(
    env: Mapping[str, str], name: str, default: float | None, never: bool = False
) -> float | None:
    raw = env.get(name) or ""
    return parse_duration(raw, name, never) if raw.strip() else default


def _share(env: Mapping[str, str], name: str, default: float) -> float:
    value = _number(env, name, default)
    if not 0 < value <= 1:
        raise SettingsError(f"{name}: {env.get(name)!r} must be a share in (0, 1]")
    return value


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw).resolve() if raw else None


def _windows(env: Mapping[str, str], name: str) -> dict[str, int]:
    """``N`` (every endpoint) or ``URL=N,URL=N`` (per endpoint) as ``{normal URL or "": N}``."""
    windows: dict[str, int] = {}
    for item in (env.get(name) or "").split(","):
        url, _, size = item.strip().rpartition("=")
        if not size:
            continue
        if not size.isdigit() or int(size) < 256:
            raise SettingsError(f"{name}: {item.strip()!r} is not a window of at least 256 tokens")
        windows[normal_url(url) if url else ""] = int(size)
    return windows


Transport = Literal["aiohttp", "httpx"]
"""The HTTP transports of LLM calls."""


def _transport(env: Mapping[str, str], name: str) -> Transport:
    """``aiohttp`` (when unset) or ``httpx``."""
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "aiohttp"):
        return "aiohttp"
    if raw == "httpx":
        return "httpx"
    raise SettingsError(f"{name}: {raw!r} is not one of aiohttp, httpx")


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
class LLMSettings:
    """Where the agents' calls go, with which key, and how each call is bounded (``llm/``)."""

    base_url: str = DEFAULT_BASE_URL
    """OpenAI-compatible base URL of the default LLM server."""
    model: str | None = None
    """Model name; ``None`` adopts the server's first model at preflight."""
    api_key: str = field(default="EMPTY", repr=False)
    """Bearer key sent to the LLM server; never logged, never in the state."""
    api_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    """More keys by setting name (``COUNCIL_<NAME>_API_KEY``), for councils with several
    endpoints; an agent names the setting, never the key."""
    allowed_urls: tuple[str, ...] = ()
    """Endpoints a stored council may name besides ``base_url``."""
    timeout_s: float = 120.0
    """Per-request timeout of an LLM call."""
    max_retries: int = 3
    """Client retries of an LLM request on 5xx, 429, timeouts and broken connections."""
    max_connections: int = 64
    """HTTP connections per LLM server (more parallel calls wait for one)."""
    concurrency: int = 0
    """At most this many calls in flight per LLM server from this process (0: no limit)."""
    http: Transport = "aiohttp"
    """The openai client's HTTP transport: ``aiohttp`` (its aiohttp extra, about a millisecond
    less CPU per call) or ``httpx`` (its default, httpx2)."""
    answer_retries: int = 2
    """Extra attempts when an answer is empty, garbage or (structured) invalid for its schema."""
    max_tokens: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_TOKENS))
    """Completion-token budget per stage (reasoning included when it is inline); fixed into
    each council when it is admitted."""
    enable_thinking: bool | None = None
    """Send ``chat_template_kwargs.enable_thinking`` (Qwen3 on vLLM); ``None`` sends nothing."""
    repetition_penalty: float = 1.1
    """The server's own repetition control, sent where it has one (vLLM's
    ``repetition_penalty``, llama.cpp's ``repeat_penalty``); 0 sends nothing. Small models
    otherwise fill a structured answer with ``1. 1. 1.`` until ``max_tokens`` cuts it."""
    context_window: Mapping[str, int] = field(default_factory=dict)
    """Context window (prompt + answer tokens) by base URL, ``""`` for every endpoint; overrides
    what the server reports (``llm.endpoints``). Empty: learned from each server."""
    prompts_dir: Path | None = None
    """Prompt files to read instead of the installed ones."""

    def allows(self, base_url: str) -> bool:
        """Whether a council may send calls (and keys) to ``base_url``."""
        url = normal_url(base_url)
        return url == normal_url(self.base_url) or url in self.allowed_urls

    def api_key_for(self, name: str | None) -> str:
        """The key held by the setting ``name`` (None: the default key)."""
        if name is None:
            return self.api_key
        return self.api_keys.get(name) or "EMPTY"

    def context_window_for(self, base_url: str) -> int | None:
        """The configured context window of ``base_url`` (None: learn it from the server)."""
        windows = self.context_window
        return windows.get(normal_url(base_url)) or windows.get("") or None


@dataclass(frozen=True, kw_only=True)
class StorageSettings:
    """Valkey: checkpoints, stored councils, API keys, leases (``storage/``)."""

    valkey_url: str | None = None
    """Valkey for checkpoints and stored councils; ``None``: the CLI embeds one."""
    valkey_pool: int = 32
    """Valkey connections per process (a blocking pool)."""


@dataclass(frozen=True, kw_only=True)
class EventSettings:
    """NATS JetStream, where events go and planning events come from (``events/``)."""

    nats_url: str | None = None
    """JetStream for events; ``None`` skips publishing (logged)."""
    nats_creds: Path | None = None
    """NATS credentials file (``.creds``: user JWT and nkey seed), for every NATS connection."""


@dataclass(frozen=True, kw_only=True)
class RetentionSettings:
    """How long checkpoints stay (``server/retention.py``; docs/STORAGE.md)."""

    history_s: float = 0.0
    """A finished deliberation keeps every checkpoint this long, then is compacted to its final
    one (0: as soon as it finishes; set e.g. 1h to time-travel in Studio)."""
    finished_s: float | None = 24 * 3600.0
    """A finished deliberation's final checkpoint expires this long after it finished (None:
    never); its completed event in JetStream is the durable record."""
    unfinished_s: float | None = None
    """Failed, waiting and unfinished deliberations whose newest checkpoint is older than this
    are deleted (None: never, the default: they can still be resumed)."""
    marker_s: float = 30 * 24 * 3600.0
    """A finished deliberation's done marker (finish time, stream and seq of its event) lives
    this long after it finished, so a redelivered plan event does not run it again."""
    prune_interval_s: float = 300.0
    """How often ``council serve`` and ``council worker`` apply the retention policy (0: never;
    ``council prune`` applies it by hand)."""
    valkey_memory_warn: float = 0.8
    """Warn in the log when Valkey's used memory passes this share of its ``maxmemory`` (of the
    machine's memory when ``maxmemory`` is 0)."""


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """The served API and the worker's endpoint: who may call, how many runs at once."""

    serve_jobs: int = 10
    """Runs one ``council serve`` executes at once (LangGraph's ``--n-jobs-per-worker``)."""
    jwt_secret: str | None = field(default=None, repr=False)
    """HS256 shared secret; a bearer JWT signed with it is accepted (``server.auth``)."""
    jwt_jwks_url: str | None = None
    """JWKS URL; a bearer JWT signed by one of its keys (RS256, ES256) is accepted."""
    jwt_audience: str | None = None
    """When set, an accepted JWT must name this audience (``aud``)."""
    jwt_issuer: str | None = None
    """When set, an accepted JWT must come from this issuer (``iss``)."""
    metrics_port: int = 0
    """``council worker`` serves Prometheus ``/metrics`` on 127.0.0.1 at this port (0: none)."""
    log_file: Path | None = None
    """Structured logs of the served graph (``council serve`` points it into the data dir)."""
    serve_parent: int | None = None
    """The ``council serve`` process that started this LangGraph server: it exits when that
    process is gone, however it died (``COUNCIL_SERVE_PARENT``, set by ``council serve``)."""

    @property
    def jwt_configured(self) -> bool:
        """True when bearer JWTs can be checked (a shared secret or a JWKS URL)."""
        return bool(self.jwt_secret or self.jwt_jwks_url)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything about *where* and *with what* council runs; fixed for the process and passed
    to whoever needs a part of it (each part is grouped by who uses it).
    """

    llm: LLMSettings = field(default_factory=LLMSettings)
    """The LLM servers and the calls' bounds."""
    storage: StorageSettings = field(default_factory=StorageSettings)
    """Valkey."""
    events: EventSettings = field(default_factory=EventSettings)
    """NATS JetStream."""
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    """How long checkpoints stay."""
    server: ServerSettings = field(default_factory=ServerSettings)
    """The served API and the worker's endpoint."""
    data_dir: Path = Path(".council-data")
    """Embedded servers' data and the log file."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Settings from an environment mapping; a bad value raises ``SettingsError``."""
        prompts = env.get("COUNCIL_PROMPTS_DIR")
        names = {
            n.removesuffix("_FILE") for n in env if KEY_NAME.fullmatch(n.removesuffix("_FILE"))
        }
        allowed = (env.get("COUNCIL_LLM_ALLOWED_URLS") or "").split(",")
        llm = LLMSettings(
            api_keys={name: _secret(env, name, "") for name in sorted(names)},
            allowed_urls=tuple(normal_url(u) for u in allowed if u.strip()),
            base_url=env.get("COUNCIL_LLM_BASE_URL") or DEFAULT_BASE_URL,
            model=env.get("COUNCIL_MODEL") or None,
            api_key=_secret(env, "COUNCIL_API_KEY", "") or _secret(env, "OPENAI_API_KEY", "EMPTY"),
            timeout_s=_number(env, "COUNCIL_LLM_TIMEOUT", 120.0),
            max_retries=int(_number(env, "COUNCIL_LLM_MAX_RETRIES", 3, int)),
            max_connections=int(_number(env, "COUNCIL_LLM_MAX_CONNECTIONS", 64, int)) or 1,
            concurrency=int(_number(env, "COUNCIL_LLM_CONCURRENCY", 0, int)),
            http=_transport(env, "COUNCIL_LLM_HTTP"),
            enable_thinking=_flag(env, "COUNCIL_ENABLE_THINKING"),
            repetition_penalty=_number(env, "COUNCIL_LLM_REPETITION_PENALTY", 1.1),
            context_window=_windows(env, "COUNCIL_LLM_CONTEXT_WINDOW"),
            prompts_dir=Path(prompts).resolve() if prompts else None,
        )
        retention = RetentionSettings(
            history_s=_duration(env, "COUNCIL_RETAIN_HISTORY", 0.0) or 0.0,
            finished_s=_duration(env, "COUNCIL_RETAIN_FINISHED", 86400.0, never=True),
            unfinished_s=_duration(env, "COUNCIL_RETAIN_UNFINISHED", None, never=True),
            marker_s=_duration(env, "COUNCIL_RETAIN_MARKER", 30 * 86400.0) or 0.0,
            prune_interval_s=_duration(env, "COUNCIL_PRUNE_INTERVAL", 300.0) or 0.0,
            valkey_memory_warn=_share(env, "COUNCIL_VALKEY_MEMORY_WARN", 0.8),
        )
        server = ServerSettings(
            serve_jobs=int(_number(env, "COUNCIL_SERVE_JOBS", 10, int)) or 1,
            jwt_secret=_secret(env, "COUNCIL_JWT_SECRET", "") or None,
            jwt_jwks_url=env.get("COUNCIL_JWT_JWKS_URL") or None,
            jwt_audience=env.get("COUNCIL_JWT_AUDIENCE") or None,
            jwt_issuer=env.get("COUNCIL_JWT_ISSUER") or None,
            metrics_port=int(_number(env, "COUNCIL_METRICS_PORT", 0, int)),
            log_file=_path(env, "COUNCIL_LOG_FILE"),
            serve_parent=int(_number(env, "COUNCIL_SERVE_PARENT", 0, int)) or None,
        )
        return cls(
            llm=llm,
            storage=StorageSettings(
                valkey_url=env.get("VALKEY_URL") or None,
                valkey_pool=int(_number(env, "COUNCIL_VALKEY_POOL", 32, int)) or 1,
            ),
            events=EventSettings(
                nats_url=env.get("NATS_URL") or None, nats_creds=_path(env, "NATS_CREDS")
            ),
            retention=retention,
            server=server,
            data_dir=Path(env.get("COUNCIL_DATA_DIR") or ".council-data").resolve(),
        )

    @classmethod
    def from_environment(cls) -> Settings:
        """The process environment's settings (a door reads them once and passes them on)."""
        return cls.from_env(os.environ)

    def with_llm(self, **changes: Any) -> Settings:
        """A copy whose LLM settings take ``changes`` (``None`` values are ignored: an unset
        flag keeps the value).
        """
        kept = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, llm=dataclasses.replace(self.llm, **kept))

    def with_services(self, valkey_url: str | None, nats_url: str | None) -> Settings:
        """A copy that uses these Valkey and NATS URLs (embedded servers'); ``None`` keeps."""
        return dataclasses.replace(
            self,
            storage=dataclasses.replace(
                self.storage, valkey_url=valkey_url or self.storage.valkey_url
            ),
            events=dataclasses.replace(self.events, nats_url=nats_url or self.events.nats_url),
        )


def display_url(url: str | None) -> str:
    """``url`` fit to print or log: a password in it becomes ``***``."""
    if not url:
        return str(url)
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
