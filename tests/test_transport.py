"""The transport under uvicorn (handlers/uvicorn_transport.py, handlers/uvicorn_http.py):
the fan-out fast path is on in a plain hub, and no peer, before or after a refusal, costs
the hub more than the bounds in docs/operations.md ("Transport protection").

Each attack runs a few seconds against a real hub process while a neighbour in another
session sends events and a probe opens fresh connections to /healthz.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import uvicorn
import websockets
from starlette.types import Receive, Scope, Send

from handlers.server import server_config
from handlers.uvicorn_http import GuardedHttpProtocol
from hub.config import Settings
from tests.attack_tools import (
    PING,
    TEXT,
    Neighbour,
    client_frame,
    cpu_seconds,
    dropped_within,
    flood,
    raw_websocket,
    read_until_closed,
    rss_mib,
    server_frames,
    upgrade_request,
)
from tests.auth_support import make_session, token, token_hub
from tests.support import ROOT, HubProcess, LiveClient, api, create_session

pytestmark = pytest.mark.timeout(90)

# The bounds docs/operations.md promises for a neighbour and the process during an attack.
NEIGHBOUR_WORST_SECONDS = 1.0
RSS_GROWTH_MIB = 16
CLOSE_GRACE = 2.0  # HUB_CLOSE_GRACE's default


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def metrics(hub: HubProcess) -> str:
    return (await api(hub, "GET", "/metrics")).text


@pytest.fixture(scope="module")
def guarded(pg_base: str) -> Iterator[HubProcess]:
    """A token-mode hub whose request deadline and socket cap are small enough to test."""
    with token_hub(pg_base, HUB_REQUEST_TIMEOUT="1", HUB_MAX_CONNECTIONS="64") as (hub, _):
        yield hub


async def neighbour_of(hub: HubProcess) -> Neighbour:
    session_id = f"nb-{uuid.uuid4().hex[:8]}"
    make_session(hub, "acme", session_id)
    return await Neighbour.join(hub, session_id, token=token(user=f"nb-{uuid.uuid4().hex[:6]}"))


async def test_a_plain_hub_writes_fan_out_frames_on_the_fast_path(hub):
    """Started as `make run` starts it: uvicorn, websockets-sansio, the hub's protocol."""
    session_id = await create_session(hub)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    observer = await LiveClient.connect(hub.ws_url(session_id, "observer"))
    ack = await instructor.request("announcement", {"message": "hello"})
    await observer.wait_for_seq(ack["data"]["seq"])
    text = await metrics(hub)
    assert metric(text, "hub_fast_path_active") == 1.0
    assert metric(text, 'hub_websocket_transports_total{kind="fast"}') == 2.0
    assert metric(text, 'hub_websocket_transports_total{kind="asgi"}') == 0.0
    assert '"msg":"websocket fast path active"' in hub.logs()
    assert await asyncio.wait_for(await observer.ws.ping(), 5) >= 0  # a reading peer gets pongs
    for client in (instructor, observer):
        await client.close()


async def test_an_oversize_frame_closes_with_1009_even_behind_a_backlog(hub):
    """The close frame reaches a client that is behind on reading: the hub half-closes
    and reads on for a while instead of closing on unread data, which would make the
    kernel answer with a TCP reset and drop everything still queued, close frame too."""
    session_id = await create_session(hub)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    path = f"/ws/live-updates?session_id={session_id}&role=observer"
    reader, writer = await raw_websocket(hub, path, receive_buffer=4096)
    for i in range(150):  # a backlog the observer has not read yet
        await instructor.send_event("announcement", {"message": f"{i:04d}" + "x" * 900})
    await instructor.next_of("ack")
    await asyncio.sleep(0.3)
    writer.write(client_frame(TEXT, b"x" * (256 * 1024)))  # 4 × HUB_MAX_FRAME_BYTES
    data = await read_until_closed(reader, CLOSE_GRACE + 3)
    writer.close()
    await instructor.close()
    frames = server_frames(data)
    assert frames and frames[-1][0] == 0x8, f"no close frame after {len(frames)} frames"
    assert int.from_bytes(frames[-1][1][:2], "big") == 1009


async def test_pings_without_reading_are_a_rate_limited_close_with_bounded_memory(guarded):
    neighbour = await neighbour_of(guarded)
    await neighbour.probe(0.3)  # warm
    before = rss_mib(guarded)
    probing = asyncio.create_task(neighbour.probe(4))
    # An admitted observer (a refused peer is the next test) pings flat out, never reading.
    session_id = f"ping-{uuid.uuid4().hex[:8]}"
    make_session(guarded, "acme", session_id)
    path = f"/ws/live-updates?session_id={session_id}&role=observer&token={token(role='observer')}"
    reader, writer = await raw_websocket(guarded, path)
    pings = client_frame(PING, b"p" * 125) * 1000  # 131 kB a write, 24 MB at most
    took = await flood(writer, pings, 3)
    dropped = await dropped_within(reader, CLOSE_GRACE + 2)
    await probing
    grown = rss_mib(guarded) - before
    text = await metrics(guarded)
    writer.close()
    await neighbour.close()
    assert dropped, f"the hub still holds the socket after {took:.1f}s of pings"
    assert grown < RSS_GROWTH_MIB, f"hub RSS grew {grown:.1f} MiB"
    assert metric(text, 'hub_sockets_dropped_total{reason="ping_flood"}') >= 1
    events, health = neighbour.worst()
    assert events < NEIGHBOUR_WORST_SECONDS and health < NEIGHBOUR_WORST_SECONDS, neighbour.summary()


