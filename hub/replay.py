"""Reading the log back as wire messages: a joining member's replay and a room's gap repair.

Both read the same pages of stored events and encode them exactly as they were delivered
live, so a member cannot tell a replayed event from one it saw happen.
"""

from __future__ import annotations

from .connection import Connection
from .events import envelope, iso
from .store import EventLog, SessionRecord, StoredEvent


def encode_stored(session_id: str, event: StoredEvent) -> str:
    return envelope(
        event.type, session_id, event.data, seq=event.seq, ts=iso(event.ts), actor=event.actor
    ).decode()


class LogReader:
    def __init__(self, log: EventLog, page: int):
        self.log = log
        self.page = page

    async def fetch(self, session: SessionRecord, after: int, upto: int | None) -> list[tuple[int, str]]:
        """One page of (seq, payload) after `after` (up to `upto`), ascending."""
        events = await self.log.read_events(session.pk, after, self.page, upto)
        return [(e.seq, encode_stored(session.session_id, e)) for e in events]

    async def replay(self, conn: Connection, session: SessionRecord, after: int, upto: int) -> None:
        """Queue the events after `after` up to `upto` to `conn`, waiting while it is full."""
        while after < upto and not conn.closed:
            rows = await self.fetch(session, after, upto)
            for seq, payload in rows:
                await conn.put(payload)
                conn.last_seq = seq
            if len(rows) < self.page:
                break
            after = rows[-1][0]
