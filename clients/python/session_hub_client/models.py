"""The protocol's messages as the client hands them to the app (docs/protocol.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ConnectionState = Literal["connecting", "open", "reconnecting", "closed"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused an event: the sender's user id, display name and role."""

    user_id: str
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class Event:
    """A server message. Durable events carry their `seq` in the session's log; control
    messages (`welcome`, `ack`, `error`, `pong`, `token_expiring`, `refreshed`) carry None."""

    type: str
    session_id: str
    seq: int | None
    ts: str
    actor: Actor | None
    data: dict[str, Any] = field(default_factory=dict)
    # The seq of the previous event this member received (its audience's view); None when
    # the hub does not say (then every event is in the view).
    prev_seq: int | None = None

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> Event:
        actor = message.get("actor")
        seq = message.get("seq")
        data = message.get("data")
        prev_seq = message.get("prev_seq")
        return cls(
            type=str(message.get("type", "")),
            session_id=str(message.get("session_id", "")),
            seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
            ts=str(message.get("ts", "")),
            actor=Actor(str(actor.get("user_id", "")), str(actor.get("name", "")), str(actor.get("role", "")))
            if isinstance(actor, dict)
            else None,
            data=data if isinstance(data, dict) else {},
            prev_seq=prev_seq if isinstance(prev_seq, int) and not isinstance(prev_seq, bool) else None,
        )


@dataclass(frozen=True, slots=True)
class StateChange:
    """What the `on_state` callback receives."""

    state: ConnectionState
    previous: ConnectionState
    reason: str | None = None  # close reason name, "welcome", "resumed", "gap", "resume_unavailable", ...
    code: int | None = None  # the close code that caused it, if any
    attempt: int = 0  # reconnect attempt (0 on the first connection)
    delay: float | None = None  # seconds until the next attempt ("reconnecting" only)
    last_seq: int | None = None


@dataclass
class ClientStats:
    """What a HubClient went through (for dashboards, logs and tests)."""

    connects: int = 0  # connection attempts
    reconnects: int = 0  # welcomes after the first
    duplicates_dropped: int = 0
    gaps: int = 0  # missed events that made it reconnect
    resends: int = 0  # sends that went out again (same id)
    refreshes: int = 0  # tokens renewed in-band
    close_codes: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ResumeUnavailable:
    """The hub could not replay from the client's position (`welcome.data.resume`): events
    between `since` and `head_seq` are not delivered; refetch the session content
    (`HubAPI.content(..., include_replay=True)`). The stream continues after `head_seq`."""

    since: int | None
    head_seq: int
    reason: str | None  # "trimmed" or "ahead_of_log"
    retained_from: int | None
