"""Test helpers: hub processes on free ports, and a small real WebSocket client."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg
import httpx
import orjson
import pytest
import websockets

from hub.audience import DEFAULT_AUDIENCE, FIXED_TYPES

ROOT = Path(__file__).resolve().parent.parent

# Session audiences under which every member receives every event (the hub's behaviour
# before audiences): for tests about the one order of the log rather than about views.
EVERYONE_SEES_ALL = {t: "everyone" for t in DEFAULT_AUDIENCE if t not in FIXED_TYPES}
OUTPUT = ROOT / "test-output"
# One TLS context for every short-lived test client: httpx otherwise builds one per client
# (loading the CA bundle, ~50 ms of CPU), and tests open thousands of them to plain-HTTP hubs.
TLS = ssl.create_default_context()


def run_js(script: str, why: str) -> Any:
    """What `script` (an ES module body run from the repo root) prints as JSON: how tests
    read the rules the browser clients keep. Without node: skipped, or failed under CI."""
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"node is missing: {why} needs it (CI=true)")
        pytest.skip("node is missing")
    result = subprocess.run(
        [node, "--input-type=module", "-e", script], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def admin_dsn(dsn: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/postgres"))


def database_dsn(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def admin_execute(dsn: str, sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) on the server's maintenance database."""
    conn = await asyncpg.connect(admin_dsn(dsn))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HubProcess:
    """A real `python -m hub serve` on a free port."""

    def __init__(self, env: dict[str, str], port: int | None = None):
        # In-process broker unless the test asks for Redis: an inherited REDIS_URL would
        # share one key prefix across tests whose fresh databases reuse session ids.
        self.env = {"REDIS_URL": "", **env}
        self.port = port or free_port()
        OUTPUT.mkdir(exist_ok=True)
        self.log_path = OUTPUT / f"hub-{self.port}-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, session_id: str, role: str, **params: Any) -> str:
        query = {"session_id": session_id, "role": role, **{k: v for k, v in params.items() if v is not None}}
        return f"ws://127.0.0.1:{self.port}/ws/live-updates?{urlencode(query)}"

    def start(self, timeout: float = 30.0) -> HubProcess:
        env = {**os.environ, **self.env}
        log = open(self.log_path, "ab")  # the child process writes to it until it stops
        self._stopping = False
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hub",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-links",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.logs()[-3000:]}")
            if self._healthy():
                return self
            time.sleep(0.02)
        raise RuntimeError(f"hub did not start in {timeout}s:\n{self.logs()[-3000:]}")

    def _healthy(self) -> bool:
        # The standard library's client: an httpx call per poll costs more CPU (an SSL
        # context each time) than the poll itself, on a machine that is starting the hub.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """kill -9: no drain, no goodbye."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the graceful drain."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)
        return self.proc.returncode

    def stop_soon(self) -> None:
        """SIGTERM without waiting: several processes drain at once, then stop() waits."""
        if self.proc and self.proc.poll() is None and not self._stopping:
            self.proc.send_signal(signal.SIGTERM)
            self._stopping = True

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.stop_soon()  # once: a second SIGTERM would cut the drain short
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> HubProcess:
        self.stop()
        return self.start()


def start_hub(env: dict[str, str]) -> HubProcess:
    return HubProcess(env).start()


async def api(hub: HubProcess, method: str, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=15, verify=TLS) as client:
        return await client.request(method, path, json=json, **kwargs)


async def create_session(hub: HubProcess, start: bool = True, **fields: Any) -> str:
    session_id = fields.pop("session_id", None) or f"s-{uuid.uuid4().hex[:10]}"
    body = {"session_id": session_id, "title": "Morning Mindfulness", "instructor": "Sarah Chen", **fields}
    response = await api(hub, "POST", "/api/v2/sessions/create", body)
    assert response.status_code == 201, response.text
    if start:
        started = await api(hub, "POST", f"/api/v2/session/{session_id}/start")
        assert started.status_code == 200, started.text
    return session_id


class LiveClient:
    """A real WebSocket client that keeps every message it receives."""

    def __init__(self, url: str):
        self.url = url
        self.ws: Any = None
        self.messages: list[dict[str, Any]] = []
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self.welcome: dict[str, Any] = {}

    @classmethod
    async def connect(cls, url: str, expect_welcome: bool = True, **kwargs: Any) -> LiveClient:
        client = cls(url)
        client.ws = await websockets.connect(url, max_size=None, **kwargs)
        client._reader = asyncio.create_task(client._read())
        if expect_welcome:
            client.welcome = await client.next_of("welcome")
        return client

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = orjson.loads(raw)
                self.messages.append(message)
                await self._inbox.put(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            code = self.ws.close_code
            self.close_code = code if code is not None else 1006

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self._inbox.get(), timeout)

    async def next_of(self, *types: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message = await self.next(max(deadline - time.monotonic(), 0.001))
            if message["type"] in types:
                return message

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def send_event(self, event_type: str, data: dict[str, Any], client_id: str | None = None) -> str:
        client_id = client_id or uuid.uuid4().hex
        await self.send({"type": event_type, "id": client_id, "data": data})
        return client_id

    async def request(
        self, event_type: str, data: dict[str, Any], client_id: str | None = None
    ) -> dict[str, Any]:
        """Send an event and wait for its ack or error."""
        client_id = await self.send_event(event_type, data, client_id)
        while True:
            message = await self.next_of("ack", "error")
            if message["data"].get("id") == client_id:
                return message

    def events(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("seq") is not None]

    def seqs(self) -> list[int]:
        return [m["seq"] for m in self.events()]

    async def wait_for_seq(self, seq: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.seqs() or self.seqs()[-1] < seq:
            if time.monotonic() > deadline:
                raise TimeoutError(f"seq {seq} not reached; have {self.seqs()[-5:]}")
            await asyncio.sleep(0.01)

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.close_code

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
