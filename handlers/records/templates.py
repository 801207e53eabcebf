"""Session templates (seed 000): an account's reusable defaults, and sessions created from them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from annotated_types import Len, MaxLen
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.routing import Route

from hub.connection import Principal
from hub.errors import Conflict, ErrorCode
from hub.validation import Problem, parse
from hub.values import STRICT

from ..api import hub_of, operation
from ..query import RowId
from ..session_fields import SessionCreate, SessionOut, SessionType, Title, session_json
from ..sessions import WRITERS
from .common import Listing, PageQuery, listing, records_of, row_json, type_filter
from .fields import DurationMinutes, Items, LongText, RecordFields, check_parent

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
    catalog = records_of(request).catalog  # the name taken: 409
    return _template_json(await catalog.add_template(principal.account_id, body.fields(), principal.user_id))


@operation("Templates (status = active|inactive, type = session_type)", Templates)
async def list_templates(request: Request, principal: Principal, query: TemplatesQuery) -> dict[str, Any]:
    found = await records_of(request).catalog.templates(principal.account_id, query.page())
    return listing("templates", found, _template_json)


async def _template(request: Request, account_id: str, template_id: int) -> Any:
    return await records_of(request).catalog.template(account_id, template_id)  # none: 404


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
    await check_parent(hub.store, principal, fields["attributes"])
    record = await hub.store.create_session(principal.account_id, fields)  # SessionExists: 409
    return session_json(record, 0)


routes = [
    Route("/api/v2/templates", create_template, methods=["POST"]),
    Route("/api/v2/templates", list_templates, methods=["GET"]),
    Route("/api/v2/templates/{template_id}", get_template, methods=["GET"]),
    Route("/api/v2/templates/{template_id}/sessions", session_from_template, methods=["POST"]),
]
