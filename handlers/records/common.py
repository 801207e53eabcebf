"""Shared by the records endpoints: the records store, list paging and filters, row JSON,
and the OpenAPI pieces every records module describes its endpoints with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request

from hub.events import iso
from hub.records.store import Page, RecordsStore
from hub.store import SessionRecord

from ..errors import ApiError, query_int
from ..formats import parse_time_param
from ..sessions import hub_of

READERS = ("participant", "instructor", "observer", "admin")
PARTICIPANTS = ("participant", "instructor", "admin")  # people in the session, not observers


def records_of(request: Request) -> RecordsStore:
    """The records store the composition root (`handlers.app`) built for this app."""
    store: RecordsStore | None = getattr(request.app.state, "records", None)
    if store is None:  # the app always sets it; an app without records cannot serve these
        raise ApiError(503, "unavailable", "session records are not available on this hub")
    return store


async def ensure_projected(request: Request, record: SessionRecord) -> None:
    """Read-your-writes: project what the log holds before answering from the records."""
    worker = hub_of(request).records
    if worker is not None:
        await worker.ensure(record.pk)


def page_from(request: Request, statuses: tuple[str, ...] = (), types: tuple[str, ...] | None = None) -> Page:
    """`limit`, `cursor`, `after`, `before`, `status`, `type` of a list request."""
    params = request.query_params
    status = params.get("status") or None
    if status is not None and status not in statuses:
        allowed = ", ".join(statuses) if statuses else "nothing (this list has no status)"
        raise ApiError(
            422, "invalid", f"query parameter 'status' must be one of {allowed}", {"field": "status"}
        )
    kind = params.get("type") or params.get("session_type") or None
    if kind is not None and types is not None and kind not in types:
        raise ApiError(
            422, "invalid", "query parameter 'type' must be one of " + ", ".join(types), {"field": "type"}
        )
    if kind is not None and len(kind) > 200:
        raise ApiError(422, "invalid", "query parameter 'type' is too long", {"field": "type"})
    after = parse_time_param(params.get("after"), "after")
    before = parse_time_param(params.get("before"), "before")
    return Page(
        limit=query_int(request, "limit", 50, 1, 500) or 50,
        cursor=query_int(request, "cursor", None, 0, 2**62),
        after=after,
        before=before,
        status=status,
        type=kind,
    )


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    return value


def row_json(row: Any, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    return {key: jsonable(value) for key, value in dict(row).items() if key not in drop}


def listing(name: str, items: list[Any], cursor: int | None) -> dict[str, Any]:
    return {"count": len(items), name: items, "next_cursor": cursor}


# OpenAPI

ERROR = {"$ref": "#/components/schemas/Error"}
SESSION_ID = {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}
LIST_PARAMS = [
    {"name": name, "in": "query", "required": False, "schema": {"type": kind}, "description": text}
    for name, kind, text in (
        ("limit", "integer", "page size, 1-500 (default 50)"),
        ("cursor", "integer", "next_cursor of the previous page"),
        ("after", "string", "only items at or after this ISO-8601 time"),
        ("before", "string", "only items before this ISO-8601 time"),
        ("status", "string", "status filter (values per endpoint)"),
        ("type", "string", "type filter (values per endpoint)"),
    )
]


def op(
    summary: str,
    ok: str = "200",
    body: str | None = None,
    params: list[Any] | None = None,
    errors: tuple[int, ...] = (401, 403, 404),
    listed: bool = False,
) -> dict[str, Any]:
    described: dict[str, Any] = {
        "summary": summary,
        "responses": {
            ok: {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
            **{
                str(s): {"description": "error", "content": {"application/json": {"schema": ERROR}}}
                for s in errors
            },
        },
    }
    if body:
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    parameters = list(params or []) + (LIST_PARAMS if listed else [])
    if parameters:
        described["parameters"] = parameters
    return described


# request bodies


def want_str(
    body: dict[str, Any], errors: Any, name: str, high: int, required: bool = False, alias: str | None = None
) -> str | None:
    value = body.get(name, body.get(alias) if alias else None)
    if value is None:
        if required:
            errors.add(name, "is required")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        errors.add(name, "must be a non-empty string" if required else "must be a string")
        return None
    if len(value) > high:
        errors.add(name, f"must be at most {high} characters")
    return value


def want_bool(body: dict[str, Any], errors: Any, name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        errors.add(name, "must be true or false")
        return None
    return value


def want_int(
    body: dict[str, Any],
    errors: Any,
    name: str,
    low: int,
    high: int,
    required: bool = False,
    alias: str | None = None,
) -> int | None:
    value = body.get(name, body.get(alias) if alias else None)
    if value is None:
        if required:
            errors.add(name, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors.add(name, f"must be a whole number from {low} to {high}")
        return None
    return value


def want_choice(
    body: dict[str, Any], errors: Any, name: str, choices: tuple[str, ...], required: bool = False
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            errors.add(name, "is required")
        return None
    if value not in choices:
        errors.add(name, "must be one of " + ", ".join(choices))
        return None
    return str(value)
