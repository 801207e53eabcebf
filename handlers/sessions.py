"""Session endpoints under /api/v2: create, list, live listing, content, log pages, lifecycle."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from hub.audience import in_view
from hub.connection import Principal
from hub.errors import Conflict, ErrorCode, NotFound
from hub.events import iso
from hub.lifecycle import ACTIONS, IN_PROGRESS, LIVE_STATUSES, allowed_from
from hub.node import Hub
from hub.presence import participant_list
from hub.retention import Archives
from hub.store import SessionRecord, StoredEvent

from .api import hub_of, operation
from .auth import can_open
from .log_reads import read_all, session_metrics
from .records.fields import check_parent
from .session_fields import SessionCreate, SessionOut, session_json
from .session_models import (
    Content,
    ContentQuery,
    EventPage,
    EventsQuery,
    LifecycleBody,
    LifecycleOut,
    LiveList,
    LiveQuery,
    SessionList,
    SessionListQuery,
)

WRITERS = ("instructor", "admin")


def archives_of(request: Request) -> Archives:
    """What readers learn of a session's archive (hub/retention.py), wired by the app."""
    archives: Archives = request.app.state.archives
    return archives


async def participant_count(hub: Hub, record: SessionRecord) -> int:
    return (await hub.presence.roster(str(record.pk), 0)).participant_count


async def latest_group_hrv(hub: Hub, record: SessionRecord) -> dict[str, Any] | None:
    """The group's HRV figures of the session's latest `hrv_summary`, if any."""
    latest = await hub.store.read_typed(record.pk, ("hrv_summary",), 0, 1, newest_first=True)
    return {**latest[0].data, "seq": latest[0].seq, "ts": iso(latest[0].ts)} if latest else None


@operation("Create (schedule) a session", SessionOut, status=201, roles=WRITERS, errors=(ErrorCode.CONFLICT,))
async def create_session(request: Request, principal: Principal, body: SessionCreate) -> dict[str, Any]:
    hub = hub_of(request)
    fields = body.fields(hub.settings.default_max_participants)
    fields["created_by"] = principal.user_id
    await check_parent(hub.store, principal, fields["attributes"])
    record = await hub.store.create_session(principal.account_id, fields)  # SessionExists: 409
    return session_json(record, 0)


@operation("List the account's sessions", SessionList)
async def list_sessions(request: Request, principal: Principal, query: SessionListQuery) -> dict[str, Any]:
    hub = hub_of(request)
    limit = query.limit
    records = await hub.store.list_sessions(
        principal.account_id, query.status, query.session_type, limit + 1, query.cursor
    )
    records = [r for r in records if can_open(principal, r.session_id)]
    page, more = records[:limit], len(records) > limit
    return {
        "count": len(page),
        "sessions": [session_json(r) for r in page],
        "next_cursor": page[-1].pk if more and page else None,
    }


@operation("List live sessions (in progress or paused)", LiveList, expensive=("include_metrics",))
async def live_sessions(request: Request, principal: Principal, query: LiveQuery) -> dict[str, Any]:
    hub = hub_of(request)
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
            "active": record.status == IN_PROGRESS,
            "started_at": iso(record.started_at) if record.started_at else None,
            "current_technique": record.current_technique,
            "head_seq": record.head_seq,
            "group_hrv": await latest_group_hrv(hub, record),
        }
        if query.include_metrics:
            metrics = await session_metrics(hub, record)
            metrics["current_hrv_improvement"] = metrics["average_hrv_improvement"]
        else:
            # What is known without reading the log; the full set costs a log read.
            metrics = {"message_count": record.head_seq, "participant_count": item["participant_count"]}
        item["metrics"] = metrics
        sessions.append(item)
    return {"count": len(sessions), "sessions": sessions}


@operation("Get a session record", SessionOut)
async def get_session(request: Request, record: SessionRecord) -> dict[str, Any]:
    return session_json(record, await participant_count(hub_of(request), record))


