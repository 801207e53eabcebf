"""POST /api/v2/live-announce: one session, or every live session of the caller's account."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from hub.connection import Principal
from hub.errors import Conflict, ErrorCode, Forbidden, NotFound
from hub.lifecycle import LIVE_STATUSES

from .api import hub_of, operation
from .auth import can_open
from .session_models import AnnounceBody, Announced
from .sessions import WRITERS, participant_count


@operation(
    "Announce to one session or every live session of the account",
    Announced,
    roles=WRITERS,
    errors=(ErrorCode.NOT_FOUND, ErrorCode.CONFLICT),
)
async def live_announce(request: Request, principal: Principal, body: AnnounceBody) -> dict[str, Any]:
    hub = hub_of(request)
    data = body.announcement.model_dump(exclude_none=True)
    session_id = body.session_id
    if session_id is not None:
        record = await hub.store.get_session(principal.account_id, session_id)
        if record is None or not can_open(principal, session_id):
            raise NotFound(f"session '{session_id[:100]}' not found")
        targets = [record]
    else:
        # Announcing to every live session of the account is the admin's; others name one.
        if principal.role != "admin":
            message = "announcing to every live session needs the admin role; name a session_id"
            raise Forbidden(message, {"field": "session_id"})
        targets = [
            r
            for r in await hub.store.list_sessions(principal.account_id, LIVE_STATUSES, limit=10_000)
            if can_open(principal, r.session_id)
        ]
    notified: list[str] = []
    reached = 0
    refused: list[dict[str, Any]] = []
    for record in targets:
        result = await hub.append(record, "announcement", data, principal.actor)
        if result.error is not None:
            refused.append({"session_id": record.session_id, "status": result.status})
            continue
        notified.append(record.session_id)
        reached += await participant_count(hub, record)
    if session_id is not None and refused:
        raise Conflict(f"session '{session_id}' is {refused[0]['status']}", refused[0])
    return {"status": "announced", "sessions_notified": notified, "participant_count": reached}


routes = [Route("/api/v2/live-announce", live_announce, methods=["POST"])]
