"""The opening handshake the hub answers from httptools' parse (handlers/ws_handshake.py)
says exactly what uvicorn's own websockets-sansio protocol says, to valid and invalid
requests alike, and gives the app the same scope."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from handlers.server import server_config
from handlers.ws_handshake import plain_handshake
from hub.config import Settings

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example
PLAIN = [
    (b"host", b"127.0.0.1"),
    (b"upgrade", b"websocket"),
    (b"connection", b"Upgrade"),
    (b"sec-websocket-key", KEY.encode()),
    (b"sec-websocket-version", b"13"),
]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "websocket":
        return
    await receive()
    chosen = next((p for p in scope["subprotocols"] if p.startswith("bearer.")), None)
    await send({"type": "websocket.accept", "subprotocol": chosen, "headers": [(b"X-Hub", b"1")]})
    seen = {k: scope[k] for k in ("path", "query_string", "raw_path", "subprotocols", "headers")}
    await send({"type": "websocket.send", "text": repr(seen)})
    await send({"type": "websocket.close", "code": 1000})


@contextlib.asynccontextmanager
async def serving(config: uvicorn.Config, sock: socket.socket) -> AsyncIterator[int]:
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task


def _socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


async def exchange(port: int, request: bytes) -> bytes:
    """Everything the server writes until it closes or is quiet for half a second."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(1 << 16), 0.5):
            received += chunk
    except TimeoutError:
        pass
    finally:
        writer.close()
    return received


def normalised(raw: bytes) -> bytes:
    """Without the Date (its value changes) and the server header (uvicorn's own name)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith((b"date:", b"server:"))]
    return b"\r\n".join(lines) + b"\r\n\r\n" + rest


def request(method: str, lines: list[str]) -> bytes:
    return (
        f"{method} /ws?x=1&y=%20z HTTP/1.1\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n"
    ).encode()


BASE = ["Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {KEY}"]
CASES = {
    "plain": request("GET", [*BASE, "Sec-WebSocket-Version: 13"]),
    "bearer subprotocol": request(
        "GET", [*BASE, "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: chat, bearer.abc.def-g_h"]
    ),
    "origin": request("GET", [*BASE, "Sec-WebSocket-Version: 13", "Origin: https://example.org"]),
    "permessage-deflate": request(
        "GET",
        [
            *BASE,
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
        ],
    ),
    "keep-alive, Upgrade": request(
        "GET",
        [
            "Host: 127.0.0.1",
            "Upgrade: websocket",
            "Connection: keep-alive, Upgrade",
            f"Sec-WebSocket-Key: {KEY}",
            "Sec-WebSocket-Version: 13",
        ],
    ),
    "short key": request(
        "GET",
        [
            "Host: x",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: c2hvcnQ=",
            "Sec-WebSocket-Version: 13",
        ],
    ),
    "no key": request(
        "GET", ["Host: x", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"]
    ),
    "two keys": request("GET", [*BASE, f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Version: 13"]),
    "version 8": request("GET", [*BASE, "Sec-WebSocket-Version: 8"]),
    "two origins": request("GET", [*BASE, "Sec-WebSocket-Version: 13", "Origin: a", "Origin: b"]),
    "malformed subprotocol": request(
        "GET", [*BASE, "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: a b"]
    ),
    "post": request("POST", [*BASE, "Sec-WebSocket-Version: 13", "Content-Length: 0"]),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_the_hub_answers_every_handshake_as_uvicorn_does(case: str) -> None:
    hub_sock, stock_sock = _socket(), _socket()
    hub = server_config(app, Settings(), "127.0.0.1", hub_sock.getsockname()[1])
    stock = uvicorn.Config(app, loop="uvloop", http="httptools", ws="websockets-sansio", log_config=None)
    hub.lifespan = stock.lifespan = "off"
    async with serving(hub, hub_sock) as hub_port, serving(stock, stock_sock) as stock_port:
        ours = await exchange(hub_port, CASES[case])
        theirs = await exchange(stock_port, CASES[case])
    assert ours, case
    assert normalised(ours) == normalised(theirs)


def test_a_plain_request_is_answered_without_websockets_parsing_it_again() -> None:
    plain = plain_handshake("GET", PLAIN)
    assert plain is not None and plain.accept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    offered = plain_handshake("GET", [*PLAIN, (b"sec-websocket-protocol", b"chat, bearer.t")])
    assert offered is not None and offered.subprotocols == ["chat", "bearer.t"]
    # Anything websockets might judge otherwise is left to it.
    for other in (
        [*PLAIN, (b"sec-websocket-extensions", b"permessage-deflate")],
        [*PLAIN, (b"sec-websocket-key", KEY.encode())],
        [*PLAIN, (b"sec-websocket-protocol", b"a b")],
        [*PLAIN, (b"content-length", b"0")],
        [(n, b"12") if n == b"sec-websocket-version" else (n, v) for n, v in PLAIN],
        [(n, b"c2hvcnQ=") if n == b"sec-websocket-key" else (n, v) for n, v in PLAIN],
    ):
        assert plain_handshake("GET", other) is None, other
    assert plain_handshake("POST", PLAIN) is None
