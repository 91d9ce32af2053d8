"""Who may call the served API and what each caller sees: LangGraph's own ``Auth``.

``server/langgraph.json`` points ``"auth"`` here, with ``disable_studio_auth`` (Studio's
``x-auth-scheme: langsmith`` header grants nothing) and ``enable_custom_route_auth`` (council's
own routes, ``/councils``, pass through the same authentication); ``council serve --dev-studio``
re-enables the Studio bypass for local development only.

Authentication (``authenticate``), every request but ``GET /healthz`` and ``GET /metrics``:

- ``Authorization: Bearer ck_...``: an API key from ``council keys create`` (``storage.apikeys``),
  checked against its SHA-256 in Valkey, so a revoked key stops working at once;
- ``Authorization: Bearer <JWT>``: accepted when ``COUNCIL_JWT_SECRET`` (HS256) or
  ``COUNCIL_JWT_JWKS_URL`` (RS256, ES256) is set; ``exp`` and ``sub`` are required, ``aud``
  and ``iss`` when configured. The identity is ``sub``; scopes come from ``scope`` (space
  separated), ``scp``, ``scopes`` or ``permissions``.

Anything else is 401. Authorization, deny by default:

| resource | who |
|---|---|
| threads and their runs | the creator only (``metadata.owner``, stamped and filtered) |
| assistants | read, search: any caller; create, update, delete: ``council:admin`` |
| crons, store, anything else | nobody |
| ``/councils`` | list, read: any caller; create, delete: ``council:admin`` (``server.app``) |

A thread's owner is stamped into its metadata when it is created (and on every run, update and
search) and every read, search, update, delete and run is filtered by it, so another caller's
thread answers 404 as if it did not exist. Nobody writes a thread's state directly (``POST
/threads/{id}/state``, ``supersteps``): a planted ``council`` could name another endpoint; the
state changes only by runs, whose input, context and command are checked (``server.app``).
"""

from __future__ import annotations

import asyncio
import weakref
from functools import cache
from typing import Any

import jwt
from langgraph_sdk import Auth
from langgraph_sdk.auth.types import StudioUser

from council_agents.core import settings
from council_agents.storage.apikeys import ADMIN_SCOPE, KeyStore

OPEN_PATHS = frozenset({"/healthz", "/metrics"})
"""Readable without a token (GET only): health and metrics carry no deliberation."""
OWNER = "owner"
"""The thread metadata key that names its creator."""
ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]

auth = Auth()


def _unauthorized(detail: str) -> Auth.exceptions.HTTPException:
    return Auth.exceptions.HTTPException(
        status_code=401, detail=detail, headers={"WWW-Authenticate": 'Bearer realm="council"'}
    )


_stores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, KeyStore] = (
    weakref.WeakKeyDictionary()
)


def _key_store() -> KeyStore:
    """This event loop's key store (its connections belong to the loop)."""
    loop = asyncio.get_running_loop()
    if loop not in _stores:
        url = settings.current().valkey_url
        if not url:
            raise RuntimeError("VALKEY_URL is not set: API keys cannot be checked")
        _stores[loop] = KeyStore(url)
    return _stores[loop]


@cache
def _jwks(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300)


def scopes_of(claims: dict[str, Any]) -> list[str]:
    """The scopes a JWT grants, from ``scope``/``scp`` (string or list), ``scopes``,
    ``permissions``."""
    found: list[str] = []
    for name in ("scope", "scp", "scopes", "permissions"):
        value = claims.get(name)
        if isinstance(value, str):
            found += value.split()
        elif isinstance(value, list):
            found += [str(v) for v in value]
    return sorted(set(found))


