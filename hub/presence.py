"""The presence seam: who is in each room, across every hub process.

A member is a user in a room (`member_key`), present while at least one of its
connections is registered on any process. The log's `participant_joined` /
`participant_left` must tell the same story, in the same order, however processes race
or die; the guarantees below are what the hub (`hub.attendance`) builds that on:

- **Once per member.** `add` answers True only for the connection that made the member
  present, `remove` only for the one that made it absent, however many processes race;
  the hub writes `participant_joined` / `participant_left` on exactly those.
- **Departures are settled.** A member that became absent (`remove` answered True, or
  `reap` answered it) stays *departing* until the hub has written its `participant_left`
  and calls `settle`. While departing, a connection that brings the member back makes
  `add` answer False: `settle` answers the member's info instead, and the hub writes
  `participant_joined` after the `participant_left`, never before it.
- **Agreement.** `members` answers the same on every process once `add`/`remove` have
  returned (within a second for a networked implementation); a departing member is not
  listed unless it is back.
- **Liveness.** Entries of a process that stops refreshing (it died) expire after the
  TTL, all at the same moment (user slots included); `reap` removes expired members,
  answering each exactly once across processes so that one process writes their
  `participant_left`. A departure whose writer died before settling it expires
  likewise, and `reap` answers it again (absent: written again; back: as returned). A
  process that stalled past the TTL finds its reaped entries registered again by
  `refresh`, which answers the members whose departure was written (the hub writes their
  `participant_joined`); entries the backend merely lost (a restart) come back silently,
  since no departure was written for them.
- **User slots.** `claim_slots` caps a user's live connections (per account and user,
  across every process and room): it registers the connection unless the user already
  holds its `limit` of slots, atomically, so racing claims on any processes never admit
  more than `limit`; in several pools of one account at once, all or none. Claiming a
  slot the connection already holds admits it again. `release_slots` frees them
  (releasing twice is harmless). Slots
  live like the other entries: `refresh` keeps this process's alive, and those of a
  process that stops refreshing expire within the TTL, so a crash never locks a user
  out for longer than that. (A process that stalls past the TTL registers its slots
  again on its next refresh, since the connections are in fact alive: only then may a
  user briefly hold more than `limit`.) The user id `ACCOUNT_SLOTS` (empty: no token
  names that user) is the account's own pool: every connection of the account holds a
  slot there too, which caps the account's connections the same way.
- **Participant cap.** `join` registers like `add` but, given a `participant_limit`,
  refuses a *new* participant member (info role `participant`) while that many are
  present, atomically: racing joins on any processes never admit more than the limit.
  A participant already present (another tab) is always admitted. A departing member
  is not present: its return counts against the cap like any new participant.
- **Bounded reads.** `roster` answers the participant count and at most `limit`
  members of each kind in join order (departing members excluded, as in `members`), at
  a cost that does not grow with the room.
- **Load.** Any number of calls may be in flight at once: beyond what the backend serves
  together they wait their turn (for a bounded time), they do not fail.
- **Failure.** Methods raise `PresenceUnavailable` when the backend is unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import Unavailable

ACCOUNT_SLOTS = ""  # the user slots that count every connection of an account

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


@dataclass(frozen=True)
class MemberChange:
    """A member that came or went without a connection of this process asking: `present`
    False, a departure to write (`participant_left`, then `settle`); True, a return to
    write (`participant_joined`)."""

    room: str
    member_key: str
    info: dict[str, Any]
    present: bool


class Presence(Protocol):
    async def add(self, room: str, member_key: str, conn_id: str, info: dict[str, Any]) -> bool:
        """Register a connection; True when the member was absent before (and not departing)."""
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
        """Unregister a connection; True when the member has no connection left: it is
        departing until `settle`."""
        ...

    async def settle(self, room: str, member_key: str) -> dict[str, Any] | None:
        """End a departure once its `participant_left` is written; the member's info when
        a connection brought it back meanwhile, else None."""
        ...

    async def connection_count(self, room: str, member_key: str) -> int:
        """Connections the member holds in the room, on every process."""
        ...

    async def members(self, room: str) -> dict[str, dict[str, Any]]:
        """Every present member's info, by member key."""
        ...

    async def claim_slots(self, account: str, conn_id: str, limits: dict[str, int]) -> str | None:
        """Take a slot for `conn_id` in each of the account's pools in `limits` (user id ->
        limit), all or none in one atomic step: None when admitted, else a user id whose
        pool is full (held by live connections on any process; nothing is registered)."""
        ...

    async def release_slots(self, account: str, users: list[str], conn_id: str) -> None:
        """Free the slots `conn_id` holds in these pools, if any."""
        ...

    async def refresh(self) -> list[MemberChange]:
        """Extend the TTL of every entry this process registered (user slots and the
        departures it writes included); answer the members it made present again."""
        ...

    async def rooms(self) -> list[str]:
        """Rooms holding any entry or departure, on any process (so any process can reap them)."""
        ...

    async def reap(self, room: str, limit: int) -> list[MemberChange]:
        """Remove up to `limit` expired connections; answer the members that departed with
        them, and those whose departure expired unsettled (see Liveness)."""
        ...

    async def close(self) -> None: ...


def participant_list(members: dict[str, dict[str, Any]], role: str = PARTICIPANT) -> list[dict]:
    listed = [info for info in members.values() if info.get("role") == role]
    return sorted(listed, key=lambda info: (info.get("joined_at", ""), info.get("participant_id")))
