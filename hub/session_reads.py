"""Reads of a session's row, batched for join storms.

Every join reads the session twice: admission (does it exist, may this caller open it)
and the welcome (status, head and state as they are once the member is in the room). A
thousand members reconnecting at once would make that two thousand reads of one row,
each paying a pool round trip. Here the joins that ask for the same row together share
one read, and the answer is never older than the ask: a join that asks while a read is
in flight waits for the next read, which starts once that one ends. So a join that is
already in its room still sees every change that its room did not deliver to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from .store import SessionRecord, SessionStore


class _Key:
    __slots__ = ("read", "running", "waiting")

    def __init__(self, read: Callable[[], Awaitable[Any]]):
        self.read = read
        self.running: list[asyncio.Future[Any]] = []  # the asks the read in flight answers
        self.waiting: list[asyncio.Future[Any]] | None = None  # the next read's


class Batched:
    """At most one read per key in flight, one more queued; every ask is answered by a
    read that started after it.

    Each ask waits on a future of its own, answered straight from the read's completion:
    a cancelled ask cancels only its own future (no `asyncio.shield`, whose extra future
    and callback cost every join of a storm one more turn of the loop)."""

    def __init__(self) -> None:
        self._keys: dict[Hashable, _Key] = {}
        self.reads = 0

    async def get(self, key: Hashable, read: Callable[[], Awaitable[Any]]) -> Any:
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        slot = self._keys.get(key)
        if slot is None:
            slot = self._keys[key] = _Key(read)
            slot.running.append(answer)
            self._start(key, slot)
        elif slot.waiting is None:
            slot.waiting = [answer]
        else:
            slot.waiting.append(answer)
        return await answer

    def _start(self, key: Hashable, slot: _Key) -> None:
        self.reads += 1
        task = asyncio.ensure_future(slot.read())
        task.add_done_callback(lambda done: self._finished(key, slot, done))

    def _finished(self, key: Hashable, slot: _Key, done: asyncio.Future[Any]) -> None:
        error = None if done.cancelled() else done.exception()  # retrieved, whoever still waits
        for answer in slot.running:
            if answer.done():  # its ask was cancelled
                continue
            if done.cancelled():
                answer.cancel()
            elif error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(done.result())
        waiting, slot.waiting = slot.waiting, None
        if waiting is None:
            self._keys.pop(key, None)
            return
        slot.running = waiting
        self._start(key, slot)


KNOWN_PKS = 4096  # sessions whose primary key admission remembers (a storm's are few)


class SessionReads:
    """The session reads of joins (`SessionStore`'s), batched as above.

    Admission asks by (account, session id) and the welcome by primary key: two keys, so
    two reads in flight where one would do. Once a session's primary key is known,
    admission asks by it too and shares the welcomes' reads (in a 10,000-join storm on one
    session, about half the reads). The row it gets must still be the session asked for
    (a session deleted and created again under its id has a new key): else it is read by
    id as before."""

    def __init__(self, sessions: SessionStore):
        self.sessions = sessions
        self.batched = Batched()
        self._pks: dict[tuple[str, str], int] = {}

    async def by_id(self, account_id: str, session_id: str) -> SessionRecord | None:
        name = (account_id, session_id)
        pk = self._pks.get(name)
        if pk is not None:
            found = await self.by_pk(pk)
            if found is not None and found.account_id == account_id and found.session_id == session_id:
                return found
            self._pks.pop(name, None)
        found = await self.batched.get(
            ("id", account_id, session_id), lambda: self.sessions.get_session(account_id, session_id)
        )
        if found is not None:
            if len(self._pks) >= KNOWN_PKS:
                self._pks.pop(next(iter(self._pks)))  # the longest known goes
            self._pks[name] = found.pk
        return found

    async def by_pk(self, pk: int) -> SessionRecord | None:
        found: SessionRecord | None = await self.batched.get(
            ("pk", pk), lambda: self.sessions.get_session_by_pk(pk)
        )
        return found
