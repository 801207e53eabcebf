"""Connection limits on one hub: slow consumers, idle timeout, max_participants, presence."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct

from tests.support import LiveClient, api, create_session


def _stalled_client(port: int, path: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads.

    Library clients keep reading into their own memory; this one lets the kernel's small
    receive buffer fill so the hub's writes really back up.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def _close_code_in(stream: bytes) -> int | None:
    """Walk the server's (unmasked) frames and return the close frame's code."""
    at = 0
    while at + 2 <= len(stream):
        opcode, length = stream[at] & 0x0F, stream[at + 1] & 0x7F
        at += 2
        if length == 126:
            length, at = struct.unpack("!H", stream[at : at + 2])[0], at + 2
        elif length == 127:
            length, at = struct.unpack("!Q", stream[at : at + 8])[0], at + 8
        if opcode == 0x8:
            return int(struct.unpack("!H", stream[at : at + 2])[0]) if length >= 2 else None
        at += length
    return None


async def test_slow_consumer_is_closed_while_the_room_goes_on(hub_factory):
    hub = hub_factory(HUB_OUTBOUND_QUEUE="16", HUB_RATE_LIMIT="1000", HUB_RATE_BURST="1000")
    session_id = await create_session(hub)
    fast = await LiveClient.connect(hub.ws_url(session_id, "observer"))
    path = hub.ws_url(session_id, "observer").split(str(hub.port), 1)[1]
    stalled = _stalled_client(hub.port, path)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    blob = "x" * 60_000
    last = 0
    for i in range(200):
        ack = await instructor.request("session_update", {"i": i, "blob": blob})
        last = ack["data"]["seq"]
    await fast.wait_for_seq(last, timeout=30)
    assert fast.seqs() == list(range(2, last + 1)), "the room went on undisturbed"
    metrics = (await api(hub, "GET", "/metrics")).text
    assert "hub_slow_consumer_closes_total 1.0" in metrics

    def read_all() -> bytes:
        stalled.settimeout(10)
        chunks = []
        while chunk := stalled.recv(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)

    stream = await asyncio.to_thread(read_all)
    stalled.close()
    assert _close_code_in(stream) == 3001
    await fast.close()
    await instructor.close()


async def test_idle_connection_is_closed_and_heartbeats_keep_one_open(hub_factory):
    hub = hub_factory(HUB_IDLE_TIMEOUT="1.5")
    session_id = await create_session(hub)
    idle = await LiveClient.connect(hub.ws_url(session_id, "observer"))
    lively = await LiveClient.connect(hub.ws_url(session_id, "observer"))
    for _ in range(6):
        await lively.send({"type": "heartbeat"})
        await lively.next_of("pong")
        await asyncio.sleep(0.5)
    assert await idle.wait_closed(timeout=5) == 3002
    assert lively.close_code is None
    await lively.close()


async def test_max_participants_refuses_clearly_and_observers_still_join(hub):
    session_id = await create_session(hub, max_participants=2)
    first = await LiveClient.connect(hub.ws_url(session_id, "participant", name="a"))
    second = await LiveClient.connect(hub.ws_url(session_id, "participant", name="b"))
    third = await LiveClient.connect(hub.ws_url(session_id, "participant", name="c"), expect_welcome=False)
    assert await third.wait_closed() == 3505
    assert third.messages[0]["type"] == "error" and "full" in third.messages[0]["data"]["message"]
    observer = await LiveClient.connect(hub.ws_url(session_id, "observer"))
    assert observer.welcome["data"]["participant_count"] == 2
    # the same person on a second device is not a new participant
    again = await LiveClient.connect(hub.ws_url(session_id, "participant", name="a"))
    assert again.welcome["data"]["participant_count"] == 2
    await asyncio.gather(first.close(), second.close(), observer.close(), again.close())


async def test_join_and_leave_are_announced_once_with_the_count(hub_factory):
    hub = hub_factory(HUB_PRESENCE_GRACE="0.3")
    session_id = await create_session(hub)
    watcher = await LiveClient.connect(hub.ws_url(session_id, "observer"))
    bob = await LiveClient.connect(hub.ws_url(session_id, "participant", name="Bob"))
    joined = await watcher.next_of("participant_joined")
    assert joined["data"]["participant_count"] == joined["data"]["count"] == 1
    assert joined["data"]["name"] == "Bob"
    # a quick reconnect within the grace is neither a leave nor a join
    await bob.close()
    bob = await LiveClient.connect(hub.ws_url(session_id, "participant", name="Bob"))
    await asyncio.sleep(0.6)
    await bob.close()
    left = await watcher.next_of("participant_left", timeout=3)
    assert left["data"]["participant_count"] == 0
    types = [m["type"] for m in watcher.events()]
    assert types.count("participant_joined") == 1 and types.count("participant_left") == 1
    await watcher.close()
