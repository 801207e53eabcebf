"""One client connection: who it is, its bounded outgoing queue, and its writer.

Fan-out never awaits a member: `offer` writes straight to the socket when it can take the
frame now, else appends to the member's queue and returns. Only then does the connection
get a writer task, which drains the queue onto the socket and ends once it is empty: an
idle connection holds no task, no queue and no waiter (a process holds tens of thousands
of them). A member whose queue is full cannot keep up; it is closed with `slow_consumer`
so that it resumes with `since` instead of holding memory for the room.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from .close_codes import CloseCode, reason
from .rate_limits import Bucket
from .slim_sync import Flag
from .wire import WireMessage

log = logging.getLogger("hub.connection")
_ids = itertools.count(1)


class Transport(Protocol):
    def can_write_now(self) -> bool:
        """Whether the socket takes frames without waiting (not paused, still open)."""
        ...

    def write_frames(self, frames: list[bytes]) -> None:
        """Write ready-made frames in one go; only after `can_write_now()` said yes."""
        ...

    async def send(self, message: WireMessage) -> None:
        """Write, waiting for the socket to drain first if it must."""
        ...

    async def close(self, code: int, reason: str) -> None: ...


@dataclass(slots=True)
class Principal:
    """Who is connected: filled by the auth hook."""

    account_id: str
    user_id: str
    role: str
    name: str
    # The token names the display name itself (a join link's seat, a named token): then
    # no `name` a client asks for replaces it, so nobody appears as someone else.
    name_from_token: bool = False
    sessions: list[str] | None = None  # session ids the token may open; None = any
    expires_at: float | None = None  # unix time
    # The token's own role: `role` becomes the role a connection asked for (an instructor
    # may watch as an observer), and a renewed token must name the token's role again.
    token_role: str | None = None

    @property
    def actor(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "name": self.name, "role": self.role}

    def may_open(self, session_id: str) -> bool:
        """Whether the token's `sessions` claim lets it open this session."""
        return self.sessions is None or session_id in self.sessions


