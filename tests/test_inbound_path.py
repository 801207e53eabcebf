"""How a client's frames reach the hub (`receive_frames` in handlers/ws_transports.py):
under the hub's own protocol straight from the socket's reads, under any other ASGI
server through Starlette's `receive()`; the same answers either way, and a fault while
handling a frame still closes the connection with 1011.

The hub runs in this process (uvicorn served from the test's loop) so that the tests
can see from where each frame is handled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
import uvicorn
import websockets
from starlette.applications import Starlette

from handlers import uvicorn_transport, ws_frames
from handlers.app import create_app
from handlers.server import server_config
from handlers.ws import direct_lane
from hub.close_codes import CloseCode
from hub.config import Settings
from tests.attack_tools import raw_websocket, read_until_closed, server_frames
from tests.support import LiveClient, api, create_session

pytestmark = pytest.mark.timeout(60)


@dataclass
class Served:
    app: Starlette
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, session_id: str, role: str, **params: Any) -> str:
        query = {"session_id": session_id, "role": role, **params}
        return f"ws://127.0.0.1:{self.port}/ws/live-updates?{urlencode(query)}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _serve(config_for: Callable[[Starlette, Settings, int], uvicorn.Config], database: str) -> Any:
    settings = Settings(dev_mode=True, database_url=database, db_pool_max=4)
    app = create_app(settings)
    port = _free_port()
    server = uvicorn.Server(config_for(app, settings, port))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    return Served(app, port), server, task


@pytest.fixture(params=["hub", "asgi"])
async def served(request: pytest.FixtureRequest, database: str) -> AsyncIterator[tuple[str, Served]]:
    """The app under the hub's protocol (`python -m hub serve`), or under plain uvicorn."""

    def hub_config(app: Starlette, settings: Settings, port: int) -> uvicorn.Config:
        return server_config(direct_lane(app), settings, host="127.0.0.1", port=port)

    def plain_config(app: Starlette, settings: Settings, port: int) -> uvicorn.Config:
        return uvicorn.Config(app, host="127.0.0.1", port=port, ws="websockets-sansio", log_config=None)

    config = hub_config if request.param == "hub" else plain_config
    hub, server, task = await _serve(config, database)
    yield request.param, hub
    server.should_exit = True
    await task


def _record_callers(hub: Served) -> list[asyncio.Task[Any] | None]:
    """Note the task each frame is handled in (None: in a transport callback)."""
    inbound = hub.app.state.hub.inbound
    real = inbound.handle_frame
    seen: list[asyncio.Task[Any] | None] = []

    def handle_frame(*args: Any) -> None:
        seen.append(asyncio.current_task())
        real(*args)

    inbound.handle_frame = handle_frame
    return seen


async def test_a_burst_of_frames_in_one_write_is_handled_in_order_on_either_server(served):
    kind, hub = served
    seen = _record_callers(hub)
    session_id = await create_session(hub)  # type: ignore[arg-type]
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    ids = [f"b{i}" for i in range(50)]
    frames = [{"type": "announcement", "id": i, "data": {"message": i}} for i in ids]
    frames[20] = {"type": "announcement", "id": "bad", "data": {"message": 5}}  # refused alone
    # One `send` per frame, no await between them: they leave in one or a few TCP writes.
    sends = [instructor.ws.send(orjson.dumps(frame).decode()) for frame in frames]
    await asyncio.gather(*sends)
    answers: dict[str, dict[str, Any]] = {}
    while len(answers) < len(frames):
        message = await instructor.next_of("ack", "error")
        answers[message["data"]["id"]] = message
    assert answers["bad"]["type"] == "error" and answers["bad"]["data"]["code"] == "invalid"
    seqs = [answers[i]["data"]["seq"] for i in ids if i != "b20"]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    stored = (await api(hub, "GET", f"/api/v2/session/{session_id}/events")).json()  # type: ignore[arg-type]
    messages = [e["data"]["message"] for e in stored["events"] if e["type"] == "announcement"]
    assert messages == [i for i in ids if i != "b20"]
    await instructor.close()
    if kind == "hub":  # straight from the socket's reads: no task woken per frame
        assert seen and all(task is None for task in seen)
    else:
        assert seen and all(task is not None for task in seen)


async def test_a_fault_while_handling_a_frame_closes_1011_and_is_logged(served, caplog):
    _, hub = served
    inbound = hub.app.state.hub.inbound
    real = inbound.handle_frame

    def faulty(conn: Any, room: Any, raw: str | bytes) -> None:
        if "boom" in str(raw):
            raise KeyError("a bug in the inbound path")
        real(conn, room, raw)

    inbound.handle_frame = faulty
    session_id = await create_session(hub)  # type: ignore[arg-type]
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    assert (await instructor.request("announcement", {"message": "before"}))["type"] == "ack"
    with caplog.at_level(logging.ERROR, logger="hub.ws"):
        await instructor.send_event("announcement", {"message": "boom"})
        assert await instructor.wait_closed(5) == CloseCode.UNEXPECTED_CONDITION
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)
    await instructor.close()


