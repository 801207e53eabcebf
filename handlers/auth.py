"""The auth hook: who is calling, from a token or (dev mode only) from the request.

Tokens are HS256 JWTs signed with HUB_SECRET (several keys by `kid` for rotation).
Claims: `sub`, `account`, `role`, optional `sessions`, `exp`, optional `name`.
In dev mode (`HUB_DEV=1`) a request without a token is let in as the role it asks for
in the default account; a token, when given, is still checked.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import secrets
import time
import uuid
from typing import Any

import jwt
import orjson
from starlette.requests import HTTPConnection

from hub.config import Settings
from hub.connection import Principal
from hub.errors import Forbidden, HubError, Internal, Invalid, Unauthorized
from hub.events import ROLES
from hub.token_refresh import TokenRejected

DEFAULT_ACCOUNT = "default"
_REQUIRED = ["exp", "sub", "account", "role"]
_MAX_CLAIM = 100  # characters of sub, account and name; they end up in every event's actor
_MAX_SESSIONS = 1000
# Tokens remembered as verified (with their expiry, checked on every use): a reconnect
# storm presents the same tokens again, and PyJWT spends about 130 µs on each. FIFO
# bounded; a few MB at most.
VERIFIED_TOKENS = 4096


# The name refusals of the auth hook had before the one error vocabulary (the token CLI uses it).
AuthError = HubError


class Authenticator:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.keys = settings.secret_keys
        if not self.keys and settings.dev_mode:
            # A dev hub without a secret still hands out tokens (join links): signed with a
            # key of this process only, so they do not outlive it or work on another one.
            self.keys = {"dev-ephemeral": secrets.token_urlsafe(32)}
        # Exactly the token text -> the principal it verified as. The keys are fixed for
        # the process, so the only thing that can change the verdict is time: `exp` is
        # checked on every hit (`nbf`/`iat`, once passed, stay passed). Refusals are not kept.
        self._verified: dict[str, Principal] = {}

    def issue(
        self,
        account: str,
        user: str,
        role: str,
        sessions: list[str] | None = None,
        ttl: int = 3600,
        name: str | None = None,
        kid: str | None = None,
    ) -> str:
        """A signed token (for `python -m hub token`, tests and the dev pages)."""
        if not self.keys:
            raise Internal("no signing secret is configured (HUB_SECRET or HUB_SECRETS)")
        kid = kid or next(iter(self.keys))
        if kid not in self.keys:
            known = ", ".join(self.keys)
            raise Internal(f"no signing key with id '{kid}'; configured key ids: {known}")
        if role not in ROLES:
            raise Invalid("role must be one of " + ", ".join(ROLES))
        claims: dict[str, Any] = {
            "sub": user,
            "account": account,
            "role": role,
            "exp": int(time.time()) + ttl,
            "iat": int(time.time()),
        }
        if sessions:
            claims["sessions"] = sessions
        if name:
            claims["name"] = name
        return jwt.encode(claims, self.keys[kid], algorithm="HS256", headers={"kid": kid})

    def verify(self, token: str) -> Principal:
        """The principal a token names, or Unauthorized saying exactly what is wrong."""
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at is not None and time.time() < known.expires_at:
                return dataclasses.replace(known)  # a copy: admission sets its name and role
            del self._verified[token]  # expired: verified again, to say so
        principal = self._verify(token)
        if len(self._verified) >= VERIFIED_TOKENS:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = principal
        return dataclasses.replace(principal)

    def _verify(self, token: str) -> Principal:
        header = _unverified_header(token)
        # Checked before any key is tried: `alg: none` and key-confusion tricks stop here.
        if header.get("alg") != "HS256":
            raise Unauthorized("the token must be signed with HS256")
        kid = header.get("kid")
        candidates = [self.keys[kid]] if isinstance(kid, str) and kid in self.keys else []
        if not candidates and kid is None:
            candidates = list(self.keys.values())  # tokens from before kids were used
        if not candidates:
            if not self.keys:
                raise Unauthorized("tokens cannot be verified: no secret is configured")
            raise Unauthorized(f"the token's key id '{str(kid)[:40]}' is not known")
        claims: dict[str, Any] | None = None
        for key in candidates:
            try:
                # PyJWT checks the whole token itself (segments, encoding, alg, signature,
                # claims): the header read above only picks the key.
                claims = jwt.decode(token, key, algorithms=["HS256"], options={"require": _REQUIRED})
                break
            except jwt.ExpiredSignatureError:
                raise Unauthorized("the token has expired") from None
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                raise Unauthorized(f"the token is invalid: {exc}") from None
        if claims is None:
            raise Unauthorized("the token signature is not valid")
        return _principal(claims)

    def verify_renewal(self, token: str) -> Principal:
        """`verify` for in-band renewal (hub/token_refresh.py), in the core's terms."""
        try:
            return self.verify(token)
        except AuthError as exc:
            raise TokenRejected(exc.message) from None

    def from_request(
        self, conn: HTTPConnection, token: str | None, role_hint: str | None = None
    ) -> Principal:
        """The caller of an HTTP request or WebSocket, or Unauthorized / Forbidden."""
        check_origin(conn, self.settings.allowed_origins)
        if token:
            return self.verify(token)
        if not self.settings.dev_mode:
            raise Unauthorized("a token is required (Authorization: Bearer <token>)")
        role = role_hint if role_hint in ROLES else "admin"
        name = conn.query_params.get("name") or None
        # An anonymous HTTP caller is one stable user per role, so that its idempotency keys
        # and rate limits hold across requests; each anonymous socket is a member of its own.
        user = conn.query_params.get("user_id") or name
        if not user:
            user = f"dev-{role}" if conn.scope["type"] == "http" else f"anon-{uuid.uuid4().hex[:8]}"
        if "\x00" in user or (name and "\x00" in name):
            raise Invalid("user_id and name must not contain the NUL character")
        return Principal(DEFAULT_ACCOUNT, user[:_MAX_CLAIM], role, (name or user)[:_MAX_CLAIM])


