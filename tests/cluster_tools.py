"""Helpers for multi-process tests: start hubs on one Redis, publish steadily, resume."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import websockets

from tests.support import HubProcess, LiveClient, api


@dataclass(frozen=True)
class SharedRedis:
    """What hub processes share: one Redis server, or a Redis Cluster (`HUB_REDIS_CLUSTER=1`)."""

    url: str
    env: dict[str, str] = field(default_factory=dict)


async def start_nodes(
    factory: Any, redis: str | SharedRedis, prefix: str, count: int, **env: str
) -> list[HubProcess]:
    """`count` hub processes sharing the test's database and Redis key prefix, started
    in parallel; node i is named `<prefix>n<i>` (its subscriber is `hub-sub-<that>`)."""
    shared = redis if isinstance(redis, SharedRedis) else SharedRedis(redis)

    def one(i: int) -> HubProcess:
        merged = {"REDIS_URL": shared.url, "HUB_REDIS_PREFIX": prefix, "HUB_NODE_ID": f"{prefix}n{i}"}
        return factory(**{**merged, **shared.env, **env})  # type: ignore[no-any-return]

    return list(await asyncio.gather(*(asyncio.to_thread(one, i) for i in range(count))))


def subscriber_name(prefix: str, i: int) -> str:
    return f"hub-sub-{prefix}n{i}"


@dataclass
class Publisher:
    """Sends `count` events from one client at a steady pace and keeps every answer."""

    client: LiveClient
    count: int
    interval: float = 0.01
    event_type: str = "announcement"
    sent: list[str] = field(default_factory=list)

    async def run(self) -> None:
        for i in range(self.count):
            if self.client.close_code is not None:
                return
            try:
                self.sent.append(await self.client.send_event(self.event_type, {"message": f"m{i}"}))
            except websockets.ConnectionClosed:
                return  # the hub closed us (drain, process death): the test looks at what was acked
            await asyncio.sleep(self.interval)

    def answers(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.client.messages if m["type"] == kind]

    def acked_seqs(self) -> list[int]:
        return [m["data"]["seq"] for m in self.answers("ack")]

    async def wait_acked(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.answers("ack")) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} acks not reached; errors: {self.answers('error')[-2:]}")
            await asyncio.sleep(0.01)

    async def wait_answered(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.answers("ack")) + len(self.answers("error")) < len(self.sent):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.sent)} sent, not all answered")
            await asyncio.sleep(0.02)


async def head_seq(hub: HubProcess, session_id: str) -> int:
    response = await api(hub, "GET", f"/api/v2/session/{session_id}")
    assert response.status_code == 200, response.text
    return int(response.json()["head_seq"])


async def log_seqs(hub: HubProcess, session_id: str) -> list[int]:
    response = await api(hub, "GET", f"/api/v2/session/{session_id}/content?include_replay=true")
    return [m["seq"] for m in response.json()["replay"]["messages"]]


def assert_gap_free(seqs: list[int], head: int, start: int = 1) -> None:
    assert seqs == list(range(start, head + 1)), f"gap or duplicate near {_first_bad(seqs, start)}"


def _first_bad(seqs: list[int], start: int) -> Any:
    for i, seq in enumerate(seqs):
        if seq != start + i:
            return seqs[max(i - 2, 0) : i + 3]
    return ("length", len(seqs))


class Resuming:
    """A client that, when its process dies, reconnects elsewhere with `since`."""

    def __init__(self, first: LiveClient):
        self.parts = [first]

    @property
    def current(self) -> LiveClient:
        return self.parts[-1]

    def seqs(self) -> list[int]:
        return [seq for part in self.parts for seq in part.seqs()]

    async def resume_on(self, hub: HubProcess, session_id: str, role: str, name: str) -> None:
        await self.current.wait_closed(10)
        since = self.seqs()[-1] if self.seqs() else 0
        self.parts.append(await LiveClient.connect(hub.ws_url(session_id, role, name=name, since=since)))

    async def wait_for_seq(self, seq: int, timeout: float = 15.0) -> None:
        await self.current.wait_for_seq(seq, timeout)
