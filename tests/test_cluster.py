"""Three real hub processes on one Redis and one PostgreSQL act as one hub."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.cluster_tools import (
    Publisher,
    Resuming,
    assert_gap_free,
    head_seq,
    log_seqs,
    start_nodes,
    subscriber_name,
)
from tests.redis_tools import kill_subscribers
from tests.support import EVERYONE_SEES_ALL, LiveClient, api, create_session

# A stuck test fails fast instead of eating the suite budget.
pytestmark = pytest.mark.timeout(90)


async def test_events_from_every_process_reach_everyone_in_one_order_once(
    hub_factory, shared_redis, redis_prefix
):
    nodes = await start_nodes(hub_factory, shared_redis, redis_prefix, 3, HUB_HRV_SUMMARY_INTERVAL="0")
    session_id = await create_session(nodes[0], max_participants=50, audience=EVERYONE_SEES_ALL)
    instructor = await LiveClient.connect(nodes[0].ws_url(session_id, "instructor", name="Sarah"))
    participants = [
        await LiveClient.connect(nodes[i % 3].ws_url(session_id, "participant", name=f"p{i}"))
        for i in range(9)
    ]
    observers = [await LiveClient.connect(n.ws_url(session_id, "observer")) for n in nodes]
    sends = [instructor.send_event("prompt", {"text": f"q{i}"}) for i in range(20)]
    for i, participant in enumerate(participants):
        sends += [participant.send_event("hrv_update", {"hrv": 40 + i}) for _ in range(3)]
    await asyncio.gather(*sends)
    head = 1 + 9 + 20 + 27  # session_started, joins, prompts, hrv updates
    everyone = [instructor, *participants, *observers]
    await asyncio.gather(*(c.wait_for_seq(head) for c in everyone))
    assert await head_seq(nodes[2], session_id) == head
    reference = [(m["seq"], m["type"]) for m in instructor.events()]
    assert_gap_free([s for s, _ in reference], head, start=2)
    for client in everyone:
        tail = [(m["seq"], m["type"]) for m in client.events()]
        assert tail == reference[-len(tail) :], "a different order, a gap or a duplicate"
    joined = [m["data"]["participant_id"] for m in instructor.events() if m["type"] == "participant_joined"]
    assert sorted(joined) == sorted(f"p{i}" for i in range(9)), "one participant_joined per join"
    await asyncio.gather(*(c.close() for c in everyone))


async def test_presence_agrees_on_every_process_and_grace_hides_a_hop(
    hub_factory, shared_redis, redis_prefix
):
    nodes = await start_nodes(hub_factory, shared_redis, redis_prefix, 3, HUB_PRESENCE_GRACE="1")
    session_id = await create_session(nodes[0])
    watcher = await LiveClient.connect(nodes[0].ws_url(session_id, "observer"))

    async def counts() -> list[int]:
        bodies = await asyncio.gather(
            *(api(n, "GET", f"/api/v2/session/{session_id}/content") for n in nodes)
        )
        return [len(b.json()["session_info"]["participants"]) for b in bodies]

    clients = []
    for i in range(3):
        clients.append(await LiveClient.connect(nodes[i].ws_url(session_id, "participant", name=f"p{i}")))
        started = time.monotonic()
        while await counts() != [i + 1] * 3:
            assert time.monotonic() - started < 1.0, "presence disagrees for more than 1 s"
            await asyncio.sleep(0.05)
    # p0 hops from process 0 to process 2 inside the grace: neither left nor joined again
    await clients[0].close()
    clients[0] = await LiveClient.connect(nodes[2].ws_url(session_id, "participant", name="p0"))
    assert clients[0].welcome["data"]["participant_count"] == 3
    # p1 really leaves: one participant_left, seen by members of every process
    await clients[1].close()
    left = await watcher.next_of("participant_left", timeout=5)
    assert left["data"]["participant_id"] == "p1" and left["data"]["participant_count"] == 2
    await asyncio.sleep(1.5)
    assert await counts() == [2, 2, 2]
    events = [(m["type"], m["data"].get("participant_id")) for m in watcher.events()]
    assert events.count(("participant_joined", "p0")) == 1
    assert [e for e in events if e[0] == "participant_left"] == [("participant_left", "p1")]
    await asyncio.gather(watcher.close(), clients[0].close(), clients[2].close())


async def test_kill_9_clients_resume_on_another_process_with_nothing_lost(
    hub_factory, redis_base, redis_prefix
):
    nodes = await start_nodes(hub_factory, redis_base, redis_prefix, 3, HUB_PRESENCE_TTL="3")
    a, doomed, c = nodes
    session_id = await create_session(a, audience=EVERYONE_SEES_ALL)
    instructor = await LiveClient.connect(a.ws_url(session_id, "instructor", name="Sarah"))
    ghost = await LiveClient.connect(doomed.ws_url(session_id, "participant", name="ghost"))
    movers = [Resuming(await LiveClient.connect(doomed.ws_url(session_id, "observer"))) for _ in range(3)]
    bob = Resuming(await LiveClient.connect(doomed.ws_url(session_id, "participant", name="bob")))
    publisher = Publisher(instructor, count=150, interval=0.01)
    flow = asyncio.create_task(publisher.run())
    await publisher.wait_acked(40)
    doomed.kill()
    killed_at = time.monotonic()
    await asyncio.gather(
        *(m.resume_on(c, session_id, "observer", "obs") for m in movers),
        bob.resume_on(c, session_id, "participant", "bob"),
    )
    await flow
    await publisher.wait_answered()
    head = await head_seq(c, session_id)
    for client in [*movers, bob]:
        await client.wait_for_seq(head)
        seqs = client.seqs()
        assert_gap_free(seqs, head, start=seqs[0])
        assert set(publisher.acked_seqs()) <= set(seqs)
    assert_gap_free(await log_seqs(c, session_id), head)
    # The ghost's entry expires with its process (TTL 3 s): one participant_left; bob
    # came back in time, so none for him.
    left = await instructor.next_of("participant_left", timeout=8)
    assert left["data"]["participant_id"] == "ghost"
    assert time.monotonic() - killed_at < 3 + 2.5
    await asyncio.sleep(1.5)
    left_ids = [m["data"]["participant_id"] for m in instructor.events() if m["type"] == "participant_left"]
    assert left_ids == ["ghost"]
    del ghost
    await asyncio.gather(instructor.close(), *(m.current.close() for m in [*movers, bob]))


async def test_killed_subscriber_connection_reconnects_and_nothing_is_missed(
    hub_factory, redis_base, redis_prefix
):
    a, b = await start_nodes(hub_factory, redis_base, redis_prefix, 2)
    session_id = await create_session(a)
    instructor = await LiveClient.connect(a.ws_url(session_id, "instructor", name="Sarah"))
    receivers = [await LiveClient.connect(b.ws_url(session_id, "observer")) for _ in range(3)]
    publisher = Publisher(instructor, count=120, interval=0.01)
    flow = asyncio.create_task(publisher.run())
    for _ in range(3):
        await asyncio.sleep(0.3)
        assert kill_subscribers(redis_base, subscriber_name(redis_prefix, 1)) == 1
    await flow
    await publisher.wait_answered()
    head = await head_seq(a, session_id)
    for receiver in receivers:
        await receiver.wait_for_seq(head)
        assert_gap_free(receiver.seqs(), head, start=receiver.seqs()[0])
    assert "redis subscriber reconnected" in b.logs()
    metrics = (await api(b, "GET", "/metrics")).text
    assert "hub_broker_reconnects_total 3.0" in metrics
    await asyncio.gather(instructor.close(), *(r.close() for r in receivers))


async def test_a_resent_id_through_another_process_is_one_event(hub_factory, redis_base, redis_prefix):
    a, b = await start_nodes(hub_factory, redis_base, redis_prefix, 2)
    session_id = await create_session(a)
    first = await LiveClient.connect(a.ws_url(session_id, "instructor", name="Sarah"))
    ack = await first.request("prompt", {"text": "Ready?"}, client_id="prompt-1")
    await first.close()
    again = await LiveClient.connect(b.ws_url(session_id, "instructor", name="Sarah"))
    second = await again.request("prompt", {"text": "Ready?"}, client_id="prompt-1")
    assert second["data"] == ack["data"]  # the first ack, again
    response = await api(b, "GET", f"/api/v2/session/{session_id}/content?include_replay=true")
    assert [m["type"] for m in response.json()["replay"]["messages"]].count("prompt") == 1
    await again.close()


async def test_announcement_to_all_live_sessions_reaches_every_process_once(
    hub_factory, redis_base, redis_prefix
):
    nodes = await start_nodes(hub_factory, redis_base, redis_prefix, 3)
    sessions = [await create_session(nodes[0]) for _ in range(2)]
    members = [
        await LiveClient.connect(n.ws_url(s, "participant", name=f"p{i}"))
        for s in sessions
        for i, n in enumerate(nodes)
    ]
    response = await api(nodes[1], "POST", "/api/v2/live-announce", {"announcement": {"message": "Break"}})
    assert response.status_code == 200, response.text
    assert sorted(response.json()["sessions_notified"]) == sorted(sessions)
    for member in members:
        message = await member.next_of("announcement", timeout=5)
        assert message["data"]["message"] == "Break"
    await asyncio.sleep(0.3)
    for member in members:
        assert [m["type"] for m in member.messages].count("announcement") == 1
    await asyncio.gather(*(m.close() for m in members))


async def test_readyz_reports_both_dependencies(hub_factory, redis_base, redis_prefix):
    (node,) = await start_nodes(hub_factory, redis_base, redis_prefix, 1)
    async with httpx.AsyncClient(base_url=node.base_url) as http:
        ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok" and ready.json()["checks"]["broker"] == "ok"


async def test_a_drained_member_moves_to_another_process_without_leaving(
    hub_factory, redis_base, redis_prefix
):
    a, b = await start_nodes(hub_factory, redis_base, redis_prefix, 2, HUB_PRESENCE_TTL="3")
    session_id = await create_session(a, audience=EVERYONE_SEES_ALL)
    watcher = await LiveClient.connect(b.ws_url(session_id, "observer"))
    bob = await LiveClient.connect(a.ws_url(session_id, "participant", name="bob"))
    amy = await LiveClient.connect(a.ws_url(session_id, "participant", name="amy"))
    await watcher.next_of("participant_joined")
    await watcher.next_of("participant_joined")
    await asyncio.to_thread(a.terminate, 30)
    assert await bob.wait_closed(5) == 3000 and await amy.wait_closed(5) == 3000
    since = bob.seqs()[-1]
    bob = await LiveClient.connect(b.ws_url(session_id, "participant", name="bob", since=since))
    # amy does not come back: her entry expires with the drained process, one participant_left
    left = await watcher.next_of("participant_left", timeout=8)
    assert left["data"]["participant_id"] == "amy" and left["data"]["participant_count"] == 1
    await asyncio.sleep(1.0)
    kinds = [(m["type"], m["data"].get("participant_id")) for m in watcher.events()]
    assert kinds.count(("participant_joined", "bob")) == 1
    assert [k for k in kinds if k[0] == "participant_left"] == [("participant_left", "amy")]
    await asyncio.gather(watcher.close(), bob.close())


async def test_members_of_a_room_served_only_by_a_dead_process_are_reaped_elsewhere(
    hub_factory, shared_redis, redis_prefix
):
    survivor, doomed = await start_nodes(hub_factory, shared_redis, redis_prefix, 2, HUB_PRESENCE_TTL="3")
    session_id = await create_session(survivor, audience=EVERYONE_SEES_ALL)
    ghosts = [
        await LiveClient.connect(doomed.ws_url(session_id, "participant", name=f"g{i}")) for i in range(2)
    ]
    await ghosts[1].next_of("participant_joined")
    doomed.kill()
    killed = time.monotonic()
    path = f"/api/v2/session/{session_id}/content?include_replay=true"
    while True:  # the survivor has no member in this session: no room, yet it reaps
        body = (await api(survivor, "GET", path)).json()
        left = [m for m in body["replay"]["messages"] if m["type"] == "participant_left"]
        if len(left) == 2:
            break
        assert time.monotonic() - killed < 3 + 3, "members of the dead process not removed"
        await asyncio.sleep(0.2)
    assert sorted(m["data"]["participant_id"] for m in left) == ["g0", "g1"]
    assert body["session_info"]["participants"] == []
