"""The presence seam: who is in each room, across every hub process.

A member is a user in a room (`member_key`), present while at least one of its
connections is registered on any process. Guarantees the hub relies on:

- **Once per member.** `add` answers True only for the connection that made the member
  present, `remove` only for the one that made it absent, however many processes
  race; the hub emits `participant_joined` / `participant_left` on exactly those.
- **Agreement.** `members` answers the same on every process once `add`/`remove` have
  returned (within a second for a networked implementation).
- **Liveness.** Entries of a process that stops refreshing (it died) expire after the
  TTL; `reap` removes expired members, answering each exactly once across processes
  so that one process emits their `participant_left`.
- **User slots.** `claim_user_slot` caps a user's live connections (per account and
  user, across every process and room): it registers the connection and answers True
  unless the user already holds `limit` slots, atomically, so racing claims on any
  processes never admit more than `limit`. Claiming a slot the connection already holds
  answers True again. `release_user_slot` frees it (releasing twice is harmless). Slots
  live like the other entries: `refresh` keeps this process's alive, and those of a
  process that stops refreshing expire within the TTL, so a crash never locks a user
  out for longer than that. (A process that stalls past the TTL registers its slots
  again on its next refresh, since the connections are in fact alive: only then may a
  user briefly hold more than `limit`.)
- **Participant cap.** `join` registers like `add` but, given a `participant_limit`,
  refuses a *new* participant member (info role `participant`) while that many are
  present, atomically: racing joins on any processes never admit more than the limit.
  A participant already present (another tab) is always admitted.
- **Bounded reads.** `roster` answers the participant count and at most `limit`
  members of each kind in join order, at a cost that does not grow with the room.
- **Failure.** Methods raise `PresenceUnavailable` when the backend is unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import Unavailable

PARTICIPANT = "participant"


class PresenceUnavailable(Unavailable):
    pass


@dataclass(frozen=True)
class Admission:
    admitted: bool  # False: the room holds `participant_limit` participants already
    first: bool  # this connection made the member present (write participant_joined)
    participant_count: int  # participants present after the call


@dataclass(frozen=True)
class Roster:
    participant_count: int
    participants: list[dict[str, Any]] = field(default_factory=list)  # first to join first
    staff: list[dict[str, Any]] = field(default_factory=list)  # every other role, likewise


def counts_as_participant(info: dict[str, Any]) -> bool:
    return info.get("role") == PARTICIPANT


class Presence(Protocol):
    async def add(self, room: str, member_key: str, conn_id: str, info: dict[str, Any]) -> bool:
        """Register a connection; True when the member was absent before."""
        ...

    async def join(
        self, room: str, member_key: str, conn_id: str, info: dict[str, Any], participant_limit: int | None
    ) -> Admission:
        """`add`, refused (nothing registered) when the member is a new participant and
        `participant_limit` participants are present; one atomic step on every backend."""
        ...

    async def roster(self, room: str, limit: int) -> Roster:
        """The participant count and the first `limit` members of each kind, in join order."""
        ...

    async def remove(self, room: str, member_key: str, conn_id: str) -> bool:
        """Unregister a connection; True when the member has no connection left."""
        ...

    async def connection_count(self, room: str, member_key: str) -> int:
        """Connections the member holds in the room, on every process."""
        ...

    async def members(self, room: str) -> dict[str, dict[str, Any]]:
        """Every present member's info, by member key."""
        ...

    async def claim_user_slot(self, account: str, user: str, conn_id: str, limit: int) -> bool:
        """Take one of the user's `limit` connection slots for `conn_id`; False when all
        are held by live connections (on any process), and then nothing is registered."""
        ...

    async def release_user_slot(self, account: str, user: str, conn_id: str) -> None:
        """Free the slot `conn_id` holds, if any."""
        ...

    async def refresh(self) -> None:
        """Extend the TTL of every entry this process registered (user slots included)."""
        ...

    async def rooms(self) -> list[str]:
        """Rooms holding any entry, on any process (so that any process can reap them)."""
        ...

    async def reap(self, room: str) -> list[dict[str, Any]]:
        """Remove members whose every connection expired; answer their info."""
        ...

    async def close(self) -> None: ...


def participant_list(members: dict[str, dict[str, Any]], role: str = "participant") -> list[dict]:
    listed = [info for info in members.values() if info.get("role") == role]
    return sorted(listed, key=lambda info: (info.get("joined_at", ""), info.get("participant_id")))
