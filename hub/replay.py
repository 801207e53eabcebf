"""Reading the log back as wire messages: a joining member's replay and a room's gap repair.

Both read the same pages of stored events and encode them exactly as they were delivered
live, so a member cannot tell a replayed event from one it saw happen. A replay is the
member's view of the log (`hub.audience`): the events of its audience, each framed with
the `prev_seq` of that view, as the room frames them live.

A replay storm (a thousand members of a class resuming after a restart, most from the
same `since`) must not cost a thousand reads of the same pages. What a replay reads is
fixed once its end is fixed: every event up to a committed head is immutable, and so is
the view cursor at a seq. So replays share their reads (`Shared`): members asking for the
same page or cursor together wait for one read, and for a few seconds after, the page
stays framed for each view, its frames encoded once for every member that receives
them. Reads that may still grow (a room's gap repair up to no end) are never shared.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from .audience import ViewCursor, cursor_at, frame_in_view, view_of
from .connection import Connection
from .events import envelope, iso
from .store import EventLog, SessionRecord, StoredEvent
from .wire import WireMessage

SHARED_SECONDS = 5.0  # how long a finished read stays shared
SHARED_EVENTS = 50_000  # events held by the shared pages at most (a few MB)

Page = list[tuple[int, str]]  # (seq, payload), ascending
FramedPage = tuple[list[tuple[int, WireMessage | None]], ViewCursor]  # in one view; None: not in it


def encode_stored(session_id: str, event: StoredEvent) -> str:
    return envelope(
        event.type, session_id, event.data, seq=event.seq, ts=iso(event.ts), actor=event.actor
    ).decode()


class Shared:
    """Answers of immutable reads by key: one read in flight per key, kept for
    `seconds` after it finished, at most `weight` in all (oldest dropped first)."""

    def __init__(self, seconds: float, weight: int):
        self.seconds = seconds
        self.weight = weight
        self._held = 0
        self._done: OrderedDict[Hashable, tuple[float, int, Any]] = OrderedDict()
        self._running: dict[Hashable, asyncio.Future[Any]] = {}
        self.reads = 0  # reads made (the rest were shared)

    async def get(
        self, key: Hashable, read: Callable[[], Awaitable[Any]], weigh: Callable[[Any], int]
    ) -> Any:
        now = time.monotonic()
        done = self._done.get(key)
        if done is not None:
            if now - done[0] < self.seconds:
                return done[2]
            self._forget(key)
        running = self._running.get(key)
        if running is None:
            self.reads += 1
            # Its own task: a member that goes away mid-read does not cancel it for the others.
            running = self._running[key] = asyncio.ensure_future(read())
            running.add_done_callback(lambda task: self._finished(key, task, weigh))
        return await asyncio.shield(running)

    def _finished(self, key: Hashable, task: asyncio.Future[Any], weigh: Callable[[Any], int]) -> None:
        self._running.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return  # each waiter gets the failure; the next ask reads again
        value = task.result()
        weight = weigh(value)
        if weight > self.weight:
            return
        self._done[key] = (time.monotonic(), weight, value)
        self._held += weight
        while self._held > self.weight or (
            self._done and time.monotonic() - next(iter(self._done.values()))[0] >= self.seconds
        ):
            self._forget(next(iter(self._done)))

    def _forget(self, key: Hashable) -> None:
        _, weight, _ = self._done.pop(key)
        self._held -= weight


class LogReader:
    def __init__(self, log: EventLog, page: int):
        self.log = log
        self.page = page
        self.shared = Shared(SHARED_SECONDS, SHARED_EVENTS)

    async def fetch(self, session: SessionRecord, after: int, upto: int | None) -> Page:
        """One page of (seq, payload) after `after` (up to `upto`), ascending."""
        events = await self.log.read_events(session.pk, after, self.page, upto)
        return [(e.seq, encode_stored(session.session_id, e)) for e in events]

    async def cursor_at(self, session: SessionRecord, seq: int) -> ViewCursor:
        """The views as they stand after event `seq` (`hub.audience.cursor_at`); `seq` is
        committed. A copy of its own: the caller steps it."""
        cursor: ViewCursor = await self.shared.get(
            ("cursor", session.pk, seq), lambda: cursor_at(self.log, session, seq), lambda _: 1
        )
        return cursor.copy()

    async def _framed(
        self, session: SessionRecord, view: str, after: int, upto: int, cursor: ViewCursor
    ) -> FramedPage:
        """The page after `after` (up to the committed `upto`) as `view` receives it, and
        the cursor after it (`cursor` stands at `after`; it is not changed)."""

        async def frame() -> FramedPage:
            rows = await self.shared.get(
                ("page", session.pk, after, upto), lambda: self.fetch(session, after, upto), len
            )
            stepped = cursor.copy()
            framed: list[tuple[int, WireMessage | None]] = []
            for seq, payload in rows:
                text = frame_in_view(stepped, view, seq, payload)
                framed.append((seq, WireMessage(text) if text is not None else None))
            return framed, stepped

        key = ("framed", session.pk, view, after, upto, cursor.last_staff, cursor.last_everyone)
        framed: FramedPage = await self.shared.get(key, frame, lambda page: len(page[0]))
        return framed

    async def replay(
        self, conn: Connection, session: SessionRecord, after: int, upto: int, cursor: ViewCursor
    ) -> None:
        """Queue the events of `conn`'s view after `after` up to the committed `upto` to
        it, waiting while it is full (`cursor` stands at `after`)."""
        view = view_of(conn.role)
        while after < upto and not conn.closed:
            framed, cursor = await self._framed(session, view, after, upto, cursor)
            for seq, message in framed:
                if message is not None:
                    await conn.put(message)
                conn.last_seq = seq
            if len(framed) < self.page:
                break
            after = framed[-1][0]
