"""Who receives each event: the audience of every durable type, and each member's view.

Every durable event is stored in the one log with one seq; its *audience* decides which
members receive it live and on resume:

- `everyone`: every member of the room;
- `staff`: instructors, observers and admins (every role but `participant`).

A member's *view* is the sub-sequence of the log it receives. Staff see every event;
participants see the `everyone` events. Each delivered event carries `prev_seq`, the
seq of the previous event in the receiver's view (0 when there is none), so a member
tells an event it missed (`prev_seq` above the last seq it holds) from one that was
never meant for it (a gap between `prev_seq` and `seq`). See docs/protocol.md, "Views".

A session may change the audience of a type at creation (`audience` field) and later
(`PUT /api/v2/session/{id}/audience`). A later change is itself an event, a
`session_update` whose data holds the session's complete overrides under `audience`:
every room on every process and every replay switch at that seq, so the view of the
log is the same wherever and whenever it is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from .store import EventLog, SessionRecord, StoredEvent

EVERYONE = "everyone"
STAFF = "staff"
AUDIENCES = (EVERYONE, STAFF)

# The one table. Why each default:
DEFAULT_AUDIENCE: dict[str, str] = {
    # Everyone follows the session's state and the technique they practise together.
    "session_started": EVERYONE,
    "session_paused": EVERYONE,
    "session_resumed": EVERYONE,
    "session_ending": EVERYONE,
    "session_ended": EVERYONE,
    "technique_changed": EVERYONE,
    # Staff see each join and leave; participants get a coalesced count instead
    # (`presence` messages), so a join costs O(1) deliveries, not O(room).
    "participant_joined": STAFF,
    "participant_left": STAFF,
    # Raw heart data is personal: the instructor coaches from it; the group sees
    # `hrv_summary` and the milestones.
    "hrv_update": STAFF,
    "hrv_summary": EVERYONE,
    "hrv_milestone": EVERYONE,
    "achievement_unlocked": EVERYONE,
    # Prompts are for everyone; answers and feedback go to the instructor unless the
    # session opens them (a small workshop sharing its responses).
    "prompt": EVERYONE,
    "response": STAFF,
    "feedback": STAFF,
    "announcement": EVERYONE,
    # Carries audience changes (and other session-wide settings): everyone must see it.
    "session_update": EVERYONE,
    # The instructor's observations about the session.
    "note": STAFF,
    # What the class achieved, for everyone (it is written after the room closed; its
    # readers are webhooks and the log).
    "session_summary": EVERYONE,
}

# Types whose audience a session cannot change: everyone must know the session's state,
# and the events that change audiences must reach every view.
FIXED_TYPES = frozenset(
    {
        "session_started",
        "session_paused",
        "session_resumed",
        "session_ending",
        "session_ended",
        "session_update",
    }
)

AUDIENCE_KEY = "audience"  # in session creation, the PUT body and `session_update` data


def view_of(role: str) -> str:
    """The view a role reads: participants the `everyone` events; staff (and trusted
    backends reading over HTTP, role `service`) every event."""
    return EVERYONE if role == "participant" else STAFF


class AudienceError(Exception):
    """Bad audience settings: every problem, as `{field, message}` items."""

    def __init__(self, errors: list[dict[str, str]]):
        super().__init__(errors[0]["message"] if errors else "invalid audience")
        self.errors = errors


def validate_overrides(raw: Any, field_name: str = AUDIENCE_KEY) -> dict[str, str]:
    """A session's audience overrides, `{type: audience}`, or AudienceError naming every
    bad entry (an unknown type, an unknown audience, a type that cannot change)."""
    if not isinstance(raw, dict):
        raise AudienceError([{"field": field_name, "message": "must be an object of {event type: audience}"}])
    errors: list[dict[str, str]] = []
    for event_type, audience in raw.items():
        where = f"{field_name}.{str(event_type)[:100]}"
        if event_type not in DEFAULT_AUDIENCE:
            errors.append({"field": where, "message": "is not a durable event type"})
        elif event_type in FIXED_TYPES:
            errors.append({"field": where, "message": "always goes to everyone; it cannot be changed"})
        elif audience not in AUDIENCES:
            errors.append({"field": where, "message": "must be one of " + ", ".join(AUDIENCES)})
    if errors:
        raise AudienceError(errors)
    # Only what differs from the defaults is kept: the stored overrides stay minimal.
    return {t: a for t, a in sorted(raw.items()) if DEFAULT_AUDIENCE[t] != a}


@dataclass(frozen=True)
class Policy:
    """A session's audience table: the defaults with its overrides applied."""

    overrides: Mapping[str, str] = field(default_factory=dict)

    def audience_of(self, event_type: str) -> str:
        return self.overrides.get(event_type) or DEFAULT_AUDIENCE.get(event_type, EVERYONE)

    def table(self) -> dict[str, str]:
        return {t: self.audience_of(t) for t in DEFAULT_AUDIENCE}

    def everyone_types(self) -> list[str]:
        return sorted(t for t in DEFAULT_AUDIENCE if self.audience_of(t) == EVERYONE)

    def after(self, event_type: str, data: Mapping[str, Any] | None) -> Policy:
        """The policy in force after this event (an audience change replaces it)."""
        changed = audience_change(event_type, data)
        return self if changed is None else Policy(changed)


