"""A session record over HTTP: the create body (seed 003's rules where its fields apply,
and the record fields of the other seeds), and the record as the API answers it."""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from typing import Annotated, Any

from annotated_types import Interval, Len, MaxLen
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from hub.audience import AUDIENCE_KEY, AudienceError, validate_overrides
from hub.events import iso
from hub.lifecycle import IN_PROGRESS, STATUSES
from hub.store import SessionRecord
from hub.validation import WORKSHOP_MINIMUM, Conditional, Problem, required_for_live, workshop_minimum
from hub.values import INT64_MAX, AwareDatetime, SessionId

from .records.fields import RecordFields

BASE_SESSION_TYPES = ("live", "guided", "practice", "workshop", "coaching", "interview", "agent")
# Columns of their own; every other field of a create body is kept in the attributes.
_COLUMNS = {
    "session_id",
    "title",
    "session_type",
    "instructor",
    "instructor_name",
    "max_participants",
    "scheduled_start",
    AUDIENCE_KEY,
}


def session_types() -> tuple[str, ...]:
    extra = [t.strip() for t in os.environ.get("HUB_SESSION_TYPES", "").split(",") if t.strip()]
    return BASE_SESSION_TYPES + tuple(extra)


def _known_type(value: str) -> str:
    if value not in session_types():
        raise PydanticCustomError(
            "choice", "must be one of {choices}", {"choices": ", ".join(session_types())}
        )
    return value


def not_blank(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise PydanticCustomError("min_length", "must not be empty")
    return value


SessionType = Annotated[
    str,
    MaxLen(100),
    AfterValidator(_known_type),
    Field(description="one of " + ", ".join(BASE_SESSION_TYPES) + " (and HUB_SESSION_TYPES)"),
]
Title = Annotated[str, BeforeValidator(not_blank), Len(1, 200)]
Person = Annotated[str, MaxLen(100)]


class SessionCreate(RecordFields, Conditional):
    session_id: SessionId | None = Field(None, description="default: a generated `sess-…` id")
    title: Title
    session_type: SessionType = "live"
    instructor: Person | None = Field(None, description="required for live sessions")
    instructor_name: Person | None = Field(None, description="the same as `instructor` (seed 003's name)")
    max_participants: Annotated[int, Interval(ge=1, le=1000)] | None = Field(
        None, description=f"default HUB_DEFAULT_MAX_PARTICIPANTS; at least {WORKSHOP_MINIMUM} for workshops"
    )
    scheduled_start: AwareDatetime | None = None
    session_duration: Annotated[int, Interval(ge=1, le=7200)] | None = Field(None, description="seconds")
    breathing_techniques: (
        Annotated[list[Annotated[str, BeforeValidator(not_blank), Len(1, 200)]], Len(1, 10)] | None
    ) = None
    template_id: Annotated[int, Interval(ge=1, le=INT64_MAX)] | None = Field(
        None, description="the template the session was made from"
    )
    audience: dict[str, Any] | None = Field(
        None, description="event type -> `everyone` or `staff`: this session's audience overrides"
    )

    @classmethod
    def conditions(cls, data: dict[str, Any]) -> list[Problem]:
        session_type = data.get("session_type", "live")
        lead = data.get("instructor")
        lead = data.get("instructor_name") if lead is None else lead
        found = required_for_live("instructor", session_type, lead)
        found += workshop_minimum("max_participants", session_type, data.get("max_participants"))
        if isinstance(data.get(AUDIENCE_KEY), dict):
            try:
                validate_overrides(data[AUDIENCE_KEY])
            except AudienceError as exc:
                found.extend({**e, "rule": "audience"} for e in exc.errors)
        return found

    @property
    def lead(self) -> str | None:
        return self.instructor if self.instructor is not None else self.instructor_name

    def fields(self, default_max: int) -> dict[str, Any]:
        """What the store writes: the columns, and every other field in the attributes."""
        return {
            "session_id": self.session_id or f"sess-{uuid.uuid4().hex[:12]}",
            "title": self.title,
            "session_type": self.session_type,
            "instructor": self.lead,
            "max_participants": self.max_participants or default_max,
            "scheduled_start": self.scheduled_start,
            "attributes": self.model_dump(mode="json", exclude=_COLUMNS, exclude_none=True),
            "audience": validate_overrides(self.audience) if self.audience else {},
        }


class SessionOut(BaseModel):
    """A session record: its columns, then every record field it has."""

    model_config = ConfigDict(extra="allow")

    session_id: str
    account_id: str
    title: str
    session_type: str
    status: str = Field(description=" | ".join(STATUSES))
    active: bool = Field(description="status is in_progress")
    instructor: str | None
    max_participants: int
    scheduled_start: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    current_technique: dict[str, Any] | None
    head_seq: int
    created_at: datetime | None
    updated_at: datetime | None
    participant_count: int | None = Field(None, description="members present now (not in listings)")


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
            "active": record.status == IN_PROGRESS,
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
