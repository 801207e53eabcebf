"""Server-side publishing and the kick, for backends (`service` tokens) and staff.

`POST /api/v2/session/{id}/events` stores one event (`{"type", "data", "id"}`) or a batch
(`{"events": [...]}`) through the same rules as a WebSocket frame (`hub.events.parse_event`,
`hub.publishing`): the same data checks, the same role table (a `service` token may send
every content type), the same lifecycle rules (the store's append function) and the same
rate limit. It answers only once the events are durable: `201` with `{"seq", "duplicate":
false}`, or `200` with the first seq and `"duplicate": true` for an `id` this user already
sent (over HTTP or over its socket). A batch answers a list, one result per event.

`POST /api/v2/session/{id}/disconnect` closes a user's connections on every hub process
with close code 3510 (`disconnected`: do not reconnect).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.broker import BrokerUnavailable
from hub.committer import CommitFailed, CommitOverloaded, PendingAppend
from hub.connection import Principal
from hub.disconnect import Disconnector
from hub.errors import Conflict, ErrorCode, HubError, NotFound, RateLimited, Unavailable
from hub.events import ClientEvent, parse_event
from hub.publishing import PublishLimiter, client_append
from hub.store import AppendResult, SessionRecord

from .api import hub_of, operation
from .errors import json_response

MAX_BATCH = 100
KICKERS = ("instructor", "admin", "service")


class PublishEvent(BaseModel):
    """One event to store. `id` makes the request idempotent (per user and session)."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(max_length=100)
    id: str | None = Field(default=None, min_length=1, max_length=100)
    data: dict[str, Any] = Field(default_factory=dict)


class PublishBody(BaseModel):
    """One event (`type`, `data`, `id`) or a batch (`events`), not both."""

    model_config = ConfigDict(extra="forbid")
    type: str | None = Field(default=None, max_length=100)
    id: str | None = Field(default=None, min_length=1, max_length=100)
    data: dict[str, Any] | None = None
    events: list[PublishEvent] | None = Field(default=None, min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def one_form(self) -> PublishBody:
        single = self.type is not None or self.id is not None or self.data is not None
        if self.events is None and self.type is None:
            raise ValueError("give type (one event) or events (a batch)")
        if self.events is not None and single:
            raise ValueError("give either type, data and id (one event) or events (a batch), not both")
        return self

    def items(self) -> list[PublishEvent]:
        if self.events is not None:
            return self.events
        return [PublishEvent(type=self.type or "", id=self.id, data=self.data or {})]


class PublishResult(BaseModel):
    seq: int
    duplicate: bool


class DisconnectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=100)


class DisconnectResult(BaseModel):
    session_id: str
    user_id: str
    status: str = "disconnected"
    closed_here: int = Field(description="connections this process closed; others close theirs")


def _events(body: PublishBody, role: str) -> list[ClientEvent]:
    """The validated events; a refusal of a batch names the item at fault."""
    batch = body.events is not None
    events: list[ClientEvent] = []
    for index, item in enumerate(body.items()):
        try:
            events.append(parse_event(item.model_dump(), role, id_required=False))
        except HubError as exc:
            if batch:
                field = str(exc.details.get("field", "data"))
                exc.details = {**exc.details, "field": f"events[{index}].{field}", "index": index}
            raise
    return events


def _limiter(request: Request) -> PublishLimiter:
    limiter: PublishLimiter = request.app.state.publish_limiter
    return limiter


async def _store(request: Request, record: SessionRecord, events: list[ClientEvent], who: Principal) -> Any:
    hub = hub_of(request)
    futures: list[asyncio.Future[AppendResult]] = []
    try:
        for event in events:
            pending = PendingAppend(client_append(record.pk, event, who), record.session_id)
            futures.append(hub.committer.submit(pending))
        return await asyncio.gather(*futures)
    except (CommitFailed, CommitOverloaded) as exc:
        for future in futures:  # the rest may still be stored; a retry with the ids is safe
            future.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
        raise Unavailable(f"the events could not be stored; send them again: {exc}") from None


def _refusal(record: SessionRecord, result: AppendResult) -> HubError:
    if result.error == "conflict":
        message = f"session '{record.session_id}' is {result.status}; this event is not allowed now"
        return Conflict(message, {"status": result.status})
    return NotFound(f"session '{record.session_id}' not found")


def _answer(result: AppendResult) -> dict[str, Any]:
    return PublishResult(seq=result.seq or 0, duplicate=result.duplicate).model_dump()


@operation(
    "Publish one event ({type, data, id}) or a batch ({events: [...]}): 201 once durable, 200 with"
    " duplicate=true when every event's id was sent before; a batch answers a list of results",
    PublishResult,
    status=201,
    errors=(ErrorCode.CONFLICT, ErrorCode.RATE_LIMITED),
    other={200: PublishResult},
)
async def publish(
    request: Request, principal: Principal, record: SessionRecord, body: PublishBody
) -> Response:
    events = _events(body, principal.role)
    limiter = _limiter(request)
    if not limiter.take(principal, len(events)):
        wait = round(limiter.retry_after(principal, len(events)), 3)
        raise RateLimited("too many events; slow down", {"retry_after": wait})
    results: list[AppendResult] = await _store(request, record, events, principal)
    refused = [r for r in results if r.error is not None]
    if len(refused) == len(results):
        raise _refusal(record, refused[0])
    status = 201 if any(r.error is None and not r.duplicate for r in results) else 200
    if body.events is None:
        return json_response(_answer(results[0]), status)
    answers: list[dict[str, Any]] = []
    for result in results:
        if result.error is None:
            answers.append(_answer(result))
        else:
            error = _refusal(record, result)
            answers.append({"seq": None, "duplicate": False, "error": error.body()})
    return json_response(answers, status)


@operation(
    "Close a user's connections to the session on every hub process (close code 3510)",
    DisconnectResult,
    roles=KICKERS,
)
async def disconnect(request: Request, record: SessionRecord, body: DisconnectRequest) -> dict[str, Any]:
    disconnector: Disconnector = request.app.state.disconnector
    try:
        closed = await disconnector.disconnect(record.pk, body.user_id)
    except BrokerUnavailable as exc:
        raise Unavailable(f"the other hub processes could not be told: {exc}") from None
    answer = DisconnectResult(session_id=record.session_id, user_id=body.user_id, closed_here=closed)
    return answer.model_dump()


routes = [
    Route("/api/v2/session/{session_id}/events", publish, methods=["POST"]),
    Route("/api/v2/session/{session_id}/disconnect", disconnect, methods=["POST"]),
]
