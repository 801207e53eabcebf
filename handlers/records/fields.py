"""Validation of a session's record fields (seeds 000, 001, 002, 004), shared by create,
PATCH and create-from-template. The fields are stored in the session's attributes;
migration 010 checks the typed ones again in the database."""

from __future__ import annotations

from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.connection import Principal
from hub.records.follow_ups import parse_hhmm

from ..auth import can_open
from ..errors import ApiError
from ..formats import SESSION_ID_PATTERN

_TEXTS = {
    "intention": 10_000,
    "procedure_notes": 10_000,
    "summary": 20_000,
    "next_plan": 20_000,
    "followup_notes": 4_000,
    "next_session_suggestion": 4_000,
    "purpose": 4_000,
    "business_context": 4_000,
    "learning_outcomes": 10_000,
    "primary_topic": 200,
    "session_source": 100,
}
_LISTS = {  # name -> (max items, max length of each)
    "success_indicators": (50, 1000),
    "completion_indicators": (50, 1000),
    "constraints": (50, 1000),
    "met_indicators": (100, 1000),
    "tags": (50, 100),
}
_INTS = {  # name -> (low, high)
    "scheduled_duration_minutes": (1, 1440),
    "actual_duration_minutes": (0, 100_000),
    "success_rating": (1, 5),
    "completion_percentage": (0, 100),
}
_BOOLS = ("needs_followup", "follow_up_enabled")
# Set by the hub only: the projector writes summaries, mark-sent writes the time.
READ_ONLY = ("last_follow_up_at",)
RECORD_FIELDS = frozenset(
    {*_TEXTS, *_LISTS, *_INTS, *_BOOLS, "follow_up_time", "follow_up_timezone"}
    | {"owner_user_id", "parent_session_id", "state"}
)


class Errors(Protocol):
    def add(self, field: str, message: str) -> None: ...


def _valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _check(name: str, value: Any, errors: Errors) -> None:
    if name in _TEXTS:
        if not isinstance(value, str):
            errors.add(name, "must be a string")
        elif len(value) > _TEXTS[name]:
            errors.add(name, f"must be at most {_TEXTS[name]} characters")
    elif name in _LISTS:
        items, length = _LISTS[name]
        if not isinstance(value, list) or not all(
            isinstance(v, str) and 1 <= len(v) <= length for v in value
        ):
            errors.add(name, f"must be a list of strings of 1 to {length} characters")
        elif len(value) > items:
            errors.add(name, f"must hold at most {items} items")
    elif name in _INTS:
        low, high = _INTS[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors.add(name, f"must be a whole number from {low} to {high}")
    elif name in _BOOLS:
        if not isinstance(value, bool):
            errors.add(name, "must be true or false")
    elif name == "follow_up_time":
        if parse_hhmm(value) is None:
            errors.add(name, "must be a time of day as HH:MM (00:00 to 23:59)")
    elif name == "follow_up_timezone":
        if not isinstance(value, str) or not _valid_zone(value):
            errors.add(name, "must be an IANA time zone such as Europe/Paris")
    elif name == "owner_user_id":
        if not isinstance(value, str) or not 1 <= len(value) <= 200:
            errors.add(name, "must be a string of 1 to 200 characters")
    elif name == "parent_session_id":
        if not isinstance(value, str) or not SESSION_ID_PATTERN.match(value):
            errors.add(name, "must be the session_id of a session of this account")
    elif name == "state" and not isinstance(value, dict):
        errors.add(name, "must be a JSON object")


def validate_record_fields(body: dict[str, Any], errors: Errors, partial: bool = False) -> dict[str, Any]:
    """The record fields present in `body`. With `partial` (PATCH) a null clears a field;
    on create a null is simply not stored."""
    found: dict[str, Any] = {}
    for name in READ_ONLY:
        if name in body:
            errors.add(name, "is set by the hub and cannot be written")
    for name in RECORD_FIELDS:
        if name not in body:
            continue
        value = body[name]
        if value is None:
            if name == "state" and partial:
                errors.add(name, "must be a JSON object; set a key to null to remove it")
            elif partial:
                found[name] = None
            continue
        _check(name, value, errors)
        found[name] = value
    return found


async def check_parent(store: Any, principal: Principal, attributes: dict[str, Any]) -> None:
    """A session's parent must be a session of the same account that the caller's token
    may open (422 otherwise, the same answer for both): the database's foreign key would
    refuse another account's too, but only with a generic error."""
    parent = attributes.get("parent_session_id")
    if isinstance(parent, str) and (
        not can_open(principal, parent) or await store.get_session(principal.account_id, parent) is None
    ):
        message = f"session '{parent}' not found in this account"
        raise ApiError(
            422,
            "invalid",
            f"parent_session_id: {message}",
            {"errors": [{"field": "parent_session_id", "message": message}]},
        )
