"""Who may call the served API and what each caller sees: LangGraph's own ``Auth``.

``server/langgraph.json`` points ``"auth"`` here, with ``disable_studio_auth`` (Studio's
``x-auth-scheme: langsmith`` header grants nothing) and ``enable_custom_route_auth`` (council's
own routes, ``/councils``, pass through the same authentication); ``council serve --dev-studio``
re-enables the Studio bypass for local development only.

Authentication (``authenticate``), every request but ``GET /healthz`` and ``GET /metrics``:

- ``Authorization: Bearer ck_...``: an API key from ``council keys create`` (``cli.keys``;
  stored by ``storage.apikeys``), checked against its SHA-256 in Valkey, so a revoked key
  stops working at once;
- ``Authorization: Bearer <JWT>``: accepted when ``COUNCIL_JWT_SECRET`` (HS256) or
  ``COUNCIL_JWT_JWKS_URL`` (RS256, ES256) is set; ``exp`` and a non-empty string ``sub``
  are required, ``aud`` and ``iss`` when configured. The identity is ``sub``; scopes come from
  ``scope`` (space separated), ``scp``, ``scopes`` or ``permissions``.

Anything else is 401; an API key while Valkey does not answer is 503, naming it.
Authorization, deny by default:

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
from typing import Any

import jwt
import valkey.exceptions
from langgraph_sdk import Auth
from langgraph_sdk.auth.types import StudioUser
from starlette.exceptions import HTTPException

from council_agents.core.settings import ServerSettings, Settings, display_url
from council_agents.storage.apikeys import ADMIN_SCOPE, KeyStore

OPEN_PATHS = frozenset({"/healthz", "/metrics"})
"""Readable without a token (GET only): health and metrics carry no deliberation."""
OWNER = "owner"
"""The thread metadata key that names its creator."""
ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


def _unauthorized(detail: str) -> Auth.exceptions.HTTPException:
    return Auth.exceptions.HTTPException(
        status_code=401, detail=detail, headers={"WWW-Authenticate": 'Bearer realm="council"'}
    )


def scopes_of(claims: dict[str, Any]) -> list[str]:
    """The scopes a JWT grants, from ``scope``/``scp`` (string or list), ``scopes``,
    ``permissions``.
    """
    found: list[str] = []
    for name in ("scope", "scp", "scopes", "permissions"):
        value = claims.get(name)
        if isinstance(value, str):
            found += value.split()
        elif isinstance(value, list):
            found += [str(v) for v in value]
    return sorted(set(found))


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class Authenticator:
    """Who is calling: API keys (Valkey) and JWTs (a secret or a JWKS), per the settings."""

    def __init__(self, settings: ServerSettings, valkey_url: str | None) -> None:
        self.settings, self.valkey_url = settings, valkey_url
        self._stores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, KeyStore] = (
            weakref.WeakKeyDictionary()
        )
        self._jwks: dict[str, jwt.PyJWKClient] = {}

    def _key_store(self) -> KeyStore:
        """This event loop's key store (its connections belong to the loop)."""
        loop = asyncio.get_running_loop()
        if loop not in self._stores:
            if not self.valkey_url:
                raise RuntimeError("VALKEY_URL is not set: API keys cannot be checked")
            self._stores[loop] = KeyStore(self.valkey_url)
        return self._stores[loop]

    def _jwks_client(self, url: str) -> jwt.PyJWKClient:
        if url not in self._jwks:
            self._jwks[url] = jwt.PyJWKClient(url, cache_keys=True, lifespan=300)
        return self._jwks[url]

    async def jwt_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a valid JWT (None when invalid or when JWTs are not configured).

        The algorithm list is fixed per key source (HS256 for the shared secret, asymmetric
        ones for the JWKS), so a token cannot choose how it is checked.
        """
        s = self.settings
        options: Any = {"require": ["exp", "sub"], "verify_aud": bool(s.jwt_audience)}
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") == "HS256" and s.jwt_secret:
                key: Any = s.jwt_secret
                algorithms = ["HS256"]
            elif s.jwt_jwks_url and header.get("alg") in ASYMMETRIC:
                client = self._jwks_client(s.jwt_jwks_url)
                key = (await asyncio.to_thread(client.get_signing_key_from_jwt, token)).key
                algorithms = ASYMMETRIC
            else:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=s.jwt_audience,
                issuer=s.jwt_issuer,
                options=options,
            )
            return claims
        except jwt.PyJWTError:
            return None

    async def authenticate(
        self, authorization: str | None, path: str, method: str
    ) -> Auth.types.MinimalUserDict:
        """The caller behind the bearer token (401 when there is none or it is not valid)."""
        if path in OPEN_PATHS and method == "GET":
            return {"identity": "anonymous", "is_authenticated": False, "permissions": []}
        token = _bearer(authorization)
        if token is None:
            raise _unauthorized(
                "missing bearer token: send `Authorization: Bearer <API key or JWT>`"
            )
        if token.startswith("ck_"):
            try:
                record = await self._key_store().verify(token)
            except (valkey.exceptions.ValkeyError, OSError) as e:
                # starlette's HTTPException passes LangGraph's authentication as it is (its
                # own becomes a 500 unless it is a 401 or 403)
                cause = f"{type(e).__name__}: {e}".rstrip(": ")
                raise HTTPException(
                    status_code=503,
                    detail=f"valkey: {display_url(self.valkey_url)} does not answer ({cause}): "
                    "API keys cannot be checked",
                ) from e
            if record is None:
                raise _unauthorized("unknown or revoked API key")
            return {"identity": record.owner, "permissions": record.scopes}
        claims = await self.jwt_claims(token)
        if claims is None:
            raise _unauthorized(
                "invalid token: not an API key, and not a JWT this server accepts"
                if self.settings.jwt_configured
                else "invalid token: not an API key (JWTs are not configured)"
            )
        identity = claims["sub"]
        if not isinstance(identity, str) or not identity.strip():
            raise _unauthorized("invalid token: `sub` must name the caller (a non-empty string)")
        return {"identity": identity, "permissions": scopes_of(claims)}


def create_auth(settings: Settings) -> Auth:
    """The served API's ``Auth`` (``langgraph.json`` serves ``server.served.auth``)."""
    auth = Auth()
    authenticator = Authenticator(settings.server, settings.storage.valkey_url)
    auth.authenticate(authenticator.authenticate)
    auth.on(deny_by_default)
    auth.on.threads(own_threads)
    auth.on.assistants(manage_assistants)
    auth.on.assistants.read(read_assistants)
    auth.on.assistants.search(search_assistants)
    return auth


def _is_studio(ctx: Auth.types.AuthContext) -> bool:
    """Studio's user exists only with ``council serve --dev-studio`` (local development)."""
    return isinstance(ctx.user, StudioUser)


def is_admin(ctx: Auth.types.AuthContext) -> bool:
    """True for a caller with the ``council:admin`` scope (or Studio in local development)."""
    return _is_studio(ctx) or ADMIN_SCOPE in (ctx.permissions or [])


async def deny_by_default(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Crons, the store, and whatever a later LangGraph adds: nobody."""
    return False


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


async def manage_assistants(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Creating, changing or deleting an assistant (its config reaches every run): admins."""
    if not is_admin(ctx):
        raise Auth.exceptions.HTTPException(
            status_code=403, detail=f"managing assistants needs the {ADMIN_SCOPE} scope"
        )
    return True


async def read_assistants(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Any caller may read the assistants (``council`` is the served graph)."""
    return bool(ctx.user.is_authenticated) or _is_studio(ctx)


async def search_assistants(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Any caller may list the assistants."""
    return bool(ctx.user.is_authenticated) or _is_studio(ctx)
