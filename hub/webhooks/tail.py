"""The recent end of each session's log, read once for every endpoint that follows it.

Ten endpoints following one session would otherwise read each new event ten times. A
`Tails` keeps, per session with active deliveries, the events it last read (all types,
a contiguous range of seqs) and serves each cursor from memory; the log is read again
only when a cursor has passed the end of that range, by one reader at a time (the
others wait for its answer), and at most every `FRESH` seconds unless this process
committed to the session meanwhile. A cursor behind the range (a replay, a slow
endpoint) reads the log directly.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..store import StoredEvent
from .store import WebhookStore

FRESH = 0.4  # seconds a read answers "anything new?" without a commit notice (polls are 0.5 s)
KEEP = 1000  # events kept per session


@dataclass
class _Tail:
    start: int  # the range is (start, upto]: every event in it is in `events`
    upto: int
    events: list[StoredEvent] = field(default_factory=list)
    read_at: float = 0.0
    notices: int = 0  # commit notices so far
    notices_read: int = -1  # notices when last read
    loading: asyncio.Future[None] | None = None


class Tails:
    def __init__(self, store: WebhookStore, page: int):
        self.store = store
        self.page = page
        self._tails: dict[int, _Tail] = {}

    def committed(self, session_pk: int) -> None:
        tail = self._tails.get(session_pk)
        if tail is not None:
            tail.notices += 1

    def forget(self, session_pk: int) -> None:
        self._tails.pop(session_pk, None)

    async def read(
        self, session_pk: int, after: int, types: Sequence[str] | None, limit: int
    ) -> tuple[int, list[StoredEvent]]:
        """(scanned up to, events of `types` in (after, scanned up to], at most `limit`)."""
        tail = self._tails.get(session_pk)
        if tail is None:
            tail = self._tails[session_pk] = _Tail(start=after, upto=after)
        if after >= tail.upto:
            await self._refresh(session_pk, tail)
            if after >= tail.upto:
                return after, []
        if after < tail.start:
            return await self.store.events(session_pk, after, types, limit)
        first = bisect.bisect_right(tail.events, after, key=lambda e: e.seq)
        found: list[StoredEvent] = []
        for event in tail.events[first:]:
            if types is None or event.type in types:
                found.append(event)
                if len(found) == limit:
                    return event.seq, found
        return tail.upto, found

    async def _refresh(self, session_pk: int, tail: _Tail) -> None:
        if tail.loading is not None:
            await asyncio.shield(tail.loading)
            return
        if tail.notices == tail.notices_read and time.monotonic() - tail.read_at < FRESH:
            return
        tail.loading = asyncio.get_running_loop().create_future()
        try:
            notices, started = tail.notices, time.monotonic()
            upto, events = await self.store.events(session_pk, tail.upto, None, self.page)
            tail.events.extend(events)
            tail.upto = max(tail.upto, upto)
            tail.read_at, tail.notices_read = started, notices
            if len(tail.events) > KEEP:
                dropped = tail.events[: len(tail.events) - KEEP]
                tail.events = tail.events[len(dropped) :]
                tail.start = dropped[-1].seq
            tail.loading.set_result(None)
        except BaseException as exc:
            tail.loading.set_exception(exc)
            tail.loading.exception()  # the waiters see it; this reader re-raises
            raise
        finally:
            tail.loading = None
