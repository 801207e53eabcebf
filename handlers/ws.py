"""GET /ws/live-updates: the WebSocket endpoint.

Refusals happen after the handshake is accepted so that the client sees the documented
close code (a refused handshake only shows an HTTP 403 to browsers).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from annotated_types import Interval, Len
from pydantic import BaseModel, BeforeValidator, Field
from pydantic_core import PydanticCustomError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from hub.close_codes import CloseCode, reason
from hub.connection import Connection, Principal, TokenBucket
from hub.errors import (
    ErrorCode,
    Forbidden,
    HubError,
    NotFound,
    ShuttingDown,
    TooManyConnections,
    classify,
)
from hub.events import error_message
from hub.node import Hub
from hub.safe_json import text_problem
from hub.store import SessionRecord
from hub.values import SEQ_MAX

from .api import parse_params
from .auth import can_open, websocket_token
from .query import QueryInt, query_model
from .uvicorn_transport import open_transport

log = logging.getLogger("hub.ws")

CONNECT_ROLES = ("participant", "instructor", "observer")


async def _refuse(websocket: WebSocket, session_id: str, error: HubError) -> None:
    try:
        await websocket.send_text(
            error_message(session_id, error.code, error.message, details=error.details).decode()
        )
        await websocket.close(int(error.close_code), reason(error.close_code))
    except Exception:
        pass


def _role_allowed(principal: Principal, requested: str) -> bool:
    """A token's role caps what the connection may ask for; admins may take any role."""
    if principal.role == "admin":
        return True
    if principal.role == "instructor":
        return requested in ("instructor", "observer")
    return requested == principal.role


def _storable(value: Any) -> Any:
    problem = text_problem(value) if isinstance(value, str) else None
    if problem is not None:
        raise PydanticCustomError("storable", problem)
    return value


Name = Annotated[str, BeforeValidator(_storable), Len(1, 100)]


class ConnectQuery(BaseModel):
    """The query string of `/ws/live-updates`; a bad one closes with 3500 (bad_request)."""

    model_config = query_model()

    session_id: Name
    role: Literal["participant", "instructor", "observer"]
    since: QueryInt[Annotated[int, Interval(ge=0, le=SEQ_MAX)]] | None = Field(
        None, description="last seq the client has seen: replay everything after it first"
    )
    name: Name | None = Field(None, description="display name; default: the token's name")
    user_id: Name | None = Field(None, description="dev mode only: a stable user id")
    token: str | None = Field(None, description="HS256 JWT; or the subprotocol `bearer.<token>`")


async def _admit(
    websocket: WebSocket, hub: Hub, token: str | None
) -> tuple[Principal, SessionRecord, int | None]:
    """Everything that decides whether this connection may join: a HubError if not."""
    if not hub.accepting:
        raise ShuttingDown("the hub is shutting down")
    query: ConnectQuery = parse_params(websocket.query_params, ConnectQuery)
    session_id, role = query.session_id, query.role
    principal = websocket.app.state.auth.from_request(websocket, token, role_hint=role)
    if not _role_allowed(principal, role):
        raise Forbidden(f"the token's role '{principal.role}' may not connect as '{role}'")
    if query.name and token:
        principal.name = query.name
    principal.role = role  # the connection acts in the role it asked for
    # Another account's session, or one outside the token's list, is simply not there.
    session = None
    if can_open(principal, session_id):
        session = await hub.store.get_session(principal.account_id, session_id)
    if session is None:
        raise NotFound(f"session '{session_id}' not found")
    return principal, session, query.since


async def _claim_slot(hub: Hub, conn: Connection) -> None:
    """Take one of the user's connection slots, counted on every process sharing the
    presence (Redis), or TooManyConnections. The last step of admission: nothing after it can refuse,
    so a refused connection never holds a slot."""
    principal, limit = conn.principal, hub.settings.max_connections_per_user
    if not await hub.presence.claim_user_slot(principal.account_id, principal.user_id, conn.conn_id, limit):
        message = f"too many connections for this user (at most {limit}, HUB_MAX_CONNECTIONS_PER_USER)"
        raise TooManyConnections(message, {"limit": limit})


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
    except Exception as exc:
        # A refusal closes with its do-not-reconnect code; an unreachable database or
        # presence (Redis) with 3004 (try again); a fault in the hub with 1011.
        error = classify(exc, websocket.app.state.unreachable)
        if error.code == ErrorCode.INTERNAL:
            log.error(
                "connection not admitted: a fault in the hub", exc_info=exc, extra={"session": session_id}
            )
        elif error.code == ErrorCode.UNAVAILABLE and not isinstance(exc, ShuttingDown):
            log.warning("connection not admitted: %s", exc, extra={"session": session_id})
        await _refuse(websocket, session_id, error)
        return

    # The slot is held from here: no await until the `try` whose `finally` releases it.
    try:
        room = await hub.membership.join(conn, session, since)
        if room is None:
            await conn.wait_closed(2.0)
            return
        while True:
            received = await websocket.receive()
            if received["type"] == "websocket.disconnect":
                break
            frame = received.get("text")
            if frame is None:
                frame = received.get("bytes") or b""
            hub.inbound.handle_frame(conn, room, frame)
    except WebSocketDisconnect:
        pass
    except Exception as exc:
        error = classify(exc, websocket.app.state.unreachable)
        if error.code == ErrorCode.INTERNAL:
            log.error("connection failed: a fault in the hub", exc_info=exc, extra={"session": session_id})
        else:
            log.warning("connection failed: %s", exc, extra={"session": session_id})
        conn.close_soon(error.close_code)
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
