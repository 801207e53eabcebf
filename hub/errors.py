"""The one error vocabulary: every code the hub answers, one exception hierarchy, and
what each code means on each wire.

A refusal anywhere (a WebSocket frame, an HTTP request, a store call) raises a `HubError`
naming its `ErrorCode`. The HTTP layer turns it into `{"error": {"code", "message",
"details"}}` with `HTTP_STATUS[code]`; the WebSocket layer into an `error` message, and,
when the refusal ends the connection, a close with `CLOSE_CODE[code]` (a few refusals
name a more precise close of the same meaning, e.g. `SessionFull`). `docs/protocol.md`
shows the same table; `tests/test_errors.py` keeps them in step.

Anything that is not a `HubError` is classified by `classify`: a dependency that cannot
be reached is `unavailable` (503, close 3004: try again), everything else is a bug:
`internal` (500, close 1011), logged with its traceback by whoever caught it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from .close_codes import CloseCode


class ErrorCode(StrEnum):
    INVALID = "invalid"
    INVALID_JSON = "invalid_json"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    GONE = "gone"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    RESUME_UNAVAILABLE = "resume_unavailable"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


# What each code means, for the documentation table and OpenAPI descriptions.
MEANING: dict[ErrorCode, str] = {
    ErrorCode.INVALID: "a field, parameter or frame breaks a rule (details name every one)",
    ErrorCode.INVALID_JSON: "the body is empty or not JSON",
    ErrorCode.UNAUTHORIZED: "the token is missing, malformed, expired, forged or wrongly signed",
    ErrorCode.FORBIDDEN: "the role or the token may not do this; the origin is refused",
    ErrorCode.NOT_FOUND: "no such session or item (also: another account's)",
    ErrorCode.METHOD_NOT_ALLOWED: "the path exists but not with this method",
    ErrorCode.CONFLICT: "the current state does not allow it (status, duplicate, session full)",
    ErrorCode.GONE: "a join link that admits nobody any more; `details.reason` says why",
    ErrorCode.TOO_LARGE: "the body or frame is over the size limit",
    ErrorCode.RATE_LIMITED: "too many requests, frames or connections; slow down",
    ErrorCode.RESUME_UNAVAILABLE: "the `since` position cannot be replayed; refetch the content",
    ErrorCode.UNAVAILABLE: "the database or broker is unreachable; nothing was stored, try again",
    ErrorCode.INTERNAL: "a fault in the hub itself (logged with its traceback); not the client's",
}

HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID: 422,
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.GONE: 410,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNAVAILABLE: 503,
}

# The close that ends a connection refused with this code. `resume_unavailable` never
# closes: the connection goes on with live events.
CLOSE_CODE: dict[ErrorCode, CloseCode] = {
    ErrorCode.INVALID: CloseCode.BAD_REQUEST,
    ErrorCode.INVALID_JSON: CloseCode.BAD_REQUEST,
    ErrorCode.UNAUTHORIZED: CloseCode.UNAUTHORIZED,
    ErrorCode.FORBIDDEN: CloseCode.FORBIDDEN,
    ErrorCode.NOT_FOUND: CloseCode.NOT_FOUND,
    ErrorCode.METHOD_NOT_ALLOWED: CloseCode.BAD_REQUEST,
    ErrorCode.CONFLICT: CloseCode.BAD_REQUEST,
    ErrorCode.GONE: CloseCode.FORBIDDEN,
    ErrorCode.TOO_LARGE: CloseCode.MESSAGE_TOO_BIG,
    ErrorCode.RATE_LIMITED: CloseCode.RATE_LIMITED,
    ErrorCode.UNAVAILABLE: CloseCode.INTERNAL_ERROR,
    ErrorCode.INTERNAL: CloseCode.UNEXPECTED_CONDITION,
}

_BY_STATUS = {status: code for code, status in HTTP_STATUS.items()}


def code_for_status(status: int) -> ErrorCode:
    """The code of an HTTP status the hub did not raise itself (the router's 404/405)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ErrorCode.INVALID if status < 500 else ErrorCode.INTERNAL


class HubError(Exception):
    """A refusal with its code, a message for people and details for programs."""

    close: CloseCode | None = None  # a more precise close than CLOSE_CODE[code]

    def __init__(self, code: ErrorCode | str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = str(message)
        self.details: dict[str, Any] = details if details is not None else {}
        self.client_id: Any = None  # echoed in a WebSocket error when the frame had a usable id

    @property
    def status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    @property
    def close_code(self) -> CloseCode:
        return self.close or CLOSE_CODE.get(self.code, CloseCode.UNEXPECTED_CONDITION)

    def body(self) -> dict[str, Any]:
        return {"code": str(self.code), "message": self.message, "details": self.details}


class _Kind(HubError):
    """A HubError whose code is fixed by its class: `raise NotFound("...")`."""

    kind: ClassVar[ErrorCode]

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(self.kind, message, details)


class Invalid(_Kind):
    kind = ErrorCode.INVALID


class InvalidJson(_Kind):
    kind = ErrorCode.INVALID_JSON


class Unauthorized(_Kind):
    kind = ErrorCode.UNAUTHORIZED


class Forbidden(_Kind):
    kind = ErrorCode.FORBIDDEN


class NotFound(_Kind):
    kind = ErrorCode.NOT_FOUND


class Conflict(_Kind):
    kind = ErrorCode.CONFLICT


class Gone(_Kind):
    kind = ErrorCode.GONE


class TooLarge(_Kind):
    kind = ErrorCode.TOO_LARGE


class RateLimited(_Kind):
    kind = ErrorCode.RATE_LIMITED


class Unavailable(_Kind):
    """A dependency (database, broker, presence) cannot be reached: nothing was done."""

    kind = ErrorCode.UNAVAILABLE


class Internal(_Kind):
    kind = ErrorCode.INTERNAL


class SessionFull(Conflict):
    close = CloseCode.SESSION_FULL


class TooManyConnections(RateLimited):
    close = CloseCode.TOO_MANY_CONNECTIONS


class ShuttingDown(Unavailable):
    close = CloseCode.SERVER_SHUTDOWN


# Errors of the standard library that mean "a dependency is not there", whatever raised them.
UNREACHABLE: tuple[type[BaseException], ...] = (OSError, TimeoutError, ConnectionError)


def classify(exc: BaseException, unreachable: tuple[type[BaseException], ...] = ()) -> HubError:
    """`exc` as a HubError: itself, `unavailable` for a dependency that cannot be reached
    (`unreachable` adds the driver errors of the backends in use), else `internal`."""
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, UNREACHABLE + unreachable):
        return Unavailable(
            "the hub could not reach its database or broker; nothing was done, try again",
            {"reason": type(exc).__name__},
        )
    return Internal("internal error; the fault is logged on the hub")
