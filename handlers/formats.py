"""The value formats every request shares: a session id, and an ISO-8601 date-time with a
time zone (in a body or as a time filter in the query). Below the field validators of
sessions and records, so both import it and neither imports the other."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from .errors import ApiError

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,99}$")


def parse_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def parse_time_param(value: str | None, name: str) -> datetime | None:
    """A time filter (`after`, `before`): ISO-8601 with a time zone."""
    if value is None or value == "":
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        raise ApiError(
            422, "invalid", f"query parameter '{name}' must be an ISO-8601 date-time with a time zone"
        )
    return parsed
