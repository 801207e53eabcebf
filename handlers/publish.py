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

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.broker import BrokerUnavailable
from hub.committer import CommitFailed, CommitOverloaded, PendingAppend
from hub.connection import Principal
from hub.disconnect import Disconnector
from hub.events import ClientEvent, EventError, parse_event
from hub.publishing import PublishLimiter, client_append
from hub.store import AppendResult, SessionRecord

from .errors import ApiError, json_response, read_json_object
from .model_body import operation, parse_body, schemas
from .sessions import caller, hub_of, load_session

MAX_BATCH = 100
KICKERS = ("instructor", "admin", "service")


class PublishEvent(BaseModel):
    """One event to store. `id` makes the request idempotent (per user and session)."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(max_length=100)
    id: str | None = Field(default=None, min_length=1, max_length=100)
    data: dict[str, Any] = Field(default_factory=dict)


class PublishBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[PublishEvent] = Field(min_length=1, max_length=MAX_BATCH)


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


_STATUS_OF = {"invalid": 422, "forbidden": 403}


def _events(body: dict[str, Any], role: str) -> tuple[list[ClientEvent], bool]:
    """(validated events, whether it was a batch); a refusal names the item at fault."""
    batch = "events" in body
    items = parse_body(PublishBatch, body).events if batch else [parse_body(PublishEvent, body)]
    events: list[ClientEvent] = []
    for index, item in enumerate(items):
        try:
            events.append(parse_event(item.model_dump(), role, id_required=False))
        except EventError as exc:
            where = f"events[{index}]." if batch else ""
            details = {**exc.details, "field": where + str(exc.details.get("field", "data"))}
            if batch:
                details["index"] = index
            raise ApiError(_STATUS_OF.get(exc.code, 422), exc.code, exc.message, details) from None
    return events, batch


def _limiter(request: Request) -> PublishLimiter:
    limiter: PublishLimiter = request.app.state.publish_limiter
    return limiter


async def _store(request: Request, record: SessionRecord, events: list[ClientEvent], who: Principal) -> Any:
    hub = hub_of(request)
    futures: list[asyncio.Future[AppendResult]] = []
    try:
        for event in events:
            pending = PendingAppend(client_append(record.pk, event, who), record.session_id)
            futures.append(hub.submit(pending))
        return await asyncio.gather(*futures)
    except (CommitFailed, CommitOverloaded) as exc:
        for future in futures:  # the rest may still be stored; a retry with the ids is safe
            future.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
        message = f"the events could not be stored; send them again: {exc}"
        raise ApiError(503, "unavailable", message) from None


def _refusal(record: SessionRecord, result: AppendResult) -> ApiError:
    if result.error == "conflict":
        message = f"session '{record.session_id}' is {result.status}; this event is not allowed now"
        return ApiError(409, "conflict", message, {"status": result.status})
    return ApiError(404, "not_found", f"session '{record.session_id}' not found")


def _answer(result: AppendResult) -> dict[str, Any]:
    return PublishResult(seq=result.seq or 0, duplicate=result.duplicate).model_dump()


async def publish(request: Request) -> Response:
    principal = caller(request)
    hub = hub_of(request)
    record = await load_session(request, principal)
    body = await read_json_object(request, hub.settings.max_body_bytes)
    events, batch = _events(body, principal.role)
    limiter = _limiter(request)
    if not limiter.take(principal, len(events)):
        wait = round(limiter.retry_after(principal, len(events)), 3)
        raise ApiError(429, "rate_limited", "too many events; slow down", {"retry_after": wait})
    results: list[AppendResult] = await _store(request, record, events, principal)
    refused = [r for r in results if r.error is not None]
    if len(refused) == len(results):
        raise _refusal(record, refused[0])
    stored = any(r.error is None and not r.duplicate for r in results)
    status = 201 if stored else 200
    if not batch:
        return json_response(_answer(results[0]), status)
    answers: list[dict[str, Any]] = []
    for result in results:
        if result.error is None:
            answers.append(_answer(result))
        else:
            refusal = _refusal(record, result)
            error = {"code": refusal.code, "message": refusal.message, "details": refusal.details}
            answers.append({"seq": None, "duplicate": False, "error": error})
    return json_response(answers, status)


async def disconnect(request: Request) -> Response:
    principal = caller(request, KICKERS)
    hub = hub_of(request)
    record = await load_session(request, principal)
    body = parse_body(DisconnectRequest, await read_json_object(request, hub.settings.max_body_bytes))
    disconnector: Disconnector = request.app.state.disconnector
    try:
        closed = await disconnector.disconnect(record.pk, body.user_id)
    except BrokerUnavailable as exc:
        raise ApiError(503, "unavailable", f"the other hub processes could not be told: {exc}") from None
    answer = DisconnectResult(session_id=record.session_id, user_id=body.user_id, closed_here=closed)
    return json_response(answer.model_dump())


routes = [
    Route("/api/v2/session/{session_id}/events", publish, methods=["POST"]),
    Route("/api/v2/session/{session_id}/disconnect", disconnect, methods=["POST"]),
]

_S = ("session_id",)
openapi_paths: dict[str, Any] = {
    "/api/v2/session/{session_id}/events": {
        "post": {
            **operation(
                "Publish one event ({type, data, id}) or a batch ({events: [...]}); 201 once durable,"
                " 200 with duplicate=true for a repeated id; a batch answers a list",
                PublishResult,
                status=201,
                body=PublishEvent,
                path_params=_S,
                errors=(400, 401, 403, 404, 409, 413, 422, 429, 503),
            ),
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/PublishEvent"},
                                {"$ref": "#/components/schemas/PublishBatch"},
                            ]
                        }
                    }
                },
            },
        }
    },
    "/api/v2/session/{session_id}/disconnect": {
        "post": operation(
            "Close a user's connections to the session on every process (close code 3510)",
            DisconnectResult,
            body=DisconnectRequest,
            path_params=_S,
        )
    },
}
openapi_schemas = schemas(PublishEvent, PublishBatch, PublishResult, DisconnectRequest, DisconnectResult)
