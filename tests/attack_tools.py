"""Helpers for the transport tests: raw sockets that misbehave, and what a well-behaved
neighbour and the hub process feel meanwhile (latency, memory, CPU)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import statistics
import struct
import time
from dataclasses import dataclass, field

import httpx

from tests.support import TLS, HubProcess, LiveClient

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def rss_mib(hub: HubProcess) -> float:
    assert hub.proc is not None
    with open(f"/proc/{hub.proc.pid}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


def cpu_seconds(hub: HubProcess) -> float:
    assert hub.proc is not None
    with open(f"/proc/{hub.proc.pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (an all-zero mask: the payload goes as it is)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return header + b"\0\0\0\0" + payload


PING = 0x9
TEXT = 0x1


def upgrade_request(path: str, port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def raw_websocket(
    hub: HubProcess, path: str, receive_buffer: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket opened by hand, its 101 read; the caller then reads or not."""
    sock = socket.socket()
    if receive_buffer is not None:  # set before connecting: it sizes the TCP window
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", hub.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=receive_buffer or 2**16)
    writer.write(upgrade_request(path, hub.port))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def flood(writer: asyncio.StreamWriter, chunk: bytes, seconds: float) -> float:
    """Send `chunk` over and over without reading, until the hub drops the socket or
    `seconds` pass; how long the hub took to drop it (or `seconds`)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            writer.write(chunk)
            await asyncio.wait_for(writer.drain(), 0.2)
        except TimeoutError:
            continue  # the hub stopped reading: its kernel buffer is full
        except (ConnectionError, OSError):
            return time.monotonic() - started
        if writer.transport.is_closing():
            break
    return time.monotonic() - started


async def dropped_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the hub ends the connection (EOF or reset) within `seconds`; reads and
    discards whatever it sent before."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            data = await asyncio.wait_for(reader.read(65536), max(deadline - time.monotonic(), 0.01))
            if not data:
                return True
    except (ConnectionError, OSError):
        return True
    except TimeoutError:
        return False
    return False


@dataclass
class Neighbour:
    """A member of another session and a health probe, timed while an attack runs."""

    hub: HubProcess
    instructor: LiveClient
    observer: LiveClient
    events: list[float] = field(default_factory=list)
    health: list[float] = field(default_factory=list)

    @classmethod
    async def join(cls, hub: HubProcess, session_id: str, **params: str) -> Neighbour:
        instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", **params))
        observer = await LiveClient.connect(hub.ws_url(session_id, "observer", **params))
        return cls(hub, instructor, observer)

    async def probe(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            ack = await self.instructor.request("announcement", {"message": "still here"})
            await self.observer.wait_for_seq(ack["data"]["seq"])
            self.events.append(time.monotonic() - started)
            started = time.monotonic()
            # a new connection each time (TLS: not the client's own setup in the latency)
            async with httpx.AsyncClient(timeout=10, verify=TLS) as fresh:
                assert (await fresh.get(self.hub.base_url + "/healthz")).status_code == 200
            self.health.append(time.monotonic() - started)
            await asyncio.sleep(0.05)

    def worst(self) -> tuple[float, float]:
        """The slowest event delivery and health answer (p100: few samples)."""
        return max(self.events), max(self.health)

    def summary(self) -> str:
        return (
            f"events n={len(self.events)} median={statistics.median(self.events):.3f}s "
            f"max={max(self.events):.3f}s; "
            f"healthz n={len(self.health)} max={max(self.health):.3f}s"
        )

    async def close(self) -> None:
        await self.instructor.close()
        await self.observer.close()


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of every whole unmasked frame in `data`, in order."""
    frames, at = [], 0
    while at + 2 <= len(data):
        opcode, size = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if size == 126:
            (size,) = struct.unpack("!H", data[at : at + 2])
            at += 2
        elif size == 127:
            (size,) = struct.unpack("!Q", data[at : at + 8])
            at += 8
        if at + size > len(data):
            break
        frames.append((opcode, data[at : at + size]))
        at += size
    return frames


async def read_until_closed(reader: asyncio.StreamReader, seconds: float) -> bytes:
    data = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), seconds):
            data += chunk
    except (ConnectionError, OSError, TimeoutError):
        pass
    return data
