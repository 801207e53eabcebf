"""The event model: which durable types exist, who may send them, what data they carry.

This module is the executable form of the tables in `docs/protocol.md`. It knows
nothing of sockets or SQL: a frame's decoded object goes in, a validated event or a
typed `EventError` comes out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

LIFECYCLE_TYPES = frozenset(
    {"session_started", "session_paused", "session_resumed", "session_ending", "session_ended"}
)
PRESENCE_TYPES = frozenset({"participant_joined", "participant_left"})
DURABLE_TYPES = frozenset(
    LIFECYCLE_TYPES
    | PRESENCE_TYPES
    | {
        "technique_changed",
        "hrv_update",
        "hrv_milestone",
        "achievement_unlocked",
        "prompt",
        "response",
        "announcement",
        "session_update",
        "note",
        "feedback",
        "session_summary",
    }
)
# Written by the hub itself, never accepted from a client: presence, and the multi-channel
# summary appended when a session ends (`hub.end_summary`).
HUB_WRITTEN_TYPES = frozenset(PRESENCE_TYPES | {"session_summary"})
# What a backend may publish: every durable type except the lifecycle and the hub's own.
CONTENT_TYPES = frozenset(DURABLE_TYPES - LIFECYCLE_TYPES - HUB_WRITTEN_TYPES)
CONTROL_TYPES = frozenset({"welcome", "ack", "error", "pong"})

ROLES = ("participant", "instructor", "observer", "admin", "service")
_INSTRUCTOR_TYPES = frozenset(
    LIFECYCLE_TYPES
    | {
        "technique_changed",
        "prompt",
        "announcement",
        "achievement_unlocked",
        "hrv_milestone",
        "session_update",
        "note",
    }
)
SENDABLE_BY_ROLE: dict[str, frozenset[str]] = {
    "instructor": _INSTRUCTOR_TYPES,
    "admin": _INSTRUCTOR_TYPES,
    "participant": frozenset({"response", "hrv_update", "feedback"}),
    "observer": frozenset(),
    "service": CONTENT_TYPES,
}

# Which status accepts which event is decided in one place only: the store's append
# function (storage/migrations/030_open_sessions_accept_events.sql), atomically with the
# seq. Here we only need to know which statuses are final.
TERMINAL_STATUSES = ("completed", "cancelled")


class EventError(Exception):
    """A refused frame: `code` is one of the protocol's error codes."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        self.client_id: Any = None  # echoed in the error reply when the frame had a usable id


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "str", "int", "num", "bool", "choice"
    required: bool = False
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()


def _str(name: str, low: int = 0, high: int = 2000, required: bool = False) -> Field:
    return Field(name, "str", required, low, high)


SCHEMAS: dict[str, tuple[Field, ...]] = {
    "session_started": (_str("message", high=1000),),
    "session_paused": (_str("reason", high=1000),),
    "session_resumed": (_str("message", high=1000),),
    "session_ending": (
        Field("seconds_remaining", "int", False, 0, 7200),
        Field("summary_available", "bool"),
        _str("message", high=1000),
    ),
    "session_ended": (_str("message", high=1000),),
    "technique_changed": (
        _str("technique", 1, 100, required=True),
        Field("duration", "int", False, 1, 7200),
        _str("instructions", high=2000),
    ),
    "hrv_update": (
        Field("hrv", "num", True, 0, 1000),
        Field("improvement", "num", False, -100, 200),
        Field("coherence", "num", False, 0, 1),
    ),
    "hrv_milestone": (
        Field("improvement", "num", True, -100, 200),
        _str("participant_id", high=200),
        _str("message", high=1000),
    ),
    "achievement_unlocked": (
        _str("title", 1, 200, required=True),
        _str("description", high=2000),
        _str("participant_id", high=200),
    ),
    "prompt": (
        _str("text", 1, 4000, required=True),
        _str("category", high=100),
        Field("expects_response", "bool"),
    ),
    "response": (
        _str("text", 0, 4000, required=True),
        Field("prompt_seq", "int", False, 1, 2**62),
        Field("method", "choice", False, choices=("text", "voice", "skip")),
        Field("duration_seconds", "int", False, 0, 86400),
    ),
    "announcement": (
        _str("message", 1, 2000, required=True),
        _str("title", high=200),
        _str("type", high=50),
        _str("action_url", high=2000),
    ),
    "session_update": (),
    "note": (
        _str("content", 1, 10000, required=True),
        Field("note_type", "choice", False, choices=("observation", "concern", "insight", "technical")),
        Field("is_important", "bool"),
        Field("requires_followup", "bool"),
        Field("interaction_sequence", "int", False, 1, 2**62),
    ),
    "feedback": (
        Field("message_seq", "int", True, 1, 2**62),
        Field("feedback_type", "choice", True, choices=("like", "dislike", "regenerate")),
        _str("comment", high=2000),
    ),
}


