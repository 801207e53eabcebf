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
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from hub.close_codes import CloseCode
from hub.connection import Connection
from hub.events import TERMINAL_STATUSES
from hub.service import Hub
from hub.store import SessionRecord
from hub.stream_member import EventStreamTransport, keep_alive, sse_retry

from .admission import Refusal, admit, claim_slot, count_close, ensure_accepting, release_slot
from .auth import bearer_token
from .errors import error_response

log = logging.getLogger("hub.stream")

STREAM_ROLES = ("observer", "participant")  # read-only: nothing can be sent on a stream
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: pass events on as they come
]


def _position(request: Request) -> int | None:
    """Where the stream resumes: Last-Event-ID wins over `since` (it is the newer one)."""
    for raw in (request.headers.get("last-event-id"), request.query_params.get("since")):
        if not raw:
            continue
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
            message = "since and Last-Event-ID must be a whole number ≥ 0"
            raise Refusal(CloseCode.BAD_REQUEST, "invalid", message)
        return int(raw)
    return None


def _role(request: Request, token_role: str | None) -> str:
    """`?role=`, else the token's own role where that is a stream role, else observer."""
    default = token_role if token_role in STREAM_ROLES else "observer"
    role = request.query_params.get("role") or default
    if role not in STREAM_ROLES:
        raise Refusal(
            CloseCode.BAD_REQUEST, "invalid", "the stream is read-only: role must be observer or participant"
        )
    return role


async def session_stream(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    session_id = request.path_params["session_id"]
    token = bearer_token(request) or request.query_params.get("token") or None
    try:
        ensure_accepting(hub)
        since = _position(request)
        role = _role(request, _token_role(request, token))
        name = request.query_params.get("name") or None
        principal, session = await admit(request, hub, token, session_id, role, name)
    except Refusal as refusal:
        return error_response(refusal.http_status, refusal.code, refusal.message)
    if session.status in TERMINAL_STATUSES and (since is None or since >= session.head_seq):
        # Nothing more will ever come: 204 is what makes an EventSource stop reconnecting.
        return Response(status_code=204)
    return EventStreamResponse(hub, principal, session, since)


def _token_role(request: Request, token: str | None) -> str | None:
    """The token's role, for the default stream role (participants listen as themselves)."""
    if not token:
        return None
    try:
        return str(request.app.state.auth.verify(token).role)
    except Exception:
        return None  # admission says why, with the right status


class EventStreamResponse(Response):
    """Streams one member's messages until it closes, the client leaves or the hub drains."""

    media_type = "text/event-stream"

    def __init__(self, hub: Hub, principal: Any, session: SessionRecord, since: int | None):
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
        except Refusal as refusal:
            response = error_response(refusal.http_status, refusal.code, refusal.message)
            await response(scope, receive, send)
            return
        tasks: list[asyncio.Task[Any]] = []
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
            await write(sse_retry())
            left = asyncio.create_task(_client_left(receive))
            tasks.append(left)
            if await hub.membership.join(conn, session, self.since):
                interval = hub.settings.heartbeat_interval
                tasks.append(asyncio.create_task(keep_alive(conn, transport, interval)))
            finished = asyncio.create_task(transport.finished.wait())
            tasks.append(finished)
            await asyncio.wait({left, finished}, return_when=asyncio.FIRST_COMPLETED)
        except Exception:
            log.exception("event stream failed", extra={"session": session.session_id})
            conn.close_soon(CloseCode.INTERNAL_ERROR)
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

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
openapi_paths: dict[str, Any] = {
    "/api/v2/session/{session_id}/stream": {
        "get": {
            "summary": "The session as Server-Sent Events (read-only members); docs/protocol.md",
            "parameters": [
                {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                {"name": "role", "in": "query", "schema": {"type": "string", "enum": list(STREAM_ROLES)}},
                {"name": "name", "in": "query", "schema": {"type": "string"}},
                {"name": "token", "in": "query", "schema": {"type": "string"}},
                {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer", "minimum": 0}},
            ],
            "responses": {
                "200": {
                    "description": "`id: <seq>`, `event: <type>`, `data: <the event as JSON>` per event",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "204": {"description": "the session has ended and nothing after the position remains"},
                **{
                    str(s): {"description": "refused", "content": _ERROR}
                    for s in (400, 401, 403, 404, 409, 429, 503)
                },
            },
        }
    }
}
