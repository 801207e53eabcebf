"""GET /ws/live-updates: the WebSocket endpoint.

Refusals happen after the handshake is accepted so that the client sees the documented
close code (a refused handshake only shows an HTTP 403 to browsers).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from hub.close_codes import CloseCode, reason
from hub.connection import Connection, Principal, TokenBucket
from hub.events import error_message
from hub.service import Hub
from hub.store import SessionRecord

from .auth import AuthError, can_open, websocket_token
from .uvicorn_transport import open_transport

log = logging.getLogger("hub.ws")

CONNECT_ROLES = ("participant", "instructor", "observer")


async def _refuse(websocket: WebSocket, session_id: str, code: CloseCode, error: str, message: str) -> None:
    try:
        await websocket.send_text(error_message(session_id, error, message).decode())
        await websocket.close(int(code), reason(code))
    except Exception:
        pass


def _role_allowed(principal: Principal, requested: str) -> bool:
    """A token's role caps what the connection may ask for; admins may take any role."""
    if principal.role == "admin":
        return True
    if principal.role == "instructor":
        return requested in ("instructor", "observer")
    return requested == principal.role


class Refusal(Exception):
    """Why a connection is turned away: the close code, the error code, the message."""

    def __init__(self, close: CloseCode, code: str, message: str):
        super().__init__(message)
        self.close = close
        self.code = code
        self.message = message


def _text_param(params: Any, name: str, low: int, high: int) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not low <= len(value) <= high or "\x00" in value:
        raise Refusal(
            CloseCode.BAD_REQUEST, "invalid", f"{name} must be {low} to {high} characters, without NUL"
        )
    return str(value)


def _parse_query(params: Any) -> tuple[str, str, int | None, str | None]:
    """(session_id, role, since, name) from the query string, or Refusal(bad_request)."""
    session_id = _text_param(params, "session_id", 1, 100)
    if session_id is None:
        raise Refusal(CloseCode.BAD_REQUEST, "invalid", "session_id is required")
    role = params.get("role", "")
    if role not in CONNECT_ROLES:
        message = "role must be one of " + ", ".join(CONNECT_ROLES)
        raise Refusal(CloseCode.BAD_REQUEST, "invalid", message)
    since: int | None = None
    if params.get("since") not in (None, ""):
        raw = params["since"]
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
            raise Refusal(CloseCode.BAD_REQUEST, "invalid", "since must be a whole number ≥ 0")
        since = int(raw)
    name = _text_param(params, "name", 1, 100)
    _text_param(params, "user_id", 1, 100)  # dev mode names the user with it
    return session_id, role, since, name


async def _admit(
    websocket: WebSocket, hub: Hub, token: str | None
) -> tuple[Principal, SessionRecord, int | None]:
    """Everything that decides whether this connection may join: Refusal if not."""
    if not hub.accepting:
        raise Refusal(CloseCode.SERVER_SHUTDOWN, "unavailable", "the hub is shutting down")
    session_id, role, since, name = _parse_query(websocket.query_params)
    try:
        principal = websocket.app.state.auth.from_request(websocket, token, role_hint=role)
    except AuthError as exc:
        close = CloseCode.UNAUTHORIZED if exc.status == 401 else CloseCode.FORBIDDEN
        raise Refusal(close, exc.code, exc.message) from None
    if not _role_allowed(principal, role):
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
    return principal, session, since


async def _claim_slot(hub: Hub, conn: Connection) -> None:
    """Take one of the user's connection slots, counted on every process sharing the
    presence (Redis), or Refusal. The last step of admission: nothing after it can refuse,
    so a refused connection never holds a slot."""
    principal, limit = conn.principal, hub.settings.max_connections_per_user
    if not await hub.presence.claim_user_slot(principal.account_id, principal.user_id, conn.conn_id, limit):
        message = f"too many connections for this user (at most {limit}, HUB_MAX_CONNECTIONS_PER_USER)"
        raise Refusal(CloseCode.TOO_MANY_CONNECTIONS, "rate_limited", message)


async def _release_slot(hub: Hub, conn: Connection) -> None:
    principal = conn.principal
    try:
        await hub.presence.release_user_slot(principal.account_id, principal.user_id, conn.conn_id)
    except Exception:
        # The presence no longer refreshes it, so it expires within HUB_PRESENCE_TTL.
        log.warning("connection slot not released; it expires", exc_info=True)


async def live_updates(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    settings = hub.settings
    token, subprotocol = websocket_token(websocket)
    await websocket.accept(subprotocol=subprotocol)
    session_id = websocket.query_params.get("session_id", "")[:100].replace("\x00", "")
    try:
        principal, session, since = await _admit(websocket, hub, token)
        conn = Connection(
            open_transport(websocket),
            principal,
            session.session_id,
            settings.outbound_queue_size,
            on_closed=lambda code: _count_close(hub, code),
            bucket=TokenBucket(settings.rate_limit_per_second, settings.rate_limit_burst),
        )
        await _claim_slot(hub, conn)
    except Refusal as refusal:
        await _refuse(websocket, session_id, refusal.close, refusal.code, refusal.message)
        return
    except Exception:
        # The database or the presence (Redis) is unreachable: the client may try again
        # (3004 is in the reconnect range).
        log.exception("connection not admitted", extra={"session": session_id})
        message = "the hub could not check this connection; try again"
        await _refuse(websocket, session_id, CloseCode.INTERNAL_ERROR, "unavailable", message)
        return

    # The slot is held from here: no await until the `try` whose `finally` releases it.
    try:
        if not await hub.membership.join(conn, session, since):
            await conn.wait_closed(2.0)
            return
        room = hub.rooms[session.pk]
        while True:
            received = await websocket.receive()
            if received["type"] == "websocket.disconnect":
                break
            frame = received.get("text")
            if frame is None:
                frame = received.get("bytes") or b""
            hub.membership.handle_frame(conn, room, frame)
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("connection failed", extra={"session": session_id})
        conn.close_soon(CloseCode.INTERNAL_ERROR)
    finally:
        try:
            await hub.membership.leave(conn, session)
        finally:  # also when leaving failed or this task was cancelled during it
            await _release_slot(hub, conn)


def _count_close(hub: Hub, code: CloseCode) -> None:
    if code == CloseCode.SLOW_CONSUMER:
        hub.metrics.slow_consumers.inc()
        hub.metrics.closes.labels("slow_consumer").inc()


routes = [WebSocketRoute("/ws/live-updates", live_updates)]
