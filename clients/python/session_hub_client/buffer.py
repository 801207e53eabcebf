"""The bounded buffer between the socket and the app's `async for`.

When the app reads slowly the buffer fills and the client stops reading the socket; the
hub then sees a slow consumer and closes the connection (3001), and the client resumes
from the last event it buffered. So memory stays bounded and nothing is lost or repeated.
"""

from __future__ import annotations

import asyncio
from collections import deque

from .models import Event


class EventBuffer:
    def __init__(self, size: int):
        if size < 1:
            raise ValueError("buffer_size must be at least 1")
        self._size = size
        self._items: deque[Event] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._ended = False
        self._error: BaseException | None = None

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, event: Event) -> bool:
        """Wait for room, then append; False when the buffer has ended (event dropped)."""
        while len(self._items) >= self._size and not self._ended:
            self._writable.clear()
            await self._writable.wait()
        if self._ended:
            return False
        self._items.append(event)
        self._readable.set()
        return True

    async def get(self) -> Event | None:
        """The next event; None once ended and empty (or the error it ended with)."""
        while not self._items:
            if self._ended:
                if self._error is not None:
                    raise self._error
                return None
            self._readable.clear()
            await self._readable.wait()
        event = self._items.popleft()
        self._writable.set()
        return event

    def end(self, error: BaseException | None = None) -> None:
        """No more events: readers get what is buffered, then the end (or `error`)."""
        if self._ended:
            return
        self._ended = True
        self._error = error
        self._readable.set()
        self._writable.set()
