"""Validation of session records over HTTP (seed 003's rules table where its fields apply)
and the JSON shape of a session record."""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from typing import Any

from hub.events import iso
from hub.store import SessionRecord

from .errors import ApiError
from .formats import SESSION_ID_PATTERN, parse_datetime
from .records.fields import validate_record_fields

BASE_SESSION_TYPES = ("live", "guided", "practice", "workshop", "coaching", "interview", "agent")
_CORE = {
    "session_id",
    "title",
    "session_type",
    "instructor",
    "instructor_name",
    "max_participants",
    "scheduled_start",
}


def session_types() -> tuple[str, ...]:
    extra = [t.strip() for t in os.environ.get("HUB_SESSION_TYPES", "").split(",") if t.strip()]
    return BASE_SESSION_TYPES + tuple(extra)


class FieldErrors:
    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append({"field": field, "message": message})

    def raise_if_any(self) -> None:
        if self.errors:
            first = self.errors[0]
            raise ApiError(422, "invalid", f"{first['field']}: {first['message']}", {"errors": self.errors})


def _text(
    body: dict[str, Any], errors: FieldErrors, name: str, high: int, required: bool = False
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            errors.add(name, "is required")
        return None
    if not isinstance(value, str):
        errors.add(name, "must be a string")
        return None
    if required and not value.strip():
        errors.add(name, "must not be empty")
    if len(value) > high:
        errors.add(name, f"must be at most {high} characters")
    return value


def validate_create(body: dict[str, Any], default_max: int) -> dict[str, Any]:
    """The fields of a new session, or ApiError 422 naming every problem."""
    errors = FieldErrors()
    session_id = body.get("session_id")
    if session_id is None:
        session_id = f"sess-{uuid.uuid4().hex[:12]}"
    elif not isinstance(session_id, str) or not SESSION_ID_PATTERN.match(session_id):
        errors.add("session_id", "must be 1-100 characters of letters, digits, '.', '_', ':' or '-'")
    title = _text(body, errors, "title", 200, required=True)
    session_type = body.get("session_type", "live")
    if session_type not in session_types():
        errors.add("session_type", "must be one of " + ", ".join(session_types()))
    instructor = _text(body, errors, "instructor", 100)
    if instructor is None:
        instructor = _text(body, errors, "instructor_name", 100)
    if session_type == "live" and not (instructor and instructor.strip()):
        errors.add("instructor", "is required for live sessions")
    max_participants = body.get("max_participants", default_max)
    if isinstance(max_participants, bool) or not isinstance(max_participants, int):
        errors.add("max_participants", "must be a whole number")
    elif not 1 <= max_participants <= 1000:
        errors.add("max_participants", "must be between 1 and 1000")
    elif session_type == "workshop" and max_participants < 5:
        errors.add("max_participants", "must be at least 5 for workshops")
    scheduled_start = None
    if body.get("scheduled_start") is not None:
        scheduled_start = parse_datetime(body["scheduled_start"])
        if scheduled_start is None:
            errors.add("scheduled_start", "must be an ISO-8601 date-time with a time zone")
    duration = body.get("session_duration")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, int) or not 1 <= duration <= 7200
    ):
        errors.add("session_duration", "must be a whole number of seconds from 1 to 7200")
    techniques = body.get("breathing_techniques")
    if techniques is not None:
        if not isinstance(techniques, list) or not all(isinstance(t, str) and t.strip() for t in techniques):
            errors.add("breathing_techniques", "must be a list of non-empty strings")
        elif not 1 <= len(techniques) <= 10:
            errors.add("breathing_techniques", "must hold 1 to 10 techniques")
    # The seeds' record fields (intention, indicators, rating, hierarchy, state, follow-ups).
    validate_record_fields(body, errors)
    errors.raise_if_any()
    attributes = {k: v for k, v in body.items() if k not in _CORE}
    return {
        "session_id": session_id,
        "title": title,
        "session_type": session_type,
        "instructor": instructor,
        "max_participants": max_participants,
        "scheduled_start": scheduled_start,
        "attributes": attributes,
    }


def _when(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def session_json(record: SessionRecord, participant_count: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = dict(record.attributes)
    body.update(
        {
            "session_id": record.session_id,
            "account_id": record.account_id,
            "title": record.title,
            "session_type": record.session_type,
            "status": record.status,
            "active": record.status == "in_progress",
            "instructor": record.instructor,
            "max_participants": record.max_participants,
            "scheduled_start": _when(record.scheduled_start),
            "started_at": _when(record.started_at),
            "ended_at": _when(record.ended_at),
            "current_technique": record.current_technique,
            "head_seq": record.head_seq,
            "created_at": _when(record.created_at),
            "updated_at": _when(record.updated_at),
        }
    )
    if participant_count is not None:
        body["participant_count"] = participant_count
    return body
