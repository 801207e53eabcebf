"""The transport an accepted WebSocket's connection writes to and reads from.

Under `python -m hub serve` the socket is served by the hub's own protocol
(handlers/uvicorn_transport.py): the room's frames are written straight onto it and the
client's frames reach the connection from the protocol itself. Under any other ASGI server
both go through Starlette's WebSocket, and the hub says so once (log line,
`hub_fast_path_active 0`).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from starlette.websockets import WebSocket

from hub.connection import Transport
from hub.wire import WireMessage

from .transport_stats import stats
from .uvicorn_transport import SCOPE_KEY, FrameSink, HubWebSocketProtocol, log


class FastTransport:
    """A member's socket, written directly: the room's frames in one write when the socket
    can take them now (the fan-out hot path), otherwise an ASGI send, which waits."""

    def __init__(self, protocol: HubWebSocketProtocol):
        self._protocol = protocol
        self.can_write_now = protocol.can_write_now

    def write_frames(self, frames: list[bytes]) -> None:
        self._protocol.transport.write(b"".join(frames))

    def gone(self) -> bool:
        """The peer closed or the socket is lost (or is being closed)."""
        protocol = self._protocol
        return protocol.disconnected or protocol.close_sent or protocol.transport.is_closing()

    async def send(self, message: WireMessage) -> None:
        await self._protocol.send({"type": "websocket.send", "text": message.text})

    async def close(self, code: int, reason: str) -> None:
        self._protocol.close_now(code, reason)


class AsgiTransport:
    """Any other ASGI server: every frame through Starlette's WebSocket."""

    def __init__(self, websocket: WebSocket):
        self._websocket = websocket

    def can_write_now(self) -> bool:
        return False

    def write_frames(self, frames: list[bytes]) -> None:  # never called: can_write_now is False
        raise RuntimeError("no direct writes without the uvicorn transport")

    async def send(self, message: WireMessage) -> None:
        await self._websocket.send_text(message.text)

    async def close(self, code: int, reason: str) -> None:
        try:
            await self._websocket.close(code, reason)
        except Exception:
            pass  # already closed by the peer


def release_handshake(websocket: WebSocket) -> None:
    """Admission has read the handshake's headers (token, origin, subprotocol); an open
    socket keeps none of them (about 1 KB each, held for the connection's life)."""
    headers = websocket.scope.get("headers")
    if isinstance(headers, list):
        headers.clear()  # in place: Starlette's cached Headers share the list


def receive_frames(websocket: WebSocket, sink: FrameSink) -> Coroutine[Any, Any, None]:
    """Call `sink` with each frame the client sends (text as str, binary as bytes) until
    it disconnects: from the protocol itself when the server is ours, else by ASGI. (The
    coroutine itself is returned: no frame of this function waits on an idle socket.)"""
    protocol = websocket.scope.get("extensions", {}).get(SCOPE_KEY)
    if isinstance(protocol, HubWebSocketProtocol):
        return protocol.receive_into(sink)
    return _receive_by_asgi(websocket, sink)


async def _receive_by_asgi(websocket: WebSocket, sink: FrameSink) -> None:
    while True:
        received = await websocket.receive()
        if received["type"] == "websocket.disconnect":
            return
        frame = received.get("text")
        sink(frame if frame is not None else received.get("bytes") or b"")


def open_transport(websocket: WebSocket) -> Transport:
    """The transport for an accepted WebSocket: the fast one when the server is ours."""
    protocol = websocket.scope.get("extensions", {}).get(SCOPE_KEY)
    if isinstance(protocol, HubWebSocketProtocol):
        stats.transports["fast"] += 1
        return FastTransport(protocol)
    if not stats.transports["asgi"]:
        stats.fast_path_active = False
        log.warning("websocket fast path inactive: not served by `python -m hub serve`; frames go by ASGI")
    stats.transports["asgi"] += 1
    return AsgiTransport(websocket)
