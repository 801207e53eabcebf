"""Presence under a storm: a process dies with 400 members, who move to another process.

The log's view of who is present (its participant_joined / participant_left, in seq
order) must end as the truth: every member connected at the end present, and none
marked as left while their connection stayed up.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.cluster_tools import head_seq, start_nodes
from tests.support import LiveClient, api, create_session

pytestmark = pytest.mark.timeout(120)

MEMBERS = 400
TTL = 4.0  # presence entries of the dead process expire 2-4 s after it died


async def test_members_moved_from_a_killed_process_end_present_in_the_log(
    hub_factory, redis_base, redis_prefix
):
    dead, survivor = await start_nodes(hub_factory, redis_base, redis_prefix, 2, HUB_PRESENCE_TTL=str(TTL))
    session_id = await create_session(dead, max_participants=1000)
    gate = asyncio.Semaphore(50)

    async def connect(node, i: int) -> LiveClient:
        async with gate:
            url = node.ws_url(session_id, "participant", user_id=f"p{i}", name=f"P{i}")
            return await LiveClient.connect(url, open_timeout=30)

    first = await asyncio.gather(*(connect(dead, i) for i in range(MEMBERS)))
    while await head_seq(survivor, session_id) < 1 + MEMBERS:  # every join is in the log
        await asyncio.sleep(0.1)
    killed_at = await head_seq(survivor, session_id)
    dead.kill()
    await asyncio.gather(*(c.wait_closed() for c in first))

    # They come back over the time the dead process's entries expire and are reaped.
    async def come_back(i: int) -> LiveClient:
        await asyncio.sleep(random.uniform(0, 1.5 * TTL))
        return await connect(survivor, i)

    moved = await asyncio.gather(*(come_back(i) for i in range(MEMBERS)))
    await asyncio.sleep(TTL)  # every reap and its events are done
    closed = [c.close_code for c in moved if c.close_code is not None]
    assert not closed, f"{len(closed)} members were disconnected, with codes {sorted(set(closed))}"

    path = f"/api/v2/session/{session_id}/events?since={killed_at}&limit=10000"
    response = await api(survivor, "GET", path)
    events: dict[str, list[str]] = {}
    for event in response.json()["events"]:
        if event["type"] in ("participant_joined", "participant_left"):
            events.setdefault(event["data"]["participant_id"], []).append(event["type"][12:])
    # After the death: nothing (back before the reap) or left then joined, nothing else.
    wrong = {p: seen for p, seen in events.items() if seen != ["left", "joined"]}
    assert not wrong, f"{len(wrong)} members with a wrong history, e.g. {list(wrong.items())[:3]}"
    await asyncio.gather(*(c.close() for c in moved))
