"""A session's record over HTTP: updating its record fields (and status through its
lifecycle), its place in a hierarchy, its state transitions, and rebuilding the
log-derived records."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.connection import Principal
from hub.records.store import HierarchyCycle, ParentNotFound
from hub.store import SessionRecord

from ..auth import can_open
from ..errors import ApiError, json_response, read_json_object
from ..openapi import CORE_PATHS
from ..session_fields import FieldErrors, session_json
from ..sessions import (
    STATUSES,
    TRANSITIONS,
    WRITERS,
    append_or_raise,
    caller,
    hub_of,
    load_session,
    participant_count,
)
from .common import SESSION_ID, listing, op, page_from, records_of, row_json
from .fields import check_parent, validate_record_fields

# PATCH status -> lifecycle action, by the status the session is in now.
_STATUS_ACTIONS: dict[str, dict[str, str]] = {
    "in_progress": {"scheduled": "start", "paused": "resume"},
    "paused": {"in_progress": "pause"},
    "completed": {"in_progress": "end", "paused": "end"},
    "cancelled": {"scheduled": "cancel", "paused": "cancel"},
}
_STATUS_ALIASES = {"active": "in_progress"}  # seed 002's ACTIVE / PAUSED / COMPLETED


def may_write(principal: Principal, record: SessionRecord) -> bool:
    """Instructors and admins of the account, and the session's owner (seed 002)."""
    owner = record.attributes.get("owner_user_id")
    return principal.role in WRITERS or principal.user_id == owner


def _patch_body(
    body: dict[str, Any],
) -> tuple[dict[str, Any], str | None, str | None, tuple[str, str | None]]:
    errors = FieldErrors()
    changes = validate_record_fields(body, errors, partial=True)
    title = body.get("title", body.get("name"))
    if title is not None and (not isinstance(title, str) or not title.strip() or len(title) > 200):
        errors.add("title", "must be a non-empty string of at most 200 characters")
    status = body.get("status")
    if status is not None:
        status = _STATUS_ALIASES.get(str(status).lower(), str(status).lower())
        if status not in _STATUS_ACTIONS:
            errors.add("status", "must be one of in_progress (active), paused, completed, cancelled")
    trigger = body.get("state_trigger") or {}
    trigger_type, trigger_id = trigger.get("trigger_type", "user_action"), trigger.get("trigger_id")
    if not isinstance(trigger, dict) or not isinstance(trigger_type, str) or len(trigger_type) > 100:
        errors.add("state_trigger", "must be {trigger_type: string, trigger_id: string}")
    elif trigger_id is not None and (not isinstance(trigger_id, str) or len(trigger_id) > 200):
        errors.add("state_trigger", "trigger_id must be a string of at most 200 characters")
    unknown = set(body) - set(changes) - {"title", "name", "status", "state_trigger"}
    for name in sorted(unknown):
        if name not in ("last_follow_up_at",):
            errors.add(name, "is not a field that can be updated")
    if not body:
        errors.add("body", "must name at least one field to update")
    errors.raise_if_any()
    return changes, title, status, (trigger_type, trigger_id)


async def patch_session(request: Request) -> Response:
    principal = caller(request)
    hub = hub_of(request)
    record = await load_session(request, principal)
    if not may_write(principal, record):
        raise ApiError(403, "forbidden", f"role '{principal.role}' may not update this session")
    body = await read_json_object(request, hub.settings.max_body_bytes)
    changes, title, status, trigger = _patch_body(body)
    await check_parent(hub.store, principal, changes)
    if status is not None and status != record.status:
        action = _STATUS_ACTIONS[status].get(record.status)
        if action is None:
            raise ApiError(
                409,
                "conflict",
                f"cannot move a session that is {record.status} to {status}",
                {"status": record.status},
            )
        result = await append_or_raise(
            hub, record, TRANSITIONS[action][0], dict(TRANSITIONS[action][1]), principal
        )
        if result.error is not None:
            raise ApiError(409, "conflict", f"cannot move a session that is {result.status} to {status}")
    if changes or title is not None:
        try:
            record = await records_of(request).sessions.update(record.pk, changes, title, trigger)
        except ParentNotFound:
            raise ApiError(422, "invalid", "parent_session_id: session not found in this account") from None
        except HierarchyCycle:
            raise ApiError(
                409, "conflict", "parent_session_id: the session would become its own ancestor"
            ) from None
    fresh = await hub.store.get_session_by_pk(record.pk) or record
    return json_response(session_json(fresh, await participant_count(hub, fresh)))


