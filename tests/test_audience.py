"""Audience-scoped delivery: each role receives exactly the events of its audience, live
and on resume, on one process and across two on Redis; views are gap-free by the
`prev_seq` rule; bad audience settings get a typed 422 and change nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.auth_support import auth, make_session, token, token_hub
from tests.cluster_tools import Publisher, start_nodes
from tests.redis_tools import kill_subscribers
from tests.support import HubProcess, LiveClient, api, create_session
from tests.view_tools import EVERYONE_TYPES, STAFF_TYPES, ViewClient, assert_chain, expected_view

pytestmark = pytest.mark.timeout(90)

FAST = {"HUB_PRESENCE_GRACE": "0.1", "HUB_HRV_SUMMARY_INTERVAL": "0.2"}

INSTRUCTOR_EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("technique_changed", {"technique": "Box Breathing", "duration": 60}),
    ("prompt", {"text": "How do you feel?"}),
    ("announcement", {"message": "Welcome"}),
    ("achievement_unlocked", {"title": "Calm"}),
    ("hrv_milestone", {"improvement": 3}),
    ("session_update", {"music": "rain"}),
    ("note", {"content": "Ana looks tense"}),
    ("session_paused", {}),
    ("session_resumed", {}),
    ("session_ending", {"seconds_remaining": 60}),
]


@pytest.fixture(params=["one process", "two processes"])
async def nodes(request: Any, hub_factory: Any) -> list[HubProcess]:
    factory = hub_factory
    if request.param == "one process":
        return [factory(**FAST)]
    redis_base, prefix = request.getfixturevalue("redis_base"), request.getfixturevalue("redis_prefix")
    return await start_nodes(factory, redis_base, prefix, 2, **FAST)


async def log_of(node: HubProcess, session_id: str) -> list[dict[str, Any]]:
    body = (await api(node, "GET", f"/api/v2/session/{session_id}/events?limit=10000")).json()
    return list(body["events"])


def view_of(log: list[dict[str, Any]], role: str, opened_after: int) -> list[int]:
    """The role's view when `response` was opened to everyone by the event at `opened_after`."""
    before = expected_view([m for m in log if m["seq"] <= opened_after], role)
    after = expected_view([m for m in log if m["seq"] > opened_after], role, frozenset({"response"}))
    return before + after


async def test_every_type_reaches_its_audience_live_and_on_resume(nodes):
    a, b = nodes[0], nodes[-1]  # senders on a, bystanders on b
    session_id = await create_session(a, max_participants=10)
    observer = await LiveClient.connect(b.ws_url(session_id, "observer", name="Olga"))
    colleague = await LiveClient.connect(b.ws_url(session_id, "instructor", name="Ines", user_id="ines"))
    bystander = await LiveClient.connect(b.ws_url(session_id, "participant", name="Ben"))
    instructor = await LiveClient.connect(a.ws_url(session_id, "instructor", name="Sarah", user_id="sarah"))
    sender = await LiveClient.connect(a.ws_url(session_id, "participant", name="Ana"))
    passer = await LiveClient.connect(b.ws_url(session_id, "participant", name="Pat"))
    await passer.close()
    await colleague.next_of("participant_left")

    for event_type, data in INSTRUCTOR_EVENTS:
        assert (await instructor.request(event_type, data))["type"] == "ack", event_type
    acks = [
        await sender.request(t, d) for t, d in (("response", {"text": "calm"}), ("hrv_update", {"hrv": 50}))
    ]
    acks.append(await sender.request("feedback", {"message_seq": 2, "feedback_type": "like"}))
    await bystander.next_of("hrv_summary")  # the hub's own summary, for everyone

    opened = await api(
        a, "PATCH", f"/api/v2/session/{session_id}/audience", {"audience": {"response": "everyone"}}
    )
    assert opened.status_code == 200, opened.text
    assert opened.json()["audience"]["response"] == "everyone"
    change_seq = opened.json()["seq"]
    acks.append(await sender.request("response", {"text": "warmer now"}))
    assert [m["type"] for m in acks] == ["ack"] * 4, "the sender is acked whatever the audience"
    assert (await api(a, "POST", f"/api/v2/session/{session_id}/end")).status_code == 200

    members = {"observer": observer, "instructor": colleague, "participant": bystander, "sender": sender}
    for client in [*members.values(), instructor]:
        assert await client.wait_closed() == 3506
    log = await log_of(a, session_id)
    for _ in range(100):  # the hub appends the session's summary once it completed
        if log[-1]["type"] == "session_summary":
            break
        await asyncio.sleep(0.05)
        log = await log_of(a, session_id)
    assert {m["type"] for m in log} >= EVERYONE_TYPES | STAFF_TYPES, "every durable type was exercised"
    live = log[:-1]  # the summary comes after the room closed: no member receives it live
    for name, client in members.items():
        role = "participant" if name == "sender" else name
        head = client.welcome["data"]["head_seq"]
        wanted = [s for s in view_of(live, role, change_seq) if s > head]
        assert client.seqs() == wanted, name
        assert_chain(client.events(), head)
    sender_saw = {m["data"].get("text") for m in sender.events() if m["type"] == "response"}
    assert sender_saw == {"warmer now"}, "its first answer was for staff only, its second for everyone"

    # Resume from the start and from the middle: the replay filters by the same views.
    for role in ("observer", "instructor", "participant"):
        wanted = view_of(log, role, change_seq)
        for since in (0, change_seq - 3):
            late = await LiveClient.connect(b.ws_url(session_id, role, name=f"late-{role}", since=since))
            assert await late.wait_closed() == 3506
            assert late.seqs() == [s for s in wanted if s > since], (role, since)
            assert late.events()[0]["prev_seq"] == max([s for s in wanted if s <= since], default=0)
            assert_chain(late.events(), since)


