"""GET /api/v2/session/{id}/stream: the session as Server-Sent Events, for members that only
read (dashboards, observers, participants who only listen) and clients behind proxies that
refuse WebSocket upgrades.

The stream is a room member (`hub/stream_member.py`): the same admission as the WebSocket
(`handlers/admission.py`), the same welcome, replay, order and limits. Where to start:
`Last-Event-ID` (what a browser's EventSource sends when it reconnects by itself), else
`?since=S`, else live from the session's head. Auth: `Authorization: Bearer`, or `?token=`
for EventSource, which cannot set headers (use a short-lived token: URLs end up in logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Annotated, Any, Literal

from annotated_types import Interval
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from hub.connection import Connection, Principal
from hub.errors import ErrorCode, Invalid, classify
from hub.lifecycle import TERMINAL_STATUSES
from hub.node import Hub
from hub.store import SessionRecord
from hub.stream_member import EventStreamTransport, keep_alive, sse_retry
from hub.values import SEQ_MAX, SessionId

from .admission import Name, admit, claim_slot, count_close, ensure_accepting, release_slot
from .api import operation
from .auth import bearer_token
from .errors import error_response
from .query import QueryInt, query_model

log = logging.getLogger("hub.stream")

STREAM_ROLES = ("observer", "participant")  # read-only: nothing can be sent on a stream
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: pass events on as they come
]
Seq = QueryInt[Annotated[int, Interval(ge=0, le=SEQ_MAX)]]


class StreamQuery(BaseModel):
    """The query string of `/api/v2/session/{id}/stream`."""

    model_config = query_model()

    since: Seq | None = Field(
        None, description="last seq the client has seen (a `Last-Event-ID` header wins): replay after it"
    )
    role: Literal["observer", "participant"] | None = Field(
        None, description="default: the token's role when it is participant or observer, else observer"
    )
    name: Name | None = Field(None, description="display name; default: the token's name")
    user_id: Name | None = Field(None, description="dev mode only: a stable user id")
    token: str | None = Field(
        None, description="for EventSource, which cannot set headers: a short-lived token (else Bearer)"
    )


def _position(request: Request, query: StreamQuery) -> int | None:
    """Where the stream resumes: Last-Event-ID wins over `since` (it is the newer one)."""
    raw = request.headers.get("last-event-id")
    if not raw:
        return query.since
    if not (raw.isascii() and raw.isdigit() and int(raw) <= SEQ_MAX):
        raise Invalid("Last-Event-ID must be a whole number ≥ 0", {"field": "Last-Event-ID"})
    return int(raw)


_REFUSALS = (
    ErrorCode.CONFLICT,
    ErrorCode.RATE_LIMITED,
    ErrorCode.UNAVAILABLE,
)


@operation(
    "The session as Server-Sent Events, for members that only read",
    None,
    media_type="text/event-stream",
    errors=_REFUSALS,
    token_in_query=True,
)
async def session_stream(
    request: Request, principal: Principal, session_id: SessionId, query: StreamQuery
) -> Response:
    """`id: <seq>`, `event: <type>`, `data: <the message as JSON>` per message (docs/protocol.md,
    "Server-Sent Events"), heartbeat comments, and `event: close` with the close code before
    the end. Auth: `Authorization: Bearer`, or `?token=`. 204 once the session has ended
    and nothing after the position remains (an EventSource then stops for good)."""
    hub: Hub = request.app.state.hub
    ensure_accepting(hub)
    since = _position(request, query)
    # Participants listen as themselves; staff (and dev-mode callers) as observers.
    role = query.role or (principal.role if principal.role in STREAM_ROLES else "observer")
    with_token = bool(bearer_token(request) or query.token)
    session = await admit(hub, principal, with_token, session_id, role, query.name)
    if session.status in TERMINAL_STATUSES and (since is None or since >= session.head_seq):
        return Response(status_code=204)
    return EventStreamResponse(hub, principal, session, since)


class EventStreamResponse(Response):
    """Streams one member's messages until it closes, the client leaves or the hub drains."""

    media_type = "text/event-stream"

    def __init__(self, hub: Hub, principal: Principal, session: SessionRecord, since: int | None):
        super().__init__(status_code=200)
        self.hub = hub
        self.principal = principal
        self.session = session
        self.since = since

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub, session = self.hub, self.session

        async def write(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async def end() -> None:
            with contextlib.suppress(Exception):  # the client may be gone already
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        transport = EventStreamTransport(write, end)
        queue = hub.settings.outbound_queue_size
        closed = functools.partial(count_close, hub)
        conn = Connection(transport, self.principal, session.session_id, queue, on_closed=closed)
        try:
            await claim_slot(hub, conn)
        except Exception as exc:  # before the stream starts: an answer like any request's
            await error_response(classify(exc, scope["app"].state.unreachable))(scope, receive, send)
            return
        tasks: list[asyncio.Task[Any]] = []
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
            await write(sse_retry())
            left = asyncio.create_task(_client_left(receive))
            tasks.append(left)
            if await hub.membership.join(conn, session, self.since) is not None:
                interval = hub.settings.heartbeat_interval
                tasks.append(asyncio.create_task(keep_alive(conn, transport, interval)))
            finished = asyncio.create_task(transport.finished.wait())
            tasks.append(finished)
            await asyncio.wait({left, finished}, return_when=asyncio.FIRST_COMPLETED)
        except Exception as exc:
            error = classify(exc, scope["app"].state.unreachable)
            if error.code == ErrorCode.INTERNAL:
                log.error("event stream failed: a fault in the hub", exc_info=exc)
            else:
                log.warning("event stream failed: %s", exc, extra={"session": session.session_id})
            conn.close_soon(error.close_code)
            await conn.wait_closed(2.0)
        finally:
            for task in tasks:
                task.cancel()
            try:
                await hub.membership.leave(conn, session)
            finally:
                await release_slot(hub, conn)
                await transport.finish()


async def _client_left(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


routes = [Route("/api/v2/session/{session_id}/stream", session_stream, methods=["GET"])]
