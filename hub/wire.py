"""One outgoing message, encoded once for every member that receives it.

Server-to-client WebSocket frames are not masked, so the frame bytes of an event are the
same for every connection: a room builds them once and each socket just writes them
(as `websockets.broadcast()` does), instead of re-framing per member.
"""

from __future__ import annotations

import struct

_TEXT_FIN = 0x81
_SHORT_HEADERS = [bytes((_TEXT_FIN, size)) for size in range(126)]


def text_frame(payload: bytes) -> bytes:
    """A complete, unfragmented, unmasked text frame (RFC 6455 §5.2)."""
    size = len(payload)
    if size < 126:
        header = _SHORT_HEADERS[size]
    elif size < 1 << 16:
        header = struct.pack("!BBH", _TEXT_FIN, 126, size)
    else:
        header = struct.pack("!BBQ", _TEXT_FIN, 127, size)
    return header + payload


class WireMessage:
    """A message as text (HTTP streams, the plain ASGI path) and as a WebSocket frame, each
    made only when asked for. Built from the encoder's bytes, the frame needs no round
    trip through `str` (the hot path: acks and events straight from a commit)."""

    __slots__ = ("_frame", "_payload", "_text")

    def __init__(self, text: str | bytes):
        if isinstance(text, bytes):
            self._payload: bytes | None = text
            self._text: str | None = None
        else:
            self._payload = None
            self._text = text
        self._frame: bytes | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            assert self._payload is not None
            self._text = self._payload.decode()
        return self._text

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            payload = self._payload
            self._frame = text_frame(payload if payload is not None else self.text.encode())
        return self._frame