@dataclass(slots=True)
class Connection:
    transport: Transport
    principal: Principal
    session_id: str
    queue_size: int
    on_closed: Any = None  # callable(code) for metrics
    conn_id: str = field(default_factory=lambda: f"c{next(_ids)}")
    last_seq: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    errors: int = 0
    closed: bool = False
    close_code: int | None = None
    # While replaying `since`, live events wait here instead of the socket queue.
    replaying: bool = False
    held: list[tuple[int, WireMessage]] = field(default_factory=list)
    bucket: Bucket = field(default_factory=lambda: Bucket(50.0, 100))
    strikes: int = 0
    expiry_warned: float | None = None  # the token expiry `token_expiring` was sent for
    # Frames the socket could not take at once, for the writer; None while there are none.
    _queue: deque[WireMessage] | None = field(default=None, init=False)
    _sending: bool = field(default=False, init=False)  # the writer holds a frame not yet taken
    _batch: list[bytes] = field(default_factory=list, init=False)  # this loop tick's frames
    _drained: Flag = field(default_factory=Flag, init=False)
    _writer: asyncio.Task[None] | None = field(default=None, init=False)  # only while needed
    _started: bool = field(default=False, init=False)
    present: bool = field(default=False, init=False)  # registered in the presence (hub.membership)

    @property
    def role(self) -> str:
        return self.principal.role

    def gone(self) -> bool:
        """Whether the client is known to have gone (closed, or its socket lost): joining
        it further would be work for nobody. Transports that cannot tell (plain ASGI)
        have no `gone` and say no."""
        check = getattr(self.transport, "gone", None)
        return self.closed or (check is not None and bool(check()))

    def start(self) -> None:
        """The member has joined: from now on queued frames and closes get written."""
        self._started = True
        if self._queue or self.closed:
            self._wake_writer()

    def _wake_writer(self) -> None:
        if self._started and (self._writer is None or self._writer.done()):
            self._writer = asyncio.create_task(self._write_loop(), name=f"writer-{self.conn_id}")

    def offer(self, message: WireMessage | str) -> bool:
        """Send without waiting: straight to the socket when it can take it, else queue;
        close the connection if the queue overflows (it cannot keep up)."""
        if self.closed:
            return False
        if isinstance(message, str):
            message = WireMessage(message)
        queue = self._queue
        # Only when nothing is ahead of it, or frames would overtake each other.
        if not queue and not self._sending and self.transport.can_write_now():
            if not self._batch:
                _TICK_FLUSH.add(self)
            self._batch.append(message.frame)
            return True
        if queue is None:
            queue = self._queue = deque()
        if len(queue) >= self.queue_size:
            self.close_soon(CloseCode.SLOW_CONSUMER)
            return False
        queue.append(message)
        self._wake_writer()
        return True

    def queued(self) -> int:
        """Frames waiting for the socket (0 while the peer keeps up, and after a close)."""
        return len(self._queue) if self._queue else 0

    async def put(self, payload: WireMessage | str) -> None:
        """Queue a frame, waiting for room first: for replays, which may be long."""
        while self._queue and len(self._queue) >= self.queue_size // 2 and not self.closed:
            self._drained.clear()
            await self._drained.wait()
        self.offer(payload)

    def push_event(self, seq: int, payload: WireMessage) -> None:
        """Deliver a log event exactly once, in seq order (the room guarantees the order)."""
        if self.closed:
            return
        if self.replaying:
            if len(self.held) >= self.queue_size:
                self.close_soon(CloseCode.SLOW_CONSUMER)
                return
            self.held.append((seq, payload))
            return
        if seq > self.last_seq:
            self.last_seq = seq
            self.offer(payload)

    def flush_batch(self) -> None:
        batch, self._batch = self._batch, []
        if batch:
            self.transport.write_frames(batch)

    def finish_replay(self) -> None:
        held, self.held = self.held, []
        self.replaying = False
        for seq, payload in held:
            self.push_event(seq, payload)

    def close_soon(self, code: CloseCode) -> None:
        """Close after what is queued has been written (or at once for slow consumers)."""
        if self.closed:
            return
        self.closed = True
        self.close_code = int(code)
        if code == CloseCode.SLOW_CONSUMER:
            self._queue = None  # what it could not take is dropped at once, not held
        if self.on_closed is not None:
            self.on_closed(code)  # counted now: the close frame may wait on a stalled peer
        self._wake_writer()

    async def wait_closed(self, timeout: float) -> None:
        if self._writer is not None:
            await asyncio.wait({self._writer}, timeout=timeout)

    async def _write_loop(self) -> None:
        """Drain the queue onto the socket; end once it is empty (or close, if closed)."""
        try:
            self.flush_batch()  # what went out before the queue formed goes first
            while self._queue:
                message = self._queue.popleft()
                if self.transport.can_write_now():
                    self.transport.write_frames([message.frame])
                else:
                    self._sending = True
                    await self.transport.send(message)
                    self._sending = False
            self._queue = None
            self._drained.set()
            if not self.closed:
                return  # idle again: the next frame the socket cannot take starts a writer
        except Exception as exc:  # the peer went away mid-write; the reader side notices too
            log.debug("writer stopped", extra={"conn": self.conn_id, "error": repr(exc)})
            self.closed = True
            self._queue = None
            self._drained.set()  # a replay waiting for room stops (it sees `closed`)
            return
        code = CloseCode(self.close_code or CloseCode.NORMAL)
        try:
            # A peer that never reads would hold the close frame forever; the ASGI server's
            # ping timeout then drops the socket.
            await asyncio.wait_for(self.transport.close(int(code), reason(code)), timeout=10)
        except Exception:
            pass

    async def stop(self) -> None:
        self.closed = True
        self._drained.set()
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            try:
                await self._writer
            except (asyncio.CancelledError, Exception):
                pass


class _TickFlush:
    """Writes every connection's frames of this loop tick at the end of the tick.

    A commit batch of many events then costs each member one socket write instead of one
    per event: fewer syscalls here, fewer packets and reads for the client.
    """

    def __init__(self) -> None:
        self._pending: list[Connection] = []

    def add(self, conn: Connection) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(conn)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for conn in pending:
            try:
                conn.flush_batch()
            except Exception:  # a socket that broke since; its reader sees the disconnect
                log.debug("flush failed", extra={"conn": conn.conn_id})


_TICK_FLUSH = _TickFlush()
