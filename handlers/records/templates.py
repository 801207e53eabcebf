"""Planning ahead: session templates (seed 000) and daily follow-ups (seed 002)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from annotated_types import Interval, Len, MaxLen
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.routing import Route

from hub.connection import Principal
from hub.errors import Conflict, ErrorCode, Forbidden, NotFound
from hub.events import iso
from hub.records.summaries import check_in_prompt, follow_up_due
from hub.store import SessionRecord
from hub.validation import Problem, parse
from hub.values import STRICT, AwareDatetime, Cursor
from storage.records.catalog import Conflict as Taken
from storage.records.catalog import NotFound as Missing

from ..api import hub_of, operation
from ..auth import can_open
from ..query import QueryInt, query_model
from ..session_fields import SessionCreate, SessionOut, SessionType, Title, session_json
from ..sessions import WRITERS
from .common import Listing, PageQuery, listing, records_of, row_json, type_filter
from .content import RowId
from .fields import DurationMinutes, FollowUpTime, Items, LongText, RecordFields, TimeZone, check_parent

_TEMPLATE_DEFAULTS = {  # template column -> the session field it fills
    "default_intention": "intention",
    "default_success_indicators": "success_indicators",
    "default_completion_indicators": "completion_indicators",
    "default_constraints": "constraints",
    "default_procedure_notes": "procedure_notes",
    "default_duration_minutes": "scheduled_duration_minutes",
}


class TemplateCreate(BaseModel):
    """A template; its defaults follow the rules of the session fields they fill."""

    model_config = STRICT

    template_name: Title
    template_description: Annotated[str, MaxLen(4000)] | None = None
    session_type: SessionType = "live"
    suggested_for_event_types: list[Annotated[str, Len(1, 100)]] | None = None
    default_intention: LongText | None = None
    default_success_indicators: Items | None = None
    default_completion_indicators: Items | None = None
    default_constraints: Items | None = None
    default_procedure_notes: LongText | None = None
    default_duration_minutes: DurationMinutes | None = None
    defaults: RecordFields | None = Field(None, description="other session fields")
    is_active: bool | None = None

    def fields(self) -> dict[str, Any]:
        fields = self.model_dump(mode="json", exclude={"defaults"})
        fields["suggested_for_event_types"] = self.suggested_for_event_types or []
        defaults = self.defaults.model_dump(mode="json", exclude_unset=True) if self.defaults else {}
        fields["defaults"] = defaults
        return fields


class TemplateOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    template_id: int
    id: int
    template_name: str
    template_description: str | None
    session_type: str
    suggested_for_event_types: list[str]
    defaults: dict[str, Any]
    is_active: bool
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class Templates(Listing):
    templates: list[TemplateOut]


class TemplatesQuery(PageQuery):
    status: Literal["active", "inactive"] | None = None
    type: SessionType | None = type_filter("session_type")


def _template_json(row: Any) -> dict[str, Any]:
    return row_json(row) | {"template_id": row["id"]}


@operation("Create a session template", TemplateOut, status=201, roles=WRITERS, errors=(ErrorCode.CONFLICT,))
async def create_template(request: Request, principal: Principal, body: TemplateCreate) -> dict[str, Any]:
    fields = body.fields()
    try:
        row = await records_of(request).catalog.add_template(principal.account_id, fields, principal.user_id)
    except Taken:
        raise Conflict(f"template '{body.template_name}' already exists") from None
    return _template_json(row)


@operation("Templates (status = active|inactive, type = session_type)", Templates)
async def list_templates(request: Request, principal: Principal, query: TemplatesQuery) -> dict[str, Any]:
    rows, cursor = await records_of(request).catalog.templates(principal.account_id, query.page())
    return listing("templates", [_template_json(r) for r in rows], cursor)


async def _template(request: Request, account_id: str, template_id: int) -> Any:
    try:
        return await records_of(request).catalog.template(account_id, template_id)
    except Missing:
        raise NotFound(f"template '{template_id}' not found") from None


@operation("A template", TemplateOut)
async def get_template(request: Request, principal: Principal, template_id: RowId) -> dict[str, Any]:
    return _template_json(await _template(request, principal.account_id, template_id))


class SessionOverrides(SessionCreate):
    """Fields of the new session; each one overrides the template's default."""

    title: Title | None = None  # type: ignore[assignment]

    @classmethod
    def conditions(cls, data: dict[str, Any]) -> list[Problem]:
        return []  # the merged session is checked whole, with the template's defaults


@operation(
    "Create a session from a template; body fields override its defaults",
    SessionOut,
    status=201,
    roles=WRITERS,
    errors=(ErrorCode.CONFLICT,),
)
async def session_from_template(
    request: Request, principal: Principal, template_id: RowId, body: SessionOverrides | None
) -> dict[str, Any]:
    """A new session with the template's defaults; the body's fields override them."""
    hub = hub_of(request)
    template = await _template(request, principal.account_id, template_id)
    if not template["is_active"]:
        raise Conflict(f"template {template['id']} is not active")
    base: dict[str, Any] = {**template["defaults"], "title": template["template_name"]}
    base["session_type"] = template["session_type"]
    for column, field in _TEMPLATE_DEFAULTS.items():
        if template[column] is not None:
            base[field] = list(template[column]) if column == "default_constraints" else template[column]
    base["template_id"] = template["id"]
    overrides = body.model_dump(mode="json", exclude_unset=True) if body is not None else {}
    created = parse(SessionCreate, {**base, **overrides})
    fields = created.fields(hub.settings.default_max_participants)
    fields["created_by"] = principal.user_id
    await check_parent(hub.store, principal.account_id, fields["attributes"])
    record = await hub.store.create_session(principal.account_id, fields)  # SessionExists: 409
    return session_json(record, 0)


# follow-ups


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


@operation("Due daily follow-ups with a check-in prompt", DueFollowUps)
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
    Route("/api/v2/templates", create_template, methods=["POST"]),
    Route("/api/v2/templates", list_templates, methods=["GET"]),
    Route("/api/v2/templates/{template_id}", get_template, methods=["GET"]),
    Route("/api/v2/templates/{template_id}/sessions", session_from_template, methods=["POST"]),
    Route("/api/v2/sessions/followups/due", due_follow_ups, methods=["GET"]),
    Route("/api/v2/session/{session_id}/follow-up", get_follow_up, methods=["GET"]),
    Route("/api/v2/session/{session_id}/follow-up", put_follow_up, methods=["PUT"]),
    Route("/api/v2/session/{session_id}/follow-up/sent", mark_sent, methods=["POST"]),
]
