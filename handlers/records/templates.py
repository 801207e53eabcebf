"""Session templates (seed 000): an account's reusable defaults, and sessions created from them."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.records.store import Conflict, NotFound
from hub.store import SessionExists

from ..errors import ApiError, json_response, read_json_object
from ..session_fields import FieldErrors, session_json, session_types, validate_create
from ..sessions import WRITERS, caller, hub_of
from .common import (
    listing,
    op,
    page_from,
    records_of,
    row_json,
    want_bool,
    want_str,
)
from .fields import check_parent, validate_record_fields

_TEMPLATE_DEFAULTS = {  # template column -> the session field it fills
    "default_intention": "intention",
    "default_success_indicators": "success_indicators",
    "default_completion_indicators": "completion_indicators",
    "default_constraints": "constraints",
    "default_procedure_notes": "procedure_notes",
    "default_duration_minutes": "scheduled_duration_minutes",
}


def _template_fields(body: dict[str, Any]) -> dict[str, Any]:
    errors = FieldErrors()
    fields: dict[str, Any] = {
        "template_name": want_str(body, errors, "template_name", 200, required=True),
        "template_description": want_str(body, errors, "template_description", 4000),
        "is_active": want_bool(body, errors, "is_active"),
    }
    session_type = body.get("session_type", "live")
    if session_type not in session_types():
        errors.add("session_type", "must be one of " + ", ".join(session_types()))
    fields["session_type"] = session_type
    suggested = body.get("suggested_for_event_types") or []
    if not isinstance(suggested, list) or not all(
        isinstance(s, str) and 0 < len(s) <= 100 for s in suggested
    ):
        errors.add("suggested_for_event_types", "must be a list of strings of 1 to 100 characters")
    fields["suggested_for_event_types"] = suggested
    # The defaults follow the same rules as the session fields they fill.
    as_session = {field: body[column] for column, field in _TEMPLATE_DEFAULTS.items() if column in body}
    checked = validate_record_fields(as_session, _Renamed(errors))
    for column, field in _TEMPLATE_DEFAULTS.items():
        fields[column] = checked.get(field)
    defaults = body.get("defaults") or {}
    if not isinstance(defaults, dict):
        errors.add("defaults", "must be a JSON object of session fields")
    else:
        validate_record_fields(defaults, _Renamed(errors, "defaults."))
    fields["defaults"] = defaults if isinstance(defaults, dict) else {}
    errors.raise_if_any()
    return fields


class _Renamed:
    """Report a session field's problem under the template's name for it."""

    def __init__(self, errors: FieldErrors, prefix: str = ""):
        self.errors, self.prefix = errors, prefix
        self.names = {field: column for column, field in _TEMPLATE_DEFAULTS.items()}

    def add(self, field: str, message: str) -> None:
        name = field if self.prefix else self.names.get(field, field)
        self.errors.add(self.prefix + name, message)


def _template_json(row: Any) -> dict[str, Any]:
    return row_json(row) | {"template_id": row["id"]}


async def create_template(request: Request) -> Response:
    principal = caller(request, WRITERS)
    body = await read_json_object(request, hub_of(request).settings.max_body_bytes)
    fields = _template_fields(body)
    try:
        row = await records_of(request).catalog.add_template(principal.account_id, fields, principal.user_id)
    except Conflict:
        raise ApiError(409, "conflict", f"template '{fields['template_name']}' already exists") from None
    return json_response(_template_json(row), 201)


async def list_templates(request: Request) -> Response:
    principal = caller(request)
    page = page_from(request, ("active", "inactive"), session_types())
    rows, cursor = await records_of(request).catalog.templates(principal.account_id, page)
    return json_response(listing("templates", [_template_json(r) for r in rows], cursor))


async def _template(request: Request, account_id: str) -> Any:
    raw = request.path_params["template_id"]
    try:
        if not raw.isdigit():
            raise NotFound(raw)
        return await records_of(request).catalog.template(account_id, int(raw))
    except (NotFound, OverflowError):
        raise ApiError(404, "not_found", f"template '{raw[:50]}' not found") from None


async def get_template(request: Request) -> Response:
    principal = caller(request)
    return json_response(_template_json(await _template(request, principal.account_id)))


async def session_from_template(request: Request) -> Response:
    """A new session with the template's defaults; the body's fields override them."""
    principal = caller(request, WRITERS)
    hub = hub_of(request)
    template = await _template(request, principal.account_id)
    if not template["is_active"]:
        raise ApiError(409, "conflict", f"template {template['id']} is not active")
    overrides: dict[str, Any] = {}
    if request.headers.get("content-length") not in (None, "0"):
        overrides = await read_json_object(request, hub.settings.max_body_bytes)
    base: dict[str, Any] = {**template["defaults"], "title": template["template_name"]}
    base["session_type"] = template["session_type"]
    for column, field in _TEMPLATE_DEFAULTS.items():
        if template[column] is not None:
            base[field] = list(template[column]) if column == "default_constraints" else template[column]
    base["template_id"] = template["id"]
    fields = validate_create({**base, **overrides}, hub.settings.default_max_participants)
    fields["created_by"] = principal.user_id
    await check_parent(hub.store, principal, fields["attributes"])
    try:
        record = await hub.store.create_session(principal.account_id, fields)
    except SessionExists:
        raise ApiError(409, "conflict", f"session '{fields['session_id']}' already exists") from None
    return json_response(session_json(record, 0), 201)


routes = [
    Route("/api/v2/templates", create_template, methods=["POST"]),
    Route("/api/v2/templates", list_templates, methods=["GET"]),
    Route("/api/v2/templates/{template_id}", get_template, methods=["GET"]),
    Route("/api/v2/templates/{template_id}/sessions", session_from_template, methods=["POST"]),
]

_TEMPLATE_ID = {"name": "template_id", "in": "path", "required": True, "schema": {"type": "integer"}}
openapi_paths: dict[str, Any] = {
    "/api/v2/templates": {
        "post": op(
            "Create a session template", "201", "TemplateCreate", errors=(400, 401, 403, 409, 413, 422)
        ),
        "get": op("Templates (status = active|inactive, type = session_type)", listed=True),
    },
    "/api/v2/templates/{template_id}": {"get": op("A template", params=[_TEMPLATE_ID])},
    "/api/v2/templates/{template_id}/sessions": {
        "post": op(
            "Create a session from a template; body fields override its defaults",
            "201",
            "SessionCreate",
            [_TEMPLATE_ID],
            (400, 401, 403, 404, 409, 413, 422),
        )
    },
}

openapi_schemas: dict[str, Any] = {
    "TemplateCreate": {
        "type": "object",
        "required": ["template_name"],
        "properties": {
            "template_name": {"type": "string", "maxLength": 200},
            "template_description": {"type": "string"},
            "session_type": {"type": "string"},
            "suggested_for_event_types": {"type": "array", "items": {"type": "string"}},
            "default_intention": {"type": "string"},
            "default_success_indicators": {"type": "array", "items": {"type": "string"}},
            "default_completion_indicators": {"type": "array", "items": {"type": "string"}},
            "default_constraints": {"type": "array", "items": {"type": "string"}},
            "default_procedure_notes": {"type": "string"},
            "default_duration_minutes": {"type": "integer", "minimum": 1, "maximum": 1440},
            "defaults": {"type": "object", "description": "other session fields"},
            "is_active": {"type": "boolean"},
        },
    },
}
