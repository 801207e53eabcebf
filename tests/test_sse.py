"""GET /api/v2/session/{id}/stream with a real HTTP client (httpx) against real hubs: the
SSE framing, replay and `Last-Event-ID`, heartbeats, the drain on SIGTERM and the resume
after a restart, auth and roles, audiences (each stream gets its member's view), and the
slow-consumer close.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from tests.auth_support import SECRET, token
from tests.support import HubProcess, LiveClient, api, create_session
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.timeout(90)


@dataclass
class Stream:
    """One open event stream, parsed as a browser would (fields until a blank line)."""

    response: httpx.Response
    events: list[dict[str, Any]] = field(default_factory=list)  # {"id", "event", "data"}
    comments: int = 0
    retry: int | None = None
    ended: bool = False
    _inbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    async def read(self) -> None:
        block: dict[str, Any] = {}
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if "event" in block or "data" in block:
                        block["data"] = orjson.loads(block["data"])
                        self.events.append(block)
                        await self._inbox.put(block)
                    block = {}
                elif line.startswith(":"):
                    self.comments += 1
                else:
                    name, _, value = line.partition(": ")
                    if name == "retry":
                        self.retry = int(value)
                    else:
                        block[name] = value
        except httpx.HTTPError:
            pass
        self.ended = True
        await self._inbox.put({"event": "<end>"})

    async def next_of(self, *names: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            block = await asyncio.wait_for(self._inbox.get(), max(deadline - time.monotonic(), 0.01))
            if block["event"] in names:
                return block

    def seqs(self) -> list[int]:
        return [int(e["id"]) for e in self.events if "id" in e]


@asynccontextmanager
async def stream(
    base_url: str, session_id: str, headers: dict[str, str] | None = None, **params: Any
) -> AsyncIterator[Stream]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=30)) as client:
        url = f"{base_url}/api/v2/session/{session_id}/stream"
        async with client.stream("GET", url, params=params, headers=headers) as response:
            opened = Stream(response)
            reader = asyncio.create_task(opened.read())
            try:
                yield opened
            finally:
                reader.cancel()


async def announce(hub: HubProcess, session_id: str, message: str) -> int:
    body = {"announcement": {"message": message}, "session_id": session_id}
    response = await api(hub, "POST", "/api/v2/live-announce", body)
    assert response.status_code == 200, response.text
    return int((await api(hub, "GET", f"/api/v2/session/{session_id}")).json()["head_seq"])


async def test_events_arrive_as_sse_with_seq_ids_replay_and_heartbeats(hub_factory):
    hub = hub_factory(HUB_HEARTBEAT_INTERVAL="0.3")
    session_id = await create_session(hub)
    await announce(hub, session_id, "before")
    async with stream(hub.base_url, session_id, since=0) as events:
        assert events.response.status_code == 200
        assert events.response.headers["content-type"].startswith("text/event-stream")
        welcome = await events.next_of("welcome")
        assert "id" not in welcome and welcome["data"]["data"]["role"] == "observer"
        live = await announce(hub, session_id, "live")
        await events.next_of("announcement")
        last = await events.next_of("announcement")
        assert last["id"] == str(live) and last["data"]["seq"] == live
        assert last["data"]["data"] == {"message": "live"}, "data is the same envelope a socket gets"
        await asyncio.sleep(0.8)
        assert events.comments >= 2, "heartbeat comments keep the stream open"
        assert events.retry is not None and 1000 <= events.retry <= 5000
        assert events.seqs() == [1, 2, 3]
    # Last-Event-ID (what EventSource sends when it reconnects) wins over the query's since.
    async with stream(hub.base_url, session_id, headers={"Last-Event-ID": "2"}, since=0) as resumed:
        await resumed.next_of("announcement")
        assert resumed.seqs() == [3]


async def test_sigterm_drains_the_stream_and_it_resumes_after_the_restart(hub_factory):
    hub = hub_factory()
    session_id = await create_session(hub)
    async with stream(hub.base_url, session_id, since=0) as events:
        await events.next_of("session_started")
        await announce(hub, session_id, "one")
        await events.next_of("announcement")
        # uvicorn re-raises the captured SIGTERM once shut down, so the status may say so
        assert await asyncio.to_thread(hub.terminate) in (0, -signal.SIGTERM)
        close = await events.next_of("close")
        assert close["data"] == {"code": 3000, "reason": "server_shutdown", "reconnect": True}
        await events.next_of("<end>")
        last_id = events.seqs()[-1]
    await asyncio.to_thread(hub.start)
    head = await announce(hub, session_id, "two")
    async with stream(hub.base_url, session_id, headers={"Last-Event-ID": str(last_id)}) as resumed:
        message = await resumed.next_of("announcement")
        assert message["data"]["data"] == {"message": "two"}
        assert resumed.seqs() == list(range(last_id + 1, head + 1)), "nothing missed, nothing twice"


async def test_the_end_of_a_session_closes_the_stream_and_then_answers_204(hub: HubProcess):
    session_id = await create_session(hub)
    async with stream(hub.base_url, session_id) as events:
        await events.next_of("welcome")
        ended = await api(hub, "POST", f"/api/v2/session/{session_id}/end")
        assert ended.status_code == 200
        await events.next_of("session_ended")
        close = await events.next_of("close")
        assert close["data"]["code"] == 3506 and close["data"]["reconnect"] is False
    # The hub then appends the session's summary (hub/end_summary.py): a client that has
    # it too (its last id is the head) is told there is nothing more, for good.
    for _ in range(100):
        last_id = (await api(hub, "GET", f"/api/v2/session/{session_id}")).json()["head_seq"]
        if last_id > events.seqs()[-1]:
            break
        await asyncio.sleep(0.05)
    async with httpx.AsyncClient() as client:
        url = f"{hub.base_url}/api/v2/session/{session_id}/stream"
        again = await client.get(url, headers={"Last-Event-ID": str(last_id)})
        assert again.status_code == 204, "204 stops a browser's EventSource for good"


async def test_the_stream_admits_as_the_websocket_does(hub_factory):
    hub = hub_factory(HUB_DEV="0", HUB_SECRET=SECRET)
    admin = {"Authorization": f"Bearer {token(role='admin')}"}
    response = await api(
        hub,
        "POST",
        "/api/v2/sessions/create",
        {"session_id": "s1", "title": "t", "instructor": "i"},
        headers=admin,
    )
    assert response.status_code == 201
    path = "/api/v2/session/s1/stream"
    cases: list[tuple[dict[str, str], dict[str, str], int]] = [
        ({}, {}, 401),
        ({"Authorization": f"Bearer {token(ttl=-5)}"}, {}, 401),
        ({"Authorization": f"Bearer {token(account='globex')}"}, {}, 404),
        ({"Authorization": f"Bearer {token(sessions=['other'])}"}, {}, 404),
        ({"Authorization": f"Bearer {token(role='participant')}"}, {"role": "observer"}, 403),
        ({"Authorization": f"Bearer {token(role='instructor')}"}, {"role": "instructor"}, 422),
        ({"Authorization": f"Bearer {token()}"}, {"since": "-1"}, 422),
    ]
    for headers, params, status in cases:
        refused = await api(hub, "GET", path, headers=headers, params=params)
        assert refused.status_code == status, (headers, params, refused.text)
        assert refused.json()["error"]["code"] in ("unauthorized", "not_found", "forbidden", "invalid")
    # EventSource cannot set headers: a token in the query; a participant's token listens as one.
    async with stream(
        hub.base_url, "s1", token=token(role="participant", user="ana", name="Ana")
    ) as listener:
        welcome = await listener.next_of("welcome")
        assert welcome["data"]["data"]["role"] == "participant"
        assert welcome["data"]["data"]["participant_count"] == 1, "a listening participant is present"
    async with stream(hub.base_url, "s1", headers={"Authorization": f"Bearer {token()}"}) as staff:
        assert (await staff.next_of("welcome"))["data"]["data"]["role"] == "observer"


async def test_a_stalled_stream_is_closed_as_slow_consumer_and_the_room_goes_on(hub_factory):
    hub = hub_factory(HUB_OUTBOUND_QUEUE="16", HUB_RATE_LIMIT="1000", HUB_RATE_BURST="1000")
    session_id = await create_session(hub)
    proxy = await TcpProxy(hub.port).start()
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor"))
    blob = "x" * 48_000
    try:
        async with stream(proxy.base_url, session_id) as stalled:
            await stalled.next_of("welcome")
            proxy.stall()
            for i in range(150):  # acked one by one: many commits, each backs the queue up further
                await instructor.request("session_update", {"i": i, "b": blob})
            proxy.resume()
            close = await stalled.next_of("close", timeout=30)
            assert close["data"] == {"code": 3001, "reason": "slow_consumer", "reconnect": True}
            seqs = stalled.seqs()
            assert seqs == list(range(2, 2 + len(seqs))) and len(seqs) < 150, "in order, then cut short"
    finally:
        await proxy.close()
        await instructor.close()
    metrics = (await api(hub, "GET", "/metrics")).text
    assert "hub_slow_consumer_closes_total 1.0" in metrics


async def test_a_stream_gets_its_members_view_of_the_log(hub: HubProcess):
    session_id = await create_session(hub)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor"))
    async with (
        stream(hub.base_url, session_id, role="participant", name="Ana", since=0) as listener,
        stream(hub.base_url, session_id, since=0) as staff,
    ):
        await listener.next_of("welcome")
        await staff.next_of("welcome")
        note = (await instructor.request("note", {"content": "for staff only"}))["data"]["seq"]
        shared = (await instructor.request("announcement", {"message": "for everyone"}))["data"]["seq"]
        heard = await listener.next_of("announcement")
        assert heard["data"]["prev_seq"] < note < shared == heard["data"]["seq"]
        await staff.next_of("announcement")
        assert note in staff.seqs() and note not in listener.seqs(), "the audience rules of the socket"
    await instructor.close()
