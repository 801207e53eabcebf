"""Storms on one hub: clients that leave before their welcome, bursts above capacity, and
many members resuming at once from one `since`."""

from __future__ import annotations

import asyncio
import re

import asyncpg
import pytest
import websockets

from tests.support import HubProcess, LiveClient, api, create_session


async def _metric(hub: HubProcess, name: str) -> float:
    text = (await api(hub, "GET", "/metrics")).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def _log_types(hub: HubProcess, session_id: str) -> list[str]:
    page = await api(hub, "GET", f"/api/v2/session/{session_id}/events?since=0&limit=1000")
    assert page.status_code == 200, page.text
    return [event["type"] for event in page.json()["events"]]


async def test_clients_gone_before_their_welcome_are_not_joined(hub_factory, database):
    hub = hub_factory(HUB_PRESENCE_GRACE="0.2")
    session_id = await create_session(hub)
    # Hold admission on its session read: the clients are accepted, then leave while
    # they wait, as clients that give up during a storm do.
    blocker = await asyncpg.connect(database)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE hub_sessions IN ACCESS EXCLUSIVE MODE")
        gone = []
        for i in range(8):
            url = hub.ws_url(session_id, "participant", name=f"gone-{i}", user_id=f"gone-{i}")
            gone.append(await websockets.connect(url))
        for ws in gone:
            await ws.close()
        await asyncio.sleep(0.3)  # the hub has seen every close
        await transaction.commit()
    finally:
        await blocker.close()

    for _ in range(100):
        if await _metric(hub, "hub_joins_abandoned_total") >= 8:
            break
        await asyncio.sleep(0.05)
    assert await _metric(hub, "hub_joins_abandoned_total") == 8
    assert await _metric(hub, "hub_connections") == 0
    await asyncio.sleep(0.5)  # past the presence grace: any leave would be written by now
    assert "participant_joined" not in await _log_types(hub, session_id)

    # Nothing of them is left behind: the next one is alone in the room.
    late = await LiveClient.connect(hub.ws_url(session_id, "participant", name="late", user_id="late"))
    assert late.welcome["data"]["participant_count"] == 1
    await late.close()


async def test_a_burst_above_capacity_is_refused_as_unavailable_and_the_hub_recovers(hub_factory):
    hub = hub_factory(HUB_MAX_CONNECTIONS="16")
    session_id = await create_session(hub)
    url = hub.ws_url(session_id, "observer", name="burst")

    async def attempt() -> LiveClient | int:
        try:
            return await LiveClient.connect(url)
        except websockets.InvalidStatus as refused:
            return int(refused.response.status_code)
        except (websockets.ConnectionClosed, OSError, TimeoutError):
            return -1

    held = [await LiveClient.connect(url) for _ in range(14)]
    burst = await asyncio.gather(*(attempt() for _ in range(40)))
    welcomed = [c for c in burst if isinstance(c, LiveClient)]
    refused = [c for c in burst if not isinstance(c, LiveClient)]
    # Beyond the socket cap a newcomer gets 503 (unavailable, try again) at once: nothing
    # queues for it, nothing crashes.
    assert refused and set(refused) == {503}, refused
    assert len(held) + len(welcomed) <= 16
    assert all(c.close_code is None for c in held + welcomed)  # those in are not disturbed

    for client in held + welcomed:
        await client.close()
    assert (await api(hub, "GET", "/healthz")).status_code == 200
    # Recovered by itself: the same burst, now within the cap, is welcomed.
    again = await asyncio.gather(*(LiveClient.connect(url) for _ in range(12)))
    assert all(c.welcome["type"] == "welcome" for c in again)
    for client in again:
        await client.close()


@pytest.mark.parametrize("role", ["observer", "participant"])
async def test_many_members_resuming_from_one_since_each_get_every_event_once(hub, role):
    session_id = await create_session(hub)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    head = instructor.welcome["data"]["head_seq"]
    for n in range(30):
        ack = await instructor.request("announcement", {"message": f"m{n}"})
        assert ack["type"] == "ack"

    async def resume(i: int) -> LiveClient:
        url = hub.ws_url(session_id, role, name=f"r{i}", user_id=f"r{i}", since=head)
        return await LiveClient.connect(url)

    clients = await asyncio.gather(*(resume(i) for i in range(40)))
    for client in clients:
        await client.wait_for_seq(head + 30)
        events = [m for m in client.events() if m["type"] == "announcement"]
        assert [e["data"]["message"] for e in events] == [f"m{n}" for n in range(30)]
        seqs = client.seqs()
        assert seqs == sorted(set(seqs))
        # Gap-free by the protocol's rule: each event's prev_seq is the one before it.
        previous = head
        for event in client.events():
            assert event["prev_seq"] <= previous
            previous = event["seq"]
    for client in [*clients, instructor]:
        await client.close()


async def test_joins_beyond_the_bound_in_flight_are_refused_as_unavailable_and_the_hub_recovers(
    hub_factory, database
):
    hub = hub_factory(HUB_MAX_JOINS_IN_FLIGHT="3")
    session_id = await create_session(hub)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="ins"))
    await instructor.send_event("announcement", {"message": "hello"})
    await instructor.next_of("ack")
    url = hub.ws_url(session_id, "observer", name="burst", since=0)
    # Hold every read of the log: the joins that get in wait in their replay.
    blocker = await asyncpg.connect(database)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE hub_events IN ACCESS EXCLUSIVE MODE")
        stuck = [await LiveClient.connect(url, expect_welcome=False) for _ in range(3)]
        await asyncio.sleep(0.5)  # all three are in flight
        burst = await asyncio.gather(*(LiveClient.connect(url, expect_welcome=False) for _ in range(6)))
        refusals = [await client.next_of("error", "welcome") for client in burst]
        # Refused at once with the typed, retryable answer; nothing queues for them.
        assert {r["type"] for r in refusals} == {"error"}, refusals
        assert {r["data"]["code"] for r in refusals} == {"unavailable"}
        assert all(r["data"]["details"] == {"max_joins_in_flight": 3} for r in refusals)
        # Counted by code, and logged at most once a second (not once per refusal).
        assert await _metric(hub, 'hub_connections_refused_total{code="unavailable"}') == 6
        assert hub.logs().count("connection not admitted") <= 2, hub.logs()[-2000:]
        await transaction.commit()
    finally:
        await blocker.close()

    for client in stuck:  # those in flight finish their join: welcome, then the missed event
        assert (await client.next_of("announcement", timeout=10))["data"]["message"] == "hello"
        assert client.close_code is None
    for client in stuck + burst:
        await client.close()
    # Recovered by itself: a burst within the bound is welcomed.
    again = await asyncio.gather(*(LiveClient.connect(url) for _ in range(3)))
    assert all(c.welcome["type"] == "welcome" for c in again)
    for client in [*again, instructor]:
        await client.close()
