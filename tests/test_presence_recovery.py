"""Presence after a restart (hub/presence_recovery.py): members who come back within the
grace cause no event, those who do not get one `participant_left` (reason `hub_restart`),
and the counts continue from the log's instead of climbing again from 1; on one process
(in-process presence) and on two sharing Redis, both killed at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from tests.cluster_tools import start_nodes
from tests.support import HubProcess, LiveClient, api, create_session

pytestmark = pytest.mark.timeout(120)

GRACE = 4.0
FAST = {"HUB_RESTART_GRACE": str(GRACE), "HUB_PRESENCE_GRACE": "0.2", "HUB_PRESENCE_TTL": "3"}


async def presence_log(node: HubProcess, session_id: str, after: int = 0) -> list[dict[str, Any]]:
    body = (await api(node, "GET", f"/api/v2/session/{session_id}/events?limit=10000")).json()
    return [e for e in body["events"] if e["type"].startswith("participant_") and e["seq"] > after]


async def join(node: HubProcess, session_id: str, user: str) -> LiveClient:
    return await LiveClient.connect(node.ws_url(session_id, "participant", name=user.title(), user_id=user))


async def head_of(node: HubProcess, session_id: str) -> int:
    return int((await api(node, "GET", f"/api/v2/session/{session_id}")).json()["head_seq"])


async def settle_joins(node: HubProcess, session_id: str, count: int) -> None:
    for _ in range(100):
        if len(await presence_log(node, session_id)) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the joins were not written")


async def wait_for_left(node: HubProcess, session_id: str, after: int) -> list[dict[str, Any]]:
    for _ in range(int(GRACE * 10) + 100):
        events = await presence_log(node, session_id, after)
        if any(e["type"] == "participant_left" for e in events):
            await asyncio.sleep(1.0)  # anything spurious would follow at once
            return await presence_log(node, session_id, after)
        await asyncio.sleep(0.1)
    raise AssertionError("no participant_left after the restart grace")


async def test_one_process_restart_writes_one_left_for_whoever_did_not_come_back(hub_factory):
    hub = hub_factory(**FAST)
    session_id = await create_session(hub)
    members = [await join(hub, session_id, user) for user in ("ana", "ben", "cleo")]
    await settle_joins(hub, session_id, 3)
    before = await head_of(hub, session_id)

    await asyncio.to_thread(hub.kill)  # a crash: nobody is told, nothing is written
    await asyncio.to_thread(hub.start)
    ana, ben = await join(hub, session_id, "ana"), await join(hub, session_id, "ben")
    # The counts continue from the log's: three are still present as far as anyone knows.
    assert ana.welcome["data"]["participant_count"] == 3
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    assert instructor.welcome["data"]["participant_count"] == 3
    assert {p["participant_id"] for p in instructor.welcome["data"]["participants"]} == {"ana", "ben", "cleo"}

    after = await wait_for_left(hub, session_id, before)
    assert [(e["type"], e["data"]["participant_id"]) for e in after] == [("participant_left", "cleo")]
    left = after[0]
    assert left["data"]["reason"] == "hub_restart"
    assert left["data"]["participant_count"] == 2 and left["data"]["count"] == 2
    live = await instructor.next_of("participant_left", timeout=5)
    assert live["data"]["participant_id"] == "cleo"

    # From here presence is ordinary again: a leave is written once, after the grace.
    await ben.close()
    for _ in range(50):
        events = await presence_log(hub, session_id, after[-1]["seq"])
        if events:
            break
        await asyncio.sleep(0.1)
    assert [(e["type"], e["data"]["participant_id"], e["data"]["participant_count"]) for e in events] == [
        ("participant_left", "ben", 1)
    ]
    for client in (ana, instructor, *members):
        await client.close()


async def test_whole_cluster_restart_on_redis(hub_factory, redis_base, redis_prefix):
    nodes = await start_nodes(hub_factory, redis_base, redis_prefix, 2, **FAST)
    session_id = await create_session(nodes[0])
    users = ("ana", "ben", "cleo", "dev")
    members = [await join(nodes[i % 2], session_id, user) for i, user in enumerate(users)]
    await settle_joins(nodes[0], session_id, 4)
    before = await head_of(nodes[0], session_id)

    await asyncio.gather(*(asyncio.to_thread(node.kill) for node in nodes))
    # Redis restarted too (or the cluster was down past the presence keys' expiry):
    # the presence remembers nobody; only the log does.
    keys = redis.Redis.from_url(redis_base)
    keys.delete(*keys.scan_iter(match=redis_prefix + "*"))
    keys.close()
    await asyncio.gather(*(asyncio.to_thread(node.start) for node in nodes))
    # Two come back, one to each process; cleo and dev do not.
    ana, ben = await join(nodes[1], session_id, "ana"), await join(nodes[0], session_id, "ben")
    assert ana.welcome["data"]["participant_count"] == 4
    assert ben.welcome["data"]["participant_count"] == 4

    after = await wait_for_left(nodes[0], session_id, before)
    await asyncio.sleep(GRACE)  # the other process's grace, and the reaper of the old entries
    after = await presence_log(nodes[0], session_id, before)
    assert sorted(e["data"]["participant_id"] for e in after) == ["cleo", "dev"], after
    assert all(e["type"] == "participant_left" for e in after), "a member that came back is not joined again"
    assert sorted(e["data"]["participant_count"] for e in after) == [2, 3], "counts only go down"
    assert {e["data"]["reason"] for e in after} == {"hub_restart"}
    for client in (ana, ben, *members):
        await client.close()
