"""The session lifecycle, defined once: the statuses, which event moves a session from
which status to which, and which statuses accept the other (content) events.

The store enforces it atomically with each event's seq: its append function reads
`RULES` from a table the migrator fills at every start (storage/sql/append.sql). The
HTTP lifecycle actions, `PATCH status`, the live listing and the hub's own checks all
read this module; tests/test_lifecycle_rules.py runs every status × event type through
the real append path and compares the outcome with `next_status`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCHEDULED = "scheduled"
IN_PROGRESS = "in_progress"
PAUSED = "paused"
COMPLETED = "completed"
CANCELLED = "cancelled"

STATUSES = (SCHEDULED, IN_PROGRESS, PAUSED, COMPLETED, CANCELLED)
OPEN_STATUSES = (SCHEDULED, IN_PROGRESS, PAUSED)  # not ended: content events are accepted
LIVE_STATUSES = (IN_PROGRESS, PAUSED)  # started and not ended: what `/sessions/live` lists
TERMINAL_STATUSES = (COMPLETED, CANCELLED)  # no event is accepted any more, but the summary

ANY_OTHER_TYPE = "*"  # the rule of every event type that has no rule of its own


@dataclass(frozen=True)
class Rule:
    """`event_type` is accepted in `from_statuses` and moves the session to `to_status`
    (None: the status stays). `ends_as` narrows a rule to events whose `data.status`
    names that status ("" when it names none); None: whatever the data says."""

    event_type: str
    from_statuses: tuple[str, ...]
    to_status: str | None = None
    ends_as: str | None = None


RULES: tuple[Rule, ...] = (
    Rule("session_started", (SCHEDULED,), IN_PROGRESS),
    Rule("session_paused", (IN_PROGRESS,), PAUSED),
    Rule("session_resumed", (PAUSED,), IN_PROGRESS),
    Rule("session_ending", LIVE_STATUSES),  # the warning before the end
    Rule("session_ended", LIVE_STATUSES, COMPLETED, ends_as=COMPLETED),
    Rule("session_ended", LIVE_STATUSES, COMPLETED, ends_as=""),  # an end naming no status completes
    Rule("session_ended", (SCHEDULED, PAUSED), CANCELLED, ends_as=CANCELLED),
    # Content (prompts, responses, HRV, notes, presence, ...) from scheduling until the end:
    # the room is open before the start for a baseline reading and the first technique.
    Rule(ANY_OTHER_TYPE, OPEN_STATUSES),
    # The multi-channel summary the hub writes once a session completed (hub/end_summary.py):
    # the one event an ended session accepts.
    Rule("session_summary", (COMPLETED,)),
)


@dataclass(frozen=True)
class Action:
    """An HTTP lifecycle action (`POST /api/v2/session/{id}/<name>`): the event it appends."""

    event_type: str
    data: Mapping[str, Any]


ACTIONS: dict[str, Action] = {
    "start": Action("session_started", {}),
    "pause": Action("session_paused", {}),
    "resume": Action("session_resumed", {}),
    "end": Action("session_ended", {"status": COMPLETED}),
    "cancel": Action("session_ended", {"status": CANCELLED}),
}


def _rules_for(event_type: str) -> list[Rule]:
    own = [rule for rule in RULES if rule.event_type == event_type]
    return own or [rule for rule in RULES if rule.event_type == ANY_OTHER_TYPE]


def _ends_as(data: Mapping[str, Any]) -> str | None:
    value = data.get("status")
    if value is None:
        return ""
    return value if isinstance(value, str) else None  # no rule names a status that is not text


def next_status(status: str, event_type: str, data: Mapping[str, Any]) -> str | None:
    """The session's status once the event is appended to a session in `status`; None
    when the event is refused there (`conflict`)."""
    asked = _ends_as(data)
    for rule in _rules_for(event_type):
        if status in rule.from_statuses and rule.ends_as in (None, asked):
            return rule.to_status or status
    return None


def allowed_from(event_type: str, data: Mapping[str, Any]) -> tuple[str, ...]:
    """The statuses in which the event is accepted, in `STATUSES` order."""
    return tuple(s for s in STATUSES if next_status(s, event_type, data) is not None)


def action_to(current: str, target: str) -> str | None:
    """The action that moves a session from `current` to `target`, if one does."""
    for name, action in ACTIONS.items():
        if next_status(current, action.event_type, action.data) == target != current:
            return name
    return None


def action_targets() -> tuple[str, ...]:
    """Statuses some action moves a session to (what `PATCH status` may ask for)."""
    moves = []
    for action in ACTIONS.values():
        for status in STATUSES:
            target = next_status(status, action.event_type, action.data)
            if target not in (None, status):
                moves.append(target)
    return tuple(dict.fromkeys(moves))


def rule_rows() -> list[tuple[str, str | None, str, str]]:
    """`RULES` flattened to (event type, ends as, from status, to status), one per status:
    the rows of the store's rules table."""
    return [
        (rule.event_type, rule.ends_as, status, rule.to_status or status)
        for rule in RULES
        for status in rule.from_statuses
    ]