async def test_a_text_frame_that_is_not_utf8_closes_1007(served):
    _, hub = served
    session_id = await create_session(hub)  # type: ignore[arg-type]
    async with websockets.connect(hub.ws_url(session_id, "observer")) as ws:
        await ws.recv()  # welcome
        # websockets refuses to send invalid UTF-8 as text: write the frame by hand.
        payload = b'{"type":"heartbeat","x":"\xff"}'
        mask = uuid.uuid4().bytes[:4]
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        ws.transport.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await ws.recv()
        assert ws.close_code == 1007


def _masked(first: int, payload: bytes) -> bytes:
    """A client frame with a random mask; `first` is the FIN/opcode byte."""
    size = len(payload)
    if size < 126:
        header = bytes([first, 0x80 | size])
    else:
        header = bytes([first, 0x80 | 126]) + size.to_bytes(2, "big")
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _event(client_id: str, message: str) -> bytes:
    return orjson.dumps({"type": "announcement", "id": client_id, "data": {"message": message}})


async def _read_frames(reader: asyncio.StreamReader, want: Callable[[list[Any]], bool]) -> list[Any]:
    data = b""
    while True:
        data += await asyncio.wait_for(reader.read(65536), 5)
        frames = server_frames(data)
        if want(frames):
            return frames


async def test_frames_cut_anywhere_pings_and_fragments_between_them_are_all_read(served, monkeypatch):
    """The hub's protocol reads whole frames itself: a frame may arrive in pieces, and
    a ping or a fragmented message between frames still goes through websockets."""
    kind, hub = served
    cut: list[int] = []

    def frame_at(*args: Any) -> tuple[int, int, int]:
        found = ws_frames.frame_at(*args)
        cut.append(found[0])
        return found

    monkeypatch.setattr(uvicorn_transport, "frame_at", frame_at)
    session_id = await create_session(hub)  # type: ignore[arg-type]
    path = f"/ws/live-updates?session_id={session_id}&role=instructor&name=Sarah"
    reader, writer = await raw_websocket(hub, path)  # type: ignore[arg-type]
    await _read_frames(reader, lambda frames: bool(frames))  # welcome
    stream = b"".join(
        [
            _masked(0x81, _event("long", "x" * 300)),  # a 16-bit length
            _masked(0x89, b"are you there"),  # ping
            _masked(0x81, _event("short", "hi")),
            _masked(0x01, _event("frag", "in two")[:10]),  # text, not final
            _masked(0x80, _event("frag", "in two")[10:]),  # continuation, final
            _masked(0x82, _event("binary", "bytes")),
            _masked(0x81, _event("last", "done")),
        ]
    )
    at, step = 0, 1
    while at < len(stream):  # pieces of 1 to 7 bytes, each its own read on the hub
        writer.write(stream[at : at + step])
        await writer.drain()
        await asyncio.sleep(0.002)
        at, step = at + step, step % 7 + 1

    def answered(frames: list[Any]) -> bool:
        return sum(b'"type":"ack"' in payload for _, payload in frames) >= 5

    frames = await _read_frames(reader, answered)
    writer.close()
    acks = [orjson.loads(payload)["data"]["id"] for _, payload in frames if b'"type":"ack"' in payload]
    assert acks == ["long", "short", "frag", "binary", "last"]
    assert (0xA, b"are you there") in frames  # the pong
    if kind == "hub":  # every frame was cut by the hub's protocol, most of them in pieces
        assert cut.count(ws_frames.TEXT) == 3 and cut.count(ws_frames.BINARY) == 1
        assert cut.count(ws_frames.INCOMPLETE) > 50
    else:
        assert not cut


async def test_an_unmasked_client_frame_closes_1002(served):
    _, hub = served
    session_id = await create_session(hub)  # type: ignore[arg-type]
    reader, writer = await raw_websocket(hub, f"/ws/live-updates?session_id={session_id}&role=observer")  # type: ignore[arg-type]
    await _read_frames(reader, lambda frames: bool(frames))  # welcome
    writer.write(bytes([0x81, 2]) + b"{}")
    frames = server_frames(await read_until_closed(reader, 5))
    writer.close()
    assert frames and frames[-1][0] == 0x8 and int.from_bytes(frames[-1][1][:2], "big") == 1002