async def children(request: Request) -> Response:
    principal = caller(request)
    record = await load_session(request, principal)
    page = page_from(request, STATUSES)
    kids, cursor = await records_of(request).sessions.children(
        principal.account_id, record.session_id, page, principal.sessions
    )
    return json_response(listing("sessions", [session_json(k) for k in kids], cursor))


async def ancestors(request: Request) -> Response:
    principal = caller(request)
    record = await load_session(request, principal)
    chain = await records_of(request).sessions.ancestors(principal.account_id, record.session_id)
    # The walk ends below the first ancestor outside the token's sessions: it is not there.
    hidden = next((i for i, a in enumerate(chain) if not can_open(principal, a.session_id)), len(chain))
    chain = chain[:hidden]
    root = chain[-1] if chain else record
    return json_response(
        {
            "session_id": record.session_id,
            "depth": len(chain),
            "root_session_id": root.session_id,
            "ancestors": [session_json(a) for a in chain],
        }
    )


async def transitions(request: Request) -> Response:
    principal = caller(request)
    record = await load_session(request, principal)
    rows, cursor = await records_of(request).sessions.transitions(record.pk, page_from(request))
    return json_response(listing("transitions", [row_json(r) for r in rows], cursor))


async def rebuild(request: Request) -> Response:
    principal = caller(request, WRITERS)
    record = await load_session(request, principal)
    if record.retained_from > 1:  # a rebuild from what is left would drop the records
        raise ApiError(
            409,
            "conflict",
            "the session's log was archived by retention; restore it first (python -m hub archive restore)",
            {"retained_from": record.retained_from},
        )
    projected = await records_of(request).rebuild(record.pk)
    return json_response({"session_id": record.session_id, "projected_seq": projected})


routes = [
    Route("/api/v2/session/{session_id}", patch_session, methods=["PATCH"]),
    Route("/api/v2/session/{session_id}/children", children, methods=["GET"]),
    Route("/api/v2/session/{session_id}/ancestors", ancestors, methods=["GET"]),
    Route("/api/v2/session/{session_id}/state/transitions", transitions, methods=["GET"]),
    Route("/api/v2/session/{session_id}/records/rebuild", rebuild, methods=["POST"]),
]

openapi_paths: dict[str, Any] = {
    # The core module describes GET on this path; PATCH joins it in the same path item.
    "/api/v2/session/{session_id}": {
        **CORE_PATHS["/api/v2/session/{session_id}"],
        "patch": op(
            "Update the session's record fields (and status via its lifecycle)",
            body="SessionPatch",
            params=[SESSION_ID],
            errors=(400, 401, 403, 404, 409, 413, 422),
        ),
    },
    "/api/v2/session/{session_id}/children": {
        "get": op("Child sessions (status, type = session_type, time)", params=[SESSION_ID], listed=True)
    },
    "/api/v2/session/{session_id}/ancestors": {
        "get": op("Walk to the root: parent, grandparent, ..., root", params=[SESSION_ID])
    },
    "/api/v2/session/{session_id}/state/transitions": {
        "get": op("State transitions (type = trigger_type, time)", params=[SESSION_ID], listed=True)
    },
    "/api/v2/session/{session_id}/records/rebuild": {
        "post": op("Rebuild the log-derived records from the log", params=[SESSION_ID])
    },
}

openapi_schemas: dict[str, Any] = {
    "SessionPatch": {
        "type": "object",
        "description": "Record fields to change; null clears a field; state merges key by key.",
        "properties": {
            "title": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["in_progress", "active", "paused", "completed", "cancelled"],
            },
            "state": {"type": "object"},
            "state_trigger": {
                "type": "object",
                "properties": {"trigger_type": {"type": "string"}, "trigger_id": {"type": "string"}},
            },
            "intention": {"type": "string"},
            "success_indicators": {"type": "array", "items": {"type": "string"}},
            "completion_indicators": {"type": "array", "items": {"type": "string"}},
            "met_indicators": {"type": "array", "items": {"type": "string"}},
            "constraints": {"type": "array", "items": {"type": "string"}},
            "procedure_notes": {"type": "string"},
            "scheduled_duration_minutes": {"type": "integer", "minimum": 1, "maximum": 1440},
            "summary": {"type": "string"},
            "next_plan": {"type": "string"},
            "success_rating": {"type": ["integer", "null"], "minimum": 1, "maximum": 5},
            "completion_percentage": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
            "needs_followup": {"type": "boolean"},
            "followup_notes": {"type": "string"},
            "next_session_suggestion": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "owner_user_id": {"type": "string"},
            "parent_session_id": {"type": ["string", "null"]},
            "primary_topic": {"type": "string"},
            "follow_up_enabled": {"type": "boolean"},
            "follow_up_time": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
            "follow_up_timezone": {"type": "string"},
        },
    },
}
