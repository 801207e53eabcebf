"""A real HTTP receiver for webhook tests: it checks every signature with the
`standardwebhooks` package and keeps what it received, in order."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook

from tests.support import free_port

# Short enough for lean tests, long enough for a loaded 2-core machine.
FAST_RETRIES = {
    "HUB_WEBHOOK_ALLOW_PRIVATE": "1",
    "HUB_WEBHOOK_RETRY_BASE": "0.05",
    "HUB_WEBHOOK_TIMEOUT": "1",
    "HUB_WEBHOOK_LEASE": "5",
}


@dataclass
class Received:
    message_id: str
    body: dict[str, Any]
    at: float


@dataclass
class Receiver:
    """Answers 204 unless told otherwise: `status` (e.g. 500), `refuse` (session ids
    answered 500), `delay` (seconds before answering), or `stop()` (nothing listens on
    the port) until `start()`."""

    port: int = field(default_factory=free_port)
    secrets: dict[str, str] = field(default_factory=dict)  # path -> secret
    received: dict[str, list[Received]] = field(default_factory=dict)  # path -> in arrival order
    attempts: int = 0
    status: int = 204
    refuse: set[str] = field(default_factory=set)
    delay: float = 0.0
    bad_signatures: int = 0
    in_flight: dict[tuple[str, str], int] = field(default_factory=dict)
    max_in_flight: int = 0
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        raw = await request.read()
        self.attempts += 1
        try:
            body = Webhook(self.secrets[path]).verify(raw, dict(request.headers))
        except Exception:
            self.bad_signatures += 1
            return web.Response(status=400)
        key = (path, body["session_id"])
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight[key])
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            status = 500 if body["session_id"] in self.refuse else self.status
            if 200 <= status < 300:
                entry = Received(request.headers["webhook-id"], body, time.time())
                self.received.setdefault(path, []).append(entry)
            return web.Response(status=status)
        finally:
            self.in_flight[key] -= 1

    def seqs(self, path: str, session_id: str | None = None) -> list[int]:
        return [
            r.body["seq"]
            for r in self.received.get(path, [])
            if session_id is None or r.body["session_id"] == session_id
        ]

    async def wait_for(
        self, path: str, count: int, timeout: float = 15.0, session_id: str | None = None
    ) -> None:
        """Until `count` distinct events (session, seq) arrived at `path`."""
        deadline = time.monotonic() + timeout
        while (got := len(self.distinct(path, session_id))) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path}: {got} of {count} received")
            await asyncio.sleep(0.02)

    def distinct(self, path: str, session_id: str | None = None) -> set[tuple[str, int]]:
        return {
            (r.body["session_id"], r.body["seq"])
            for r in self.received.get(path, [])
            if session_id is None or r.body["session_id"] == session_id
        }


def in_order_once_each(seqs: list[int]) -> bool:
    """At least once and in order: repeats may only re-send a run already sent (a
    take-over re-sends what was not yet recorded), never skip or reorder."""
    highest = 0
    for seq in seqs:
        if seq > highest + 1:
            return False
        highest = max(highest, seq)
    return True