async def test_refused_peers_sending_flat_out_cost_nothing_after_the_grace(guarded):
    neighbour = await neighbour_of(guarded)
    await neighbour.probe(0.3)
    sockets = [await raw_websocket(guarded, "/ws/live-updates?session_id=x&role=observer") for _ in range(10)]
    frames = client_frame(TEXT, b'{"type":"heartbeat"}' + b" " * 1000) * 64  # 65 kB a write
    cpu_before, rss_before = cpu_seconds(guarded), rss_mib(guarded)
    probing = asyncio.create_task(neighbour.probe(4))
    await asyncio.gather(*(flood(writer, frames, 4) for _, writer in sockets))
    await probing
    cpu = cpu_seconds(guarded) - cpu_before
    grown = rss_mib(guarded) - rss_before
    dropped = await asyncio.gather(*(dropped_within(reader, 1) for reader, _ in sockets))
    for _, writer in sockets:
        writer.close()
    await neighbour.close()
    assert all(dropped), f"{dropped.count(False)} of 10 refused sockets still open"
    # Ten peers flat out for 4 s: the neighbour's own traffic and the closes, not 4 s of parsing.
    assert cpu < 1.5, f"hub used {cpu:.2f}s of CPU in 4 s"
    assert grown < RSS_GROWTH_MIB, f"hub RSS grew {grown:.1f} MiB"
    events, health = neighbour.worst()
    assert events < NEIGHBOUR_WORST_SECONDS and health < NEIGHBOUR_WORST_SECONDS, neighbour.summary()


async def test_idle_slowloris_and_half_handshake_sockets_are_timed_out_and_capped(guarded):
    neighbour = await neighbour_of(guarded)
    await neighbour.probe(0.3)
    before_text, rss_before = await metrics(guarded), rss_mib(guarded)
    upgrade = upgrade_request("/ws/live-updates?session_id=x&role=observer", guarded.port)
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for i in range(120):  # HUB_MAX_CONNECTIONS is 64 here
        reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
        if i % 3 == 1:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # slowloris: never ends
        elif i % 3 == 2:
            writer.write(upgrade[: len(upgrade) // 2])  # half an upgrade
        opened.append((reader, writer))
    probing = asyncio.create_task(neighbour.probe(2.5))
    for _ in range(5):  # the slowloris ones keep trickling
        for i, (_, writer) in enumerate(opened):
            if i % 3 == 1 and not writer.transport.is_closing():
                writer.write(b"X-Slow: 1\r\n")
        await asyncio.sleep(0.4)
    await probing
    dropped = await asyncio.gather(*(dropped_within(reader, 2) for reader, _ in opened))
    text = await metrics(guarded)
    grown = rss_mib(guarded) - rss_before
    for _, writer in opened:
        writer.close()
    await neighbour.close()
    assert all(dropped), f"{dropped.count(False)} of 120 sockets still open"
    for reason in ("request_timeout", "over_capacity"):
        name = f'hub_sockets_dropped_total{{reason="{reason}"}}'
        assert metric(text, name) > metric(before_text, name), reason
    assert "hub_open_sockets" in text
    assert grown < RSS_GROWTH_MIB, f"hub RSS grew {grown:.1f} MiB"
    events, health = neighbour.worst()
    assert events < NEIGHBOUR_WORST_SECONDS and health < NEIGHBOUR_WORST_SECONDS, neighbour.summary()


async def test_request_headers_beyond_the_cap_answer_431(guarded):
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(200), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 431"), answer


async def test_small_headers_and_a_large_body_in_one_read_are_not_taken_for_large_headers(guarded):
    """A client that writes its headers and a body beyond the header cap at once (one read
    on the hub's side) gets the API's answer (here 401: no token), not 431; and a pipelined
    second request after a body gets its own header budget."""
    body = b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    head = (
        b"POST /api/v2/sessions/create HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        + b"content-length: %d\r\n\r\n" % len(body)
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
    writer.write(head + body)
    answer = await asyncio.wait_for(reader.read(200), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer
    pad = b"y" * 60_000
    first = b"POST /healthz HTTP/1.1\r\nHost: x\r\ncontent-length: %d\r\n\r\n" % len(pad) + pad
    second = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"z" * 30_000 + b"\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
    writer.write(first + second)
    answers = b""
    with contextlib.suppress(TimeoutError):
        while answers.count(b"HTTP/1.1 ") < 2:
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            if not chunk:
                break
            answers += chunk
    writer.close()
    assert b"431" not in answers.split(b"\r\n\r\n")[0] and answers.count(b"HTTP/1.1 ") == 2, answers[:300]


def test_the_socket_cap_fits_in_the_file_limit():
    """At a low `ulimit -n` the cap shrinks to fit (sockets beyond the file limit could not
    even be accepted, so none could take an idle one's place); when it may, the hub raises
    its own limit instead."""
    script = (
        "import resource; from handlers.uvicorn_http import socket_cap\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200)); print(socket_cap(4096))\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (100, 190)); print(socket_cap(50))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.stdout.split() == ["72", "50"], done


async def test_an_upgraded_sockets_http_protocol_is_freed_without_the_cyclic_collector():
    # Its parser and it referred to each other: every WebSocket left one cycle of garbage
    # behind, for collections that walk every open connection's objects to find it.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": "welcome"})
            while (await receive())["type"] != "websocket.disconnect":
                pass

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = server_config(app, Settings(), "127.0.0.1", sock.getsockname()[1])
    config.lifespan = "off"
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    gc.collect()
    gc.disable()
    try:
        async with websockets.connect(f"ws://127.0.0.1:{sock.getsockname()[1]}/") as ws:
            assert await ws.recv() == "welcome"
            alive = [o for o in gc.get_objects() if isinstance(o, GuardedHttpProtocol)]
            assert alive == []
    finally:
        gc.enable()
        server.should_exit = True
        await serving
