"""The auth hook: who is calling, from a token or (dev mode only) from the request.

Tokens are HS256 JWTs signed with HUB_SECRET (several keys by `kid` for rotation).
Claims: `sub`, `account`, `role`, optional `sessions`, `exp`, optional `name`.
In dev mode (`HUB_DEV=1`) a request without a token is let in as the role it asks for
in the default account; a token, when given, is still checked.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from starlette.requests import HTTPConnection

from hub.config import Settings
from hub.connection import Principal
from hub.events import ROLES

DEFAULT_ACCOUNT = "default"


class AuthError(Exception):
    """Refused: `status` 401 (who are you?) or 403 (not allowed)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Authenticator:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.keys = settings.secret_keys

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
        if not self.keys:
            raise AuthError(500, "no signing secret is configured")
        kid = kid or next(iter(self.keys))
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
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError(401, "the token is malformed") from None
        if header.get("alg") != "HS256":
            raise AuthError(401, "the token must be signed with HS256")
        kid = header.get("kid")
        candidates = [self.keys[kid]] if kid in self.keys else list(self.keys.values())
        if not candidates:
            raise AuthError(401, "tokens cannot be verified: no secret is configured")
        claims: dict[str, Any] | None = None
        for key in candidates:
            try:
                claims = jwt.decode(
                    token, key, algorithms=["HS256"], options={"require": ["exp", "sub", "account", "role"]}
                )
                break
            except jwt.ExpiredSignatureError:
                raise AuthError(401, "the token has expired") from None
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                raise AuthError(401, f"the token is invalid: {exc}") from None
        if claims is None:
            raise AuthError(401, "the token signature is not valid")
        role = claims.get("role")
        sub, account = claims.get("sub"), claims.get("account")
        if role not in ROLES:
            raise AuthError(401, "the token's role is not one of " + ", ".join(ROLES))
        if not isinstance(sub, str) or not sub or not isinstance(account, str) or not account:
            raise AuthError(401, "the token's sub and account must be non-empty strings")
        sessions = claims.get("sessions")
        if sessions is not None and not (
            isinstance(sessions, list) and all(isinstance(s, str) for s in sessions)
        ):
            raise AuthError(401, "the token's sessions claim must be a list of session ids")
        name = claims.get("name")
        return Principal(
            account_id=account,
            user_id=sub,
            role=role,
            name=name if isinstance(name, str) and name else sub,
            sessions=sessions,
            expires_at=float(claims["exp"]),
        )

    def from_request(
        self, conn: HTTPConnection, token: str | None, role_hint: str | None = None
    ) -> Principal:
        """The caller of an HTTP request or WebSocket, or AuthError."""
        if token:
            return self.verify(token)
        if not self.settings.dev_mode:
            raise AuthError(401, "a token is required (Authorization: Bearer <token>)")
        role = role_hint if role_hint in ROLES else "admin"
        name = conn.query_params.get("name") or None
        user = conn.query_params.get("user_id") or name or f"anon-{uuid.uuid4().hex[:8]}"
        return Principal(DEFAULT_ACCOUNT, user[:100], role, (name or user)[:100])


def bearer_token(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def websocket_token(conn: HTTPConnection) -> tuple[str | None, str | None]:
    """(token, subprotocol to echo) from `?token=` or a `bearer.<token>` subprotocol."""
    for proto in conn.headers.get("sec-websocket-protocol", "").split(","):
        proto = proto.strip()
        if proto.startswith("bearer."):
            return proto[len("bearer.") :], proto
    return conn.query_params.get("token") or bearer_token(conn), None


def can_open(principal: Principal, session_id: str) -> bool:
    return principal.sessions is None or session_id in principal.sessions
