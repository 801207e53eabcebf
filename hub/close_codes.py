"""The one table of WebSocket close codes.

3000–3499 tell a client to reconnect (with `since`, backoff and jitter); 3500–3999 tell it
not to until something changes (a new token, another session). `docs/protocol.md`, the
browser client and the Python client hold the same table: `tests/test_errors.py` keeps
the docs in step, `tests/test_close_codes.py` the two clients.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    UNEXPECTED_CONDITION = 1011  # a fault in the hub itself (RFC 6455 §7.4.1)
    SERVER_SHUTDOWN = 3000
    SLOW_CONSUMER = 3001
    IDLE_TIMEOUT = 3002
    TOKEN_EXPIRED = 3003
    INTERNAL_ERROR = 3004
    BAD_REQUEST = 3500
    UNAUTHORIZED = 3501
    FORBIDDEN = 3503
    NOT_FOUND = 3504
    SESSION_FULL = 3505
    SESSION_ENDED = 3506
    TOO_MANY_ERRORS = 3507
    RATE_LIMITED = 3508
    TOO_MANY_CONNECTIONS = 3509
    DISCONNECTED = 3510


RECONNECT_RANGE = range(3000, 3500)
TERMINAL_RANGE = range(3500, 4000)
_RFC_RECONNECT = {1001, 1006, 1011, 1012, 1013}


def should_reconnect(code: int) -> bool:
    """What a well-behaved client does after the hub closes with `code`."""
    return code in RECONNECT_RANGE or code in _RFC_RECONNECT


def reason(code: CloseCode) -> str:
    return code.name.lower()
