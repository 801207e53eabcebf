"""The values the hub accepts, each range, length and pattern defined once.

Every model (WebSocket event data, HTTP bodies, query parameters, path ids) builds its
fields from these, and the storage follows the same numbers: a value a model accepts
must fit the column it is written to (`SEQ_MAX` fits `bigint`, `INT32_MAX` is the
largest `integer`). `tests/test_models.py` holds the two sides together.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AllowInfNan, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

INT32_MAX = 2**31 - 1  # PostgreSQL `integer`
INT64_MAX = 2**63 - 1  # PostgreSQL `bigint` (and `bigserial` ids)
SEQ_MAX = 2**62  # a log position (and anything that points at one); fits `bigint`

# Models refuse what they do not know and never coerce: "5" is not 5, true is not 1.
STRICT = ConfigDict(strict=True, extra="forbid")
# Event data keeps unknown fields as sent (docs/protocol.md, "Event data").
OPEN = ConfigDict(strict=True, extra="allow")

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,99}$")
SESSION_ID_RULE = "1-100 characters of letters, digits, '.', '_', ':' or '-'"
# Digits as typed on a keyboard only: `str.isdigit()` also takes '¹' and '٣'.
DIGITS_RE = re.compile(r"^[0-9]{1,19}$")


def _session_id(value: Any) -> Any:
    if isinstance(value, str) and not SESSION_ID_RE.match(value):
        raise PydanticCustomError("pattern", f"must be {SESSION_ID_RULE}")
    return value


def _aware_datetime(value: Any) -> Any:
    """ISO-8601 with a time zone; `Z` is UTC. Anything else names the rule `type`."""
    if isinstance(value, datetime):
        return value
    parsed = None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise PydanticCustomError("type", "must be an ISO-8601 date-time with a time zone")
    return parsed


def parse_datetime(value: Any) -> datetime | None:
    """The aware datetime `value` names, or None."""
    try:
        parsed: datetime = _aware_datetime(value)
    except PydanticCustomError:
        return None
    return parsed


Finite = Annotated[float, AllowInfNan(False)]  # JSON has no NaN or infinity
Seq = Annotated[int, Field(ge=1, le=SEQ_MAX)]
Cursor = Annotated[int, Field(ge=0, le=SEQ_MAX, description="next_cursor of the previous page")]
SessionId = Annotated[
    str, BeforeValidator(_session_id), Field(min_length=1, max_length=100, pattern=SESSION_ID_RE.pattern)
]
AwareDatetime = Annotated[datetime, BeforeValidator(_aware_datetime)]
