"""A session's audiences over HTTP: read them, change them (hub/audience.py has the rules).

A change is stored as an event (`session_update` with the complete overrides under
`audience`), so every room and every replay switch at the same seq.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.audience import AUDIENCE_KEY, AudienceError, Policy, cursor_at, validate_overrides

from .errors import ApiError, json_response, read_json_object
from .sessions import WRITERS, append_or_raise, caller, hub_of, load_session


def invalid_audience(exc: AudienceError) -> ApiError:
    """The typed 422 for bad audience settings: every bad entry listed."""
    first = exc.errors[0]
    return ApiError(422, "invalid", f"{first['field']}: {first['message']}", {"errors": exc.errors})


def _body(policy: Policy, session_id: str, seq: int | None) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "audience": policy.table(),
        "overrides": dict(policy.overrides),
        "seq": seq,
    }


async def get_audience(request: Request) -> Response:
    principal = caller(request)
    hub = hub_of(request)
    record = await load_session(request, principal)
    cursor = await cursor_at(hub.store, record, record.head_seq)
    return json_response(_body(cursor.policy, record.session_id, None))


async def change_audience(request: Request) -> Response:
    """PATCH merges the given types into the overrides; PUT replaces them all."""
    principal = caller(request, WRITERS)
    hub = hub_of(request)
    record = await load_session(request, principal)
    body = await read_json_object(request, hub.settings.max_body_bytes)
    unknown = sorted(set(body) - {AUDIENCE_KEY})
    if unknown or AUDIENCE_KEY not in body:
        errors = [{"field": name, "message": "is not a field of this request"} for name in unknown]
        if AUDIENCE_KEY not in body:
            errors.insert(0, {"field": AUDIENCE_KEY, "message": "is required"})
        raise invalid_audience(AudienceError(errors))
    try:
        given = validate_overrides(body[AUDIENCE_KEY])
    except AudienceError as exc:
        raise invalid_audience(exc) from None
    current = (await cursor_at(hub.store, record, record.head_seq)).policy
    if request.method == "PATCH":
        merged = {**current.overrides, **body[AUDIENCE_KEY]}
        given = validate_overrides(merged)
    result = await append_or_raise(hub, record, "session_update", {AUDIENCE_KEY: given}, principal)
    if result.error == "conflict":
        raise ApiError(409, "conflict", f"the session is {result.status}; its audiences cannot change now")
    if result.error == "not_found":
        raise ApiError(404, "not_found", f"session '{record.session_id}' not found")
    return json_response(_body(Policy(given), record.session_id, result.seq))


routes = [
    Route("/api/v2/session/{session_id}/audience", get_audience, methods=["GET"]),
    Route("/api/v2/session/{session_id}/audience", change_audience, methods=["PUT", "PATCH"]),
]

_AUDIENCE_SCHEMA = {
    "type": "object",
    "description": "Event type -> audience (everyone or staff); lifecycle types and session_update are fixed",
    "additionalProperties": {"type": "string", "enum": ["everyone", "staff"]},
}
_PARAMS = [{"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}]
_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": [AUDIENCE_KEY],
                "properties": {AUDIENCE_KEY: _AUDIENCE_SCHEMA},
            }
        }
    },
}
_ANSWER = {
    "200": {
        "description": "The session's audience table",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "session_id": {"type": "string"},
                        "audience": _AUDIENCE_SCHEMA,
                        "overrides": _AUDIENCE_SCHEMA,
                        "seq": {"type": ["integer", "null"]},
                    },
                }
            }
        },
    },
    "422": {"description": "An unknown type, an unknown audience, or a fixed type"},
}
openapi_paths: dict[str, Any] = {
    "/api/v2/session/{session_id}/audience": {
        "get": {"summary": "Who receives each event type", "parameters": _PARAMS, "responses": _ANSWER},
        "put": {
            "summary": "Replace the session's audience overrides (stored as a session_update event)",
            "parameters": _PARAMS,
            "requestBody": _BODY,
            "responses": _ANSWER,
        },
        "patch": {
            "summary": "Change the audience of some types (stored as a session_update event)",
            "parameters": _PARAMS,
            "requestBody": _BODY,
            "responses": _ANSWER,
        },
    }
}
