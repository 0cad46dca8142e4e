"""Who is calling: bearer tokens bound to a tenant and a role, checked in constant time.

    auth:
      tokens:
        - {name: ci, token: "${env:TRM_INGEST_TOKEN}", tenant: shop, role: ingest}
        - {name: alice, token: "${env:TRM_ALICE_TOKEN}", tenant: shop, role: editor}
      token_file: /etc/trm-otel/tokens.yaml     # same list, kept out of the main file; re-read on SIGHUP

Roles, each including the ones before it: ``ingest`` (send telemetry,
nothing else), ``viewer`` (read the API and UI), ``editor`` (change
dashboards, rules, silences, acks), ``admin`` (everything in its tenant).
Every role may send telemetry. With no tokens configured the daemon is open
(loopback only, or ``insecure: true``): every request acts as ``admin`` of
the tenant ``default``.

A token's *name* is what logs and the audit trail show; the token itself
is never logged, and tokens are compared with :func:`hmac.compare_digest`
over their SHA-256 digests so neither timing nor length tells anything.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator

from trm_otel.config_types import StrictModel
from trm_otel.errors import ConfigError

__all__ = ["ROLES", "Authenticator", "AuthConfig", "Principal", "Role", "TokenConfig"]

Role = Literal["ingest", "viewer", "editor", "admin"]
#: Roles in order of power; each may do what the ones before it may.
ROLES: tuple[Role, ...] = ("ingest", "viewer", "editor", "admin")
DEFAULT_TENANT = "default"


class TokenConfig(StrictModel):
    token: SecretStr
    tenant: str = Field(default=DEFAULT_TENANT, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    role: Role = "viewer"
    name: str = ""

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: SecretStr) -> SecretStr:
        if len(token.get_secret_value()) < 16:
            raise ValueError("a token must be at least 16 characters (use e.g. `openssl rand -hex 24`)")
        return token


class AuthConfig(StrictModel):
    tokens: tuple[TokenConfig, ...] = ()
    token_file: Path | None = None

    def all_tokens(self) -> tuple[TokenConfig, ...]:
        """The inline tokens plus the token file's (read now; ConfigError naming the file if bad)."""
        if self.token_file is None:
            return self.tokens
        source = str(self.token_file)
        try:
            data = yaml.safe_load(self.token_file.read_text(encoding="utf-8"))
        except OSError as err:
            raise ConfigError([("auth.token_file", f"cannot read {source}: {err.strerror or err}")]) from None
        except yaml.YAMLError as err:
            raise ConfigError([("auth.token_file", f"{source} is not valid YAML: {err}")]) from None
        items = data.get("tokens") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ConfigError([("auth.token_file", f"{source} must hold a list of tokens (or tokens: [...])")])
        extra = []
        problems: list[tuple[str, str]] = []
        for index, item in enumerate(items):
            try:
                extra.append(TokenConfig.model_validate(item))
            except ValidationError as err:  # messages only: a token value must never be echoed
                found = ConfigError.from_validation_error(err, f"tokens[{index}]", TokenConfig).problems
                problems += [("auth.token_file", f"{source}: {path}: {message}") for path, message in found]
        if problems:
            raise ConfigError(problems)
        return (*self.tokens, *extra)

    @property
    def enabled(self) -> bool:
        return bool(self.tokens) or self.token_file is not None


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: ``name`` is safe to log (never the token)."""

    name: str
    tenant: str
    role: Role

    def may(self, role: Role) -> bool:
        """Whether this caller's role includes ``role``."""
        return ROLES.index(self.role) >= ROLES.index(role)


#: Who calls when auth is off.
OPEN = Principal("anonymous", DEFAULT_TENANT, "admin")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Authenticator:
    """Maps a presented bearer token to its principal; ``None`` when auth is on and it fits none."""

    def __init__(self, tokens: Iterable[TokenConfig] = ()) -> None:
        self._entries = self._checked(tokens)

    @staticmethod
    def _checked(tokens: Iterable[TokenConfig]) -> list[tuple[bytes, Principal]]:
        entries = [
            (_digest(t.token.get_secret_value()), Principal(t.name or f"token #{i + 1}", t.tenant, t.role))
            for i, t in enumerate(tokens)
        ]
        seen: set[bytes] = set()
        for digest, principal in entries:
            if digest in seen:
                raise ConfigError([("auth.tokens", f"{principal.name}: the same token is configured twice")])
            seen.add(digest)
        return entries

    def replace(self, tokens: Iterable[TokenConfig]) -> int:
        """Swap in a new token set at once (a token file re-read on SIGHUP); returns how many.

        Refused with a :class:`ConfigError` (the current tokens stay) when
        the new set is invalid, or empty while auth is on: an emptied token
        file must not open the daemon to everyone.
        """
        entries = self._checked(tokens)
        if self._entries and not entries:
            raise ConfigError([("auth.token_file", "the reload leaves no token: keeping the current ones")])
        self._entries = entries  # one assignment: a request sees the old set or the new, never a mix
        return len(entries)

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def principal(self, authorization: str | None) -> Principal | None:
        """From an ``Authorization: Bearer <token>`` value (OTLP gRPC metadata is the same)."""
        if not self._entries:
            return OPEN
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        presented = _digest(token.strip())
        found = None
        for digest, principal in self._entries:  # no early exit: the time taken says nothing
            if hmac.compare_digest(digest, presented):
                found = principal
        return found


# --------------------------------------------------------------- HTTP side

#: Paths anyone may call: probes must work for load balancers that hold no token.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
#: The web UI's pages and assets hold no data (the page asks for a token and sends it with every
#: data request), so a browser can load them before it has one.
PUBLIC_UI = ("/static/", "/d/")


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path == "/" or path.startswith(PUBLIC_UI)


def required_role(method: str) -> Role:
    """Reading needs ``viewer``; anything that changes state needs ``editor`` (routes may ask more)."""
    return "viewer" if method in ("GET", "HEAD", "OPTIONS") else "editor"


class AuthMiddleware:
    """ASGI middleware: 401 without a valid token, 403 below the method's role; sets ``state.principal``."""

    def __init__(self, app: object, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # type: ignore[operator]
            return
        path = scope.get("path", "")
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        principal = self.authenticator.principal(authorization)
        if principal is None and not is_public(path):
            message = "missing bearer token" if authorization is None else "invalid token"
            await _deny(send, 401, f"{message}: send Authorization: Bearer <token>",
                        {"www-authenticate": 'Bearer realm="trm-otel"'})
            return
        if principal is not None and not is_public(path):
            needed = required_role(scope.get("method", "GET"))
            scope.setdefault("state", {})["principal"] = principal  # the audit trail names who was refused
            if not principal.may(needed):
                await _deny(send, 403, f"role {principal.role!r} may not {scope.get('method')} {path}"
                                       f" (needs {needed})", {})
                return
        scope.setdefault("state", {})["principal"] = principal or OPEN
        await self.app(scope, receive, send)  # type: ignore[operator]


async def _deny(send: object, status: int, message: str, headers: dict[str, str]) -> None:
    import orjson

    body = orjson.dumps({"error": message})
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


def principal_of(request: object) -> Principal:
    """The caller of a starlette request (``OPEN`` when the app runs without the middleware)."""
    state = getattr(request, "state", None)
    return getattr(state, "principal", OPEN)


def require(request: object, role: Role) -> Principal:
    """For routes that need more than their method implies (e.g. admin-only reads)."""
    from starlette.exceptions import HTTPException

    principal = principal_of(request)
    if not principal.may(role):
        raise HTTPException(403, f"role {principal.role!r} may not do this (needs {role})")
    return principal
