"""One hub process: welcome, events with acks, role permissions, bad frames."""

from __future__ import annotations

import asyncio
import time

from tests.support import EVERYONE_SEES_ALL, LiveClient, api, create_session


async def test_welcome_carries_the_room_state(hub):
    session_id = await create_session(hub)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    welcome = instructor.welcome
    assert welcome["seq"] is None and welcome["session_id"] == session_id
    data = welcome["data"]
    for key in ("role", "participant_count", "participants", "status", "current_technique", "head_seq"):
        assert key in data
    assert data["role"] == "instructor" and data["status"] == "in_progress" and data["head_seq"] == 1
    await instructor.close()


async def test_event_is_acked_then_delivered_to_everyone_in_order(hub):
    session_id = await create_session(hub)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    participant = await LiveClient.connect(hub.ws_url(session_id, "participant", name="Bob"))
    joined = await instructor.next_of("participant_joined")
    assert joined["data"]["participant_count"] == 1 and joined["data"]["name"] == "Bob"

    ack = await instructor.request("technique_changed", {"technique": "Box Breathing", "duration": 240})
    assert ack["type"] == "ack" and ack["seq"] is None
    seq = ack["data"]["seq"]
    event = await participant.next_of("technique_changed")
    assert event["seq"] == seq and event["data"]["technique"] == "Box Breathing"
    assert event["actor"]["role"] == "instructor"
    mine = await instructor.next_of("technique_changed")
    assert mine["seq"] == seq
    # the ack came before the sender's own copy of the event
    kinds = [m["type"] for m in instructor.messages]
    assert kinds.index("ack") < kinds.index("technique_changed")
    assert participant.seqs() == sorted(participant.seqs())
    await instructor.close()
    await participant.close()


async def test_roles_and_bad_frames_get_typed_errors_and_the_connection_stays(hub):
    session_id = await create_session(hub)
    participant = await LiveClient.connect(hub.ws_url(session_id, "participant", name="Bob"))
    observer = await LiveClient.connect(hub.ws_url(session_id, "observer"))

    cases = [
        (participant, "not json", "invalid"),
        (participant, '["a list"]', "invalid"),
        (participant, '{"type": "teleport", "id": "1", "data": {}}', "invalid"),
        (participant, '{"type": "prompt", "id": "2", "data": {"text": "hi"}}', "forbidden"),
        (participant, '{"type": "hrv_update", "id": "3", "data": {"hrv": "high"}}', "invalid"),
        (participant, '{"type": "hrv_update", "id": "4", "data": {}}', "invalid"),
        (observer, '{"type": "response", "id": "5", "data": {"text": "x"}}', "forbidden"),
    ]
    for client, frame, code in cases:
        await client.ws.send(frame)
        error = await client.next_of("error")
        assert error["data"]["code"] == code, (frame, error)
        assert error["seq"] is None
    ack = await participant.request("hrv_update", {"hrv": 55.5})
    assert ack["type"] == "ack"
    await participant.send({"type": "heartbeat"})
    assert (await participant.next_of("pong"))["seq"] is None
    content = await api(hub, "GET", f"/api/v2/session/{session_id}/content?include_replay=true")
    types = [m["type"] for m in content.json()["replay"]["messages"]]
    assert types.count("hrv_update") == 1 and "prompt" not in types and "response" not in types
    await participant.close()
    await observer.close()


async def test_resent_id_is_acked_once_and_stored_once(hub):
    session_id = await create_session(hub)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    first = await instructor.request("prompt", {"text": "How do you feel?"}, client_id="p-1")
    again = await instructor.request("prompt", {"text": "How do you feel?"}, client_id="p-1")
    assert first["data"] == again["data"] == {"id": "p-1", "seq": first["data"]["seq"]}
    await instructor.close()
    reconnected = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    third = await reconnected.request("prompt", {"text": "How do you feel?"}, client_id="p-1")
    assert third["data"]["seq"] == first["data"]["seq"]
    content = await api(hub, "GET", f"/api/v2/session/{session_id}/content?include_replay=true")
    assert [m["type"] for m in content.json()["replay"]["messages"]].count("prompt") == 1
    await reconnected.close()


async def test_fifty_clients_see_one_gap_free_order(hub):
    session_id = await create_session(hub, max_participants=100, audience=EVERYONE_SEES_ALL)
    clients = await asyncio.gather(
        *(LiveClient.connect(hub.ws_url(session_id, "participant", name=f"p{i}")) for i in range(50))
    )
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    for i in range(30):
        await instructor.send_event("announcement", {"message": f"m{i}"})
    await asyncio.gather(*(c.send_event("hrv_update", {"hrv": 40 + i}) for i, c in enumerate(clients)))
    # Sent without waiting for the acks: the head reaches every one of them soon after.
    deadline = time.monotonic() + 10
    while True:
        head = (await api(hub, "GET", f"/api/v2/session/{session_id}")).json()["head_seq"]
        if head >= 1 + 50 + 30 + 50 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert head >= 1 + 50 + 30 + 50
    await asyncio.gather(*(c.wait_for_seq(head) for c in clients))
    reference = None
    for client in clients:
        seqs = client.seqs()
        assert seqs == list(range(seqs[0], head + 1)), "gap or duplicate"
        tail = [(m["seq"], m["type"]) for m in client.events() if m["seq"] > 51]
        reference = reference or tail
        assert tail == reference
    await asyncio.gather(*(c.close() for c in clients), instructor.close())
