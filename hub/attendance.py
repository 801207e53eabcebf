"""The log's record of who is present: `participant_joined` / `participant_left`, written
exactly when the presence (`hub.presence`) says a member came or went, in that order.

Three paths lead here: a connection that joins or leaves (`hub.membership`), this
process's refresh finding entries that were reaped while their connections lived, and
the reaper, which removes the members of processes that died. A departure is written and
then settled; a member that came back meanwhile gets its `participant_joined` after the
`participant_left`, so the log never ends on "left" for a member that is connected.

The refresh and the reaper are separate loops. The refresh is one round trip on its
own connection and never waits for the log: were it to wait behind a storm of leave
writes, this process's own entries would expire and its live members be reaped. The
reaper takes at most `REAP_BUDGET` members per tick and writes their events together
(group commit), so a storm costs a few batches, not a round trip per member.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Coroutine
from typing import Any

from .committer import CommitFailed, CommitOverloaded, GroupCommitter
from .config import Settings
from .errors import ErrorCode
from .lifecycle import TERMINAL_STATUSES
from .presence import MemberChange, Presence
from .rooms import Rooms
from .store import SessionRecord, SessionStore

log = logging.getLogger("hub.attendance")

REAP_BUDGET = 500  # members reaped per tick over every room; the rest wait for the next
# The log unreachable: already reported by group commit (and /readyz), not again per event.
_LOG_TROUBLE = (CommitFailed, CommitOverloaded)


def presence_event_data(participant_id: Any, name: Any, count: int) -> dict[str, Any]:
    """Data of `participant_joined` / `participant_left`: who, and the participant count
    after it (the presence's `roster`, exact however large the room).

    The count goes by both names: `participant_count` (the contract's welcome) and
    `count` (seed 003's event table).
    """
    return {"participant_id": participant_id, "name": name, "participant_count": count, "count": count}


def _actor(info: dict[str, Any]) -> dict[str, Any]:
    return {"user_id": info.get("participant_id"), "name": info.get("name"), "role": info.get("role")}


def _recorded(session: SessionRecord | None, info: dict[str, Any]) -> bool:
    """Participants' comings and goings are logged, while the session has not ended."""
    if session is None or session.status in TERMINAL_STATUSES:
        return False
    return info.get("role") == "participant"


class Attendance:
    def __init__(
        self,
        settings: Settings,
        sessions: SessionStore,
        presence: Presence,
        committer: GroupCommitter,
        rooms: Rooms,
    ):
        self.settings = settings
        self.sessions = sessions
        self.presence = presence
        self.committer = committer
        self.rooms = rooms
        # Entries live 2/3 of the TTL unrefreshed: refreshing every 1/6 leaves a live process
        # half the TTL of slack for a late refresh; reaping every 1/3 still removes a dead
        # process's members within the TTL.
        self.refresh_interval = max(settings.presence_ttl / 6, 0.25)
        self.reap_interval = max(settings.presence_ttl / 3, 0.5)
        self._tasks: set[asyncio.Task[Any]] = set()

    async def joined(self, session: SessionRecord, info: dict[str, Any], count: int) -> None:
        """Write the `participant_joined` of a member the presence says just arrived
        (`count`: the participants present with it)."""
        if _recorded(session, info):
            data = presence_event_data(info.get("participant_id"), info.get("name"), count)
            await self.committer.append(session, "participant_joined", data, _actor(info))

    def joined_soon(self, session: SessionRecord, info: dict[str, Any], count: int) -> None:
        """`joined` in the background, only when there is something to write: an observer's
        join (a storm's bulk) costs no task."""
        if _recorded(session, info):
            self.spawn(self.joined(session, info, count))

    async def departed(
        self,
        session: SessionRecord | None,
        change: MemberChange,
        count: int | None = None,
        reason: str | None = None,
    ) -> None:
        """Write the `participant_left` of a departing member, settle the departure, and
        write its return if a connection brought it back meanwhile."""
        try:
            if _recorded(session, change.info):
                assert session is not None
                if count is None:
                    count = await self._count(change.room)
                data = presence_event_data(change.info.get("participant_id"), change.info.get("name"), count)
                if reason:
                    data["reason"] = reason
                result = await self.committer.append(session, "participant_left", data, _actor(change.info))
                if result.error not in (None, ErrorCode.CONFLICT):
                    log.warning("participant_left not stored", extra={"error": result.error})
        finally:
            back = await self.presence.settle(change.room, change.member_key)
        if back is not None and session is not None:
            await self.joined(session, back, await self._count(change.room))

    async def _count(self, room_key: str) -> int:
        return (await self.presence.roster(room_key, 0)).participant_count

    # background

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run presence work in the background; a failure is logged, never lost."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                if not isinstance(exc, _LOG_TROUBLE):
                    log.error("presence event not written", exc_info=exc)

        task.add_done_callback(done)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def refresh_loop(self) -> None:
        """Keep this process's presence alive; members it registers again were reaped
        while connected (a stall): their return is written in the background."""
        while True:
            await asyncio.sleep(self.refresh_interval)
            back = await self.presence.refresh()
            if back:
                self.spawn(self._write(back))

    async def reap_loop(self) -> None:
        """Remove the members of dead processes and write their departures."""
        while True:
            await asyncio.sleep(self.reap_interval)
            budget = REAP_BUDGET
            # Every room with presence entries, not only ours: when the process that served
            # a room died with all its members, some other process must write their leave.
            rooms = {str(room.session_pk) for room in self.rooms} | set(await self.presence.rooms())
            for room_key in sorted(rooms):
                if budget <= 0:
                    break
                changes = await self.presence.reap(room_key, budget)
                budget -= len(changes)
                if changes:
                    await self._write(changes, reason="connection_lost")

    async def _write(self, changes: list[MemberChange], reason: str | None = None) -> None:
        by_room: dict[str, list[MemberChange]] = defaultdict(list)
        for change in changes:
            by_room[change.room].append(change)
        for room_key, group in by_room.items():
            session = await self.sessions.get_session_by_pk(int(room_key))
            count = await self._count(room_key)
            writes = []
            for change in group:
                if not change.present:
                    writes.append(self.departed(session, change, count, reason))
                elif session is not None:
                    writes.append(self.joined(session, change.info, count))
            for outcome in await asyncio.gather(*writes, return_exceptions=True):
                if isinstance(outcome, Exception) and not isinstance(outcome, _LOG_TROUBLE):
                    log.error("presence event not written", exc_info=outcome)
