"""On a real Redis Cluster (3 masters, 3 replicas): slots that move and masters that die
while rooms are live. The contract suites and the multi-process tests also run on it
(tests/test_broker_contract.py, test_presence_contract.py, test_cluster.py)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import httpx
import pytest

from hub.broker_redis_cluster import RedisClusterBroker
from tests.cluster_tools import Publisher, SharedRedis, assert_gap_free, head_seq, log_seqs, start_nodes
from tests.redis_cluster_tools import RedisClusterServers, key_slot
from tests.support import LiveClient, api, create_session

pytestmark = pytest.mark.timeout(90)


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


def other_master(cluster: RedisClusterServers, than: int) -> int:
    return next(port for port in sorted(cluster.masters()) if port != than)


async def test_a_slot_moving_away_moves_the_subscription_and_repairs(
    redis_cluster, redis_cluster_url, redis_prefix
):
    a = RedisClusterBroker(redis_cluster_url, prefix=redis_prefix)
    b = RedisClusterBroker(redis_cluster_url, prefix=redis_prefix)
    await a.start()
    await b.start()
    try:
        got: list[int] = []
        resubscribed: list[str] = []
        b.on_resubscribed(resubscribed.append)
        await b.subscribe("session:1", lambda origin, seq, payload: got.append(seq))
        await a.publish("session:1", 1, b"x")
        await until(lambda: got == [1])
        # The slot moves to another master: the old one unsubscribes b by itself, and b
        # subscribes on the new one and asks for a repair (what was published meanwhile).
        slot = key_slot(redis_prefix + "session:1")
        await asyncio.to_thread(
            redis_cluster.migrate_slot, slot, other_master(redis_cluster, redis_cluster.owner_of(slot))
        )
        await until(lambda: resubscribed == ["session:1"])
        await a.publish("session:1", 2, b"x")
        await until(lambda: got == [1, 2])
        assert b.healthy() and b.reconnects == 0  # a move, not a lost connection

        # A subscribe sent where the map (not refreshed yet) says: MOVED, then the right node.
        slot = key_slot(redis_prefix + "session:2")
        await b.subscribe("session:3", lambda *m: None)  # b has a link to where session:2 is now
        owner = redis_cluster.owner_of(slot)
        await asyncio.to_thread(redis_cluster.migrate_slot, slot, other_master(redis_cluster, owner))
        await b.subscribe("session:2", lambda origin, seq, payload: got.append(seq))
        await a.publish("session:2", 3, b"x")
        await until(lambda: got == [1, 2, 3])
        assert b.healthy()
    finally:
        await a.close()
        await b.close()


async def test_slots_move_then_a_master_dies_while_publishing_and_nothing_is_lost(
    hub_factory, redis_cluster, redis_cluster_url, redis_prefix
):
    shared = SharedRedis(redis_cluster_url, {"HUB_REDIS_CLUSTER": "1"})
    a, b = await start_nodes(hub_factory, shared, redis_prefix, 2)
    session_id = await create_session(a)  # the first session of a fresh database: pk 1
    instructor = await LiveClient.connect(a.ws_url(session_id, "instructor", name="Sarah"))
    receivers = [await LiveClient.connect(b.ws_url(session_id, "observer")) for _ in range(2)]
    bob = await LiveClient.connect(b.ws_url(session_id, "participant", name="bob"))
    publisher = Publisher(instructor, count=300, interval=0.01)
    flow = asyncio.create_task(publisher.run())
    await publisher.wait_acked(20)

    # The session's channel and its presence keys move to other masters while it is live...
    channel_slot = key_slot(f"{redis_prefix}session:1")
    presence_slot = key_slot(f"{redis_prefix}presence:{{1}}:conns")
    for slot in (channel_slot, presence_slot):
        await asyncio.to_thread(
            redis_cluster.migrate_slot, slot, other_master(redis_cluster, redis_cluster.owner_of(slot))
        )
    await publisher.wait_acked(60)

    # ...then the master now serving the channel dies, and its replica takes over.
    doomed = redis_cluster.owner_of(channel_slot)
    readiness: list[int] = []

    async def watch_readiness() -> None:
        """Until the publishing is over and b is ready again (bounded by the test's timeout)."""
        async with httpx.AsyncClient(base_url=b.base_url, timeout=5) as http:
            while not (flow.done() and readiness[-1:] == [200]):
                readiness.append((await http.get("/readyz")).status_code)
                await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch_readiness())
    redis_cluster.kill(doomed)
    try:
        await flow
        await publisher.wait_answered()
        await watcher
        head = await head_seq(a, session_id)
        for receiver in receivers:
            await receiver.wait_for_seq(head, timeout=20)
            assert_gap_free(receiver.seqs(), head, start=receiver.seqs()[0])
        assert set(publisher.acked_seqs()) <= set(receivers[0].seqs())
        assert_gap_free(await log_seqs(b, session_id), head)
        # The outage was visible while it lasted, and the hub recovered by itself.
        assert 503 in readiness and readiness[-1] == 200, readiness
        metrics = (await api(b, "GET", "/metrics")).text
        assert float(re.search(r"^hub_broker_reconnects_total (\S+)", metrics, re.M)[1]) >= 1  # type: ignore[index]
        assert re.search(r"^hub_broker_up 1\.0", metrics, re.M)
        assert "redis cluster subscriptions restored" in b.logs()
        for node in (a, b):  # presence survived the move and the failover, on both processes
            content = (await api(node, "GET", f"/api/v2/session/{session_id}/content")).json()
            assert [p["participant_id"] for p in content["session_info"]["participants"]] == ["bob"]
    finally:
        await asyncio.gather(instructor.close(), bob.close(), *(r.close() for r in receivers))
        await asyncio.to_thread(redis_cluster.restart, doomed)
