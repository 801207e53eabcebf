"""Reading the log back as wire messages: a joining member's replay and a room's gap repair.

Both read the same pages of stored events and encode them exactly as they were delivered
live, so a member cannot tell a replayed event from one it saw happen. A replay is the
member's view of the log (`hub.audience`): the events of its audience, each framed with
the `prev_seq` of that view, as the room frames them live.
"""

from __future__ import annotations

from .audience import ViewCursor, cursor_at, frame_in_view, view_of
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

    async def cursor_at(self, session: SessionRecord, seq: int) -> ViewCursor:
        """The views as they stand after event `seq` (`hub.audience.cursor_at`)."""
        return await cursor_at(self.log, session, seq)

    async def replay(
        self, conn: Connection, session: SessionRecord, after: int, upto: int, cursor: ViewCursor
    ) -> None:
        """Queue the events of `conn`'s view after `after` up to `upto` to it, waiting while
        it is full (`cursor` stands at `after`)."""
        view = view_of(conn.role)
        while after < upto and not conn.closed:
            rows = await self.fetch(session, after, upto)
            for seq, payload in rows:
                framed = frame_in_view(cursor, view, seq, payload)
                if framed is not None:
                    await conn.put(framed)
                conn.last_seq = seq
            if len(rows) < self.page:
                break
            after = rows[-1][0]
