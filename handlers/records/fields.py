"""A session's record fields (seeds 000, 001, 002, 004) as one model, shared by create,
PATCH, the follow-up settings and templates. The fields are stored in the session's
attributes; migration 010 checks the typed ones again in the database."""

from __future__ import annotations

import re
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from annotated_types import Interval, Len, MaxLen
from pydantic import BaseModel, BeforeValidator, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from hub.connection import Principal
from hub.errors import Invalid
from hub.values import STRICT, SessionId

from ..auth import can_open

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def _hhmm(value: Any) -> Any:
    if isinstance(value, str) and not _HHMM.match(value):
        raise PydanticCustomError("pattern", "must be a time of day as HH:MM (00:00 to 23:59)")
    return value


def _zone(value: Any) -> Any:
    if isinstance(value, str):
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError("time_zone", "must be an IANA time zone such as Europe/Paris") from None
    return value


def _read_only(value: Any) -> Any:
    raise PydanticCustomError("read_only", "is set by the hub and cannot be written")


Items = Annotated[list[Annotated[str, Len(1, 1000)]], MaxLen(50)]
LongText = Annotated[str, MaxLen(10_000)]
DurationMinutes = Annotated[int, Interval(ge=1, le=1440)]
FollowUpTime = Annotated[str, BeforeValidator(_hhmm), Field(pattern=_HHMM.pattern)]
TimeZone = Annotated[str, BeforeValidator(_zone), Field(max_length=100, examples=["Europe/Paris"])]
ReadOnly = Annotated[
    Any,
    PlainValidator(_read_only),
    WithJsonSchema({"type": ["string", "null"], "format": "date-time", "readOnly": True}),
]


class RecordFields(BaseModel):
    """Every field may be left out; on create a null is simply not stored, on PATCH it
    clears the field."""

    model_config = STRICT

    intention: LongText | None = None
    procedure_notes: LongText | None = None
    summary: Annotated[str, MaxLen(20_000)] | None = None
    next_plan: Annotated[str, MaxLen(20_000)] | None = None
    followup_notes: Annotated[str, MaxLen(4_000)] | None = None
    next_session_suggestion: Annotated[str, MaxLen(4_000)] | None = None
    purpose: Annotated[str, MaxLen(4_000)] | None = None
    business_context: Annotated[str, MaxLen(4_000)] | None = None
    learning_outcomes: LongText | None = None
    primary_topic: Annotated[str, MaxLen(200)] | None = None
    session_source: Annotated[str, MaxLen(100)] | None = None
    success_indicators: Items | None = None
    completion_indicators: Items | None = None
    constraints: Items | None = None
    met_indicators: Annotated[list[Annotated[str, Len(1, 1000)]], MaxLen(100)] | None = None
    tags: Annotated[list[Annotated[str, Len(1, 100)]], MaxLen(50)] | None = None
    scheduled_duration_minutes: DurationMinutes | None = None
    actual_duration_minutes: Annotated[int, Interval(ge=0, le=100_000)] | None = None
    success_rating: Annotated[int, Interval(ge=1, le=5)] | None = None
    completion_percentage: Annotated[int, Interval(ge=0, le=100)] | None = None
    needs_followup: bool | None = None
    follow_up_enabled: bool | None = None
    follow_up_time: FollowUpTime | None = None
    follow_up_timezone: TimeZone | None = None
    owner_user_id: Annotated[str, Len(1, 200)] | None = None
    parent_session_id: SessionId | None = Field(None, description="a session of the same account")
    state: dict[str, Any] | None = Field(None, description="free-form; PATCH merges it key by key")
    last_follow_up_at: ReadOnly = Field(None, description="set by the hub when a follow-up is sent")


RECORD_FIELDS = frozenset(RecordFields.model_fields) - {"last_follow_up_at"}


def record_values(body: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    """The record fields a validated `body` sets; with `partial` (PATCH) a null clears."""
    return {k: v for k, v in body.items() if k in RECORD_FIELDS and (partial or v is not None)}


async def check_parent(store: Any, principal: Principal, attributes: dict[str, Any]) -> None:
    """A session's parent must be a session of the same account that the caller's token
    may open (422 otherwise, the same answer for both): the database's foreign key would
    refuse another account's too, but only with a generic error."""
    parent = attributes.get("parent_session_id")
    if isinstance(parent, str) and (
        not can_open(principal, parent) or await store.get_session(principal.account_id, parent) is None
    ):
        message = f"session '{parent}' not found in this account"
        problem = {"field": "parent_session_id", "rule": "exists", "message": message}
        raise Invalid(f"parent_session_id: {message}", {**problem, "errors": [problem]})
