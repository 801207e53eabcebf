"""Daily follow-ups over HTTP (seed 002): a session's settings, marking today's check-in
sent, and the account's due check-ins with their prompts (rules in `hub.records.follow_ups`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from annotated_types import Interval
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.routing import Route

from hub.connection import Principal
from hub.errors import Forbidden
from hub.events import iso
from hub.records.follow_ups import check_in_prompt, follow_up_due
from hub.store import SessionRecord
from hub.values import STRICT, AwareDatetime, Cursor

from ..api import operation
from ..auth import can_open
from ..query import QueryInt, query_model
from ..session_fields import SessionType
from ..sessions import WRITERS
from .common import Listing, records_of, type_filter
from .fields import FollowUpTime, TimeZone


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


class FollowUp(BaseModel):
    session_id: str
    coach_session_id: str = Field(description="the same as session_id (seed 002's name)")
    title: str
    status: str
    primary_topic: str | None
    follow_up_enabled: bool
    follow_up_time: str | None
    follow_up_timezone: str
    last_follow_up_at: str | None
    due: bool
    prompt: str = Field(description="the check-in prompt to send")


class FollowUpSettings(BaseModel):
    model_config = STRICT

    follow_up_enabled: bool | None = None
    follow_up_time: FollowUpTime | None = None
    follow_up_timezone: TimeZone | None = Field(None, description="IANA zone, default UTC")


class DueQuery(BaseModel):
    model_config = query_model()

    at: AwareDatetime | None = Field(None, description="evaluate at (default: now)")
    limit: QueryInt[Annotated[int, Interval(ge=1, le=500)]] = 50
    cursor: QueryInt[Cursor] | None = None
    type: SessionType | None = type_filter("session_type")


class DueFollowUps(Listing):
    at: datetime
    followups: list[FollowUp]


def _may_manage(principal: Principal, record: SessionRecord) -> None:
    if principal.role not in WRITERS and principal.user_id != record.attributes.get("owner_user_id"):
        raise Forbidden(f"role '{principal.role}' may not change this session's follow-ups")


@operation("Follow-up settings and whether one is due", FollowUp)
async def get_follow_up(record: SessionRecord) -> dict[str, Any]:
    return _follow_up_json(record, datetime.now(UTC))


@operation("Change follow-up settings", FollowUp)
async def put_follow_up(
    request: Request, principal: Principal, record: SessionRecord, body: FollowUpSettings
) -> dict[str, Any]:
    _may_manage(principal, record)
    changes = body.model_dump(mode="json", exclude_unset=True)
    record = await records_of(request).sessions.update(record.pk, changes)
    return _follow_up_json(record, datetime.now(UTC))


@operation("Mark today's follow-up sent", FollowUp)
async def mark_sent(request: Request, principal: Principal, record: SessionRecord) -> dict[str, Any]:
    _may_manage(principal, record)
    now = datetime.now(UTC)
    record = await records_of(request).sessions.update(record.pk, {"last_follow_up_at": iso(now)})
    return _follow_up_json(record, now)


@operation("Due daily follow-ups with a check-in prompt", DueFollowUps, expensive=True)
async def due_follow_ups(request: Request, principal: Principal, query: DueQuery) -> dict[str, Any]:
    """Seed 002's due check-ins of the caller's account (a participant sees their own)."""
    at = query.at or datetime.now(UTC)
    limit, cursor = query.limit, query.cursor
    store = records_of(request).sessions
    due: list[dict[str, Any]] = []
    next_cursor = None
    while len(due) <= limit:
        batch = await store.follow_up_candidates(principal.account_id, query.type, cursor, 200)
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
    return {"count": len(due), "at": iso(at), "followups": due, "next_cursor": next_cursor}


routes = [
    Route("/api/v2/sessions/followups/due", due_follow_ups, methods=["GET"]),
    Route("/api/v2/session/{session_id}/follow-up", get_follow_up, methods=["GET"]),
    Route("/api/v2/session/{session_id}/follow-up", put_follow_up, methods=["PUT"]),
    Route("/api/v2/session/{session_id}/follow-up/sent", mark_sent, methods=["POST"]),
]
