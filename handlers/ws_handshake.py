"""The opening handshake of a plain WebSocket request, answered from httptools' parse.

uvicorn hands an upgrade over by writing the request httptools has parsed back out as
bytes, for websockets to parse again; websockets then checks it and builds a response
(with a `Date` uvicorn deletes) that uvicorn rebuilds with its own headers. That was
about a tenth of the hub's CPU per connection in a connect storm. Here the request
httptools parsed is checked where it lies (RFC 6455 §4.2.1: GET, `Connection:
Upgrade`, `Upgrade: websocket`, one 16-byte `Sec-WebSocket-Key`, `Sec-WebSocket-Version:
13`) and the 101 is written in one piece.

Only requests that are plainly valid take this path: anything websockets might judge
otherwise (a missing or repeated header, an offered extension such as permessage-deflate,
a request body, a malformed subprotocol list, …) is written out and goes through
websockets' own parse and checks as before, so its answer (400, 426, 505, …) is
unchanged.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote

from websockets.headers import parse_subprotocol
from websockets.utils import accept_key

SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
MAX_HEADERS = 128  # websockets' limit (http11.MAX_NUM_HEADERS): beyond it, its 431
MAX_LINE = 8000  # under websockets' line limit (8192): longer lines are its to judge

# Headers whose presence sends the request through websockets: it negotiates
# extensions itself and refuses request bodies.
_WEBSOCKETS_JUDGES = frozenset((b"sec-websocket-extensions", b"transfer-encoding", b"content-length"))
_ONCE = frozenset((b"connection", b"upgrade", b"sec-websocket-key", b"sec-websocket-version", b"origin"))


class PlainHandshake:
    """What a plainly valid request asked for: the accept key, its origin, its offered
    subprotocols as uvicorn lists them in the scope (none is chosen here: the app picks
    one when it accepts)."""

    __slots__ = ("accept", "origin", "subprotocols")

    def __init__(self, accept: str, origin: str | None, subprotocols: list[str]):
        self.accept = accept
        self.origin = origin
        self.subprotocols = subprotocols


def plain_handshake(method: str, headers: list[tuple[bytes, bytes]]) -> PlainHandshake | None:
    """The handshake of a plainly valid request; None when websockets must judge it.
    `headers`: httptools' (lower-case name, value) pairs."""
    if method != "GET" or len(headers) > MAX_HEADERS:
        return None
    seen: dict[bytes, bytes] = {}
    offered: list[str] = []
    for name, value in headers:
        if len(name) + len(value) > MAX_LINE or name in _WEBSOCKETS_JUDGES:
            return None
        if name in _ONCE:
            if name in seen:
                return None
            seen[name] = value
        elif name == b"sec-websocket-protocol":
            header = value.decode("latin-1")
            try:  # websockets refuses a malformed list with 400: it must see that one
                parse_subprotocol(header)
            except Exception:
                return None
            offered.extend(token.strip() for token in header.split(","))  # as uvicorn's scope
    if (
        seen.get(b"connection", b"").lower() != b"upgrade"
        or seen.get(b"upgrade", b"").lower() != b"websocket"
        or seen.get(b"sec-websocket-version") != b"13"
    ):
        return None
    key = seen.get(b"sec-websocket-key")
    if key is None or not key.isascii():
        return None
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except binascii.Error:
        return None
    origin = seen.get(b"origin")
    return PlainHandshake(
        accept_key(key.decode("ascii")), origin.decode("latin-1") if origin is not None else None, offered
    )


def request_bytes(method: str, url: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request written out for websockets to parse, as uvicorn does."""
    output = [method.encode(), b" ", url, b" HTTP/1.1\r\n"]
    for name, value in headers:
        output += [name, b": ", value, b"\r\n"]
    output.append(b"\r\n")
    return b"".join(output)


def response_101(
    accept: str,
    defaults: list[tuple[bytes, bytes]],
    extra: list[tuple[bytes, bytes]],
    subprotocol: str | None,
) -> bytes:
    """The 101 as uvicorn would have websockets write it: websockets' headers without its
    `Date`, then the server's default headers and the app's (names in lower case), then
    the chosen subprotocol."""
    output = [SWITCHING, b"Sec-WebSocket-Accept: ", accept.encode(), b"\r\n"]
    for name, value in (*defaults, *extra):
        output += [name.decode("latin-1").lower().encode("latin-1"), b": ", value, b"\r\n"]
    if subprotocol:
        output += [b"Sec-WebSocket-Protocol: ", subprotocol.encode("latin-1"), b"\r\n"]
    output.append(b"\r\n")
    return b"".join(output)


def websocket_scope(
    protocol: Any, url: bytes, headers: list[tuple[bytes, bytes]], subprotocols: list[str]
) -> dict[str, Any]:
    """The ASGI scope uvicorn's websockets-sansio protocol builds, from httptools' parse:
    the same headers (httptools' own list: lower-case names, raw values)."""
    raw_path, _, query_string = url.decode("ascii").partition("?")
    root_path = protocol.root_path
    return {
        "type": "websocket",
        "asgi": {"version": protocol.asgi_version, "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": protocol.scheme,
        "server": protocol.server,
        "client": protocol.client,
        "root_path": root_path,
        "path": root_path + unquote(raw_path),
        "raw_path": root_path.encode("ascii") + raw_path.encode("ascii"),
        "query_string": query_string.encode("ascii"),
        "headers": headers,
        "subprotocols": subprotocols,
        "state": protocol.app_state.copy(),
        "extensions": {"websocket.http.response": {}},
    }