def audience_change(event_type: str, data: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The complete overrides an event sets, or None when it changes no audience."""
    if event_type != "session_update" or not data or AUDIENCE_KEY not in data:
        return None
    try:
        return validate_overrides(data[AUDIENCE_KEY])
    except AudienceError:
        return None  # refused at the door; a stored one that does not parse changes nothing


def reserved_data_problem(event_type: str, data: Mapping[str, Any]) -> str | None:
    """Why a client-sent event may not carry this data: audiences change only through
    the HTTP API (validated, and by instructors of the session)."""
    if event_type == "session_update" and AUDIENCE_KEY in data:
        return f"data.{AUDIENCE_KEY} is set with PUT /api/v2/session/{{id}}/audience"
    return None


class Step(NamedTuple):
    """One event placed in both views: its audience and the previous seq of each view (a
    named tuple: one per delivered event)."""

    audience: str
    prev_staff: int
    prev_everyone: int


@dataclass
class ViewCursor:
    """Walks the log in seq order and tells, per event, its audience and `prev_seq` in
    each view. `last_*` are the seqs of the last event of each view seen so far."""

    policy: Policy
    last_staff: int = 0
    last_everyone: int = 0

    def step(self, seq: int, event_type: str, data: Mapping[str, Any] | None = None) -> Step:
        audience = self.policy.audience_of(event_type)
        result = Step(audience, self.last_staff, self.last_everyone)
        self.last_staff = seq
        if audience == EVERYONE:
            self.last_everyone = seq
        self.policy = self.policy.after(event_type, data)
        return result

    def copy(self) -> ViewCursor:
        return ViewCursor(self.policy, self.last_staff, self.last_everyone)


def event_type_of(payload: str) -> str:
    """The type of an encoded event envelope, without decoding it (the encoder writes
    `{"type":"…"` first and types are plain identifiers)."""
    if payload.startswith('{"type":"'):
        end = payload.find('"', 9)
        if end > 9:
            return payload[9:end]
    return str(orjson.loads(payload).get("type", ""))


def data_if_needed(event_type: str, payload: str) -> dict[str, Any] | None:
    """The data a cursor needs to see: only that of a possible audience change."""
    if event_type != "session_update":
        return None
    data = orjson.loads(payload).get("data")
    return data if isinstance(data, dict) else None


def with_prev(payload: str, prev_seq: int) -> str:
    """The envelope as one view receives it: `prev_seq` added as its last field."""
    return f'{payload[:-1]},"prev_seq":{prev_seq}}}'


def frame_in_view(cursor: ViewCursor, view: str, seq: int, payload: str) -> str | None:
    """Step `cursor` over one event; the envelope as `view` receives it, or None when
    the event is not in that view."""
    event_type = event_type_of(payload)
    step = cursor.step(seq, event_type, data_if_needed(event_type, payload))
    if view == STAFF:
        return with_prev(payload, step.prev_staff)
    if step.audience == EVERYONE:
        return with_prev(payload, step.prev_everyone)
    return None


async def cursor_at(log: EventLog, session: SessionRecord, seq: int) -> ViewCursor:
    """The views as they stand after event `seq`: the policy then in force and the last
    seq of each view (two indexed reads walking back from `seq`)."""
    policy, floor = Policy(session.audience), 0
    change = await log.latest_audience_change(session.pk, seq) if seq > 0 else None
    if change is not None:
        # The change is itself an event of every view (session_update is fixed to everyone).
        policy, floor = Policy(audience_change(change.type, change.data) or {}), change.seq
    last_everyone = floor
    if seq > floor:
        last_everyone = await log.latest_seq_of(session.pk, policy.everyone_types(), floor, seq) or floor
    return ViewCursor(policy, last_staff=seq, last_everyone=last_everyone)


async def in_view(
    log: EventLog, session: SessionRecord, role: str, events: list[StoredEvent]
) -> list[StoredEvent]:
    """The events of a consecutive stretch of the log that `role`'s view holds (HTTP reads)."""
    if view_of(role) == STAFF or not events:
        return events
    cursor = await cursor_at(log, session, events[0].seq - 1)
    return [e for e in events if cursor.step(e.seq, e.type, e.data).audience == EVERYONE]
