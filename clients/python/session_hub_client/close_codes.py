"""The hub's WebSocket close codes, as a client acts on them.

The same table as the hub's (`hub/close_codes.py`) and the browser client's
(`static/hub-client.js`); the hub's test suite keeps the three in step.
3000–3499 and 1001/1006/1011/1012/1013: reconnect (with `since`, backoff and jitter).
3500–3999, 1000, 1008 and 1009: do not, until something changes (a token, the session).
"""

from __future__ import annotations

CLOSE_NAMES: dict[int, str] = {
    1000: "normal",
    1001: "going_away",
    1006: "abnormal",
    1008: "policy_violation",
    1009: "message_too_big",
    1011: "unexpected_condition",
    1012: "service_restart",
    1013: "try_again_later",
    3000: "server_shutdown",
    3001: "slow_consumer",
    3002: "idle_timeout",
    3003: "token_expired",
    3004: "internal_error",
    3500: "bad_request",
    3501: "unauthorized",
    3503: "forbidden",
    3504: "not_found",
    3505: "session_full",
    3506: "session_ended",
    3507: "too_many_errors",
    3508: "rate_limited",
    3509: "too_many_connections",
    3510: "disconnected",
    4000: "dropped_by_client",
}

RFC_RECONNECT = frozenset({1001, 1006, 1011, 1012, 1013})
# The code a client closes its own socket with when it means to replace it at once
# (a gap in the seqs, a dead connection).
CLIENT_RECONNECT = 4000
SESSION_ENDED = 3506


def should_reconnect(code: int) -> bool:
    """Whether a connection closed with `code` should be opened again (with `since`)."""
    return 3000 <= code < 3500 or code in RFC_RECONNECT or code == CLIENT_RECONNECT


def close_name(code: int) -> str:
    return CLOSE_NAMES.get(code, f"close_{code}")
