"""The hub on uvicorn: the one module that knows uvicorn's WebSocket protocol objects.

`python -m hub serve` runs uvicorn with subclasses of the protocol made here
(`handlers.server.server_config`): uvicorn's websockets-sansio protocol with

- **the fan-out fast path**: the protocol puts itself in the connection's scope
  (`scope["extensions"]["hub.transport"]`), and `open_transport()`
  (handlers/ws_transports.py) gives the endpoint a transport that writes a room's
  ready-made frames straight onto the socket when it can take them (no ASGI round trip
  per member). Under any other server the endpoint gets plain ASGI sends and the hub
  says so (log line, `hub_fast_path_active 0`, `hub_websocket_transports_total{kind="asgi"}`);
- **the handshake from httptools' parse**: a plainly valid upgrade request is answered
  from the request httptools parsed, without websockets parsing it again
  (`ws_handshake`); any other goes through websockets' checks as before;
- **the inbound fast path**: `receive_frames()` (handlers/ws_transports.py) has the
  protocol hand each frame the client sends to the hub as it is parsed, inside
  `data_received`: no ASGI message, no queue, no task wakeup and no pause and resume of
  reading per frame (a burst of frames in one read is handled in one go). Under any other
  server, Starlette's `receive()`;
- **pongs only while the peer reads**: uvicorn writes a pong for every ping, whether or
  not the peer reads them, so a client that pings and never reads grows the hub's
  buffer without bound. Here a pong is written only while the socket is writable (only
  the latest is owed, as RFC 6455 §5.5.3 allows), and pings count against the
  connection's rate limit (`HUB_RATE_LIMIT` / `HUB_RATE_BURST`): beyond it the socket
  is closed with 3508 `rate_limited`;
- **a closed peer costs nothing after `HUB_CLOSE_GRACE`**: once the hub has sent a close
  frame (any code, also 1009 for an oversize frame and 1011 for a ping timeout) it reads
  at most `CLOSING_READ_BUDGET` more bytes while waiting for the peer's close, then stops
  reading, and aborts the socket when the grace is over. A parser failure (1009, 1007)
  half-closes instead of closing, so that the close frame reaches the peer before the
  unread rest of its frame would make the kernel answer with a TCP reset.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected, get_client_addr, get_path_with_query_string
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import Protocol, State

from hub.close_codes import CloseCode, reason
from hub.slim_sync import Flag, Inbox

from .transport_stats import stats
from .ws_frames import BINARY, HAND_OVER, INCOMPLETE, TEXT, apply_mask, at_frame_boundary, frame_at
from .ws_handshake import PlainHandshake, plain_handshake, request_bytes, response_101, websocket_scope

log = logging.getLogger("hub.transport")

SCOPE_KEY = "hub.transport"
CLOSING_READ_BUDGET = 64 * 1024  # bytes read after our close frame, looking for the peer's
PING_INTERVAL = PING_TIMEOUT = 20.0  # uvicorn's keepalive pings: a dead peer goes in ≤ 40 s
_PONG = b"\x8a"  # first byte of a serialized pong frame (FIN, opcode 0xA)


class HubWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, bounded for peers that misbehave.

    The limits are class attributes set on a subclass made per server (`server_config`)."""

    close_grace: float = 2.0
    ping_rate: float = 100.0
    ping_burst: float = 200.0

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # uvicorn's asyncio.Queue and Event hold four waiter deques per socket: the same
        # methods without them (an idle socket's memory is what bounds a process).
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag(True)  # type: ignore[assignment]
        self._ping_tokens = self.ping_burst
        self._ping_checked = self.loop.time()
        self._owed_pong: bytes | None = None
        self._closing = False
        self._read_since_close = 0
        self._sink: FrameSink | None = None  # set while `receive_into` runs
        self._owns_stream = False  # `_split` cuts the frames; websockets sees whole ones only
        self._partial: bytearray | None = None  # the start of a frame `_split` waits for
        self._frame_limit = 0  # the largest payload `_split` reads itself (websockets' limit)
        self._plain: PlainHandshake | None = None  # answered without websockets' parse

    # -- the handshake: a plain one from httptools' parse (ws_handshake)

    def upgrade(self, method: str, url: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        """The upgrade request as httptools parsed it (`GuardedHttpProtocol`): a plainly
        valid one opens here; any other is written out for websockets to judge."""
        plain = plain_handshake(method, headers)
        if plain is None:
            self.data_received(request_bytes(method, url, headers))
            return
        conn = self.conn
        conn.accept_called = True
        conn.origin = plain.origin  # type: ignore[assignment]
        # websockets' parser waits for the request it will not see: on to the frames.
        conn.parser = Protocol.parse(conn)
        next(conn.parser)
        self._plain = plain
        self.handshake_initiated = True
        self.scope = websocket_scope(self, url, headers, plain.subprotocols)  # type: ignore[assignment]
        self.scope["extensions"][SCOPE_KEY] = self  # type: ignore[index,assignment]
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

    def _accept_plain(self, plain: PlainHandshake, message: Any) -> None:
        """uvicorn's accept, for a handshake `upgrade` took: the same 101, written at once."""
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info(
                '%s - "WebSocket %s" [accepted]',
                get_client_addr(self.scope),
                get_path_with_query_string(self.scope),
            )
        if self.transport.is_closing():
            return
        self._plain = None
        response = response_101(
            plain.accept, self.default_headers, list(message.get("headers", [])), message.get("subprotocol")
        )
        self.handshake_complete = True
        self.conn.state = State.OPEN
        if self.conn.logger.isEnabledFor(logging.INFO):
            self.conn.logger.info("connection open")
        self.transport.write(response)
        self.start_keepalive()

    # -- the fast path: the endpoint finds this protocol in its scope

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:
            self.scope["extensions"][SCOPE_KEY] = self  # type: ignore[index,assignment]
        # websockets' parser keeps the handshake request for the socket's life; the scope
        # has its own copy of the headers, so its parsed ones can go (about 1.5 KB).
        event.headers.clear()

    # -- the inbound fast path: frames go to the hub from data_received

    async def receive_into(self, sink: FrameSink) -> None:
        """Call `sink` with every message the client sends, straight from `data_received`,
        until it disconnects. A `sink` that raises stops this: the error is raised here,
        in the connection's task, and later frames wait unread as they would behind
        uvicorn's receive."""
        queue = self.queue
        while not queue.empty():  # what came before the hand-over goes first, in order
            if _deliver(queue.get_nowait(), sink):
                return
        self._sink = sink
        # From a frame boundary on, this protocol cuts the frames itself (`_split`); not
        # with permessage-deflate, whose frames websockets must inflate anyway.
        self._owns_stream = not self.conn.extensions and at_frame_boundary(self.conn)
        limits = [size for size in (self.conn.max_message_size, self.conn.max_fragment_size) if size]
        self._frame_limit = min(limits, default=2**63)
        if self.read_paused:  # uvicorn paused reading per queued message; no need now
            self.read_paused = False
            self.transport.resume_reading()
        try:
            while not _deliver(await queue.get(), sink):
                pass
        finally:
            self._sink = None

    def send_receive_event_to_app(self) -> None:  # a whole message, through websockets' parser
        if self._sink is None:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        self._to_sink(data, self.curr_msg_data_type == "text")

    def _to_sink(self, data: bytes | bytearray, text: bool) -> None:
        sink = self._sink
        if sink is None or self.close_sent:  # past our close: discarded, as uvicorn does
            return
        try:
            frame = data.decode() if text else bytes(data)
        except UnicodeDecodeError:  # as uvicorn does: 1007, invalid frame payload data
            self.logger.exception("Invalid UTF-8 sequence received from client.")
            self.conn.send_close(1007)
            self.handle_parser_exception()
            return
        try:
            sink(frame)
        except Exception as exc:  # the connection's task raises it, as if it had read the frame
            self._sink = None
            self.queue.put_nowait(exc)  # type: ignore[arg-type]

    def _split(self, data: bytes) -> None:
        """Cut the frames out of `data` (`ws_frames`): the common ones to the sink, any
        other whole to websockets; once the sink is gone or the socket closes, the rest of
        the stream is websockets' again."""
        buffer: bytes | bytearray = data
        if self._partial is not None:
            self._partial += data
            buffer, self._partial = self._partial, None
        conn, pos, size, limit = self.conn, 0, len(buffer), self._frame_limit
        while pos < size:
            if self._sink is None or self.close_sent or self._closing or conn.state is not State.OPEN:
                break
            head, start, end = frame_at(buffer, pos, limit)
            if head == INCOMPLETE:  # kept as it is when it already is the partial buffer
                partial = buffer if pos == 0 and isinstance(buffer, bytearray) else bytearray(buffer[pos:])
                self._partial = partial
                return
            if head == HAND_OVER:
                break
            if (head == TEXT or head == BINARY) and conn.current_size is None:
                self._to_sink(apply_mask(buffer[start:end], buffer[start - 4 : start]), head == TEXT)
            else:  # control frames, fragments, reserved bits: websockets', one whole frame
                super().data_received(bytes(buffer[pos:end]))
            pos = end
        else:
            return  # every whole frame taken
        self._owns_stream = False
        if pos < size:
            self._slow_data_received(bytes(buffer[pos:]))

    def can_write_now(self) -> bool:
        return (
            self.writable.is_set()  # else paused: the peer is not reading
            and not self.close_sent
            and self.conn.state is State.OPEN
            and not self.transport.is_closing()
        )

    # -- pings

    def handle_ping(self) -> None:
        frames = self.conn.data_to_send()  # websockets queued a pong for each ping
        pongs = [frame for frame in frames if frame[:1] == _PONG]
        other = [frame for frame in frames if frame[:1] != _PONG]
        if other:
            self.transport.write(b"".join(other))
        if not self._take_ping():
            stats.drop("ping_flood")
            self.close_now(CloseCode.RATE_LIMITED, reason(CloseCode.RATE_LIMITED))
            return
        if not pongs or self._closing:
            return
        if self.writable.is_set():
            self.transport.write(pongs[-1])
        else:  # answered once the peer reads again; older pings need no answer
            self._owed_pong = pongs[-1]

    def _take_ping(self) -> bool:
        now = self.loop.time()
        refill = (now - self._ping_checked) * self.ping_rate
        self._ping_tokens = min(self.ping_burst, self._ping_tokens + refill)
        self._ping_checked = now
        if self._ping_tokens < 1:
            return False
        self._ping_tokens -= 1
        return True

    def resume_writing(self) -> None:
        super().resume_writing()
        owed, self._owed_pong = self._owed_pong, None
        if owed is not None and not self._closing and not self.transport.is_closing():
            self.transport.write(owed)

    # -- closing: a bounded read for the peer's close, then the socket goes

    async def send(self, message: Any) -> None:
        plain = self._plain
        if plain is not None and message["type"] == "websocket.accept" and self.initial_response is None:
            await self.writable.wait()
            if self.disconnected:
                raise ClientDisconnected()
            self._accept_plain(plain, message)
            return
        if message["type"] == "websocket.close" and self.handshake_complete and not self.close_sent:
            if self.initial_response is None:
                # Not behind `writable`: a peer that does not read must still be let go.
                self.close_now(message.get("code", 1000), message.get("reason") or "")
                return
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            self.response = None  # type: ignore[assignment]  # written; only the handshake reads it

    def close_now(self, code: int, why: str) -> None:
        """Send a close frame now and start the grace; the app sees the disconnect."""
        if self.close_sent or self.transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": why})
        self.conn.send_close(code, why)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self._start_closing()

    def handle_parser_exception(self) -> None:
        # The frame was refused (too big, invalid): websockets queued a close frame and
        # an end of stream, and discards what the peer sends from now on.
        sent = self.conn.close_sent
        code, why = (sent.code, sent.reason) if sent is not None else (1002, "")
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": why})
        output = self.conn.data_to_send()
        self.transport.write(b"".join(output))
        self.close_sent = True
        if output and output[-1] == b"" and self.transport.can_write_eof():
            self.transport.write_eof()
        self._start_closing()

    def keepalive_timeout(self) -> None:
        self.pong_timer = None
        self.pending_ping_payload = None
        if self.close_sent or self.transport.is_closing():
            return
        self.close_now(1011, "keepalive ping timeout")

    def handle_close(self, event: Any) -> None:
        super().handle_close(event)
        if self.transport.is_closing() and self.transport.get_write_buffer_size():
            self._arm_abort()  # closed by uvicorn, but a peer that does not read holds it

    def data_received(self, data: bytes) -> None:
        if self._owns_stream:
            self._split(data)
            return
        self._slow_data_received(data)

    def _slow_data_received(self, data: bytes) -> None:
        if self._closing:
            self._read_since_close += len(data)
            if self._read_since_close > CLOSING_READ_BUDGET:
                # Still sending after our close: stop reading; the grace ends it.
                self.read_paused = False  # so that uvicorn's receive() does not resume it
                self.transport.pause_reading()
                return
        super().data_received(data)

    def _start_closing(self) -> None:
        self._closing = True
        self._owed_pong = None
        self.stop_keepalive()
        if self.read_paused:  # to see the peer's close reply
            self.read_paused = False
            self.transport.resume_reading()
        self._arm_abort()

    def _arm_abort(self) -> None:
        if self.close_timer is not None:
            self.close_timer.cancel()
        self.close_timer = self.loop.call_later(self.close_grace, self._grace_over)

    def _grace_over(self) -> None:
        self.close_timer = None
        stats.drop("close_grace_over")
        self.transport.abort()


FrameSink = Callable[[str | bytes], None]


def _deliver(message: Any, sink: FrameSink) -> bool:
    """Hand one queued ASGI message (or a sink's failure) on; True at the disconnect."""
    if isinstance(message, BaseException):
        raise message
    if message["type"] == "websocket.disconnect":
        return True
    text = message.get("text")
    sink(text if text is not None else message.get("bytes") or b"")
    return False
