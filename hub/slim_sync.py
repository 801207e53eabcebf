"""asyncio's Event and Queue, cut down to what a connection uses, for memory's sake.

A hub holds tens of thousands of idle connections, each with a few flags and an inbox.
`asyncio.Event` carries a waiter deque (a 600-byte block even when nobody waits) and
`asyncio.Queue` three of them; these keep a plain list of waiters, made only while
someone waits, and slots instead of an attribute dict. Same semantics for the methods
they have: `Flag` is an Event (set wakes every waiter, clear does not), `Inbox` a
FIFO without a bound whose `get` waits.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


def _wake(waiters: list[asyncio.Future[None]] | None) -> None:
    for waiter in waiters or ():
        if not waiter.done():
            waiter.set_result(None)


async def _wait_on(waiters: list[asyncio.Future[None]]) -> None:
    waiter = asyncio.get_running_loop().create_future()
    waiters.append(waiter)
    try:
        await waiter
    finally:
        if waiter in waiters:
            waiters.remove(waiter)


class Flag:
    """`asyncio.Event`: is_set, set, clear, wait."""

    __slots__ = ("_set", "_waiters")

    def __init__(self, value: bool = False):
        self._set = value
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if not self._set:
            self._set = True
            waiters, self._waiters = self._waiters, None
            _wake(waiters)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        if self._waiters is None:
            self._waiters = []
        await _wait_on(self._waiters)
        return True


class Inbox(Generic[T]):
    """`asyncio.Queue` without a bound: put_nowait, get, get_nowait, empty, qsize."""

    __slots__ = ("_getters", "_items")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._getters: list[asyncio.Future[None]] | None = None

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        for getter in self._getters or ():
            if not getter.done():  # one item, one getter: the others keep waiting
                getter.set_result(None)
                break

    def get_nowait(self) -> T:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)  # a handful at most: the reader pauses per message

    async def get(self) -> T:
        while not self._items:
            if self._getters is None:
                self._getters = []
            await _wait_on(self._getters)
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)