@operation(
    "Session content: info, metrics and replay", Content, expensive=("include_replay", "include_metrics")
)
async def session_content(
    request: Request, principal: Principal, record: SessionRecord, query: ContentQuery
) -> dict[str, Any]:
    hub = hub_of(request)
    members = await hub.presence.members(str(record.pk))
    participants = participant_list(members)
    body: dict[str, Any] = {
        "session_id": record.session_id,
        "title": record.title,
        "status": record.status,
        "active": record.status == IN_PROGRESS,
        "session_info": {
            **session_json(record, len(participants)),
            "participants": [
                {"participant_id": p["participant_id"], "name": p["name"]} for p in participants
            ],
        },
    }
    # A page of the replay: the events after `replay_since`, at most `replay_limit` (by
    # default the whole log); `next_since` continues it.
    since, limit = query.replay_since, query.replay_limit
    events: list[StoredEvent] = []
    if query.include_replay:
        events = await read_all(hub, record, since, limit)
    if query.include_metrics:  # of the whole log: read here only if the replay did not
        whole = query.include_replay and since == 0 and len(events) < limit
        archived = await archives_of(request).metrics(record)  # a trimmed log's, kept
        body["metrics"] = archived or await session_metrics(hub, record, events if whole else None)
    if query.include_replay:
        more = len(events) == limit and events[-1].seq < record.head_seq
        # A participant reads the log as its view holds it (hub/audience.py).
        messages = [_message(record, e) for e in await in_view(hub.store, record, principal.role, events)]
        body["replay"] = {
            "message_count": len(messages),
            "messages": messages,
            "next_since": events[-1].seq if more else None,
        }
        note = await archives_of(request).replay_note(record)
        if note is not None:  # retention trimmed the log: where it went
            body["replay"]["archived"] = note
    return body


def _message(record: SessionRecord, event: StoredEvent) -> dict[str, Any]:
    return {
        "type": event.type,
        "session_id": record.session_id,
        "seq": event.seq,
        "ts": iso(event.ts),
        "actor": event.actor,
        "data": event.data,
    }


@operation("A page of the session's event log", EventPage, expensive=True)
async def session_events(
    request: Request, principal: Principal, record: SessionRecord, query: EventsQuery
) -> dict[str, Any]:
    hub = hub_of(request)
    events = await in_view(
        hub.store, record, principal.role, await read_all(hub, record, query.since, query.limit)
    )
    return {
        "session_id": record.session_id,
        "head_seq": record.head_seq,
        "retained_from": record.retained_from,
        "events": [_message(record, e) for e in events],
    }


def _lifecycle(action: str) -> Any:
    """POST /api/v2/session/{id}/<action>: append the action's event (hub/lifecycle.py)."""
    event_type, extra = ACTIONS[action].event_type, ACTIONS[action].data
    legal_from = allowed_from(event_type, extra)

    @operation(
        f"Lifecycle: {action} ({event_type}; from {' or '.join(legal_from)})",
        LifecycleOut,
        roles=WRITERS,
        errors=(ErrorCode.CONFLICT,),
    )
    async def transition(
        request: Request, principal: Principal, record: SessionRecord, body: LifecycleBody | None
    ) -> dict[str, Any]:
        hub = hub_of(request)
        data: dict[str, Any] = dict(extra)
        if body is not None:
            data.update(body.model_dump(exclude_none=True))
        result = await hub.append(record, event_type, data, principal.actor)
        if result.error == ErrorCode.CONFLICT:
            raise Conflict(
                f"cannot {action} a session that is {result.status}",
                {"status": result.status, "allowed_from": list(legal_from)},
            )
        if result.error == ErrorCode.NOT_FOUND:
            raise NotFound(f"session '{record.session_id}' not found")
        fresh = await hub.store.get_session_by_pk(record.pk) or record
        body_out = session_json(fresh, await participant_count(hub, fresh))
        body_out["event"] = {"type": event_type, "seq": result.seq}
        return body_out

    transition.__name__ = f"{action}_session"
    return transition


routes = [
    Route("/api/v2/sessions/create", create_session, methods=["POST"]),
    Route("/api/v2/sessions", list_sessions, methods=["GET"]),
    Route("/api/v2/sessions/live", live_sessions, methods=["GET"]),
    Route("/api/v2/session/{session_id}", get_session, methods=["GET"]),
    Route("/api/v2/session/{session_id}/content", session_content, methods=["GET"]),
    Route("/api/v2/session/{session_id}/events", session_events, methods=["GET"]),
    *[
        Route(f"/api/v2/session/{{session_id}}/{action}", _lifecycle(action), methods=["POST"])
        for action in ACTIONS
    ],
]
