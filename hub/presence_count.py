"""Presence as participants see it: the count and a bounded list, coalesced.

Staff receive every `participant_joined` / `participant_left` event. Participants do not
(their audience is `staff`): instead, at most once per `DIGEST_INTERVAL`, each room that
saw joins or leaves sends its participants one `presence` message, framed once:

    {"type": "presence", "session_id": …, "seq": null, "ts": …, "actor": null,
     "data": {"participant_count": N, "participants": [{participant_id, name}, …]}}

`participants` holds at most `LIST_CAP` entries (the first to join); the count is
exact. So a join costs O(1) deliveries, and a burst of joins costs each participant
one message per interval, not one per join. A control message (no seq): a member that
reconnects gets the count in its `welcome`.
"""

from __future__ import annotations

import asyncio
import logging

from .audience import EVERYONE, STAFF
from .events import envelope
from .presence import Presence
from .room import Room
from .wire import WireMessage

log = logging.getLogger("hub.presence")

DIGEST_INTERVAL = 1.0  # seconds
LIST_CAP = 100  # as in the welcome
PRESENCE_TYPES = ("participant_joined", "participant_left")


class PresenceDigests:
    def __init__(self, presence: Presence, interval: float = DIGEST_INTERVAL, cap: int = LIST_CAP):
        self._presence = presence
        self.interval = interval
        self.cap = cap
        self._dirty: dict[int, Room] = {}
        self._wake = asyncio.Event()

    def observe(self, room: Room, event_type: str) -> None:
        """Called for every event a room delivers."""
        if event_type not in PRESENCE_TYPES or room.cursor is None:
            return
        if room.cursor.policy.audience_of(event_type) != STAFF:
            return  # this session shows participants every join itself
        if room.session_pk not in self._dirty:
            self._dirty[room.session_pk] = room
            self._wake.set()

    async def run(self) -> None:
        """Send what is due, then wait an interval (a supervised background loop)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, {}
            await asyncio.gather(*(self._send(room) for room in dirty.values()))
            await asyncio.sleep(self.interval)

    async def _send(self, room: Room) -> None:
        participants = room.views[EVERYONE]
        if not participants:
            return
        try:
            roster = await self._presence.roster(str(room.session_pk), self.cap)
        except Exception as exc:  # presence unreachable: the next join or leave sends it
            log.warning("presence digest not sent", extra={"session": room.session_id, "error": repr(exc)})
            return
        data = {
            "participant_count": roster.participant_count,
            "participants": [
                {"participant_id": p.get("participant_id"), "name": p.get("name")}
                for p in roster.participants
            ],
        }
        message = WireMessage(envelope("presence", room.session_id, data).decode())
        joining = False
        for member in list(participants.values()):
            if member.replaying:
                joining = True  # its welcome is not out yet (the welcome comes first)
            else:
                member.offer(message)
        if joining:
            self._dirty.setdefault(room.session_pk, room)  # it gets the next one
            self._wake.set()