def _check_field(spec: Field, value: Any) -> str | None:
    """Return why `value` does not fit `spec`, or None."""
    if spec.kind == "str" or spec.kind == "choice":
        if not isinstance(value, str):
            return "must be a string"
        if spec.kind == "choice":
            return None if value in spec.choices else f"must be one of {', '.join(spec.choices)}"
        if spec.low is not None and len(value) < spec.low:
            return "must not be empty" if spec.low == 1 else f"must be at least {spec.low:g} long"
        if spec.high is not None and len(value) > spec.high:
            return f"must be at most {spec.high:g} characters"
        return None
    if spec.kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if spec.kind == "int" and not isinstance(value, int):
        return "must be a whole number"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
        return f"must be between {spec.low:g} and {spec.high:g}"
    return None


def validate_data(event_type: str, data: Any) -> dict[str, Any]:
    """Check `data` for `event_type`; return it unchanged or raise EventError('invalid')."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EventError("invalid", "data must be a JSON object", {"field": "data"})
    if event_type == "session_update" and not data:
        raise EventError("invalid", "session_update needs a non-empty data object", {"field": "data"})
    for spec in SCHEMAS.get(event_type, ()):
        if spec.name not in data or data[spec.name] is None:
            if spec.required:
                raise EventError("invalid", f"data.{spec.name} is required", {"field": spec.name})
            continue
        problem = _check_field(spec, data[spec.name])
        if problem:
            raise EventError("invalid", f"data.{spec.name} {problem}", {"field": spec.name})
    return data


@dataclass(frozen=True)
class ClientEvent:
    """A validated durable event sent by a client, not yet stored."""

    type: str
    client_id: str | None  # None only for an HTTP publish without an idempotency key
    data: dict[str, Any]


def parse_client_frame(raw: str | bytes, role: str) -> ClientEvent | None:
    """Decode one inbound frame. None means heartbeat; errors raise EventError.

    The order of checks gives the most useful error first: shape, then type,
    then permission, then data.
    """
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise EventError("invalid", "frame is not valid JSON") from None
    if not isinstance(message, dict):
        raise EventError("invalid", "frame must be a JSON object")
    if message.get("type") == "heartbeat" and _usable_id(message.get("id"), optional=True):
        return None
    return parse_event(message, role)


def parse_event(message: dict[str, Any], role: str, id_required: bool = True) -> ClientEvent:
    """Check one event object `{"type", "id", "data"}` a client (a WebSocket member or an
    HTTP publisher) wants stored; the error names the client id when it had a usable one."""
    client_id = message.get("id")
    try:
        return _parse_event(message, message.get("type"), client_id, role, id_required)
    except EventError as exc:
        exc.client_id = client_id if _usable_id(client_id) else None
        raise


def _usable_id(client_id: Any, optional: bool = False) -> bool:
    if client_id is None:
        return optional
    return isinstance(client_id, str) and 1 <= len(client_id) <= 100


def _parse_event(
    message: dict[str, Any], event_type: Any, client_id: Any, role: str, id_required: bool
) -> ClientEvent:
    if not _usable_id(client_id, optional=True):
        raise EventError("invalid", "id must be a string of 1 to 100 characters", {"field": "id"})
    if not isinstance(event_type, str):
        raise EventError("invalid", "type is required and must be a string", {"field": "type"})
    if event_type not in DURABLE_TYPES:
        shown = event_type[:50]
        raise EventError("invalid", f"unknown message type '{shown}'", {"field": "type"})
    if event_type not in SENDABLE_BY_ROLE.get(role, frozenset()):
        raise EventError("forbidden", f"role '{role}' may not send '{event_type}'", {"field": "type"})
    if client_id is None and id_required:
        raise EventError("invalid", "id is required for events", {"field": "id"})
    return ClientEvent(event_type, client_id, validate_data(event_type, message.get("data")))


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def envelope(
    event_type: str,
    session_id: str,
    data: dict[str, Any],
    *,
    seq: int | None = None,
    ts: str | None = None,
    actor: dict[str, Any] | None = None,
) -> bytes:
    """Encode one server message, once, for every member that receives it."""
    return orjson.dumps(
        {
            "type": event_type,
            "session_id": session_id,
            "seq": seq,
            "ts": ts or now_iso(),
            "actor": actor,
            "data": data,
        }
    )


def error_message(
    session_id: str, code: str, message: str, client_id: Any = None, details: Any = None
) -> bytes:
    body = {"id": client_id, "code": code, "message": message, "details": details or {}}
    return envelope("error", session_id, body)
