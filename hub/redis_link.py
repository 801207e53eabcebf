"""One Redis subscriber connection, spoken in RESP2 directly.

Why not redis-py's PubSub: it reconnects and resubscribes on its own, which hides exactly
the moment the hub must know about (messages published while it was away are lost and
must be repaired). This link never reconnects: when the socket fails, `run()` raises and
the owner (`RedisBroker`) decides what happens next.

Cluster use (`hub.broker_redis_cluster`): given `on_error`, an error reply (a MOVED for
an SSUBSCRIBE sent to a node that no longer serves the slot) goes to it instead of
ending the connection, and `on_unsubscribed` hears every `sunsubscribe`, including the
ones a node sends by itself when one of its slots moves away.

Liveness: while running, a PING goes out every `health_interval` seconds; if nothing at
all has been read for three intervals the connection is declared dead and closed (a peer
that vanished without a FIN would otherwise keep us "connected" forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

Dispatch = Callable[[bytes, bytes], None]  # (channel, message)
ErrorHandler = Callable[["SubscriberLink", "RedisReplyError"], None]
UnsubscribedHandler = Callable[["SubscriberLink", bytes], None]

_MESSAGE = {b"message", b"smessage"}
_SUBSCRIBED = {b"subscribe", b"ssubscribe"}
_UNSUBSCRIBED = {b"unsubscribe", b"sunsubscribe"}


class RedisReplyError(Exception):
    pass


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=parts.scheme == "rediss",
        )


def encode_command(*args: bytes | str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class SubscriberLink:
    def __init__(
        self,
        address: RedisAddress,
        sharded: bool,
        dispatch: Dispatch,
        health_interval: float = 5.0,
        connect_timeout: float = 2.0,
        name: str | None = None,
        on_error: ErrorHandler | None = None,
        on_unsubscribed: UnsubscribedHandler | None = None,
    ):
        self.address = address
        self.name = name  # CLIENT SETNAME: lets operators (and tests) find this connection
        self.sharded = sharded
        self._dispatch = dispatch
        self._health_interval = health_interval
        self._connect_timeout = connect_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[bytes, asyncio.Future[None]] = {}
        self._buffer = bytearray()
        self._last_read = time.monotonic()
        self._on_error = on_error
        self._on_unsubscribed = on_unsubscribed
        self.subscribed: set[bytes] = set()  # confirmed by Redis and not unsubscribed since
        self.connected = False

    async def connect(self) -> None:
        context = ssl.create_default_context() if self.address.tls else None
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.address.host, self.address.port, ssl=context),
            self._connect_timeout,
        )
        if self.address.password is not None:
            creds = (
                [self.address.username, self.address.password]
                if self.address.username
                else [self.address.password]
            )
            self._write(encode_command("AUTH", *creds))
            reply = await asyncio.wait_for(self._read(), self._connect_timeout)
            if isinstance(reply, RedisReplyError):
                raise reply
        if self.name:
            self._write(encode_command("CLIENT", "SETNAME", self.name))
            reply = await asyncio.wait_for(self._read(), self._connect_timeout)
            if isinstance(reply, RedisReplyError):
                raise reply
        self._last_read = time.monotonic()
        self.connected = True

    async def close(self) -> None:
        self.connected = False
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("subscriber connection closed"))
                future.exception()  # retrieved: nobody may be waiting any more
        self._pending.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    # subscriptions

    async def subscribe(self, channel: str, timeout: float) -> None:
        """Subscribe and wait for Redis to confirm (read by `run`)."""
        future = self._expect(channel.encode())
        self._send_subscribe([channel])
        await asyncio.wait_for(asyncio.shield(future), timeout)

    async def subscribe_many(self, channels: Iterable[str], timeout: float) -> list[str]:
        """Subscribe before `run` starts: reads the confirmations itself. Answers the
        channels refused (only with `on_error`, which decides what refuses them)."""
        names = list(channels)
        futures = [self._expect(name.encode()) for name in names]
        self._send_subscribe(names)

        async def confirmations() -> None:
            while not all(f.done() for f in futures):
                self._handle(await self._read())

        await asyncio.wait_for(confirmations(), timeout)
        return [name for name, f in zip(names, futures, strict=True) if f.exception() is not None]

    def fail_pending(self, refused: Callable[[bytes], bool], error: Exception) -> None:
        """Fail the unconfirmed subscriptions `refused` picks (an error reply names no
        channel, only, for a redirection, the slot)."""
        for name, future in list(self._pending.items()):
            if refused(name) and not future.done():
                del self._pending[name]
                future.set_exception(error)
                future.exception()  # retrieved: a waiter may have given up already

    def unsubscribe(self, channel: str) -> None:
        self.subscribed.discard(channel.encode())
        self._write(encode_command("SUNSUBSCRIBE" if self.sharded else "UNSUBSCRIBE", channel))

    def _send_subscribe(self, names: list[str]) -> None:
        if self.sharded:
            # Redis Cluster wants one slot per SSUBSCRIBE: one channel per command.
            self._write(b"".join(encode_command("SSUBSCRIBE", name) for name in names))
        else:
            for start in range(0, len(names), 500):
                self._write(encode_command("SUBSCRIBE", *names[start : start + 500]))

    def _expect(self, name: bytes) -> asyncio.Future[None]:
        future = self._pending.get(name)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._pending[name] = future
        return future

    # reading

    async def run(self) -> None:
        """Read and dispatch until the connection fails (raises) or is closed (returns)."""
        pinger = asyncio.create_task(self._ping_loop(), name="redis-subscriber-ping")
        try:
            while self.connected:
                self._handle(await self._read())  # only awaits the socket when nothing is buffered
        finally:
            pinger.cancel()
            await asyncio.gather(pinger, return_exceptions=True)

    def _handle(self, frame: Any) -> None:
        self._last_read = time.monotonic()
        if isinstance(frame, list) and len(frame) == 3:
            kind = frame[0]
            if kind in _MESSAGE:
                self._dispatch(frame[1], frame[2])
                return
            if kind in _SUBSCRIBED:
                self.subscribed.add(frame[1])
                future = self._pending.pop(frame[1], None)
                if future is not None and not future.done():
                    future.set_result(None)
                return
            if kind in _UNSUBSCRIBED:
                self.subscribed.discard(frame[1])
                if self._on_unsubscribed is not None:
                    self._on_unsubscribed(self, frame[1])
                return
        if isinstance(frame, RedisReplyError):
            if self._on_error is None:
                raise frame  # e.g. MOVED or NOPERM: this connection cannot serve us
            self._on_error(self, frame)
        # pong: nothing to do

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self._health_interval)
            if time.monotonic() - self._last_read > 3 * self._health_interval:
                # Silent for too long: drop it; `run` then fails and the owner reconnects.
                if self._writer is not None:
                    self._writer.transport.abort()
                return
            self._write(encode_command("PING"))

    def _write(self, data: bytes) -> None:
        if self._writer is None or self._writer.is_closing():
            raise ConnectionError("subscriber connection is closed")
        self._writer.write(data)

    async def _read(self) -> Any:
        """The next reply: parsed from what is buffered, reading more only when needed
        (one socket read serves every message that arrived together)."""
        assert self._reader is not None
        while True:
            parsed = parse_reply(self._buffer, 0)
            if parsed is not None:
                value, end = parsed
                del self._buffer[:end]
                return value
            chunk = await self._reader.read(1 << 16)
            if not chunk:
                raise ConnectionError("connection closed by Redis")
            self._buffer += chunk


def parse_reply(buf: bytearray, pos: int) -> tuple[Any, int] | None:
    """One RESP2 reply starting at `pos`: (value, end), or None if it is not complete yet."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    kind, line, pos = buf[pos], bytes(buf[pos + 1 : end]), end + 2
    if kind == 42:  # '*' array
        items = []
        for _ in range(int(line)):
            parsed = parse_reply(buf, pos)
            if parsed is None:
                return None
            item, pos = parsed
            items.append(item)
        return items, pos
    if kind == 36:  # '$' bulk string
        size = int(line)
        if size < 0:
            return None, pos  # null bulk string
        if len(buf) < pos + size + 2:
            return None
        return bytes(buf[pos : pos + size]), pos + size + 2
    if kind == 58:  # ':' integer
        return int(line), pos
    if kind == 43:  # '+' simple string
        return line, pos
    if kind == 45:  # '-' error
        return RedisReplyError(line.decode(errors="replace")), pos
    raise ConnectionError(f"unexpected reply from Redis: {bytes(buf[pos - 2 : pos + 40])!r}")
