"""Resume with `since`: everything after S, in order, before live events, nothing twice."""

from __future__ import annotations

import asyncio

from storage.pg_store import PgStore
from tests.support import EVERYONE_SEES_ALL, LiveClient, api, create_session


async def _publish(instructor: LiveClient, count: int, prefix: str = "m") -> list[int]:
    seqs = []
    for i in range(count):
        ack = await instructor.request("announcement", {"message": f"{prefix}{i}"})
        seqs.append(ack["data"]["seq"])
    return seqs


async def test_since_replays_what_was_missed_before_live_events(hub):
    session_id = await create_session(hub)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    seqs = await _publish(instructor, 10)
    resumed = await LiveClient.connect(hub.ws_url(session_id, "observer", since=seqs[3]))
    assert resumed.welcome["data"]["resume"]["recovered"] is True
    await resumed.wait_for_seq(seqs[-1])
    live = await instructor.request("announcement", {"message": "live"})
    await resumed.wait_for_seq(live["data"]["seq"])
    assert resumed.seqs() == list(range(seqs[3] + 1, live["data"]["seq"] + 1))
    assert resumed.messages[0]["type"] == "welcome"
    await instructor.close()
    await resumed.close()


async def test_resume_while_another_client_keeps_publishing(hub):
    session_id = await create_session(hub)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    await _publish(instructor, 20)
    publisher = asyncio.create_task(_publish(instructor, 150, prefix="during"))
    await asyncio.sleep(0.2)
    resumers = []
    for since in (0, 5, 15):
        resumers.append(await LiveClient.connect(hub.ws_url(session_id, "observer", since=since)))
        await asyncio.sleep(0.1)
    published = await publisher
    for since, client in zip((0, 5, 15), resumers, strict=True):
        await client.wait_for_seq(published[-1])
        assert client.seqs() == list(range(since + 1, published[-1] + 1)), f"since={since}"
    await asyncio.gather(instructor.close(), *(c.close() for c in resumers))


async def test_since_beyond_head_is_told_explicitly(hub):
    session_id = await create_session(hub)
    client = await LiveClient.connect(hub.ws_url(session_id, "observer", since=999))
    resume = client.welcome["data"]["resume"]
    assert resume == {**resume, "recovered": False, "reason": "ahead_of_log", "head_seq": 1}
    error = await client.next_of("error")
    assert error["data"]["code"] == "resume_unavailable"
    await client.close()


async def test_since_before_the_retained_log_is_told_explicitly(hub, database):
    session_id = await create_session(hub)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    await _publish(instructor, 6)
    store = await PgStore.connect(database)
    record = await store.get_session("default", session_id)
    assert record is not None
    assert await store.trim_log(record.pk, 5) == 4
    await store.close()
    client = await LiveClient.connect(hub.ws_url(session_id, "observer", since=2))
    resume = client.welcome["data"]["resume"]
    assert resume["recovered"] is False and resume["reason"] == "trimmed" and resume["retained_from"] == 5
    assert (await client.next_of("error"))["data"]["code"] == "resume_unavailable"
    live = await instructor.request("announcement", {"message": "after trim"})
    event = await client.next_of("announcement")
    assert event["seq"] == live["data"]["seq"]
    await client.close()
    await instructor.close()


async def test_ended_session_replays_then_closes_with_session_ended(hub):
    session_id = await create_session(hub, audience=EVERYONE_SEES_ALL)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    watcher = await LiveClient.connect(hub.ws_url(session_id, "participant", name="Bob"))
    await _publish(instructor, 3)
    ended = await api(hub, "POST", f"/api/v2/session/{session_id}/end")
    assert ended.status_code == 200
    assert await watcher.wait_closed() == 3506
    assert watcher.events()[-1]["type"] == "session_ended"
    late = await LiveClient.connect(hub.ws_url(session_id, "participant", name="Late", since=0))
    assert await late.wait_closed() == 3506
    head = ended.json()["head_seq"]
    assert late.seqs()[:head] == list(range(1, head + 1))
    assert late.seqs()[head:] in ([], [head + 1]), "then at most the session's summary"
    await instructor.close()


async def test_restart_keeps_sessions_and_events_and_seq_continues(hub):
    session_id = await create_session(hub)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    before = await _publish(instructor, 5)
    await instructor.close()
    hub.restart()
    record = (await api(hub, "GET", f"/api/v2/session/{session_id}")).json()
    assert record["status"] == "in_progress" and record["head_seq"] >= before[-1]
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah", since=0))
    await instructor.wait_for_seq(before[-1])
    after = await instructor.request("announcement", {"message": "after restart"})
    assert after["data"]["seq"] > before[-1]
    content = await api(hub, "GET", f"/api/v2/session/{session_id}/content?include_replay=true")
    seqs = [m["seq"] for m in content.json()["replay"]["messages"]]
    assert seqs == list(range(1, after["data"]["seq"] + 1))
    await instructor.close()
