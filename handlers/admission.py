"""Admission: whether a caller may become a member of a session's room.

The WebSocket (`handlers/ws.py`) and the event stream (`handlers/stream.py`) admit members
by the same rules: the hub accepts, the token verifies, its role may act in the requested
role, the session is the caller's to open, and the user has a connection slot left. A
refusal names its close code (WebSocket), its HTTP status (event stream) and its error code.
"""

from __future__ import annotations

import logging

from starlette.requests import HTTPConnection

from hub.close_codes import CloseCode
from hub.connection import Connection, Principal
from hub.service import Hub
from hub.store import SessionRecord

from .auth import AuthError, can_open

log = logging.getLogger("hub.admission")

# What an HTTP client is told where a WebSocket client gets the close code.
_HTTP_STATUS = {
    CloseCode.SERVER_SHUTDOWN: 503,
    CloseCode.INTERNAL_ERROR: 503,
    CloseCode.BAD_REQUEST: 400,
    CloseCode.UNAUTHORIZED: 401,
    CloseCode.FORBIDDEN: 403,
    CloseCode.NOT_FOUND: 404,
    CloseCode.SESSION_FULL: 409,
    CloseCode.SESSION_ENDED: 409,
    CloseCode.TOO_MANY_CONNECTIONS: 429,
}


class Refusal(Exception):
    """Why a connection is turned away: the close code, the error code, the message."""

    def __init__(self, close: CloseCode, code: str, message: str):
        super().__init__(message)
        self.close = close
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS.get(self.close, 400)


def ensure_accepting(hub: Hub) -> None:
    if not hub.accepting:
        raise Refusal(CloseCode.SERVER_SHUTDOWN, "unavailable", "the hub is shutting down")


def role_allowed(principal: Principal, requested: str) -> bool:
    """A token's role caps what the connection may ask for; admins may take any role."""
    if principal.role == "admin":
        return True
    if principal.role == "instructor":
        return requested in ("instructor", "observer")
    return requested == principal.role


async def admit(
    conn: HTTPConnection, hub: Hub, token: str | None, session_id: str, role: str, name: str | None
) -> tuple[Principal, SessionRecord]:
    """The principal (acting in `role`) and the session it may join, or Refusal."""
    try:
        principal: Principal = conn.app.state.auth.from_request(conn, token, role_hint=role)
    except AuthError as exc:
        close = CloseCode.UNAUTHORIZED if exc.status == 401 else CloseCode.FORBIDDEN
        raise Refusal(close, exc.code, exc.message) from None
    if not role_allowed(principal, role):
        message = f"the token's role '{principal.role}' may not connect as '{role}'"
        raise Refusal(CloseCode.FORBIDDEN, "forbidden", message)
    if name and token:
        principal.name = name
    principal.role = role  # the connection acts in the role it asked for
    # Another account's session, or one outside the token's list, is simply not there.
    session = None
    if can_open(principal, session_id):
        session = await hub.store.get_session(principal.account_id, session_id)
    if session is None:
        raise Refusal(CloseCode.NOT_FOUND, "not_found", f"session '{session_id}' not found")
    return principal, session


async def claim_slot(hub: Hub, conn: Connection) -> None:
    """Take one of the user's connection slots, counted on every process sharing the
    presence (Redis), or Refusal. The last step of admission: nothing after it can refuse,
    so a refused connection never holds a slot."""
    principal, limit = conn.principal, hub.settings.max_connections_per_user
    if not await hub.presence.claim_user_slot(principal.account_id, principal.user_id, conn.conn_id, limit):
        message = f"too many connections for this user (at most {limit}, HUB_MAX_CONNECTIONS_PER_USER)"
        raise Refusal(CloseCode.TOO_MANY_CONNECTIONS, "rate_limited", message)


async def release_slot(hub: Hub, conn: Connection) -> None:
    principal = conn.principal
    try:
        await hub.presence.release_user_slot(principal.account_id, principal.user_id, conn.conn_id)
    except Exception:
        # The presence no longer refreshes it, so it expires within HUB_PRESENCE_TTL.
        log.warning("connection slot not released; it expires", exc_info=True)


def count_close(hub: Hub, code: CloseCode) -> None:
    """A member's close, in the metrics (`on_closed` of its Connection)."""
    if code == CloseCode.SLOW_CONSUMER:
        hub.metrics.slow_consumers.inc()
        hub.metrics.closes.labels("slow_consumer").inc()