async def test_a_view_stays_gap_free_through_drops_and_gap_repair(hub_factory, redis_base, redis_prefix):
    a, b = await start_nodes(hub_factory, redis_base, redis_prefix, 2, **FAST)
    session_id = await create_session(a, max_participants=20)

    def url(node: HubProcess, role: str, name: str) -> Any:
        return lambda since: node.ws_url(session_id, role, name=name, user_id=name, since=since)

    readers = [
        await ViewClient(url(b, "participant", "p-b")).connect(),
        await ViewClient(url(b, "observer", "o-b")).connect(),
        await ViewClient(url(a, "participant", "p-a")).connect(),
    ]
    instructor = await LiveClient.connect(a.ws_url(session_id, "instructor", name="Sarah"))
    sender = await LiveClient.connect(a.ws_url(session_id, "participant", name="Ana"))
    start = [r.last for r in readers]
    announcements = Publisher(instructor, 60, interval=0.01)
    hrv = [sender.send_event("hrv_update", {"hrv": 40 + i % 9}) for i in range(60)]

    async def disturb() -> None:
        for i in range(4):
            await asyncio.sleep(0.15)
            kill_subscribers(redis_base, f"hub-sub-{redis_prefix}n1")  # b misses broker messages
            assert readers[i % 2].client is not None
            await readers[i % 2].client.close()  # a member drops and resumes with since

    await asyncio.gather(announcements.run(), _notes(instructor), *hrv, disturb())
    await announcements.wait_acked(60)
    log = await log_of(a, session_id)
    head = log[-1]["seq"]
    for reader, role, first in zip(readers, ("participant", "observer", "participant"), start, strict=True):
        wanted = [s for s in expected_view(log, role) if s > first]
        await reader.follow(lambda r, wanted=wanted: bool(r.accepted) and r.last >= wanted[-1])
        assert [m["seq"] for m in reader.accepted] == wanted, role
        assert_chain(reader.accepted, first)
        assert reader.last <= head
    assert sum(r.connects for r in readers) > len(readers), "the drops happened"
    await asyncio.gather(*(r.close() for r in readers), instructor.close(), sender.close())


async def _notes(instructor: LiveClient) -> None:
    for i in range(60):
        await instructor.send_event("note", {"content": f"n{i}"})
        await asyncio.sleep(0.01)


async def test_bad_audience_settings_get_a_typed_422_and_change_nothing(hub):
    bad = {"teleport": "everyone", "response": "all", "session_started": "staff"}
    created = await api(
        hub, "POST", "/api/v2/sessions/create", {"title": "T", "instructor": "S", "audience": bad}
    )
    assert created.status_code == 422
    error = created.json()["error"]
    assert error["code"] == "invalid"
    fields = sorted(e["field"] for e in error["details"]["errors"])
    assert fields == ["audience.response", "audience.session_started", "audience.teleport"]
    not_object = await api(
        hub, "POST", "/api/v2/sessions/create", {"title": "T", "instructor": "S", "audience": "x"}
    )
    assert (
        not_object.status_code == 422
        and not_object.json()["error"]["details"]["errors"][0]["field"] == "audience"
    )

    session_id = await create_session(hub, audience={"note": "everyone"})
    path = f"/api/v2/session/{session_id}/audience"
    before = (await api(hub, "GET", path)).json()
    assert before["audience"]["note"] == "everyone" and before["audience"]["hrv_update"] == "staff"
    for body in ({"audience": bad}, {"audience": ["response"]}, {"response": "everyone"}, {}):
        for method in ("PUT", "PATCH"):
            answer = await api(hub, method, path, body)
            assert answer.status_code == 422, (method, body, answer.text)
            assert answer.json()["error"]["code"] == "invalid" and answer.json()["error"]["details"]["errors"]
    assert (await api(hub, "GET", path)).json() == before
    head = (await api(hub, "GET", f"/api/v2/session/{session_id}")).json()["head_seq"]

    # Over the socket, audiences cannot be changed at all (only validated over HTTP).
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    refused = await instructor.request("session_update", {"audience": {"hrv_update": "everyone"}})
    assert refused["type"] == "error" and refused["data"]["code"] == "invalid"
    assert (await api(hub, "GET", f"/api/v2/session/{session_id}")).json()["head_seq"] == head
    assert (await api(hub, "GET", path)).json() == before
    await instructor.close()


def test_http_reads_of_the_log_follow_the_callers_view(pg_base):
    with token_hub(pg_base) as (hub, _dsn):
        make_session(hub, "acme", "views-over-http")
        asyncio.run(_http_views(hub, "views-over-http"))


async def _http_views(hub: HubProcess, session_id: str) -> None:
    staff = token(user="sarah", role="instructor")
    ana = token(user="ana", role="participant")
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", token=staff))
    participant = await LiveClient.connect(hub.ws_url(session_id, "participant", token=ana))
    await instructor.request("note", {"content": "private"})
    await instructor.request("announcement", {"message": "public"})
    await participant.request("hrv_update", {"hrv": 50})

    async def types(tok: str, path: str, key: str) -> list[str]:
        body = (await api(hub, "GET", f"/api/v2/session/{session_id}/{path}", headers=auth(tok))).json()
        messages = body["replay"]["messages"] if key == "replay" else body["events"]
        return [m["type"] for m in messages]

    everything = ["session_started", "participant_joined", "note", "announcement", "hrv_update"]
    for path, key in (("content?include_replay=true", "replay"), ("events", "events")):
        assert await types(staff, path, key) == everything
        assert await types(ana, path, key) == ["session_started", "announcement"]
    await instructor.close()
    await participant.close()
