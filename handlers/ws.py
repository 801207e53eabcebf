"""GET /ws/live-updates: the WebSocket endpoint.

Refusals happen after the handshake is accepted so that the client sees the documented
close code (a refused handshake only shows an HTTP 403 to browsers).
"""

from __future__ import annotations

import logging

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from hub.close_codes import CloseCode, reason
from hub.connection import Connection, Principal, TokenBucket
from hub.events import error_message
from hub.service import Hub

from .auth import AuthError, can_open, websocket_token

log = logging.getLogger("hub.ws")

CONNECT_ROLES = ("participant", "instructor", "observer")


class StarletteTransport:
    """Sends pre-encoded text frames straight to the ASGI server."""

    def __init__(self, websocket: WebSocket):
        self.websocket = websocket
        self._send = websocket._send  # skip per-frame state checks on the hot path

    async def send_text(self, payload: str) -> None:
        await self._send({"type": "websocket.send", "text": payload})

    async def close(self, code: int, reason: str) -> None:
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except Exception:
            pass  # already closed by the peer


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


async def live_updates(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    settings = hub.settings
    params = websocket.query_params
    token, subprotocol = websocket_token(websocket)
    await websocket.accept(subprotocol=subprotocol)
    session_id = params.get("session_id", "")
    role = params.get("role", "")
    if not hub.accepting:
        await _refuse(
            websocket, session_id, CloseCode.SERVER_SHUTDOWN, "unavailable", "the hub is shutting down"
        )
        return
    if settings.allowed_origins:
        origin = websocket.headers.get("origin")
        if origin is not None and origin not in settings.allowed_origins:
            await _refuse(websocket, session_id, CloseCode.FORBIDDEN, "forbidden", "origin not allowed")
            return
    if not session_id or len(session_id) > 100:
        await _refuse(websocket, session_id, CloseCode.BAD_REQUEST, "invalid", "session_id is required")
        return
    if role not in CONNECT_ROLES:
        message = "role must be one of participant, instructor, observer"
        await _refuse(websocket, session_id, CloseCode.BAD_REQUEST, "invalid", message)
        return
    since: int | None = None
    if params.get("since") not in (None, ""):
        try:
            since = int(params["since"])
            if since < 0:
                raise ValueError
        except ValueError:
            message = "since must be a whole number ≥ 0"
            await _refuse(websocket, session_id, CloseCode.BAD_REQUEST, "invalid", message)
            return
    name = params.get("name")
    if name is not None and not 1 <= len(name) <= 100:
        message = "name must be 1 to 100 characters"
        await _refuse(websocket, session_id, CloseCode.BAD_REQUEST, "invalid", message)
        return
    try:
        principal = websocket.app.state.auth.from_request(websocket, token, role_hint=role)
    except AuthError as exc:
        code = CloseCode.UNAUTHORIZED if exc.status == 401 else CloseCode.FORBIDDEN
        await _refuse(websocket, session_id, code, "unauthorized", exc.message)
        return
    if not _role_allowed(principal, role):
        message = f"the token's role '{principal.role}' may not connect as '{role}'"
        await _refuse(websocket, session_id, CloseCode.FORBIDDEN, "forbidden", message)
        return
    if name and token:
        principal.name = name
    principal.role = role  # the connection acts in the role it asked for
    session = await hub.store.get_session(principal.account_id, session_id)
    if session is None or not can_open(principal, session_id):
        await _refuse(websocket, session_id, CloseCode.NOT_FOUND, "not_found", "session not found")
        return
    user_key = (principal.account_id, principal.user_id)
    if hub.user_connections.get(user_key, 0) >= settings.max_connections_per_user:
        message = "too many connections for this user"
        await _refuse(websocket, session_id, CloseCode.TOO_MANY_CONNECTIONS, "rate_limited", message)
        return

    conn = Connection(
        StarletteTransport(websocket),
        principal,
        session_id,
        settings.outbound_queue_size,
        on_closed=lambda code: _count_close(hub, code),
        bucket=TokenBucket(settings.rate_limit_per_second, settings.rate_limit_burst),
    )
    hub.user_connections[user_key] = hub.user_connections.get(user_key, 0) + 1
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
        remaining = hub.user_connections.get(user_key, 1) - 1
        if remaining > 0:
            hub.user_connections[user_key] = remaining
        else:
            hub.user_connections.pop(user_key, None)
        await hub.membership.leave(conn, session)


def _count_close(hub: Hub, code: CloseCode) -> None:
    if code == CloseCode.SLOW_CONSUMER:
        hub.metrics.slow_consumers.inc()
        hub.metrics.closes.labels("slow_consumer").inc()


routes = [WebSocketRoute("/ws/live-updates", live_updates)]
