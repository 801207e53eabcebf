"""Sockets before they carry a request: deadlines and a cap, on uvicorn's httptools protocol.

uvicorn times out a keep-alive connection only after a response; a socket that never
sends a request, or sends it a byte at a time (slowloris), or stops halfway through a
WebSocket upgrade, it keeps forever, and httptools accepts headers of any size. Here:

- every request (headers and body, or the WebSocket upgrade) must arrive whole within
  `HUB_REQUEST_TIMEOUT` of the connection opening or of the previous response; else 408
  and the socket is dropped;
- request headers larger than `MAX_HEADER_BYTES` answer 431 and the socket is dropped;
- at most `HUB_MAX_CONNECTIONS` sockets are open at once (HTTP and WebSocket). A new one
  beyond the cap takes the place of the socket that has waited longest without a whole
  request; when every socket is busy (a request being served, or a WebSocket), the new
  one answers 503.

Dropped sockets are aborted, not closed: closing waits for the peer to read what is
buffered, and a peer that never reads would hold the descriptor anyway.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .uvicorn_transport import HubWebSocketProtocol

MAX_HEADER_BYTES = 64 * 1024
FD_RESERVE = 128  # descriptors kept for PostgreSQL, Redis, files: never taken by sockets


def socket_cap(wanted: int) -> int:
    """`wanted` sockets, raising the process's file limit for them when allowed; fewer when
    the limit cannot be raised (at `ulimit -n 1024` sockets beyond it would fail to be
    accepted at all, /healthz included, instead of taking an idle socket's place)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < needed:
        return max(16, soft - FD_RESERVE)
    return wanted


class ConnectionGuard:
    """The sockets of one server that are waiting for a whole request, oldest first."""

    def __init__(self, cap: int, drop: Callable[[str], None]):
        self.cap = cap
        self.count_drop = drop
        self.waiting: dict[GuardedHttpProtocol, None] = {}

    def admit(self, newcomer: GuardedHttpProtocol, open_sockets: int) -> bool:
        if open_sockets <= self.cap:
            return True
        oldest = next(iter(self.waiting), None)
        if oldest is None:
            return False
        oldest.drop("over_capacity", b"503 Service Unavailable")
        return True


def _response(status: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request deadline, a header cap and the socket cap.

    `request_timeout` and `guard` are set on a subclass made per server
    (`handlers.server.server_config`)."""

    request_timeout: float = 10.0
    guard: ConnectionGuard

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._headers_done = False
        self._messages = 0  # requests read whole on this socket

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.guard.admit(self, len(self.connections)):
            self.drop("over_capacity", b"503 Service Unavailable")
            return
        self._wait_for_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._request_arrived()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._headers_done:
            room = MAX_HEADER_BYTES - self._header_bytes
            if len(data) > room:
                # One read may hold the end of the headers and the start of a large body:
                # the headers are too large only if they have not ended within the cap.
                self._header_bytes = MAX_HEADER_BYTES
                completed = self._messages
                if room > 0:
                    super().data_received(data[:room])
                if self.transport.is_closing() or self.transport.get_protocol() is not self:
                    return  # answered already, or upgraded to a WebSocket
                if not self._headers_done and self._messages == completed:
                    self.drop("headers_too_large", b"431 Request Header Fields Too Large")
                    return
                self.data_received(data[room:])  # a body, or a pipelined request's own budget
                return
            self._header_bytes += len(data)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._headers_done = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._messages += 1
        self._request_arrived()
        self._headers_done, self._header_bytes = False, 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.cycle is not None and self.cycle.response_complete:
            self._wait_for_request()  # idle keep-alive: uvicorn's timer may close it sooner

    def handle_websocket_upgrade(self) -> None:
        self._request_arrived()  # the WebSocket protocol answers for the socket from here
        # uvicorn's hand-over, without writing the parsed request out to be parsed again:
        # `server_config` always pairs this protocol with a HubWebSocketProtocol.
        self.connections.discard(self)
        protocol: HubWebSocketProtocol = self.ws_protocol_class(  # type: ignore[call-arg, misc, assignment]
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        protocol.connection_made(self.transport)
        protocol.upgrade(self.scope["method"], self.url, self.scope["headers"])  # type: ignore[arg-type]
        self.transport.set_protocol(protocol)
        # The parser and this protocol refer to each other; with the socket handed over,
        # nothing feeds the parser again. Without the cycle this protocol is freed now,
        # not by a collection that must find it among every connection's objects.
        self.parser = None  # type: ignore[assignment]

    def _wait_for_request(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout, self._expired)
            self.guard.waiting[self] = None

    def _request_arrived(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.guard.waiting.pop(self, None)

    def _expired(self) -> None:
        self._deadline = None
        self.drop("request_timeout", b"408 Request Timeout")

    def drop(self, reason: str, status: bytes) -> None:
        """Answer `status` when no response has started, and free the socket now."""
        self._request_arrived()
        self.guard.count_drop(reason)
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_response(status))
        self.transport.abort()
