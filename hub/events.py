"""The event model: which durable types exist, who may send them, what data they carry.

This module is the executable form of the tables in `docs/protocol.md`. It knows
nothing of sockets or SQL: a frame's decoded object goes in, a validated event or a
typed `HubError` comes out. What each type's `data` holds is in `hub.event_data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from pydantic import TypeAdapter, ValidationError

from .audience import AUDIENCE_KEY, reserved_data_problem
from .errors import Forbidden, HubError, Invalid
from .event_data import DATA_MODELS
from .validation import check

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
        "hrv_summary",
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
# Written by the hub itself, never accepted from a client: presence, the group HRV figures,
# and the multi-channel summary appended when a session completes (`hub.end_summary`).
HUB_WRITTEN_TYPES = frozenset(PRESENCE_TYPES | {"hrv_summary", "session_summary"})
# What a backend (`service` token) may publish: every durable type but the lifecycle and
# the hub's own.
CONTENT_TYPES = frozenset(DURABLE_TYPES - LIFECYCLE_TYPES - HUB_WRITTEN_TYPES)
CONTROL_TYPES = frozenset({"welcome", "ack", "error", "pong", "refreshed", "token_expiring"})

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


# The name the event model's refusals had before the one error vocabulary.
EventError = HubError

# One compiled validator per durable type, built once at import: the inbound hot path
# runs pydantic-core directly and keeps the client's `data` object as sent.
_VALIDATORS: dict[str, Any] = {
    event_type: TypeAdapter(model).validator for event_type, model in DATA_MODELS.items()
}


def validate_data(event_type: str, data: Any) -> dict[str, Any]:
    """Check `data` for `event_type`; return it unchanged or raise Invalid naming every
    broken rule (`details.field` is the first one's field, as documented)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise Invalid("data must be a JSON object", {"field": "data"})
    reserved = reserved_data_problem(event_type, data)
    if reserved is not None:
        raise Invalid(reserved, {"field": AUDIENCE_KEY})
    found = check(_VALIDATORS[event_type], data, root="data")
    if found:
        first = found[0]
        where = first["field"] if first["field"] == "data" else f"data.{first['field']}"
        details = {"field": first["field"], "rule": first["rule"], "errors": found}
        raise Invalid(f"{where} {first['message']}", details)
    return data


class ClientEvent(NamedTuple):
    """A validated durable event sent by a client, not yet stored (a named tuple: one
    per frame on the hot path)."""

    type: str
    client_id: str | None  # None only for an HTTP publish without an idempotency key
    data: dict[str, Any]


@dataclass(frozen=True)
class ControlFrame:
    """A frame about the connection itself, not an event for the log: `refresh`."""

    type: str
    client_id: str | None
    data: Any


def parse_client_frame(raw: str | bytes, role: str) -> ClientEvent | ControlFrame | None:
    """Decode one inbound frame. None means heartbeat; a refusal raises HubError.

    The order of checks gives the most useful error first: shape, then type,
    then permission, then data.
    """
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Invalid("frame is not valid JSON") from None
    if not isinstance(message, dict):
        raise Invalid("frame must be a JSON object")
    event_type, client_id = message.get("type"), message.get("id")
    if event_type in ("heartbeat", "refresh") and _usable_id(client_id, optional=True):
        if event_type == "heartbeat":
            return None
        return ControlFrame(event_type, client_id, message.get("data"))
    data = message.get("data")
    if (
        type(event_type) is str
        and event_type in SENDABLE_BY_ROLE.get(role, ())
        and type(client_id) is str
        and 1 <= len(client_id) <= 100
        and type(data) is dict
        and reserved_data_problem(event_type, data) is None
    ):
        # The common frame, every check of `parse_event` but the data's passed: only the
        # data is left to validate. A refusal goes the long way, for its one wording.
        try:
            _VALIDATORS[event_type].validate_python(data)
        except (ValidationError, HubError):
            pass
        else:
            return ClientEvent(event_type, client_id, data)
    return parse_event(message, role)


def parse_event(message: dict[str, Any], role: str, id_required: bool = True) -> ClientEvent:
    """Check one event object `{"type", "id", "data"}` a client (a WebSocket member or an
    HTTP publisher) wants stored; the refusal names the client id when it had a usable one."""
    client_id = message.get("id")
    try:
        return _parse_event(message, message.get("type"), client_id, role, id_required)
    except HubError as exc:
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
        raise Invalid("id must be a string of 1 to 100 characters", {"field": "id"})
    if not isinstance(event_type, str):
        raise Invalid("type is required and must be a string", {"field": "type"})
    if event_type not in DURABLE_TYPES:
        shown = event_type[:50]
        raise Invalid(f"unknown message type '{shown}'", {"field": "type"})
    if event_type not in SENDABLE_BY_ROLE.get(role, frozenset()):
        raise Forbidden(f"role '{role}' may not send '{event_type}'", {"field": "type"})
    if client_id is None and id_required:
        raise Invalid("id is required for events", {"field": "id"})
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


_ACK = b'{"type":"ack","session_id":%b,"seq":null,"ts":%b,"actor":null,"data":{"id":%b,"seq":%d}}'


def ack_message(session_id: str, client_id: Any, seq: int, ts: str) -> bytes:
    """`envelope("ack", session_id, {"id": client_id, "seq": seq}, ts=ts)`, byte for byte,
    without the two dicts: one is sent for every event a client writes."""
    dumps = orjson.dumps
    return _ACK % (dumps(session_id), dumps(ts), dumps(client_id), seq)


def error_message(
    session_id: str, code: str, message: str, client_id: Any = None, details: Any = None
) -> bytes:
    body = {"id": client_id, "code": code, "message": message, "details": details or {}}
    return envelope("error", session_id, body)
