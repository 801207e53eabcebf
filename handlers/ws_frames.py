"""Client WebSocket frames cut from the byte stream, for the inbound fast path.

websockets' parser is a chain of generators, about a tenth of a busy hub's CPU for small
frames. `HubWebSocketProtocol` reads the common frame itself (a whole, masked, final text
or binary frame within the size limit) and hands websockets every other frame whole, so
that its parser always stands at a frame boundary; anything this module does not vouch
for (an unmasked frame, a frame over the limit) goes to websockets with the rest of the
stream, for good: its checks and its close codes stay the only ones.
"""

from __future__ import annotations

from typing import Any

from websockets.frames import apply_mask

TEXT = 0x81  # FIN, no RSV bits, opcode 1
BINARY = 0x82  # FIN, no RSV bits, opcode 2
HAND_OVER = -1  # `frame_at`: websockets takes the stream from here
INCOMPLETE = -2  # `frame_at`: wait for more bytes

__all__ = ["BINARY", "HAND_OVER", "INCOMPLETE", "TEXT", "apply_mask", "at_frame_boundary", "frame_at"]


def frame_at(data: bytes | bytearray, pos: int, limit: int) -> tuple[int, int, int]:
    """(first header byte, payload start, frame end) of the client frame at `pos`, or
    `(INCOMPLETE, 0, 0)` until the whole frame is there, or `(HAND_OVER, 0, 0)` for a
    frame websockets must judge (unmasked, or its payload over `limit` bytes)."""
    available = len(data) - pos
    if available < 2:
        return INCOMPLETE, 0, 0
    second = data[pos + 1]
    if not second & 0x80:  # a client frame must be masked: websockets fails it (1002)
        return HAND_OVER, 0, 0
    length = second & 0x7F
    start = pos + 6
    if length == 126:
        if available < 4:
            return INCOMPLETE, 0, 0
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        start = pos + 8
    elif length == 127:
        if available < 10:
            return INCOMPLETE, 0, 0
        length = int.from_bytes(data[pos + 2 : pos + 10], "big")
        start = pos + 14
    if length > limit:  # websockets refuses it (1009) before reading it
        return HAND_OVER, 0, 0
    end = start + length
    if end > len(data):
        return INCOMPLETE, 0, 0
    return data[pos], start, end


def at_frame_boundary(conn: Any) -> bool:
    """Whether websockets' parser has nothing buffered and waits for a new frame's first
    byte (its innermost generator is then `StreamReader.at_eof`). False when that cannot
    be told, so that a websockets whose insides differ keeps the whole stream."""
    reader = getattr(conn, "reader", None)
    if reader is None or getattr(reader, "buffer", True) or getattr(reader, "eof", True):
        return False
    waiting = getattr(conn, "parser", None)
    for _ in range(8):  # ServerProtocol.parse -> Protocol.parse -> at_eof
        inner = getattr(waiting, "gi_yieldfrom", None)
        if inner is None:
            break
        waiting = inner
    return getattr(getattr(waiting, "gi_code", None), "co_name", None) == "at_eof"
