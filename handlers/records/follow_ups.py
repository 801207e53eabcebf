"""Daily follow-ups over HTTP (seed 002): a session's settings, marking today's check-in
sent, and the account's due check-ins with their prompts (rules in `hub.records.follow_ups`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.events import iso
from hub.records.follow_ups import check_in_prompt, follow_up_due
from hub.store import SessionRecord

from ..auth import can_open
from ..errors import ApiError, json_response, query_int, read_json_object
from ..formats import parse_time_param
from ..session_fields import FieldErrors
from ..sessions import WRITERS, caller, hub_of, load_session
from .common import SESSION_ID, op, records_of
from .fields import validate_record_fields


def _follow_up_json(record: SessionRecord, now: datetime) -> dict[str, Any]:
    attributes = record.attributes
    return {
        "session_id": record.session_id,
        "coach_session_id": record.session_id,
        "title": record.title,
        "status": record.status,
        "primary_topic": attributes.get("primary_topic"),
        "follow_up_enabled": attributes.get("follow_up_enabled") is True,
        "follow_up_time": attributes.get("follow_up_time"),
        "follow_up_timezone": attributes.get("follow_up_timezone") or "UTC",
        "last_follow_up_at": attributes.get("last_follow_up_at"),
        "due": follow_up_due(record.status, attributes, now),
        "prompt": check_in_prompt(record.title, attributes),
    }


def _may_manage(principal: Any, record: SessionRecord) -> None:
    if principal.role not in WRITERS and principal.user_id != record.attributes.get("owner_user_id"):
        raise ApiError(403, "forbidden", f"role '{principal.role}' may not change this session's follow-ups")


async def get_follow_up(request: Request) -> Response:
    record = await load_session(request, caller(request))
    return json_response(_follow_up_json(record, datetime.now(UTC)))


async def put_follow_up(request: Request) -> Response:
    principal = caller(request)
    record = await load_session(request, principal)
    _may_manage(principal, record)
    body = await read_json_object(request, hub_of(request).settings.max_body_bytes)
    errors = FieldErrors()
    allowed = {"follow_up_enabled", "follow_up_time", "follow_up_timezone"}
    for name in sorted(set(body) - allowed):
        errors.add(name, "is not a follow-up setting")
    changes = validate_record_fields({k: v for k, v in body.items() if k in allowed}, errors, partial=True)
    errors.raise_if_any()
    record = await records_of(request).sessions.update(record.pk, changes)
    return json_response(_follow_up_json(record, datetime.now(UTC)))


async def mark_sent(request: Request) -> Response:
    principal = caller(request)
    record = await load_session(request, principal)
    _may_manage(principal, record)
    now = datetime.now(UTC)
    record = await records_of(request).sessions.update(record.pk, {"last_follow_up_at": iso(now)})
    return json_response(_follow_up_json(record, now))


async def due_follow_ups(request: Request) -> Response:
    """Seed 002's due check-ins of the caller's account (a participant sees their own)."""
    principal = caller(request)
    at = parse_time_param(request.query_params.get("at"), "at") or datetime.now(UTC)
    limit = query_int(request, "limit", 50, 1, 500) or 50
    cursor = query_int(request, "cursor", None, 0, 2**62)
    session_type = request.query_params.get("type") or request.query_params.get("session_type")
    store = records_of(request).sessions
    due: list[dict[str, Any]] = []
    next_cursor = None
    while len(due) <= limit:
        batch = await store.follow_up_candidates(principal.account_id, session_type, cursor, 200)
        for record in batch:
            mine = principal.role in WRITERS or record.attributes.get("owner_user_id") == principal.user_id
            if (
                mine
                and can_open(principal, record.session_id)
                and follow_up_due(record.status, record.attributes, at)
            ):
                if len(due) == limit:
                    next_cursor = cursor
                    break
                due.append(_follow_up_json(record, at))
            cursor = record.pk
        if next_cursor is not None or len(batch) < 200:
            break
    return json_response({"count": len(due), "at": iso(at), "followups": due, "next_cursor": next_cursor})


routes = [
    Route("/api/v2/sessions/followups/due", due_follow_ups, methods=["GET"]),
    Route("/api/v2/session/{session_id}/follow-up", get_follow_up, methods=["GET"]),
    Route("/api/v2/session/{session_id}/follow-up", put_follow_up, methods=["PUT"]),
    Route("/api/v2/session/{session_id}/follow-up/sent", mark_sent, methods=["POST"]),
]

_AT = {
    "name": "at",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "evaluate at",
}
openapi_paths: dict[str, Any] = {
    "/api/v2/sessions/followups/due": {
        "get": op(
            "Due daily follow-ups with a check-in prompt",
            params=[
                _AT,
                *[p for p in op("", listed=True)["parameters"] if p["name"] in ("limit", "cursor", "type")],
            ],
        )
    },
    "/api/v2/session/{session_id}/follow-up": {
        "get": op("Follow-up settings and whether one is due", params=[SESSION_ID]),
        "put": op(
            "Change follow-up settings",
            body="FollowUpSettings",
            params=[SESSION_ID],
            errors=(401, 403, 404, 422),
        ),
    },
    "/api/v2/session/{session_id}/follow-up/sent": {
        "post": op("Mark today's follow-up sent", params=[SESSION_ID])
    },
}

openapi_schemas: dict[str, Any] = {
    "FollowUpSettings": {
        "type": "object",
        "properties": {
            "follow_up_enabled": {"type": "boolean"},
            "follow_up_time": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
            "follow_up_timezone": {"type": "string", "description": "IANA zone, default UTC"},
        },
    },
}
