"""Presence in a large class: staff see every join, participants a coalesced count, the
welcome stays bounded, and `max_participants` holds under a join storm on two processes."""

from __future__ import annotations

import asyncio
import time

import pytest

from hub.presence_count import LIST_CAP
from tests.cluster_tools import start_nodes
from tests.support import LiveClient, api, create_session

pytestmark = pytest.mark.timeout(90)


async def test_participants_get_a_coalesced_bounded_count_staff_every_join(hub):
    session_id = await create_session(hub, max_participants=200)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    first = await LiveClient.connect(hub.ws_url(session_id, "participant", name="p-first"))
    crowd = LIST_CAP + 10
    started = time.monotonic()
    others = await asyncio.gather(
        *(LiveClient.connect(hub.ws_url(session_id, "participant", name=f"p{i:03}")) for i in range(crowd))
    )
    joined_in = time.monotonic() - started
    deadline = time.monotonic() + 10
    while sum(m["type"] == "participant_joined" for m in instructor.events()) < crowd + 1:
        assert time.monotonic() < deadline, "staff get every join"
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)  # the last coalesced update

    digests = [m for m in first.messages if m["type"] == "presence"]
    assert digests and digests[-1]["data"]["participant_count"] == crowd + 1
    assert len(digests[-1]["data"]["participants"]) == LIST_CAP
    assert digests[-1]["data"]["participants"][0]["participant_id"] == "p-first", "first to join first"
    assert len(digests) <= joined_in + 3, "at most one update per second, not one per join"
    assert all(m["seq"] is None for m in digests)
    assert not [m for m in first.events() if m["type"].startswith("participant_")]
    welcomes = [c.welcome["data"] for c in others]
    assert all(len(w["participants"]) == min(w["participant_count"], LIST_CAP) for w in welcomes)
    assert max(w["participant_count"] for w in welcomes) > LIST_CAP, "some welcome was capped"
    await asyncio.gather(instructor.close(), first.close(), *(c.close() for c in others))


async def test_max_participants_holds_under_a_join_storm_on_two_processes(
    hub_factory, redis_base, redis_prefix
):
    a, b = await start_nodes(hub_factory, redis_base, redis_prefix, 2)
    session_id = await create_session(a, max_participants=10)
    instructor = await LiveClient.connect(a.ws_url(session_id, "instructor", name="Sarah"))

    async def attempt(i: int) -> LiveClient:
        node = a if i % 2 else b
        client = await LiveClient.connect(
            node.ws_url(session_id, "participant", name=f"p{i}"), expect_welcome=False
        )
        first = await client.next()
        client.welcome = first if first["type"] == "welcome" else {}
        return client

    clients = await asyncio.gather(*(attempt(i) for i in range(30)))
    admitted = [c for c in clients if c.welcome]
    refused = [c for c in clients if not c.welcome]
    assert len(admitted) == 10
    assert [await c.wait_closed() for c in refused] == [3505] * 20
    assert (await api(b, "GET", f"/api/v2/session/{session_id}")).json()["participant_count"] == 10
    await asyncio.sleep(0.5)
    assert sum(m["type"] == "participant_joined" for m in instructor.events()) == 10
    await asyncio.gather(instructor.close(), *(c.close() for c in admitted))
