"""A room member that reads the session as Server-Sent Events instead of WebSocket frames.

It is a `Connection` like any other, with a transport that writes SSE: so the room's
ordering, the replay after `since`, gap repair, the bounded queue and the slow-consumer
close, the idle and token sweeps and the drain on SIGTERM all apply to it unchanged.
Only what goes over the wire differs:

    id: 42                      the event's seq (absent for control messages), so that a
    event: technique_changed    browser's EventSource resumes with `Last-Event-ID: 42`
    data: {"type": ..., "seq": 42, ...}   the same JSON object a WebSocket member receives

    : heartbeat                 a comment every heartbeat interval keeps proxies from
                                timing the stream out

and a close is an `event: close` with `{"code", "reason", "reconnect"}` before the end of
the response.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import orjson

from .close_codes import CloseCode, reason, should_reconnect
from .connection import Connection
from .wire import WireMessage

HEARTBEAT = WireMessage("")  # a comment line, not an event; compared by identity
_COMMENT = b": heartbeat\n\n"


def sse_event(text: str) -> bytes:
    """One server message (an envelope's JSON) as an SSE event."""
    message = orjson.loads(text)
    seq = message.get("seq")
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {message.get('type')}\ndata: {text}\n\n".encode()


def sse_close(code: int) -> bytes:
    data = {"code": code, "reason": reason(CloseCode(code)), "reconnect": should_reconnect(code)}
    return b"event: close\ndata: " + orjson.dumps(data) + b"\n\n"


def sse_retry(low_ms: int = 1000, high_ms: int = 5000) -> bytes:
    """How long a browser waits before reconnecting: random per stream, so a crowd that
    lost the same process does not come back in one wave."""
    return f"retry: {random.randint(low_ms, high_ms)}\n\n".encode()


class EventStreamTransport:
    """Writes a member's messages as SSE through `write`; `end` finishes the response."""

    def __init__(self, write: Callable[[bytes], Awaitable[None]], end: Callable[[], Awaitable[None]]):
        self._write = write
        self._end = end
        self.last_write = time.monotonic()
        self.finished = asyncio.Event()

    def can_write_now(self) -> bool:
        return False  # every message goes through the member's queue and writer task

    def write_frames(self, frames: list[bytes]) -> None:
        raise RuntimeError("an event stream takes no WebSocket frames")

    async def send(self, message: WireMessage) -> None:
        await self._write(_COMMENT if message is HEARTBEAT else sse_event(message.text))
        self.last_write = time.monotonic()

    async def close(self, code: int, reason: str) -> None:
        try:
            await self._write(sse_close(code))
        finally:
            await self.finish()

    async def finish(self) -> None:
        if not self.finished.is_set():
            self.finished.set()
            await self._end()


async def keep_alive(conn: Connection, transport: EventStreamTransport, interval: float) -> None:
    """Heartbeat comments while the member is open. A stream member never sends anything,
    so it counts as seen (for the idle sweep) whenever its writes go through."""
    while not conn.closed:
        await asyncio.sleep(interval)
        conn.last_seen = transport.last_write
        conn.offer(HEARTBEAT)
