"""Session endpoints under /api/v2: create, list, live listing, content, log pages, lifecycle."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.committer import CommitFailed, CommitOverloaded
from hub.connection import Principal
from hub.events import iso
from hub.presence import participant_list
from hub.records.session_metrics import compute_metrics
from hub.retention import Archives
from hub.service import Hub
from hub.store import SessionExists, SessionRecord, StoredEvent

from .auth import AuthError, bearer_token, can_open
from .errors import ApiError, json_response, query_flag, query_int, read_json_object
from .formats import SESSION_ID_PATTERN
from .records.fields import check_parent
from .session_fields import session_json, session_types, validate_create

WRITERS = ("instructor", "admin")
LIVE_STATUSES = ("in_progress", "paused")
STATUSES = ("scheduled", "in_progress", "paused", "completed", "cancelled")
_MAX_REPLAY = 50_000


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def archives_of(request: Request) -> Archives:
    archives: Archives = request.app.state.archives
    return archives


def caller(request: Request, roles: tuple[str, ...] | None = None) -> Principal:
    try:
        principal: Principal = request.app.state.auth.from_request(request, bearer_token(request))
    except AuthError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    if roles is not None and principal.role not in roles:
        needed = " or ".join(roles)
        raise ApiError(403, "forbidden", f"role '{principal.role}' may not do this; it needs {needed}")
    return principal


async def load_session(request: Request, principal: Principal) -> SessionRecord:
    session_id = request.path_params["session_id"]
    record = None
    # Another account's session, or one outside the token's list, is simply not there;
    # neither is an id no session can have (PostgreSQL text cannot even hold NUL).
    if can_open(principal, session_id) and SESSION_ID_PATTERN.match(session_id):
        record = await hub_of(request).store.get_session(principal.account_id, session_id)
    if record is None:
        raise ApiError(404, "not_found", f"session '{session_id[:100]}' not found")
    return record


async def participant_count(hub: Hub, record: SessionRecord) -> int:
    return len(participant_list(await hub.presence.members(str(record.pk))))


async def read_all(
    hub: Hub, record: SessionRecord, after: int = 0, limit: int = _MAX_REPLAY
) -> list[StoredEvent]:
    events: list[StoredEvent] = []
    page = hub.settings.replay_page
    while len(events) < limit:
        rows = await hub.store.read_events(record.pk, after, min(page, limit - len(events)))
        events.extend(rows)
        if len(rows) < page:
            break
        after = rows[-1].seq
    return events


async def create_session(request: Request) -> Response:
    principal = caller(request, WRITERS)
    hub = hub_of(request)
    body = await read_json_object(request, hub.settings.max_body_bytes)
    fields = validate_create(body, hub.settings.default_max_participants)
    fields["created_by"] = principal.user_id
    await check_parent(hub.store, principal, fields["attributes"])
    try:
        record = await hub.store.create_session(principal.account_id, fields)
    except SessionExists:
        raise ApiError(409, "conflict", f"session '{fields['session_id']}' already exists") from None
    return json_response(session_json(record, 0), 201)


async def list_sessions(request: Request) -> Response:
    principal = caller(request)
    hub = hub_of(request)
    status = request.query_params.get("status")
    statuses = [s for s in status.split(",") if s] if status else None
    if statuses and not set(statuses) <= set(STATUSES):
        raise ApiError(422, "invalid", "status must be a comma-separated list of " + ", ".join(STATUSES))
    session_type = request.query_params.get("session_type") or request.query_params.get("type")
    if session_type is not None and session_type not in session_types():
        raise ApiError(422, "invalid", "session_type must be one of " + ", ".join(session_types()))
    limit = query_int(request, "limit", 50, 1, 500) or 50
    cursor = query_int(request, "cursor", None, 0, 2**62)
    records = await hub.store.list_sessions(principal.account_id, statuses, session_type, limit + 1, cursor)
    records = [r for r in records if can_open(principal, r.session_id)]
    page, more = records[:limit], len(records) > limit
    return json_response(
        {
            "count": len(page),
            "sessions": [session_json(r) for r in page],
            "next_cursor": page[-1].pk if more and page else None,
        }
    )


async def live_sessions(request: Request) -> Response:
    principal = caller(request)
    hub = hub_of(request)
    include_metrics = query_flag(request, "include_metrics")
    records = await hub.store.list_sessions(principal.account_id, LIVE_STATUSES, limit=1000)
    sessions = []
    for record in records:
        if not can_open(principal, record.session_id):
            continue
        item: dict[str, Any] = {
            "session_id": record.session_id,
            "title": record.title,
            "session_type": record.session_type,
            "status": record.status,
            "participant_count": await participant_count(hub, record),
            "active": record.status == "in_progress",
            "started_at": iso(record.started_at) if record.started_at else None,
            "current_technique": record.current_technique,
            "head_seq": record.head_seq,
        }
        if include_metrics:
            metrics = compute_metrics(await read_all(hub, record))
            metrics["current_hrv_improvement"] = metrics["average_hrv_improvement"]
        else:
            # What is known without reading the log; the full set costs a log read.
            metrics = {"message_count": record.head_seq, "participant_count": item["participant_count"]}
        item["metrics"] = metrics
        sessions.append(item)
    return json_response({"count": len(sessions), "sessions": sessions})


async def get_session(request: Request) -> Response:
    principal = caller(request)
    record = await load_session(request, principal)
    return json_response(session_json(record, await participant_count(hub_of(request), record)))


async def session_content(request: Request) -> Response:
    principal = caller(request)
    hub = hub_of(request)
    record = await load_session(request, principal)
    include_metrics = query_flag(request, "include_metrics")
    include_replay = query_flag(request, "include_replay")
    members = await hub.presence.members(str(record.pk))
    participants = participant_list(members)
    body: dict[str, Any] = {
        "session_id": record.session_id,
        "title": record.title,
        "status": record.status,
        "active": record.status == "in_progress",
        "session_info": {
            **session_json(record, len(participants)),
            "participants": [
                {"participant_id": p["participant_id"], "name": p["name"]} for p in participants
            ],
        },
    }
    if include_metrics or include_replay:
        events = await read_all(hub, record)
        if include_metrics:
            body["metrics"] = await archives_of(request).metrics(record, events)
        if include_replay:
            messages = [_message(record, e) for e in events]
            body["replay"] = {"message_count": len(messages), "messages": messages}
            archived = await archives_of(request).replay_note(record)
            if archived is not None:  # retention trimmed the log: where it went
                body["replay"]["archived"] = archived
    return json_response(body)


def _message(record: SessionRecord, event: StoredEvent) -> dict[str, Any]:
    return {
        "type": event.type,
        "session_id": record.session_id,
        "seq": event.seq,
        "ts": iso(event.ts),
        "actor": event.actor,
        "data": event.data,
    }


async def session_events(request: Request) -> Response:
    principal = caller(request)
    hub = hub_of(request)
    record = await load_session(request, principal)
    since = query_int(request, "since", 0, 0, 2**62) or 0
    limit = query_int(request, "limit", 1000, 1, 10_000) or 1000
    events = await read_all(hub, record, since, limit)
    return json_response(
        {
            "session_id": record.session_id,
            "head_seq": record.head_seq,
            "retained_from": record.retained_from,
            "events": [_message(record, e) for e in events],
        }
    )


# lifecycle: action -> (event type, extra data, statuses it is legal from)
TRANSITIONS: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "start": ("session_started", {}, ("scheduled",)),
    "pause": ("session_paused", {}, ("in_progress",)),
    "resume": ("session_resumed", {}, ("paused",)),
    "end": ("session_ended", {"status": "completed"}, ("in_progress", "paused")),
    "cancel": ("session_ended", {"status": "cancelled"}, ("scheduled", "paused")),
}


async def lifecycle(request: Request) -> Response:
    principal = caller(request, WRITERS)
    hub = hub_of(request)
    record = await load_session(request, principal)
    action = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    event_type, extra, legal_from = TRANSITIONS[action]
    data: dict[str, Any] = dict(extra)
    if request.headers.get("content-length") not in (None, "0"):
        body = await read_json_object(request, hub.settings.max_body_bytes)
        for key in ("message", "reason"):
            if isinstance(body.get(key), str):
                data[key] = body[key][:1000]
    result = await append_or_raise(hub, record, event_type, data, principal)
    if result.error == "conflict":
        raise ApiError(
            409,
            "conflict",
            f"cannot {action} a session that is {result.status}",
            {"status": result.status, "allowed_from": list(legal_from)},
        )
    if result.error == "not_found":
        raise ApiError(404, "not_found", f"session '{record.session_id}' not found")
    fresh = await hub.store.get_session_by_pk(record.pk) or record
    body_out = session_json(fresh, await participant_count(hub, fresh))
    body_out["event"] = {"type": event_type, "seq": result.seq}
    return json_response(body_out)


async def append_or_raise(
    hub: Hub, record: SessionRecord, event_type: str, data: dict[str, Any], principal: Principal
) -> Any:
    try:
        return await hub.append(record, event_type, data, principal.actor)
    except (CommitFailed, CommitOverloaded) as exc:
        raise ApiError(503, "unavailable", f"the event could not be stored: {exc}") from None


routes = [
    Route("/api/v2/sessions/create", create_session, methods=["POST"]),
    Route("/api/v2/sessions", list_sessions, methods=["GET"]),
    Route("/api/v2/sessions/live", live_sessions, methods=["GET"]),
    Route("/api/v2/session/{session_id}", get_session, methods=["GET"]),
    Route("/api/v2/session/{session_id}/content", session_content, methods=["GET"]),
    Route("/api/v2/session/{session_id}/events", session_events, methods=["GET"]),
    *[
        Route(f"/api/v2/session/{{session_id}}/{action}", lifecycle, methods=["POST"])
        for action in TRANSITIONS
    ],
]