async def jwt_claims(token: str, current: settings.Settings) -> dict[str, Any] | None:
    """The claims of a valid JWT (None when invalid or when JWTs are not configured).

    The algorithm list is fixed per key source (HS256 for the shared secret, asymmetric ones
    for the JWKS), so a token cannot choose how it is checked.
    """
    options: Any = {"require": ["exp", "sub"], "verify_aud": bool(current.jwt_audience)}
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") == "HS256" and current.jwt_secret:
            key: Any = current.jwt_secret
            algorithms = ["HS256"]
        elif current.jwt_jwks_url and header.get("alg") in ASYMMETRIC:
            client = _jwks(current.jwt_jwks_url)
            key = (await asyncio.to_thread(client.get_signing_key_from_jwt, token)).key
            algorithms = ASYMMETRIC
        else:
            return None
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=current.jwt_audience,
            issuer=current.jwt_issuer,
            options=options,
        )
        return claims
    except jwt.PyJWTError:
        return None


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@auth.authenticate
async def authenticate(
    authorization: str | None, path: str, method: str
) -> Auth.types.MinimalUserDict:
    """The caller behind the bearer token (401 when there is none or it is not valid)."""
    if path in OPEN_PATHS and method == "GET":
        return {"identity": "anonymous", "is_authenticated": False, "permissions": []}
    token = _bearer(authorization)
    if token is None:
        raise _unauthorized("missing bearer token: send `Authorization: Bearer <API key or JWT>`")
    current = settings.current()
    if token.startswith("ck_"):
        record = await _key_store().verify(token)
        if record is None:
            raise _unauthorized("unknown or revoked API key")
        return {"identity": record.owner, "permissions": record.scopes}
    claims = await jwt_claims(token, current)
    if claims is None:
        raise _unauthorized(
            "invalid token: not an API key, and not a JWT this server accepts"
            if current.jwt_configured
            else "invalid token: not an API key (JWTs are not configured)"
        )
    return {"identity": str(claims["sub"]), "permissions": scopes_of(claims)}


def _is_studio(ctx: Auth.types.AuthContext) -> bool:
    """Studio's user exists only with ``council serve --dev-studio`` (local development)."""
    return isinstance(ctx.user, StudioUser)


def is_admin(ctx: Auth.types.AuthContext) -> bool:
    """True for a caller with the ``council:admin`` scope (or Studio in local development)."""
    return _is_studio(ctx) or ADMIN_SCOPE in (ctx.permissions or [])


@auth.on
async def deny_by_default(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Crons, the store, and whatever a later LangGraph adds: nobody."""
    return False


@auth.on.threads
async def own_threads(ctx: Auth.types.AuthContext, value: Any) -> Auth.types.FilterType | None:
    """A thread (and its runs) belongs to its creator and is invisible to everyone else."""
    if _is_studio(ctx):
        return None
    if not ctx.user.is_authenticated:
        raise Auth.exceptions.HTTPException(status_code=401, detail="authentication required")
    if ctx.action == "update" and isinstance(value, dict) and not value.keys() - {"thread_id"}:
        # a write of the state itself (POST /threads/{id}/state, or supersteps on create):
        # it could plant a council with another endpoint; deliberations change only by running
        raise Auth.exceptions.HTTPException(
            status_code=403,
            detail="a deliberation's state is written only by its runs; resume with a run",
        )
    owner = ctx.user.identity
    if ctx.action in ("create", "create_run", "update", "search") and isinstance(value, dict):
        if value.get("metadata") is None:
            value["metadata"] = {}
        value["metadata"][OWNER] = owner  # in place: the runtime stores this very dict
    return {OWNER: owner}


@auth.on.assistants
async def manage_assistants(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Creating, changing or deleting an assistant (its config reaches every run): admins."""
    if not is_admin(ctx):
        raise Auth.exceptions.HTTPException(
            status_code=403, detail=f"managing assistants needs the {ADMIN_SCOPE} scope"
        )
    return True


@auth.on.assistants.read
async def read_assistants(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Any caller may read the assistants (``council`` is the served graph)."""
    return bool(ctx.user.is_authenticated) or _is_studio(ctx)


@auth.on.assistants.search
async def search_assistants(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Any caller may list the assistants."""
    return bool(ctx.user.is_authenticated) or _is_studio(ctx)
