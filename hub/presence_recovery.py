"""Presence after a restart: the log and the presence agree again, without a storm of
false joins and without members who never come back staying "present" for ever.

When hub processes stop (a deploy, a crash, the whole cluster at once), the log still
shows every participant who had joined a session and not left. Their sockets are gone;
most reconnect within seconds, some never do. Without help the presence starts empty:
each returning member would be written as a new `participant_joined` with counts
climbing from 1, and those who do not return would never get a `participant_left`.

So a starting process, before it accepts connections (`restore`), reads the members the
log shows present in every session that has not ended and registers each in the
presence under a placeholder connection of its own (`restart:<node>`), with the info the
log holds. To the presence they are simply still there:

- a member who comes back joins a member already present: no `participant_joined`,
  and the counts in the welcome and the events continue from the log's;
- after `HUB_RESTART_GRACE` (`run`), the placeholders are removed; a member with no
  connection left is gone and gets one `participant_left` with `reason: "hub_restart"`.

Every process of a cluster does the same with its own placeholders; the presence answers
"gone" to exactly one removal (its guarantee), so each member who did not come back gets
exactly one `participant_left`, however many processes restarted. A member that another
process still serves (only this one restarted) is present anyway: its placeholder goes
without an event.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from .attendance import Attendance
from .events import iso
from .lifecycle import OPEN_STATUSES
from .presence import MemberChange, Presence
from .store import SessionRecord, Store

log = logging.getLogger("hub.presence")

PRESENCE_TYPES = ("participant_joined", "participant_left")
HUB_RESTART = "hub_restart"  # the `reason` of the participant_left written here
_PAGE = 1000


@dataclass(frozen=True)
class Placeholder:
    session_pk: int
    member_key: str
    info: dict[str, Any]


async def present_in_log(store: Store, session: SessionRecord) -> dict[str, dict[str, Any]]:
    """The participants the log shows present (joined and not left since), by user id,
    with the presence info of their last join."""
    present: dict[str, dict[str, Any]] = {}
    after = 0
    while True:
        events = await store.read_typed(session.pk, PRESENCE_TYPES, after, _PAGE)
        for event in events:
            user = (event.actor or {}).get("user_id") or event.data.get("participant_id")
            if not isinstance(user, str):
                continue
            if event.type == "participant_joined":
                name = event.data.get("name") or (event.actor or {}).get("name") or user
                present[user] = {
                    "participant_id": user,
                    "name": name,
                    "role": "participant",
                    "joined_at": iso(event.ts),
                }
            else:
                present.pop(user, None)
        if len(events) < _PAGE:
            return present
        after = events[-1].seq


class PresenceRecovery:
    def __init__(self, store: Store, presence: Presence, attendance: Attendance, node_id: str, grace: float):
        self.store = store
        self.presence = presence
        self.attendance = attendance
        self.conn_id = f"restart:{node_id}"
        self.grace = grace
        self.placeholders: list[Placeholder] = []
        self.restored = False

    async def restore(self) -> int:
        """Register the log's present members of every open session; answer how many."""
        self.placeholders = []  # registering one twice is harmless (same connection id)
        after: int | None = None
        while True:
            sessions = await self.store.list_sessions(None, OPEN_STATUSES, None, 500, after)
            for session in sessions:
                if session.head_seq > 0:
                    await self._restore_session(session)
            if len(sessions) < 500:
                break
            after = sessions[-1].pk
        self.restored = True
        if self.placeholders:
            log.info(
                "members present in the log are held until they come back",
                extra={"members": len(self.placeholders), "grace": self.grace},
            )
        return len(self.placeholders)

    async def _restore_session(self, session: SessionRecord) -> None:
        room = str(session.pk)
        for user, info in (await present_in_log(self.store, session)).items():
            await self.presence.add(room, user, self.conn_id, info)
            self.placeholders.append(Placeholder(session.pk, user, info))

    async def run(self) -> None:
        """Wait out the grace, then write the departure of every member not back (a
        supervised task: `restore` is retried here if it failed at start)."""
        if not self.restored:
            await self.restore()
        await asyncio.sleep(self.grace)
        while self.placeholders:
            await self._release(self.placeholders[-1])
            self.placeholders.pop()

    async def _release(self, held: Placeholder) -> None:
        room = str(held.session_pk)
        if not await self.presence.remove(room, held.member_key, self.conn_id):
            return  # back (or served elsewhere): nothing happened, nothing is written
        session = await self.store.get_session_by_pk(held.session_pk)
        change = MemberChange(room, held.member_key, held.info, False)
        try:
            # Written like any departure (none once the session has ended), then settled.
            await self.attendance.departed(session, change, reason=HUB_RESTART)
        except Exception:
            log.exception("participant_left after a restart not stored", extra={"member": held.member_key})