def _unverified_header(token: str) -> dict[str, Any]:
    """The header of a token, to pick its key: PyJWT's own parse (`get_unverified_header`)
    would decode the token a second time, at half the cost of the whole check."""
    segment = token.partition(".")[0]
    try:
        header = orjson.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        raise Unauthorized("the token is malformed") from None
    if not isinstance(header, dict):
        raise Unauthorized("the token is malformed")
    return header


def _principal(claims: dict[str, Any]) -> Principal:
    """Check the claims of a verified token; every rule answers its own message."""
    role, sub, account = claims.get("role"), claims.get("sub"), claims.get("account")
    if role not in ROLES:
        raise Unauthorized("the token's role must be one of " + ", ".join(ROLES))
    for claim, value in (("sub", sub), ("account", account)):
        if not isinstance(value, str) or not value:
            raise Unauthorized(f"the token's {claim} must be a non-empty string")
        if len(value) > _MAX_CLAIM or "\x00" in value:
            raise Unauthorized(f"the token's {claim} must be at most {_MAX_CLAIM} characters, without NUL")
    sessions = claims.get("sessions")
    if sessions is not None and not (
        isinstance(sessions, list)
        and len(sessions) <= _MAX_SESSIONS
        and all(isinstance(s, str) for s in sessions)
    ):
        raise Unauthorized("the token's sessions claim must be a list of session ids")
    name = claims.get("name")
    if name is not None and not (
        isinstance(name, str) and 1 <= len(name) <= _MAX_CLAIM and "\x00" not in name
    ):
        raise Unauthorized(f"the token's name must be a string of 1 to {_MAX_CLAIM} characters")
    return Principal(
        account_id=str(account),
        user_id=str(sub),
        role=str(role),
        name=name or str(sub),
        name_from_token=bool(name),
        sessions=sessions,
        expires_at=float(claims["exp"]),
        token_role=str(role),
    )


def check_origin(conn: HTTPConnection, allowed: list[str]) -> None:
    """Browsers send `Origin`; refuse pages from other sites when an allow-list is set.

    Clients that are not browsers send no Origin and are judged by their token alone.
    The hub's own pages (same scheme, host and port) are always allowed.
    """
    origin = header(conn, b"origin")
    if not allowed or origin is None or origin in allowed or "*" in allowed:
        return
    host = header(conn, b"host")
    if host and origin.split("://", 1)[-1] == host:
        return
    raise Forbidden(f"origin '{origin[:200]}' is not allowed (HUB_ALLOWED_ORIGINS)")


def header(conn: HTTPConnection, name: bytes) -> str | None:
    """One request header by its lower-case name. Read from the ASGI scope directly:
    Starlette's `Headers.get` scans the same list but pays a KeyError for every header
    a request lacks, and the connect path asks for several (a join storm's hot path)."""
    for key, value in conn.scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


def bearer_token(conn: HTTPConnection) -> str | None:
    scheme, _, value = (header(conn, b"authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def websocket_token(conn: HTTPConnection) -> tuple[str | None, str | None]:
    """(token, subprotocol to echo) from `?token=` or a `bearer.<token>` subprotocol."""
    for proto in (header(conn, b"sec-websocket-protocol") or "").split(","):
        proto = proto.strip()
        if proto.startswith("bearer."):
            return proto[len("bearer.") :], proto
    return conn.query_params.get("token") or bearer_token(conn), None


def can_open(principal: Principal, session_id: str) -> bool:
    return principal.may_open(session_id)
