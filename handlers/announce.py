"""POST /api/v2/live-announce: one session, or every live session of the caller's account."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.events import EventError, validate_data
from hub.lifecycle import LIVE_STATUSES

from .auth import can_open
from .errors import ApiError, json_response, read_json_object
from .sessions import WRITERS, append_or_raise, caller, hub_of, participant_count


async def live_announce(request: Request) -> Response:
    principal = caller(request, WRITERS)
    hub = hub_of(request)
    body = await read_json_object(request, hub.settings.max_body_bytes)
    announcement = body.get("announcement")
    if not isinstance(announcement, dict):
        raise ApiError(422, "invalid", "announcement must be a JSON object", {"field": "announcement"})
    try:
        data = validate_data("announcement", announcement)
    except EventError as exc:
        raise ApiError(
            422, "invalid", "announcement." + exc.message.removeprefix("data."), exc.details
        ) from None
    session_id = body.get("session_id")
    if session_id is not None:
        if not isinstance(session_id, str):
            raise ApiError(422, "invalid", "session_id must be a string", {"field": "session_id"})
        record = await hub.store.get_session(principal.account_id, session_id)
        if record is None or not can_open(principal, session_id):
            raise ApiError(404, "not_found", f"session '{session_id[:100]}' not found")
        targets = [record]
    else:
        # Announcing to every live session of the account is the admin's; others name one.
        if principal.role != "admin":
            message = "announcing to every live session needs the admin role; name a session_id"
            raise ApiError(403, "forbidden", message, {"field": "session_id"})
        targets = [
            r
            for r in await hub.store.list_sessions(principal.account_id, LIVE_STATUSES, limit=10_000)
            if can_open(principal, r.session_id)
        ]
    notified: list[str] = []
    reached = 0
    refused: list[dict[str, Any]] = []
    for record in targets:
        result = await append_or_raise(hub, record, "announcement", data, principal)
        if result.error is not None:
            refused.append({"session_id": record.session_id, "status": result.status})
            continue
        notified.append(record.session_id)
        reached += await participant_count(hub, record)
    if session_id is not None and refused:
        raise ApiError(409, "conflict", f"session '{session_id}' is {refused[0]['status']}", refused[0])
    return json_response({"status": "announced", "sessions_notified": notified, "participant_count": reached})


routes = [Route("/api/v2/live-announce", live_announce, methods=["POST"])]
