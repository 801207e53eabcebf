"""GET /ws/live-updates: the WebSocket endpoint.

Refusals happen after the handshake is accepted so that the client sees the documented
close code (a refused handshake only shows an HTTP 403 to browsers).
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Annotated, Literal

from annotated_types import Interval
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from hub.close_codes import reason
from hub.connection import Connection, Principal
from hub.errors import (
    ErrorCode,
    HubError,
    ShuttingDown,
    classify,
)
from hub.events import error_message
from hub.logs import Throttle
from hub.node import Hub
from hub.rate_limits import Bucket
from hub.store import SessionRecord
from hub.values import SEQ_MAX

from .admission import Name, admit, claim_slot, count_close, ensure_accepting, release_slot
from .api import parse_params
from .auth import websocket_token
from .query import QueryInt, query_model
from .ws_transports import open_transport, receive_frames, release_handshake

log = logging.getLogger("hub.ws")
_UNAVAILABLE_LOG = Throttle(1.0)  # refusals for a missing database or presence

CONNECT_ROLES = ("participant", "instructor", "observer")


async def _refuse(websocket: WebSocket, session_id: str, error: HubError) -> None:
    try:
        await websocket.send_text(
            error_message(session_id, error.code, error.message, details=error.details).decode()
        )
        await websocket.close(int(error.close_code), reason(error.close_code))
    except Exception:
        pass


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
    ensure_accepting(hub)
    query: ConnectQuery = parse_params(websocket.query_params, ConnectQuery)
    principal = websocket.app.state.auth.from_request(websocket, token, role_hint=query.role)
    session = await admit(hub, principal, bool(token), query.session_id, query.role, query.name)
    return principal, session, query.since


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
            on_closed=lambda code: count_close(hub, code),
            bucket=Bucket(settings.rate_limit_per_second, settings.rate_limit_burst),
        )
        if conn.gone():  # left while it was being admitted: nothing more to do for it
            hub.metrics.joins_abandoned.inc()
            return
        await claim_slot(hub, conn)
        release_handshake(websocket)
    except Exception as exc:
        # A refusal closes with its do-not-reconnect code; an unreachable database or
        # presence (Redis) with 3004 (try again); a fault in the hub with 1011.
        error = classify(exc, websocket.app.state.unreachable)
        if error.code == ErrorCode.INTERNAL:
            log.error(
                "connection not admitted: a fault in the hub", exc_info=exc, extra={"session": session_id}
            )
        elif error.code == ErrorCode.UNAVAILABLE and not isinstance(exc, ShuttingDown):
            held = _UNAVAILABLE_LOG.allow(time.monotonic())
            if held is not None:  # a storm refuses thousands a second: one line a second
                log.warning(
                    "connection not admitted: %s (%d more since the last such line)",
                    exc,
                    held,
                    extra={"session": session_id},
                )
        hub.metrics.connections_refused.labels(error.code.value).inc()
        await _refuse(websocket, session_id, error)
        return

    # The slot is held from here: no await until the `try` whose `finally` releases it.
    try:
        room = await hub.membership.join(conn, session, since)
        if room is None:
            await conn.wait_closed(2.0)
            return
        await receive_frames(websocket, partial(hub.inbound.handle_frame, conn, room))
    except WebSocketDisconnect:
        pass
    except Exception as exc:
        error = classify(exc, websocket.app.state.unreachable)
        if error.code == ErrorCode.INTERNAL:
            log.error("connection failed: a fault in the hub", exc_info=exc, extra={"session": session_id})
        else:
            log.warning("connection failed: %s", exc, extra={"session": session_id})
        conn.close_soon(error.close_code)
        # Leaving stops the writer and returning ends the socket: the close frame first.
        await conn.wait_closed(2.0)
    finally:
        try:
            await hub.membership.leave(conn, session)
        finally:  # also when leaving failed or this task was cancelled during it
            await release_slot(hub, conn)


PATH = "/ws/live-updates"
routes = [WebSocketRoute(PATH, live_updates)]


def direct_lane(app: Starlette) -> ASGIApp:
    """`app`, with live connections handed to `live_updates` directly.

    Starlette's middleware and routing stay suspended on the stack of every open
    WebSocket for its whole life: seven coroutine frames, about 4 KB a connection. None
    of them acts on a WebSocket this endpoint has not already handled (the error
    boundary and exception handlers answer HTTP; `live_updates` classifies and closes
    for itself), so the live path skips them. Everything else goes through `app`."""

    async def lane(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == PATH:
            scope["app"] = app  # what Starlette sets: the endpoint reads app.state
            await live_updates(WebSocket(scope, receive, send))
            return
        await app(scope, receive, send)

    return lane
