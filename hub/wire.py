"""One outgoing message, encoded once for every member that receives it.

Server-to-client WebSocket frames are not masked, so the frame bytes of an event are the
same for every connection: a room builds them once and each socket just writes them
(as `websockets.broadcast()` does), instead of re-framing per member.
"""

from __future__ import annotations

import struct

_TEXT_FIN = 0x81


def text_frame(payload: bytes) -> bytes:
    """A complete, unfragmented, unmasked text frame (RFC 6455 §5.2)."""
    size = len(payload)
    if size < 126:
        header = bytes((_TEXT_FIN, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", _TEXT_FIN, 126, size)
    else:
        header = struct.pack("!BBQ", _TEXT_FIN, 127, size)
    return header + payload


class WireMessage:
    __slots__ = ("_frame", "text")

    def __init__(self, text: str):
        self.text = text
        self._frame: bytes | None = None

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = text_frame(self.text.encode())
        return self._frame
